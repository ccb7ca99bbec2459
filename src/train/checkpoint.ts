// Checkpoints: weights and optimizer moments as safetensors plus a JSON state, written so a crash never
// corrupts the last good one (each checkpoint is built in a temp directory, renamed, then `latest.json` swapped).
import { SafetensorsFile, writeFileAtomic, writeSafetensors, type StTensorIn } from '../io/safetensors.js';
import { SELECTION_BIAS } from '../moe/names.js';
import { assign, fromTyped } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import type { AdamW } from './optim.js';

export interface CheckpointState {
  step: number;
  /** anything JSON: config, data position, RNG states, metrics */
  [key: string]: unknown;
}

/** Node's file APIs, loaded on first use so importing moekit in a browser does not pull them in. */
const node = async () => ({ fs: await import('node:fs/promises'), path: (await import('node:path')).default });

/** A tensor as a safetensors entry; awaited so that GPU backends can save too. */
const f32 = async (t: Tensor): Promise<StTensorIn> => {
  if (t.dtype !== 'f32') throw new Error(`checkpoint: only f32 parameters are saved, got ${t} `);
  const d = await t.data();
  return { name: '', dtype: 'F32', shape: t.shape, data: d instanceof Float32Array ? d : Float32Array.from(d) };
};

/** Writes `dir/step-<step>/{model.safetensors, optimizer.safetensors, state.json}` and points `dir/latest.json` at it. */
export async function saveCheckpoint(dir: string, params: readonly [string, Tensor][], opt: AdamW | null, state: CheckpointState, keepLast = 2): Promise<string> {
  const { fs, path } = await node();
  await fs.mkdir(dir, { recursive: true });
  const name = `step-${state.step}`;
  const final = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.${process.pid}.tmp`);
  await fs.rm(tmp, { recursive: true, force: true });
  try {
    await fs.mkdir(tmp);
    await writeSafetensors(path.join(tmp, 'model.safetensors'), await Promise.all(params.map(async ([n, t]) => ({ ...(await f32(t)), name: n }))));
    if (opt) {
      const s = opt.state();
      const moments = (await Promise.all(opt.params.map(async ([n], i) => [{ ...(await f32(s.m[i]!)), name: `${n}.exp_avg` }, { ...(await f32(s.v[i]!)), name: `${n}.exp_avg_sq` }]))).flat();
      await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), moments, { format: 'pt', step: String(s.step), param_steps: s.t.join(',') });
    }
    await writeFileAtomic(path.join(tmp, 'state.json'), JSON.stringify(state, null, 2));
    await fs.rm(final, { recursive: true, force: true });
    await fs.rename(tmp, final);
  } catch (e) {
    // a half-written checkpoint (ENOSPC, EIO…) is never left behind; the previous one and latest.json are untouched
    await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    const { fsErrorWords } = await import('../io/outputs.js');
    throw new Error(`checkpoint: writing ${final} failed (${fsErrorWords(e)}); earlier checkpoints are untouched`, { cause: e });
  }
  await writeFileAtomic(path.join(dir, 'latest.json'), JSON.stringify({ checkpoint: name, step: state.step }));
  // prune older checkpoints, never the one just written
  const all = (await fs.readdir(dir)).filter((n) => /^step-\d+$/.test(n)).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  for (const old of all.slice(0, Math.max(0, all.length - keepLast))) if (old !== name) await fs.rm(path.join(dir, old), { recursive: true, force: true });
  return final;
}

/** The directory of the newest complete checkpoint under `dir`, or null when there is none. */
export async function latestCheckpoint(dir: string): Promise<string | null> {
  const { fs, path } = await node();
  try {
    const { checkpoint } = JSON.parse(await fs.readFile(path.join(dir, 'latest.json'), 'utf8')) as { checkpoint: string };
    return path.join(dir, checkpoint);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`checkpoint: ${path.join(dir, 'latest.json')} is unreadable: ${(e as Error).message}`);
  }
}

async function loadInto(file: string, targets: readonly [string, Tensor][]): Promise<void> {
  const f = await SafetensorsFile.open(file);
  try {
    for (const [n, t] of targets) {
      // clustered checkpoints written before clustered routers had a selection bias: unbiased, i.e. zeros
      if (n.endsWith(SELECTION_BIAS) && !f.tensors.has(n)) continue;
      const info = f.info(n);
      if (info.dtype !== 'F32' || info.shape.length !== t.rank || info.shape.some((d, i) => d !== t.shape[i])) {
        throw new Error(`checkpoint: ${file}: tensor "${n}" is ${info.dtype} [${info.shape.join(', ')}], expected F32 [${t.shape.join(', ')}]`);
      }
      const bytes = await f.readBytes(n);
      const src = fromTyped(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), t.shape, 'f32', t.backend);
      assign(t, src);
      src.dispose();
    }
  } finally {
    await f.close();
  }
}

/** Loads weights (and optimizer moments) saved by `saveCheckpoint` into existing tensors; returns the JSON state. */
export async function loadCheckpoint(ckpt: string, params: readonly [string, Tensor][], opt: AdamW | null): Promise<CheckpointState> {
  const { fs, path } = await node();
  await loadInto(path.join(ckpt, 'model.safetensors'), params);
  const state = JSON.parse(await fs.readFile(path.join(ckpt, 'state.json'), 'utf8')) as CheckpointState;
  if (opt) {
    const s = opt.state();
    await loadInto(path.join(ckpt, 'optimizer.safetensors'), opt.params.flatMap(([n], i) => [[`${n}.exp_avg`, s.m[i]!], [`${n}.exp_avg_sq`, s.v[i]!]] as [string, Tensor][]));
    const f = await SafetensorsFile.open(path.join(ckpt, 'optimizer.safetensors'));
    const step = Number(f.metadata.step);
    const ps = f.metadata.param_steps;
    await f.close();
    // per-parameter steps differ after an optimizer reset (a regrouping); older checkpoints lack them
    opt.load({ step, m: s.m, v: s.v, ...(ps !== undefined ? { t: ps === '' ? [] : ps.split(',').map(Number) } : {}) });
  }
  return state;
}
