// moekit info: what a training checkpoint or a model directory (Hugging Face or moekit) holds: config, parameter counts, tensors, bytes.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import bytes from 'bytes';
import type { Command } from 'commander';
import { SafetensorsFile, type StTensorInfo } from '../io/safetensors.js';
import { parseConfig, type ModelConfig } from '../models/config.js';
import { HF_ARCHS } from '../models/hf/config.js';
import { FP8_DEFAULT_BLOCK, parseQuantization, quantRole } from '../models/hf/quant.js';
import { loadedBytes } from '../models/hf/kept.js';
import { findRunCheckpoint, type RunCheckpoint } from '../models/run.js';
import { keepsStorageDtype } from '../models/hf/weights.js';
import { SELECTION_BIAS } from '../moe/names.js';

export interface CheckpointInfo {
  /** the step-N directory that was read */
  checkpoint: string;
  step: number;
  config: ModelConfig | null;
  params: { total: number; expert: number; active: number | null };
  /** tensors in model.safetensors (parameters and buffers such as e_score_correction_bias) */
  tensors: number;
  /** bytes of all files in the checkpoint directory */
  bytes: number;
  files: { name: string; bytes: number }[];
}

/** Saved tensors that are buffers, not trainable parameters (the trainer stores the selection bias). */
const isBuffer = (name: string): boolean => name.endsWith(SELECTION_BIAS) || name.endsWith('inv_freq');
/** Routed-expert tensors in every layout: mlp.experts.N.*, block_sparse_moe.experts.N.* (Mixtral), fused mlp.experts.gate_up_proj. */
const isExpert = (name: string): boolean => name.includes('.experts.');

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`info: ${file}: cannot read ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`info: ${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** A checkpoint root (with latest.json) or a step-N directory -> the step-N directory. */
export function resolveCheckpoint(p: string): string {
  if (!existsSync(p)) throw new Error(`info: ${p} does not exist (expected a checkpoint directory with latest.json, or a step-N directory)`);
  if (!statSync(p).isDirectory()) throw new Error(`info: ${p} is not a directory (expected a checkpoint directory with latest.json, or a step-N directory)`);
  if (existsSync(path.join(p, 'model.safetensors'))) return p;
  let rc: RunCheckpoint | null;
  try {
    rc = findRunCheckpoint(p);
  } catch (e) {
    throw new Error(`info: ${(e as Error).message}`);
  }
  if (!rc) throw new Error(`info: ${p} is not a checkpoint: it has neither latest.json nor model.safetensors`);
  return rc.checkpoint;
}

export async function checkpointInfo(p: string): Promise<CheckpointInfo> {
  const dir = resolveCheckpoint(p);
  const statePath = path.join(dir, 'state.json');
  const state = readJson(statePath, 'state.json') as { step?: unknown; config?: unknown } | null;
  if (!state || typeof state !== 'object' || !Number.isInteger(state.step)) {
    throw new Error(`info: ${statePath} has step ${JSON.stringify(state?.step)}, expected an integer`);
  }
  let config: ModelConfig | null = null;
  if (state.config !== undefined) {
    try {
      config = parseConfig(state.config);
    } catch (e) {
      throw new Error(`info: ${statePath}: config is invalid: ${(e as Error).message}`);
    }
  }
  const st = await SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  let total = 0;
  let expert = 0;
  try {
    for (const t of st.tensors.values()) {
      if (isBuffer(t.name)) continue;
      const n = t.shape.reduce((a, d) => a * d, 1);
      total += n;
      if (isExpert(t.name)) expert += n;
    }
  } finally {
    await st.close();
  }
  const tensors = st.tensors.size;
  // as MoELM.paramCounts: a token uses topK of the experts' weights
  const active = config ? total - expert + (config.ffn === 'moe' ? (expert * config.topK) / config.experts : expert) : null;
  const files = readdirSync(dir)
    .filter((n) => statSync(path.join(dir, n)).isFile())
    .sort()
    .map((name) => ({ name, bytes: statSync(path.join(dir, name)).size }));
  return {
    checkpoint: dir,
    step: state.step as number,
    config,
    params: { total, expert, active },
    tensors,
    bytes: files.reduce((a, f) => a + f.bytes, 0),
    files,
  };
}

/** A model directory described from its config and safetensors headers (no weights read). */
export interface ModelDirInfo {
  kind: 'hf' | 'moekit';
  dir: string;
  /** the class name transformers uses (architectures[0]) and model_type; for moekit, its source architecture */
  architecture: string | null;
  model_type: string | null;
  /** whether moekit loads this architecture (logits, generate, compress, export) */
  supported: boolean;
  config: { layers: number | null; hidden: number | null; experts: number | null; top_k: number | null; expert_width: number | null; vocab: number | null; heads: number | null; kv_heads: number | null; ffn?: string };
  params: { total: number; expert: number; active: number | null };
  /** parameters per element type on disk (MXFP4 blocks count two parameters per byte; MXFP4 and FP8 scales none) */
  dtypes: Record<string, number>;
  /** config.json quantization_config.quant_method (e.g. "mxfp4", "fp8"), null when not quantised */
  quantization: string | null;
  /** bytes the weights take in memory once loaded, per --load-dtype: auto keeps BF16/F16 Linear and expert weights
   *  (2 bytes), everything else is f32 (4; MXFP4 and FP8 are dequantised at load); f32 widens every tensor */
  memory: { auto: number; f32: number };
  /** with --budget: the budget in bytes and whether each load fits it */
  budget?: { bytes: number; auto: boolean; f32: boolean };
  tensors: number;
  /** bytes of the safetensors files */
  weight_bytes: number;
  /** bytes of all files in the directory */
  bytes: number;
  files: { name: string; bytes: number }[];
}

/** The weight files of a model directory: the shards of model.safetensors.index.json, or model.safetensors. */
function weightFiles(dir: string): string[] {
  const index = path.join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const j = readJson(index, 'model.safetensors.index.json') as { weight_map?: unknown } | null;
    const map = j && typeof j === 'object' ? j.weight_map : undefined;
    if (!map || typeof map !== 'object' || Array.isArray(map)) throw new Error(`info: ${index} has no "weight_map" object (expected {"weight_map": {tensor: file}})`);
    const shards = [...new Set(Object.values(map as Record<string, unknown>))];
    for (const f of shards) if (typeof f !== 'string' || f.includes('/') || f.includes('\\')) throw new Error(`info: ${index}: shard ${JSON.stringify(f)} must be a file name in ${dir}`);
    return (shards as string[]).sort().map((f) => path.join(dir, f));
  }
  const single = path.join(dir, 'model.safetensors');
  if (existsSync(single)) return [single];
  throw new Error(`info: ${dir} has config.json but neither model.safetensors nor model.safetensors.index.json`);
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Describes a Hugging Face (config.json) or moekit (moekit.json) model directory. */
export async function modelDirInfo(dir: string): Promise<ModelDirInfo> {
  const mk = path.join(dir, 'moekit.json');
  const kind = existsSync(mk) ? 'moekit' : 'hf';
  const raw = readJson(kind === 'moekit' ? mk : path.join(dir, 'config.json'), kind === 'moekit' ? 'moekit.json' : 'config.json') as Record<string, unknown> | null;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`info: ${dir}: ${kind === 'moekit' ? 'moekit.json' : 'config.json'} is not a JSON object`);
  let architecture: string | null;
  let modelType: string | null;
  let config: ModelDirInfo['config'];
  if (kind === 'hf') {
    modelType = typeof raw.model_type === 'string' ? raw.model_type : null;
    architecture = Array.isArray(raw.architectures) && typeof raw.architectures[0] === 'string' ? raw.architectures[0] : modelType;
    config = {
      layers: num(raw.num_hidden_layers), hidden: num(raw.hidden_size),
      experts: num(raw.num_experts) ?? num(raw.num_local_experts) ?? num(raw.n_routed_experts),
      top_k: num(raw.num_experts_per_tok) ?? num(raw.moe_topk),
      expert_width: num(raw.moe_intermediate_size) ?? num(raw.intermediate_size),
      vocab: num(raw.vocab_size), heads: num(raw.num_attention_heads), kv_heads: num(raw.num_key_value_heads) ?? num(raw.num_attention_heads),
    };
  } else {
    let c: ModelConfig;
    try {
      c = parseConfig(raw.config);
    } catch (e) {
      throw new Error(`info: ${mk}: config is invalid: ${(e as Error).message}`);
    }
    const src = raw.source as { arch?: unknown } | undefined;
    modelType = typeof src?.arch === 'string' ? src.arch : null;
    architecture = modelType;
    config = { layers: c.layers, hidden: c.hidden, experts: c.ffn === 'dense' ? 0 : c.experts, top_k: c.topK, expert_width: c.expertWidth, vocab: c.vocabSize, heads: c.heads, kv_heads: c.kvHeads, ffn: c.ffn };
  }
  let total = 0;
  let expert = 0;
  let tensors = 0;
  let weightBytes = 0;
  const dtypes: Record<string, number> = {};
  const stored: StTensorInfo[] = [];
  for (const f of weightFiles(dir)) {
    const st = await SafetensorsFile.open(f);
    stored.push(...st.tensors.values());
    await st.close();
    weightBytes += statSync(f).size;
  }
  const names = new Set(stored.map((t) => t.name));
  const qc = kind === 'hf' ? (raw.quantization_config as { quant_method?: unknown } | null | undefined) : undefined;
  let parsedQuant: ReturnType<typeof parseQuantization> = null;
  try {
    parsedQuant = kind === 'hf' ? parseQuantization(qc, path.join(dir, 'config.json')) : null;
  } catch {
    // a quantisation moekit does not load is still described (memory counts its tensors as f32)
  }
  const memory = loadedBytes(stored, parsedQuant?.method === 'fp8' ? parsedQuant.blockSize : FP8_DEFAULT_BLOCK, keepsStorageDtype);
  for (const t of stored) {
    tensors++;
    const role = quantRole(t.name, (n) => names.has(n)); // quantisation scales are not parameters
    if (role === 'skip') continue;
    const n = t.shape.reduce((a, d) => a * d, 1) * (role === 'mxfp4' ? 2 : 1);
    if (isBuffer(t.name)) continue;
    total += n;
    if (isExpert(t.name)) expert += n;
    const dt = role === 'mxfp4' ? 'MXFP4' : t.dtype;
    dtypes[dt] = (dtypes[dt] ?? 0) + n;
  }
  const quantization = qc && typeof qc === 'object' && typeof qc.quant_method === 'string' ? qc.quant_method : null;
  const { experts: E, top_k: K } = config;
  const active = E && K ? total - expert + (expert * K) / E : E === 0 ? total : null;
  const files = readdirSync(dir)
    .filter((n) => statSync(path.join(dir, n)).isFile())
    .sort()
    .map((name) => ({ name, bytes: statSync(path.join(dir, name)).size }));
  return {
    kind, dir, architecture, model_type: modelType, supported: kind === 'moekit' || HF_ARCHS.includes(modelType as (typeof HF_ARCHS)[number]),
    config, params: { total, expert, active }, dtypes, quantization, memory, tensors, weight_bytes: weightBytes, bytes: files.reduce((a, f) => a + f.bytes, 0), files,
  };
}

