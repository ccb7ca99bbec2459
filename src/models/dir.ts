// Node: model directories. A Hugging Face directory (config.json + safetensors), a moekit model directory
// (moekit.json + model.safetensors with moekit parameter names, e.g. a compressed checkpoint) or a training run
// (its latest checkpoint, or one step-N checkpoint), loaded the same way.
import { existsSync, mkdirSync, readFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { SafetensorsFile, writeFileAtomic, writeSafetensors } from '../io/safetensors.js';
import { loadTokenizer, type LoadedTokenizer } from '../io/tokenizer.js';
import { tensor } from '../tensor/api.js';
import { noGrad } from '../tensor/engine.js';
import { parseConfig, type ModelConfig } from './config.js';
import { loadHfModel } from './hf/load.js';
import { logicalShape } from '../nn/packed.js';
import { parameterF32, type LoadDtype } from './hf/weights.js';
import { HF_ARCHS, type HfArch } from './hf/config.js';
import { MoELM } from './moe-lm.js';
import { withoutInit } from '../nn/module.js';
import { SELECTION_BIAS } from '../moe/names.js';
import { findRunCheckpoint, readRunState, runTokenizer, type RunCheckpoint } from './run.js';

export const MOEKIT_MODEL_FORMAT = 'moekit-model';

/** What moekit.json holds. */
export interface MoekitModelInfo {
  format: typeof MOEKIT_MODEL_FORMAT;
  version: 1;
  config: ModelConfig;
  /** the Hugging Face checkpoint this model came from: its architecture and config.json (for export) */
  source?: { arch: HfArch; config: Record<string, unknown>; dir?: string };
  /** clustered layers: slot s of layer l holds original expert slots[l][s] */
  slots?: Record<string, number[]>;
  /** how the model was made (e.g. the compression method and its numbers) */
  provenance?: Record<string, unknown>;
  bosTokenId?: number | null;
  eosTokenIds?: number[];
}

export interface LoadedModel {
  /** hf: a Hugging Face directory; moekit: a moekit model directory; run: a training run's checkpoint */
  kind: 'hf' | 'moekit' | 'run';
  /** the Hugging Face architecture (hf, or the source of a moekit model); null when unknown */
  arch: HfArch | null;
  config: ModelConfig;
  model: MoELM;
  tokenizer: LoadedTokenizer | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** prepend bosTokenId to encoded prompts (tokenizer_config.json add_bos_token) */
  addBos: boolean;
  /** hf: config.json; moekit: moekit.json; run: {format: "moekit-run", run, checkpoint, step} */
  info: Record<string, unknown>;
  /** where the model's tokenizer and generation files live (the run directory for a run; else the directory itself) */
  assetsDir: string;
}

function addBosOf(dir: string): boolean {
  const f = path.join(dir, 'tokenizer_config.json');
  if (!existsSync(f)) return false;
  try {
    return (JSON.parse(readFileSync(f, 'utf8')) as { add_bos_token?: unknown }).add_bos_token === true;
  } catch {
    return false;
  }
}

/** How `loadModelDir` loads weights: `loadDtype` 'auto' (default) keeps a Hugging Face checkpoint's BF16/F16 Linear
 *  and expert weights in that dtype; 'f32' widens everything (moekit directories and runs are f32 either way). */
export interface LoadModelOptions {
  loadDtype?: LoadDtype;
}

/** Widens a model's kept bf16/f16 weights to f32 before `why` (training, compression) and says so on stderr. */
export function upcastWeights(model: MoELM, why: string): { tensors: number; bytes: number } {
  const r = model.upcast();
  if (r.tensors > 0) console.warn(`moekit: ${why}: upcast ${r.tensors} bf16/f16 weight tensors (${(r.bytes / 2 ** 20).toFixed(1)} MiB stored) to f32 (+${(r.bytes / 2 ** 20).toFixed(1)} MiB)`);
  return r;
}

/** Loads a Hugging Face or moekit model directory, or a training run (its latest checkpoint, or a step-N directory). */
export async function loadModelDir(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  if (!existsSync(dir)) throw new Error(`${dir} does not exist (expected a model directory)`);
  const mk = path.join(dir, 'moekit.json');
  if (existsSync(mk)) return loadMoekitDir(dir);
  if (existsSync(path.join(dir, 'config.json'))) {
    const hf = await loadHfModel(dir, opts);
    return { kind: 'hf', arch: hf.arch, config: hf.config, model: hf.model, tokenizer: hf.tokenizer, bosTokenId: hf.bosTokenId, eosTokenIds: hf.eosTokenIds, addBos: addBosOf(dir), info: hf.raw, assetsDir: dir };
  }
  const run = findRunCheckpoint(dir);
  if (run) return loadRun(run);
  throw new Error(`${dir}: neither moekit.json nor config.json nor a training checkpoint (expected a moekit or Hugging Face model directory, a \`moekit train --out\` run directory, or one of its checkpoints/step-N directories)`);
}

/** Reads `file` (moekit parameter names) into `model`'s parameters and selection-bias buffers, checking every shape. */
async function loadMoekitWeights(model: MoELM, file: string): Promise<void> {
  const st = await SafetensorsFile.open(file);
  try {
    for (const [name, p] of [...model.parameters(), ...model.buffers().filter(([n]) => n.endsWith(SELECTION_BIAS))]) {
      if (!st.tensors.has(name)) {
        if (name.endsWith(SELECTION_BIAS)) continue; // written before clustered routers had a selection bias: zeros
        throw new Error(`${file} has no tensor "${name}"`);
      }
      const t = st.info(name);
      if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) throw new Error(`${file}: "${name}" has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`);
      const data = await st.readF32(name);
      noGrad(() => model.setTensor(name, tensor(data, p.shape)));
    }
  } finally {
    await st.close();
  }
}

