// The training loop: loss falls on learnable data, resume after a crash is bit-exact, a diverging run stops cleanly.
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { latestCheckpoint } from '../../src/train/checkpoint.js';
import { loadStats, sampleBatch, train, type StepMetrics } from '../../src/train/loop.js';

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
    const full = await train({ ...base, steps: 10, out: mkdtempSync(path.join(os.tmpdir(), 'moekit-train-')) });
    const out = mkdtempSync(path.join(os.tmpdir(), 'moekit-train-'));
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
    const out = mkdtempSync(path.join(os.tmpdir(), 'moekit-train-'));
    await expect(train({ ...base, steps: 30, lr: 1e30, warmup: 0, clip: 1e30, out, checkpointEvery: 1 })).rejects.toThrow(/loss became (NaN|Infinity) at step \d+; stopping/);
    const last = await latestCheckpoint(path.join(out, 'checkpoints'));
    if (last) expect(JSON.parse(readFileSync(path.join(last, 'state.json'), 'utf8')).step).toBeGreaterThan(0);
  });

  it('rejects bad options by name', async () => {
    await expect(train({ ...base, steps: 0, out: null })).rejects.toThrow('train: steps must be a positive integer, got 0');
    await expect(train({ ...base, steps: 1, seqLen: 500, out: null })).rejects.toThrow('seqLen 500 exceeds the model');
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