/** A model directory (config.json or moekit.json) rather than a training checkpoint. */
export function isModelDir(p: string): boolean {
  if (!existsSync(p) || !statSync(p).isDirectory()) return false;
  if (existsSync(path.join(p, 'moekit.json'))) return true;
  return existsSync(path.join(p, 'config.json')) && !existsSync(path.join(p, 'state.json')) && !existsSync(path.join(p, 'latest.json'));
}

const human = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n));
const bytesText = (n: number): string => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('describe a checkpoint or a model directory: config, parameter counts, tensors, dtypes, bytes and files')
    .argument('<path>', 'a checkpoint directory (with latest.json), one step-N directory, or a model directory (Hugging Face config.json + safetensors, or moekit.json)')
    .option('--budget <size>', 'memory budget (e.g. 8GB, 512MiB, or bytes): says whether the weights fit it with each --load-dtype')
    .option('--json', 'print one JSON object')
    .action(async (ckpt: string, o: { json?: boolean; budget?: string }) => {
      const budget = o.budget === undefined ? null : parseBudget(o.budget);
      if (isModelDir(ckpt)) {
        const m = await modelDirInfo(ckpt);
        if (budget !== null) m.budget = { bytes: budget, auto: m.memory.auto <= budget, f32: m.memory.f32 <= budget };
        if (o.json) console.log(JSON.stringify(m));
        else printModelDir(m);
        return;
      }
      const r = await checkpointInfo(ckpt);
      if (o.json) {
        console.log(JSON.stringify(r));
        return;
      }
      console.log(`checkpoint ${r.checkpoint}`);
      console.log(`step       ${r.step}`);
      const p = r.params;
      console.log(`params     ${human(p.total)} total (${p.total}), ${human(p.expert)} in routed experts, ${p.active === null ? 'active unknown (no config)' : `${human(p.active)} active per token (${Math.round(p.active)})`}`);
      console.log(`tensors    ${r.tensors} in model.safetensors, ${bytesText(r.bytes)} in all`);
      for (const f of r.files) console.log(`  ${f.name.padEnd(24)} ${bytesText(f.bytes).padStart(10)}`);
      if (r.config) {
        const c = r.config;
        console.log(`config     ${c.ffn === 'moe' ? `MoE ${c.experts} experts, top-${c.topK}, expert width ${c.expertWidth}${c.sharedWidth ? `, shared ${c.sharedWidth}` : ''}, router ${c.router}` : `dense, width ${c.denseWidth ?? c.topK * c.expertWidth + c.sharedWidth}`}`);
        console.log(`           vocab ${c.vocabSize}, hidden ${c.hidden}, ${c.layers} layers, ${c.heads} heads (${c.kvHeads} kv) x ${c.headDim}, max seq ${c.maxSeqLen}`);
      } else console.log('config     none in state.json');
    });
}

