// Node: training runs as model directories. A run directory (checkpoints/latest.json), its checkpoints/ directory or
// one step-N checkpoint (model.safetensors + state.json) resolve to a checkpoint whose config and weights load a MoELM.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseConfig, type ModelConfig } from './config.js';

/** A training checkpoint found on disk: the step-N directory and the run directory it belongs to. */
export interface RunCheckpoint {
  /** the step-N directory (model.safetensors, state.json, optimizer.safetensors) */
  checkpoint: string;
  /** the run directory (metrics.jsonl, tokenizer.json, checkpoints/), or the checkpoint's parent when it stands alone */
  run: string;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** The step-N directory a latest.json names; an error when it names nothing that exists. */
function fromLatest(ckptDir: string): string {
  const latest = path.join(ckptDir, 'latest.json');
  const j = readJson(latest) as { checkpoint?: unknown } | null;
  if (!j || typeof j !== 'object' || typeof j.checkpoint !== 'string' || !/^step-\d+$/.test(j.checkpoint)) {
    throw new Error(`${latest}: expected {"checkpoint": "step-N", ...}, got ${JSON.stringify(j)}`);
  }
  const dir = path.join(ckptDir, j.checkpoint);
  if (!existsSync(path.join(dir, 'model.safetensors'))) throw new Error(`${latest} points at ${dir}, which has no model.safetensors`);
  return dir;
}

/**
 * Resolves a path to a training checkpoint: a run directory (its latest checkpoint), a checkpoints/ directory with
 * latest.json, or a step-N directory. Returns null when `p` is none of these (e.g. a model directory).
 */
export function findRunCheckpoint(p: string): RunCheckpoint | null {
  if (!existsSync(p) || !statSync(p).isDirectory()) return null;
  const abs = path.resolve(p);
  const runOf = (ckpt: string): string => {
    const parent = path.dirname(ckpt);
    return path.basename(parent) === 'checkpoints' ? path.dirname(parent) : parent;
  };
  if (existsSync(path.join(abs, 'model.safetensors')) && existsSync(path.join(abs, 'state.json'))) return { checkpoint: p, run: runOf(abs) };
  if (existsSync(path.join(abs, 'latest.json'))) {
    const c = fromLatest(abs);
    return { checkpoint: c, run: runOf(path.resolve(c)) };
  }
  if (existsSync(path.join(abs, 'checkpoints', 'latest.json'))) return { checkpoint: fromLatest(path.join(abs, 'checkpoints')), run: p };
  return null;
}

/** Clustering state a checkpoint of a clustered run keeps: which original expert each slot of a layer holds. */
export interface RunClusterSlots {
  layer: number;
  ids: number[];
}

/** What a checkpoint's state.json says about the model: its step, config (as trained, at that step) and slot ids. */
export interface RunState {
  step: number;
  config: ModelConfig;
  slots: RunClusterSlots[];
}

/** Reads `ckpt/state.json`: step, config (a clustered run still in its dense warm-up is a standard MoE) and slots. */
export function readRunState(ckpt: string): RunState {
  const file = path.join(ckpt, 'state.json');
  const s = readJson(file) as { step?: unknown; config?: unknown; cluster?: { layers?: unknown } } | null;
  if (!s || typeof s !== 'object' || !Number.isSafeInteger(s.step)) throw new Error(`${file}: "step" = ${JSON.stringify(s?.step)}: expected an integer`);
  if (s.config === undefined) throw new Error(`${file} has no "config" (expected the model config the run trained)`);
  let config: ModelConfig;
  try {
    config = parseConfig(s.config);
  } catch (e) {
    throw new Error(`${file}: "config": ${(e as Error).message}`);
  }
  const layers = Array.isArray(s.cluster?.layers) ? (s.cluster.layers as RunClusterSlots[]) : [];
  if (config.ffn === 'clustered' && config.clusterDenseWarmup && layers.length === 0) config = parseConfig({ ...config, ffn: 'moe' });
  return { step: s.step as number, config, slots: layers.map((l) => ({ layer: l.layer, ids: l.ids })) };
}

/** The tokenizer.json of a run: in the run directory (where `moekit train --out` writes it), else beside the checkpoint. */
export function runTokenizer(rc: RunCheckpoint): string | null {
  const candidates = [path.join(rc.run, 'tokenizer.json'), path.join(rc.checkpoint, 'tokenizer.json')];
  return candidates.find((f) => existsSync(f)) ?? null;
}
