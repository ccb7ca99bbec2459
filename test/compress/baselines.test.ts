// Post-training baselines: D²-style base + SVD residuals, MC-SMoE-style and HC-SMoE-style merging, each at a
// parameter budget; calibration statistics; the experts round trip through host arrays.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import {
  calibrate, clusteredExpertParams, compressBaseline, d2Compress, layerExperts, mergeCompress, mergeGroups, mergedCount, setLayerExperts,
  type LayerCalibration, type LayerExperts,
} from '../../src/compress/baselines.js';
import { MoEBlock } from '../../src/moe/index.js';
import { maxAbsDiff } from '../helpers/compare.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

function randomExperts(E: number, H: number, I: number, seed: number): LayerExperts {
  const r = new mk.Rng(seed);
  const f = (n: number): Float32Array => Float32Array.from({ length: n }, () => r.normal());
  return { E, H, I, gate: f(E * H * I), up: f(E * H * I), down: f(E * I * H) };
}

const calib = (E: number, H: number, freq: number[], extra: Partial<LayerCalibration> = {}): LayerCalibration => ({
  freq: Float64Array.from(freq), routerLogits: new Float32Array(E), meanOutputs: new Float32Array(E * H), meanInputs: new Float32Array(E * H), tokens: 1, ...extra,
});

describe('budgets', () => {
  it('the clustered form costs G bases plus E rank-r residual pairs per SwiGLU matrix', () => {
    expect(clusteredExpertParams(16, 128, 128, 2, 4)).toBe(2 * 3 * 128 * 128 + 16 * 3 * 4 * 256);
    expect(mergedCount(16, 128, 128, clusteredExpertParams(16, 128, 128, 2, 4))).toBe(3);
    expect(mergedCount(4, 8, 8, 1)).toBe(1);
  });
});

describe('d2', () => {
  it('at full rank reproduces the experts; with budget for the base only every expert is the usage-weighted mean', () => {
    const [E, H, I] = [4, 6, 5];
    const ex = randomExperts(E, H, I, 1);
    const c = calib(E, H, [3, 1, 0, 4]);
    const full = d2Compress(ex, c, 3 * H * I + 3 * E * 5 * (H + I));
    expect(full.rank).toBe(5);
    expect(maxAbsDiff(full.experts.gate, ex.gate)).toBeLessThan(1e-4);
    expect(maxAbsDiff(full.experts.down, ex.down)).toBeLessThan(1e-4);
    const base = d2Compress(ex, c, 3 * H * I + 10);
    expect(base.rank).toBe(0);
    expect(base.params).toBe(3 * H * I);
    const sz = H * I;
    for (let j = 0; j < sz; j++) {
      const want = (3 * ex.up[j]! + 1 * ex.up[sz + j]! + 4 * ex.up[3 * sz + j]!) / 8;
      for (let e = 0; e < E; e++) expect(base.experts.up[e * sz + j]).toBeCloseTo(want, 5);
    }
    // in between, error falls as the rank grows
    const err = (r: number): number => {
      const o = d2Compress(ex, c, 3 * H * I + 3 * E * r * (H + I));
      return Math.hypot(...Array.from(o.experts.gate, (v, i) => v - ex.gate[i]!));
    };
    expect(err(1)).toBeGreaterThan(err(3));
    expect(() => d2Compress(ex, c, 10)).toThrow('budget 10 expert parameters is below one shared base (90)');
  });
});