/** A training run's checkpoint as a model: the config of its state.json, its weights, the run's tokenizer. */
async function loadRun(rc: RunCheckpoint): Promise<LoadedModel> {
  const state = readRunState(rc.checkpoint);
  const model = withoutInit(() => new MoELM(state.config));
  try {
    await loadMoekitWeights(model, path.join(rc.checkpoint, 'model.safetensors'));
  } catch (e) {
    model.dispose();
    throw e;
  }
  const blocks = new Map(model.clusteredBlocks());
  for (const s of state.slots) {
    const b = blocks.get(s.layer);
    if (b) b.ids = Int32Array.from(s.ids);
  }
  const tok = runTokenizer(rc);
  return {
    kind: 'run', arch: null, config: state.config, model, tokenizer: tok ? loadTokenizer(tok) : null, bosTokenId: null, eosTokenIds: [], addBos: false,
    info: { format: 'moekit-run', run: rc.run, checkpoint: rc.checkpoint, step: state.step }, assetsDir: tok ? path.dirname(tok) : rc.run,
  };
}

async function loadMoekitDir(dir: string): Promise<LoadedModel> {
  const file = path.join(dir, 'moekit.json');
  let info: MoekitModelInfo;
  try {
    info = JSON.parse(readFileSync(file, 'utf8')) as MoekitModelInfo;
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message})`);
  }
  if (info.format !== MOEKIT_MODEL_FORMAT) throw new Error(`${file}: "format" = ${JSON.stringify(info.format)}, expected "${MOEKIT_MODEL_FORMAT}"`);
  let config: ModelConfig;
  try {
    config = parseConfig(info.config);
  } catch (e) {
    throw new Error(`${file}: "config": ${(e as Error).message}`);
  }
  const model = withoutInit(() => new MoELM(config));
  try {
    await loadMoekitWeights(model, path.join(dir, 'model.safetensors'));
  } catch (e) {
    model.dispose();
    throw e;
  }
  for (const [l, b] of model.clusteredBlocks()) {
    const s = info.slots?.[String(l)];
    if (s) b.ids = Int32Array.from(s);
  }
  if (info.source && !HF_ARCHS.includes(info.source.arch)) throw new Error(`${file}: source.arch ${JSON.stringify(info.source.arch)} is not one of ${HF_ARCHS.join(', ')}`);
  const tok = path.join(dir, 'tokenizer.json');
  return {
    kind: 'moekit', arch: info.source?.arch ?? null, config, model, tokenizer: existsSync(tok) ? loadTokenizer(tok) : null,
    bosTokenId: info.bosTokenId ?? null, eosTokenIds: info.eosTokenIds ?? [], addBos: addBosOf(dir), info: info as unknown as Record<string, unknown>, assetsDir: dir,
  };
}

/** Writes a moekit model directory (moekit.json + model.safetensors, atomically each; tokenizer files copied from `copyFrom`). */
export async function saveModelDir(
  model: MoELM, dir: string,
  o: { source?: MoekitModelInfo['source']; provenance?: Record<string, unknown>; bosTokenId?: number | null; eosTokenIds?: number[]; copyFrom?: string } = {},
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = [...model.parameters(), ...model.buffers().filter(([n]) => n.endsWith(SELECTION_BIAS))].map(([name, t]) => ({
    name, dtype: 'F32' as const, shape: logicalShape(t), data: parameterF32(name, t), // weights kept as stored are widened
  }));
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt', moekit: MOEKIT_MODEL_FORMAT });
  const slots: Record<string, number[]> = {};
  for (const [l, b] of model.clusteredBlocks()) slots[String(l)] = Array.from(b.ids);
  const info: MoekitModelInfo = { format: MOEKIT_MODEL_FORMAT, version: 1, config: model.cfg };
  if (o.source) info.source = o.source;
  if (Object.keys(slots).length > 0) info.slots = slots;
  if (o.provenance) info.provenance = o.provenance;
  if (o.bosTokenId !== undefined) info.bosTokenId = o.bosTokenId;
  if (o.eosTokenIds) info.eosTokenIds = o.eosTokenIds;
  await writeFileAtomic(path.join(dir, 'moekit.json'), `${JSON.stringify(info, null, 2)}\n`);
  if (o.copyFrom && path.resolve(o.copyFrom) !== path.resolve(dir)) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      if (existsSync(path.join(o.copyFrom, f))) copyFileSync(path.join(o.copyFrom, f), path.join(dir, f));
    }
  }
}

/** The clustered layers of a model, materialised back to a standard MoE with experts in their original order. */
export function materialize(model: MoELM): MoELM {
  const blocks = model.clusteredBlocks();
  if (blocks.length === 0) return model;
  const cfg = parseConfig({ ...model.cfg, ffn: 'moe', balanceLoss: model.cfg.balanceLoss });
  const out = new MoELM(cfg);
  const clustered = new Map(blocks);
  const { experts: E, hidden: H, expertWidth: I } = cfg;
  for (const [name, p] of out.parameters()) {
    const m = /^model\.layers\.(\d+)\.mlp\.(experts\.(gate_proj|up_proj|down_proj)|gate\.weight)$/.exec(name);
    const b = m ? clustered.get(Number(m[1])) : undefined;
    if (!m || !b) {
      noGrad(() => out.setTensor(name, tensor(Float32Array.from(model.parameters().find(([n]) => n === name)![1].dataSync()), p.shape)));
      continue;
    }
    // slot s holds original expert b.ids[s]: scatter slots back to the original order
    const eff = b.f32Experts('save').effective();
    const src = m[2] === 'gate.weight' ? Float32Array.from(b.gate.weight.dataSync()) : m[3] === 'gate_proj' ? eff.gate : m[3] === 'up_proj' ? eff.up : eff.down;
    const per = m[2] === 'gate.weight' ? H : H * I;
    const dst = new Float32Array(E * per);
    for (let s = 0; s < E; s++) dst.set(src.subarray(s * per, (s + 1) * per), b.ids[s]! * per);
    noGrad(() => out.setTensor(name, tensor(dst, p.shape)));
  }
  // the selection bias, per slot, goes back to the original order too (the standard block keeps one when the config does)
  for (const [l, b] of blocks) {
    const name = `model.layers.${l}.mlp.gate.${SELECTION_BIAS}`;
    if (!b.gate.bias || !out.buffers().some(([n]) => n === name)) continue;
    const src = Float32Array.from(b.gate.bias.dataSync());
    const dst = new Float32Array(E);
    for (let s = 0; s < E; s++) dst[b.ids[s]!] = src[s]!;
    noGrad(() => out.setTensor(name, tensor(dst, [E])));
  }
  return out;
}

