// Routing statistics against numbers worked out by hand on a tiny trace, and the activated-experts curve of a uniform random trace against E·(1 − (1 − K/E)^B).
import { describe, expect, it } from 'vitest';
import { activatedExperts, coactivation, layerCounts, loadStats, sequenceStats, transitions } from '../../src/trace/stats.js';
import { analyse, reportJson } from '../../src/trace/analyse.js';
import type { RoutingTrace } from '../../src/trace/types.js';

/**
 * N = 4 tokens, L = 2 layers (model layers 3 and 7), K = 2 slots, E = 4 experts.
 *   token   layer 0   layer 1   seq
 *     0     [0, 1]    [2, 3]     7
 *     1     [0, 2]    [2, 3]     9
 *     2     [0, 1]    [2, −1]    7
 *     3     [3, −1]   [−1, −1]   9
 */
function tiny(): RoutingTrace {
  // prettier-ignore
  const experts = Int16Array.from([
    0, 1, 2, 3,
    0, 2, 2, 3,
    0, 1, 2, -1,
    3, -1, -1, -1,
  ]);
  return { N: 4, L: 2, K: 2, E: 4, experts, layers: [3, 7], seq: Int32Array.from([7, 9, 7, 9]), metadata: { source: 'tiny' } };
}

describe('loadStats', () => {
  it('layer 0 of the tiny trace: counts [3, 2, 1, 1]', () => {
    const s = loadStats(layerCounts(tiny(), 4).subarray(0, 4));
    expect(s.counts).toEqual([3, 2, 1, 1]);
    expect(s.total).toBe(7); // the −1 slot of token 3 is not counted
    // mean = 7/4 = 1.75; max/mean = 3/1.75 = 12/7
    expect(s.max_over_mean).toBeCloseTo(12 / 7, 12);
    // deviations 1.25, 0.25, −0.75, −0.75; squares sum 1.5625 + 0.0625 + 0.5625 + 0.5625 = 2.75; variance 2.75/4 = 11/16
    // std = √11/4; cv = (√11/4)/(7/4) = √11/7 ≈ 0.47380
    expect(s.cv).toBeCloseTo(Math.sqrt(11) / 7, 12);
    // sorted [1, 1, 2, 3]: Σ i·x = 1 + 2 + 6 + 12 = 21; G = 2·21/(4·7) − 5/4 = 1.5 − 1.25 = 0.25
    // (check: Σ over ordered pairs |xi − xj| = 14; 14 / (2·E²·mean) = 14/56 = 0.25)
    expect(s.gini).toBeCloseTo(0.25, 12);
    // p = 3/7, 2/7, 1/7, 1/7: H = log2 7 − (3·log2 3 + 2·log2 2 + 0 + 0)/7 = 2.807355 − 0.964984 = 1.842371
    expect(s.entropy_bits).toBeCloseTo(Math.log2(7) - (3 * Math.log2(3) + 2) / 7, 12);
    expect(s.entropy_bits).toBeCloseTo(1.842371, 5);
    expect(s.hot).toEqual([]); // 2·mean = 3.5: no count above it
    expect(loadStats([3, 2, 1, 1], 1.5).hot).toEqual([0]); // 1.5·mean = 2.625 < 3
  });

  it('layer 1 of the tiny trace: counts [0, 0, 3, 2]', () => {
    const s = loadStats(layerCounts(tiny(), 4).subarray(4, 8));
    expect(s.counts).toEqual([0, 0, 3, 2]); // zero-count experts are kept
    expect(s.total).toBe(5);
    // mean = 5/4 = 1.25; max/mean = 3/1.25 = 2.4
    expect(s.max_over_mean).toBeCloseTo(2.4, 12);
    // deviations −1.25, −1.25, 1.75, 0.75; squares 1.5625 + 1.5625 + 3.0625 + 0.5625 = 6.75; variance 27/16
    // std = 3√3/4; cv = (3√3/4)/(5/4) = 3√3/5 ≈ 1.03923
    expect(s.cv).toBeCloseTo((3 * Math.sqrt(3)) / 5, 12);
    // sorted [0, 0, 2, 3]: Σ i·x = 3·2 + 4·3 = 18; G = 36/20 − 5/4 = 0.55
    expect(s.gini).toBeCloseTo(0.55, 12);
    // p = 3/5, 2/5: H = −(0.6·log2 0.6 + 0.4·log2 0.4) ≈ 0.970951
    expect(s.entropy_bits).toBeCloseTo(0.970951, 5);
    expect(s.hot).toEqual([2]); // 2·mean = 2.5 < 3
  });

  it('extremes: everything on one expert, an even load, nothing routed', () => {
    // [0, 0, 8, 0]: mean 2, max/mean 4; deviations −2, −2, 6, −2: variance 48/4 = 12, cv = √12/2 = √3; G = (E − 1)/E = 3/4
    const one = loadStats([0, 0, 8, 0]);
    expect([one.max_over_mean, one.gini, one.entropy_bits]).toEqual([4, 0.75, 0]);
    expect(one.cv).toBeCloseTo(Math.sqrt(3), 12);
    expect(one.hot).toEqual([2]);
    const even = loadStats([5, 5, 5, 5]);
    expect([even.max_over_mean, even.cv, even.gini, even.entropy_bits]).toEqual([1, 0, 0, 2]); // log2 4 = 2 bits
    const none = loadStats([0, 0, 0]);
    expect([none.total, none.max_over_mean, none.cv, none.gini, none.entropy_bits]).toEqual([0, 0, 0, 0, 0]);
  });

  it('an id outside [−1, E) is an error naming [n, l, k]', () => {
    const t = tiny();
    t.experts[5] = 4; // token 1, layer 0, slot 1
    expect(() => layerCounts(t, 4)).toThrow('expert id 4 at [1, 0, 1] (token, layer, slot) is outside [-1, 4) (E = 4)');
    t.experts[5] = -2;
    expect(() => layerCounts(t, 4)).toThrow('expert id -2 at [1, 0, 1]');
  });
});