describe('merging', () => {
  it('mc-smoe: the most used experts dominate; the rest join the dominant expert with the most similar router logits', () => {
    const [E, N] = [5, 4];
    // router logit columns over 4 tokens: expert 3 resembles 0, experts 2 and 4 resemble 1
    const cols = [[1, 0, 0, 1], [0, 1, 1, 0], [0, 2, 2.1, 0], [2, 0, 0.1, 2], [0, 1, 0.9, 0.1]];
    const logits = new Float32Array(N * E);
    cols.forEach((col, e) => col.forEach((v, t) => (logits[t * E + e] = v)));
    const c = calib(E, 2, [9, 7, 1, 2, 3], { routerLogits: logits, tokens: N });
    expect(mergeGroups(c, E, 2, 2, 'mc-smoe')).toEqual([[0, 3], [1, 2, 4]]);
  });

  it('hc-smoe: average-linkage clustering on mean outputs recovers planted groups', () => {
    const [E, H] = [6, 3];
    const centres = [[5, 0, 0], [0, 5, 0], [0, 0, 5]];
    const owner = [1, 0, 2, 0, 1, 2];
    const r = new mk.Rng(3);
    const mo = Float32Array.from(owner.flatMap((o) => centres[o]!.map((x) => x + 0.1 * r.normal())));
    expect(mergeGroups(calib(E, H, [1, 1, 1, 1, 1, 1], { meanOutputs: mo }), E, H, 3, 'hc-smoe')).toEqual([[0, 4], [1, 3], [2, 5]]);
  });

  it('members of a group share the usage-weighted average of their weights', () => {
    const [E, H, I] = [4, 3, 2];
    const ex = randomExperts(E, H, I, 2);
    const mo = Float32Array.from([1, 0, 0, 0, 1, 0, 1, 0.1, 0, 0, 1, 0.1]); // {0, 2} and {1, 3}
    const c = calib(E, H, [1, 2, 3, 4], { meanOutputs: mo });
    const out = mergeCompress(ex, c, 2 * 3 * H * I + 5, 'hc-smoe');
    expect(out.groups).toEqual([[0, 2], [1, 3]]);
    expect(out.params).toBe(2 * 3 * H * I);
    const sz = H * I;
    for (let j = 0; j < sz; j++) {
      const a = (1 * ex.gate[j]! + 3 * ex.gate[2 * sz + j]!) / 4;
      const b = (2 * ex.gate[sz + j]! + 4 * ex.gate[3 * sz + j]!) / 6;
      expect(out.experts.gate[j]).toBeCloseTo(a, 5);
      expect(out.experts.gate[2 * sz + j]).toBeCloseTo(a, 5);
      expect(out.experts.gate[sz + j]).toBeCloseTo(b, 5);
      expect(out.experts.gate[3 * sz + j]).toBeCloseTo(b, 5);
    }
  });
});

describe('on a model', () => {
  it('calibrates every MoE layer, compresses in place within budget, and restores through host arrays', () => {
    const cfg = mk.parseConfig({ ...mk.PRESETS.tiny, experts: 8 });
    const model = new mk.MoELM(cfg);
    const rng = new mk.Rng(5);
    const ids = Int32Array.from({ length: 96 }, () => rng.int(cfg.vocabSize));
    const cal = calibrate(model, ids, { seqLen: 32, batch: 2 });
    expect(cal.length).toBe(cfg.layers);
    for (const c of cal) {
      expect(c!.tokens).toBe(96);
      expect(c!.freq.reduce((a, b) => a + b, 0)).toBe(96 * cfg.topK);
      expect(c!.routerLogits.length).toBe(96 * 8);
    }
    const x = mk.tensor(ids.subarray(0, 32), [1, 32], 'i32');
    const before = model.forward(x).logits.toArray() as number[];
    const saved = model.layers.map((l) => layerExperts(l.mlp as MoEBlock));
    const budget = clusteredExpertParams(8, cfg.hidden, cfg.expertWidth, 2, 2);
    for (const method of ['d2', 'mc-smoe', 'hc-smoe'] as const) {
      const r = compressBaseline(model, method, cal, budget);
      expect(r.layers.length).toBe(cfg.layers);
      for (const l of r.layers) expect(l.params).toBeLessThanOrEqual(budget);
      expect(r.params).toBe(r.layers.reduce((a, l) => a + l.params, 0));
      const after = model.forward(x).logits.toArray() as number[];
      expect(maxAbsDiff(before, after)).toBeGreaterThan(1e-4); // compression changed the model
      model.layers.forEach((l, i) => setLayerExperts(l.mlp as MoEBlock, saved[i]!));
      expect(maxAbsDiff(before, model.forward(x).logits.toArray() as number[])).toBe(0);
    }
    expect(() => compressBaseline(model, 'x' as 'd2', cal, budget)).toThrow('method "x" is not one of d2, mc-smoe, hc-smoe');
    // a budget above what a layer holds compresses nothing: refused before any layer changes
    const full = 3 * 8 * cfg.hidden * cfg.expertWidth;
    expect(() => compressBaseline(model, 'd2', cal, full + 1)).toThrow(`compressBaseline: budget ${full + 1} expert parameters per layer is above the ${full} that layer 0 holds (E=8 experts of 3 x ${cfg.hidden} x ${cfg.expertWidth}); expected at most ${full}`);
    expect(() => compressBaseline(model, 'mc-smoe', cal, 0)).toThrow('compressBaseline: budget 0 must be a positive number of expert parameters per layer');
    expect(maxAbsDiff(before, model.forward(x).logits.toArray() as number[])).toBe(0);
  });
});
