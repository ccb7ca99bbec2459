// moekit info: what a training checkpoint holds (step, config, parameter counts, tensors, bytes, files).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { SafetensorsFile } from '../io/safetensors.js';
import { parseConfig, type ModelConfig } from '../models/config.js';

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
const isBuffer = (name: string): boolean => name.endsWith('e_score_correction_bias') || name.endsWith('inv_freq');
const isExpert = (name: string): boolean => name.includes('.mlp.experts.');

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
  const latest = path.join(p, 'latest.json');
  if (existsSync(latest)) {
    const j = readJson(latest, 'latest.json') as { checkpoint?: unknown } | null;
    if (!j || typeof j !== 'object' || typeof j.checkpoint !== 'string') throw new Error(`info: ${latest} has no "checkpoint" name (expected {"checkpoint": "step-N", ...})`);
    const dir = path.join(p, j.checkpoint);
    if (!existsSync(path.join(dir, 'model.safetensors'))) throw new Error(`info: ${latest} points at ${dir}, which has no model.safetensors`);
    return dir;
  }
  // a training output directory holds its checkpoints under checkpoints/
  if (existsSync(path.join(p, 'checkpoints', 'latest.json'))) return resolveCheckpoint(path.join(p, 'checkpoints'));
  throw new Error(`info: ${p} is not a checkpoint: it has neither latest.json nor model.safetensors`);
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

const human = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n));
const bytesText = (n: number): string => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('describe a checkpoint: step, config, parameter counts, tensors, bytes and files')
    .argument('<checkpoint>', 'a checkpoint directory (with latest.json) or one step-N directory')
    .option('--json', 'print one JSON object')
    .action(async (ckpt: string, o: { json?: boolean }) => {
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
