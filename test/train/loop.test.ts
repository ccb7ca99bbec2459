// The training loop: loss falls on learnable data, resume after a crash is bit-exact and checked against the run's
// settings, a run never overwrites another silently, logs with a torn last line resume, a diverging run stops cleanly.
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { latestCheckpoint } from '../../src/train/checkpoint.js';
import { loadStats, sampleBatch, train, type StepMetrics, type TrainOptions } from '../../src/train/loop.js';
import { tempDir } from '../helpers/tmp.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const config = mk.PRESETS.tiny;
/** A learnable stream: a fixed pseudo-random sequence of 97 tokens, repeated. */
const tokens = (() => {
  const rng = new mk.Rng(5);
  const motif = Array.from({ length: 97 }, () => rng.int(config.vocabSize));
  return Int32Array.from({ length: 4000 }, (_, i) => motif[i % motif.length]!);
})();
const base = { config, tokens, batch: 4, seqLen: 32, lr: 1e-2, seed: 3 };

describe('train', () => {
  it('lowers the loss by more than 20% in 40 steps and logs routing statistics', async () => {
    const { metrics } = await train({ ...base, steps: 40, out: null });
    const first = metrics[0]!.ce;
    const last = metrics.at(-1)!.ce;
    expect(last).toBeLessThan(0.8 * first);
    const m = metrics.at(-1)!;
    expect(m.tokens_per_expert).toHaveLength(config.layers);
    expect(m.tokens_per_expert[0]!.reduce((a, b) => a + b, 0)).toBe(4 * 32 * config.topK);
    expect(m.tokens_per_s).toBeGreaterThan(0);
  });

  it('resumes bit-exactly after a crash: the same losses as an uninterrupted run', async () => {
    const full = await train({ ...base, steps: 10, out: tempDir('moekit-train-') });
    const out = tempDir('moekit-train-');
    await expect(train({ ...base, steps: 10, out, checkpointEvery: 4, onStep: (m) => { if (m.step === 6) throw new Error('simulated crash'); } })).rejects.toThrow('simulated crash');
    expect(await latestCheckpoint(path.join(out, 'checkpoints'))).toBe(path.join(out, 'checkpoints', 'step-4'));
    const resumed = await train({ ...base, steps: 10, out, resume: true });
    expect(resumed.startStep).toBe(4);
    expect(resumed.metrics.map((m) => m.loss)).toEqual(full.metrics.slice(4).map((m) => m.loss));
    const logged = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StepMetrics);
    // the crashed run had logged steps 5 and 6; the resumed run replaced them: one line per step, no duplicates
    expect(logged.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(logged.map((m) => m.loss)).toEqual(full.metrics.map((m) => m.loss));
  });

  it('stops with a clear message when the loss diverges, keeping the last good checkpoint', async () => {
    const out = tempDir('moekit-train-');
    await expect(train({ ...base, steps: 30, lr: 1e30, warmup: 0, clip: 1e30, out, checkpointEvery: 1 })).rejects.toThrow(/loss became (NaN|Infinity) at step \d+; stopping/);
    const last = await latestCheckpoint(path.join(out, 'checkpoints'));
    if (last) expect(JSON.parse(readFileSync(path.join(last, 'state.json'), 'utf8')).step).toBeGreaterThan(0);
  });

  it('the divergence message names the checkpoint that exists, or says there is none', async () => {
    const diverge = { ...base, steps: 30, lr: 1e30, warmup: 0, clip: 1e30 };
    await expect(train({ ...diverge, out: tempDir('moekit-train-') })).rejects.toThrow(/no checkpoint had been written yet \(--checkpoint-every 0: only at the end\), so there is none to resume from\)\. Try a lower --lr/);
    await expect(train({ ...diverge, out: null })).rejects.toThrow(/no output directory: nothing was saved/);
    const out = tempDir('moekit-train-');
    const err = await train({ ...diverge, out, checkpointEvery: 1 }).catch((e: Error) => e.message);
    expect(err).toMatch(new RegExp(`the (last good|latest) checkpoint, ${out}/checkpoints/step-\\d+ \\(step \\d+\\), is untouched`));
    expect(err).not.toMatch(/is untouched.*is untouched/);
  });

  it('rejects bad options by name', async () => {
    await expect(train({ ...base, steps: 0, out: null })).rejects.toThrow('train: steps must be a positive integer, got 0');
    await expect(train({ ...base, steps: 1, seqLen: 500, out: null })).rejects.toThrow('seqLen 500 exceeds the model');
  });
});

/** Every file under `dir` with its size and modification time: equal snapshots mean nothing changed. */
const snapshot = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort().map((f) => {
  const s = statSync(path.join(dir, f));
  return `${f} ${s.size} ${s.mtimeMs}`;
});