/** --budget's value in bytes: "8GB", "512MiB", "1.5gb" (1024-based, as the `bytes` package reads units) or plain bytes. */
export function parseBudget(v: string): number {
  const unit = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]i?b)\s*$/i.exec(v);
  const n = /^\s*\d+\s*$/.test(v) ? Number(v) : unit ? bytes.parse(`${unit[1]}${unit[2]!.replace(/i/i, '')}`) : NaN;
  if (n === null || !Number.isFinite(n) || n <= 0) throw new Error(`--budget must be a size such as 8GB, 512MiB or a number of bytes, got "${v}"`);
  return n;
}

function printModelDir(m: ModelDirInfo): void {
  const c = m.config;
  const v = (x: number | null): string => (x === null ? '?' : String(x));
  console.log(`model      ${m.dir} (${m.kind === 'hf' ? 'Hugging Face model directory' : 'moekit model directory'})`);
  console.log(`arch       ${m.architecture ?? 'unknown'}${m.model_type && m.model_type !== m.architecture ? ` (model_type ${m.model_type})` : ''}${m.supported ? '' : ', not loadable by moekit (expected one of ' + HF_ARCHS.join(', ') + ')'}`);
  console.log(`config     ${v(c.layers)} layers, hidden ${v(c.hidden)}, ${c.experts === 0 ? 'dense' : `${v(c.experts)} experts, top-${v(c.top_k)}, expert width ${v(c.expert_width)}`}${c.ffn && c.ffn !== 'moe' && c.ffn !== 'dense' ? ` (${c.ffn})` : ''}`);
  console.log(`           vocab ${v(c.vocab)}, ${v(c.heads)} heads (${v(c.kv_heads)} kv)`);
  const p = m.params;
  console.log(`params     ${human(p.total)} total (${p.total}), ${human(p.expert)} in routed experts, ${p.active === null ? 'active unknown' : `${human(p.active)} active per token (${Math.round(p.active)})`}`);
  console.log(`dtypes     ${Object.entries(m.dtypes).map(([d, n]) => `${d} ${human(n)}`).join(', ') || 'none'}${m.quantization ? ` (quantization ${m.quantization}, dequantised at load time)` : ''}`);
  console.log(`tensors    ${m.tensors} in ${bytesText(m.weight_bytes)} of safetensors, ${bytesText(m.bytes)} in all`);
  const fit = (k: 'auto' | 'f32'): string => (m.budget ? (m.budget[k] ? ` fits --budget ${bytesText(m.budget.bytes)}` : ` does NOT fit --budget ${bytesText(m.budget.bytes)}`) : '');
  console.log(`memory     weights once loaded: ${bytesText(m.memory.auto)} with --load-dtype auto (BF16/F16/MXFP4/FP8 kept)${fit('auto')}; ${bytesText(m.memory.f32)} with --load-dtype f32${fit('f32')}`);
  for (const f of m.files) console.log(`  ${f.name.padEnd(24)} ${bytesText(f.bytes).padStart(10)}`);
}