describe('activated experts per batch', () => {
  it('B = 1, 2, 3 on the tiny trace; B = 5 > N is left out', () => {
    const t = tiny();
    // B = 1: layer 0 has 2, 2, 2, 1 distinct → 7/4 = 1.75; layer 1 has 2, 2, 1, 0 → 5/4 = 1.25; uniform: 4·(1 − (1 − 2/4)^1) = 2
    const b1 = activatedExperts(t, 4, 1)!;
    expect(b1.batches).toBe(4);
    expect(b1.mean_unique).toEqual([1.75, 1.25]);
    expect(b1.theory_uniform).toBe(2);
    // B = 2: batches {0, 1} and {2, 3}. Layer 0: {0, 1, 2} and {0, 1, 3} → 3, 3 → 3. Layer 1: {2, 3} and {2} → 2, 1 → 1.5
    // uniform 4·(1 − 0.5²) = 3; slots per activated expert = routed slots per batch / mean, −1 slots left out:
    // layer 0 (4 + 3)/2 = 3.5 → 3.5/3; layer 1 (4 + 1)/2 = 2.5 → 2.5/1.5
    const b2 = activatedExperts(t, 4, 2)!;
    expect(b2.batches).toBe(2);
    expect(b2.mean_unique).toEqual([3, 1.5]);
    expect(b2.theory_uniform).toBe(3);
    expect(b2.tokens_per_expert[0]).toBeCloseTo(3.5 / 3, 12);
    expect(b2.tokens_per_expert[1]).toBeCloseTo(2.5 / 1.5, 12);
    // B = 3: one batch, tokens 0..2 (token 3 left over). Layer 0: {0, 1, 2} → 3; layer 1: {2, 3} → 2; uniform 4·(1 − 0.5³) = 3.5
    const b3 = activatedExperts(t, 4, 3)!;
    expect([b3.batches, ...b3.mean_unique, b3.theory_uniform]).toEqual([1, 3, 2, 3.5]);
    expect(activatedExperts(t, 4, 5)).toBeNull();
  });

  it('a uniform random trace (K distinct experts per token) follows E·(1 − (1 − K/E)^B) within 2%', () => {
    const N = 40_000;
    const L = 2;
    const K = 4;
    const E = 64;
    let s = 12345;
    const rand = (): number => {
      // mulberry32
      s = (s + 0x6d2b79f5) | 0;
      let t = Math.imul(s ^ (s >>> 15), 1 | s);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const experts = new Int16Array(N * L * K);
    for (let r = 0; r < N * L; r++) {
      for (let k = 0; k < K; ) {
        const e = Math.floor(rand() * E);
        let dup = false;
        for (let j = 0; j < k; j++) dup ||= experts[r * K + j] === e;
        if (!dup) experts[r * K + k++] = e;
      }
    }
    const t: RoutingTrace = { N, L, K, E, experts, layers: [0, 1], metadata: {} };
    for (const B of [1, 2, 8, 16, 32, 64, 256]) {
      const a = activatedExperts(t, E, B)!;
      const theory = E * (1 - Math.pow(1 - K / E, B));
      expect(a.theory_uniform).toBeCloseTo(theory, 12);
      for (const u of a.mean_unique) expect(Math.abs(u - theory) / theory).toBeLessThan(0.02);
    }
  });
});

describe('co-activation and transitions', () => {
  it('the tiny trace by hand', () => {
    const t = tiny();
    const at = (m: Uint32Array, l: number, a: number, b: number): number => m[l * 16 + a * 4 + b]!;
    const co = coactivation(t, 4);
    // layer 0: tokens {0, 1}, {0, 2}, {0, 1}, {3}: pair (0, 1) twice, (0, 2) once; diagonal = tokens per expert 3, 2, 1, 1
    expect(Array.from(co.subarray(0, 16))).toEqual([3, 2, 1, 0, 2, 2, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1]);
    // layer 1: {2, 3}, {2, 3}, {2}: pair (2, 3) twice; diagonal 0, 0, 3, 2
    expect(at(co, 1, 2, 3)).toBe(2);
    expect(at(co, 1, 3, 2)).toBe(2);
    expect([0, 1, 2, 3].map((e) => at(co, 1, e, e))).toEqual([0, 0, 3, 2]);
    const tr = transitions(t, 4);
    expect(tr.length).toBe(16); // L − 1 = 1 matrix
    // token 0: {0, 1} × {2, 3} → (0,2) (0,3) (1,2) (1,3); token 1: {0, 2} × {2, 3} → (0,2) (0,3) (2,2) (2,3);
    // token 2: {0, 1} × {2} → (0,2) (1,2); token 3: {3} × {} → nothing. 10 slot pairs in all.
    // prettier-ignore
    expect(Array.from(tr)).toEqual([
      0, 0, 3, 2,
      0, 0, 2, 1,
      0, 0, 1, 1,
      0, 0, 0, 0,
    ]);
  });

  it('per sequence: seq ids 7 and 9 interleaved', () => {
    const s = sequenceStats(tiny(), 4)!;
    // seq 7 = tokens 0, 2; seq 9 = tokens 1, 3.
    // layer 0, seq 7: {0,1} {0,1} → [2, 2, 0, 0], mean 1: max/mean 2, variance (1+1+1+1)/4 = 1, cv 1
    // layer 0, seq 9: {0,2} {3}   → [1, 0, 1, 1], mean 0.75: max/mean 4/3, variance 0.75/4 = 0.1875, cv √0.1875/0.75 = √3/3
    // layer 1, seq 7: {2,3} {2}   → [0, 0, 2, 1], mean 0.75: max/mean 8/3, variance 2.75/4, cv √0.6875/0.75 = √11/3
    // layer 1, seq 9: {2,3} {}    → [0, 0, 1, 1], mean 0.5: max/mean 2, variance 0.25, cv 0.5/0.5 = 1
    expect(s.count).toBe(2);
    expect(s.tokens_mean).toBe(2);
    expect(s.max_over_mean[0]).toBeCloseTo((2 + 4 / 3) / 2, 12); // 5/3
    expect(s.max_over_mean[1]).toBeCloseTo((8 / 3 + 2) / 2, 12); // 7/3
    expect(s.cv[0]).toBeCloseTo((1 + Math.sqrt(3) / 3) / 2, 12); // 0.788675
    expect(s.cv[1]).toBeCloseTo((Math.sqrt(11) / 3 + 1) / 2, 12); // 1.052771
    expect(s.mean_max_over_mean).toBeCloseTo(2, 12); // (5/3 + 7/3)/2
    expect(s.mean_cv).toBeCloseTo(((1 + Math.sqrt(3) / 3) / 2 + (Math.sqrt(11) / 3 + 1) / 2) / 2, 12);
    expect(sequenceStats({ ...tiny(), seq: undefined }, 4)).toBeNull();
  });
});

describe('analyse', () => {
  it('one report: model layer indices, batch sizes beyond N left out, JSON with top pairs', () => {
    const r = analyse(tiny(), { batches: [1, 2, 8] });
    expect(r.trace).toEqual({ N: 4, L: 2, K: 2, E: 4, source: 'tiny', format: '' });
    expect(r.layers.map((l) => l.layer)).toEqual([3, 7]);
    expect(r.activated.map((a) => a.batch)).toEqual([1, 2]);
    const j = JSON.parse(JSON.stringify(reportJson(r, 2))) as {
      layers: { layer: number; counts: number[]; routed: number }[];
      coactivation: { layer: number; top: { experts: number[]; tokens: number }[] }[];
      transitions: { from: number; to: number; top: { from_expert: number; to_expert: number; count: number }[] }[];
    };
    expect(j.layers[1]).toMatchObject({ layer: 7, counts: [0, 0, 3, 2], routed: 5 });
    expect(j.coactivation[0]).toEqual({ layer: 3, top: [{ experts: [0, 1], tokens: 2 }, { experts: [0, 2], tokens: 1 }] });
    expect(j.transitions).toEqual([{ from: 3, to: 7, top: [{ from_expert: 0, to_expert: 2, count: 3 }, { from_expert: 0, to_expert: 3, count: 2 }] }]);
  });

  it('E from the options when the trace has none; an error when neither says or they differ', () => {
    const t = { ...tiny(), E: null };
    expect(() => analyse(t)).toThrow('pass it (--experts E)');
    expect(analyse(t, { experts: 4 }).trace.E).toBe(4);
    expect(() => analyse(tiny(), { experts: 5 })).toThrow('the trace has E = 4 experts but 5 were given');
    expect(() => analyse(t, { experts: 3 })).toThrow('expert id 3 at [0, 1, 1] (token, layer, slot) is outside [-1, 3)');
  });
});