describe('run directories', () => {
  const quick = { ...base, steps: 4, checkpointEvery: 2 } satisfies Partial<TrainOptions>;
  let done: string;
  beforeAll(async () => {
    done = tempDir('moekit-train-');
    await train({ ...quick, out: done });
  });

  it('a run into a directory holding a run, without resume, is an error and changes nothing', async () => {
    const before = snapshot(done);
    await expect(train({ ...quick, steps: 2, out: done })).rejects.toThrow(`train: ${done} holds a run (checkpoints up to step 4, 4 metric lines); nothing was changed. Pass --resume to continue it, --overwrite to move it aside`);
    expect(snapshot(done)).toEqual(before);
  });

  it('overwrite moves the old run aside intact and starts afresh', async () => {
    const out = path.join(tempDir('moekit-train-'), 'run'); // the old run goes beside it, inside the temp dir
    await train({ ...quick, out });
    const before = snapshot(out);
    const warnings: string[] = [];
    const r = await train({ ...quick, steps: 2, out, overwrite: true, onWarning: (m) => warnings.push(m) });
    expect(r.movedAside).toMatch(new RegExp(`^${out}\\.old-\\d{8}T\\d{6}Z$`));
    expect(snapshot(r.movedAside!)).toEqual(before);
    expect(warnings[0]).toContain(`moved it to ${r.movedAside}`);
    expect(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    expect(readdirSync(path.join(out, 'checkpoints')).sort()).toEqual(['latest.json', 'step-2']);
  });

  it('resume refuses another config, batch, seqLen, seed or data, naming the field and both values', async () => {
    const cases: [Partial<TrainOptions>, string][] = [
      [{ config: mk.parseConfig({ ...config, experts: 8 }) }, 'config.experts: 4 in the checkpoint, 8 now'],
      [{ batch: 2 }, 'batch (--batch): 4 in the checkpoint, 2 now'],
      [{ seqLen: 16 }, 'seqLen (--seq-len): 32 in the checkpoint, 16 now'],
      [{ seed: 9 }, 'seed (--seed): 3 in the checkpoint, 9 now'],
      [{ tokens: tokens.subarray(0, 3000) }, 'data.tokens: 4000 in the checkpoint, 3000 now'],
    ];
    const before = snapshot(done);
    for (const [change, named] of cases) {
      await expect(train({ ...quick, steps: 6, out: done, resume: true, ...change })).rejects.toThrow(named);
    }
    expect(snapshot(done)).toEqual(before);
    await expect(train({ ...quick, steps: 6, out: done, resume: true, data: { docs: 5 } })).resolves.toBeDefined(); // a key the checkpoint lacks is not compared
  });

  it('steps below the checkpoint is an error; equal to it is nothing to do', async () => {
    const out = tempDir('moekit-train-');
    await train({ ...quick, out });
    await expect(train({ ...quick, steps: 3, out, resume: true })).rejects.toThrow(`train: steps 3 is below the checkpoint's step 4 (${out}/checkpoints/step-4)`);
    const before = snapshot(out);
    const r = await train({ ...quick, out, resume: true });
    expect(r.startStep).toBe(4);
    expect(r.metrics).toEqual([]);
    expect(snapshot(out)).toEqual(before);
  });

  it('a torn last metrics line is dropped with a warning naming file and line, and the run resumes', async () => {
    const out = tempDir('moekit-train-');
    await expect(train({ ...quick, steps: 6, out, onStep: (m) => { if (m.step === 3) throw new Error('simulated crash'); } })).rejects.toThrow('simulated crash');
    const file = path.join(out, 'metrics.jsonl');
    appendFileSync(file, '{"step":4,"loss":5.1');
    const warnings: string[] = [];
    const r = await train({ ...quick, steps: 6, out, resume: true, onWarning: (m) => warnings.push(m) });
    expect(r.startStep).toBe(2);
    expect(warnings).toEqual([expect.stringContaining(`${file}: line 4 is incomplete`)]);
    expect(readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as StepMetrics).step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('stale temporary checkpoints of dead processes are removed at the start of the next run in the directory', async () => {
    const out = tempDir('moekit-train-');
    await train({ ...quick, out });
    const stale = path.join(out, 'checkpoints', `.step-6.${process.pid}.tmp`);
    mkdirSync(stale);
    const warnings: string[] = [];
    await train({ ...quick, steps: 6, out, resume: true, onWarning: (m) => warnings.push(m) });
    expect(existsSync(stale)).toBe(false);
    expect(warnings.join('\n')).toContain(`removed 1 temporary checkpoint(s) left by an interrupted run in ${out}/checkpoints: .step-6.${process.pid}.tmp`);
    expect(readdirSync(path.join(out, 'checkpoints')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('state.json records what a resume checks: config (and its hash), seed, batch, seqLen, accum and the data', async () => {
    const s = JSON.parse(readFileSync(path.join(done, 'checkpoints', 'step-4', 'state.json'), 'utf8')) as Record<string, unknown>;
    expect(s).toMatchObject({ step: 4, format: 2, seed: 3, batch: 4, seqLen: 32, accum: 1, data: { tokens: 4000, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    expect(s.configHash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('batches and load statistics', () => {
  it('sampleBatch is a pure function of (seed, step, micro-batch); targets are shifted ids', () => {
    const a = sampleBatch(tokens, 2, 8, 1, 5, 0);
    const b = sampleBatch(tokens, 2, 8, 1, 5, 0);
    expect(a).toEqual(b);
    expect(sampleBatch(tokens, 2, 8, 1, 6, 0).ids).not.toEqual(a.ids);
    const start = tokens.indexOf(a.ids[0]!);
    expect(start).toBeGreaterThanOrEqual(0);
    expect(Array.from(a.targets.slice(0, 7))).toEqual(Array.from(a.ids.slice(1, 8)));
  });
  it('loadStats: balanced load has variance 0 and imbalance 1', () => {
    expect(loadStats([5, 5, 5, 5])).toEqual({ variance: 0, imbalance: 1 });
    const s = loadStats([8, 0, 0, 0]);
    expect(s.imbalance).toBe(4);
    expect(s.variance).toBeCloseTo((0.75 ** 2 + 3 * 0.25 ** 2) / 4, 12);
  });
});
