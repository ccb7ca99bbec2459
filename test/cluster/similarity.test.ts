// Expert similarity: cosine matrices, the ε-refreshed weight-similarity cache, activation centroids (EMA) and
// the fused, pruned similarity.
import { describe, expect, it } from 'vitest';
import { CentroidEma, ParamSimilarityCache, cosineMatrix, fusedSimilarity } from '../../src/cluster/similarity.js';
import { Rng } from '../../src/tensor/random.js';

const rand = (n: number, r: Rng): Float32Array => Float32Array.from({ length: n }, () => r.normal());

describe('cosineMatrix', () => {
  it('is symmetric with unit diagonal, scale invariant, ±1 for (anti)parallel vectors and 0 for a zero vector', () => {
    const S = cosineMatrix([[1, 0], [2, 0], [-3, 0], [0, 5], [0, 0]]);
    expect(Array.from(S.subarray(0, 5))).toEqual([1, 1, -1, 0, 0]);
    expect(S[3 * 5 + 4]).toBe(0);
    expect(S[4 * 5 + 4]).toBe(1);
    const r = new Rng(1);
    const vs = [rand(7, r), rand(7, r), rand(7, r)];
    const T = cosineMatrix(vs);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expect(T[i * 3 + j]).toBeCloseTo(T[j * 3 + i]!, 14);
    const a = vs[0]!;
    const b = vs[1]!;
    let d = 0;
    let na = 0;
    let nb = 0;
    for (let k = 0; k < 7; k++) {
      d += a[k]! * b[k]!;
      na += a[k]! ** 2;
      nb += b[k]! ** 2;
    }
    expect(T[1]).toBeCloseTo(d / Math.sqrt(na * nb), 12);
    expect(() => cosineMatrix([[1, 2], [3]])).toThrow('row 1 has 1 values, expected 2');
  });
});

describe('ParamSimilarityCache', () => {
  it('recomputes only the experts whose weights moved by more than ε, and matches a full recomputation', () => {
    const r = new Rng(2);
    const vs = Array.from({ length: 5 }, () => rand(40, r));
    const c = new ParamSimilarityCache(1e-3);
    expect(c.update(vs)).toEqual([0, 1, 2, 3, 4]);
    const moved = vs.map((v) => Float32Array.from(v));
    for (let k = 0; k < 40; k++) moved[3]![k]! += 0.1 * r.normal(); // moves
    moved[1]![0]! *= 1 + 1e-6; // below ε
    expect(c.update(moved)).toEqual([3]);
    expect(c.lastRecomputed).toBe(1);
    const full = cosineMatrix([vs[0]!, vs[1]!, vs[2]!, moved[3]!, vs[4]!]);
    const got = c.matrix();
    for (let i = 0; i < 25; i++) expect(got[i]).toBeCloseTo(full[i]!, 12);
    expect(c.update(moved)).toEqual([]);
  });

  it('permute re-indexes the cached matrix with the experts', () => {
    const r = new Rng(3);
    const vs = Array.from({ length: 4 }, () => rand(10, r));
    const c = new ParamSimilarityCache();
    c.update(vs);
    const perm = [2, 0, 3, 1];
    c.permute(perm);
    const want = cosineMatrix(perm.map((p) => vs[p]!));
    const got = c.matrix();
    for (let i = 0; i < 16; i++) expect(got[i]).toBeCloseTo(want[i]!, 12);
    expect(c.update(perm.map((p) => vs[p]!))).toEqual([]); // the cached vectors moved too
    expect(() => c.permute([0, 0, 1, 2])).toThrow('is not a permutation of 0..3');
    expect(() => new ParamSimilarityCache(-1)).toThrow('eps = -1 must be a finite number >= 0');
  });
});

describe('CentroidEma', () => {
  it('first observation sets the centroid; later ones move it by β; unrouted experts keep theirs', () => {
    const c = new CentroidEma(3, 2, 0.05);
    c.update([2, 4, 0, 0, 3, 3], [2, 0, 1]);
    expect(Array.from(c.data)).toEqual([1, 2, 0, 0, 3, 3]);
    expect([c.observed(0), c.observed(1), c.observed(2)]).toEqual([true, false, true]);
    c.update([10, 10, 1, 1, 0, 0], [1, 1, 0]);
    expect(c.data[0]).toBeCloseTo(0.95 * 1 + 0.05 * 10, 12);
    expect(c.data[1]).toBeCloseTo(0.95 * 2 + 0.05 * 10, 12);
    expect(Array.from(c.data.subarray(2, 6))).toEqual([1, 1, 3, 3]); // expert 1's first observation; expert 2 unrouted
    c.permute([2, 0, 1]);
    expect(Array.from(c.data.subarray(0, 2))).toEqual([3, 3]);
    expect(c.observed(0)).toBe(true);
    const S = c.similarity();
    expect(S[0 * 3 + 2]).toBeCloseTo(1, 12); // (3,3) ∥ (1,1)
    expect(() => c.update([1], [1, 1, 1])).toThrow('1 sums, expected experts × hidden = 6');
    expect(() => new CentroidEma(2, 2, 0)).toThrow('beta = 0 must be in (0, 1]');
  });
});

describe('fusedSimilarity', () => {
  it('is α·S_param + (1−α)·S_task with pairs below τ pruned and a unit diagonal', () => {
    const sp = [1, 0.8, -0.2, 0.8, 1, 0.3, -0.2, 0.3, 1];
    const st = [1, 0.4, 0.6, 0.4, 1, 0.1, 0.6, 0.1, 1];
    const S = fusedSimilarity(sp, st, 3, 0.7, 0.1);
    expect(S[1]).toBeCloseTo(0.7 * 0.8 + 0.3 * 0.4, 12);
    expect(S[2]).toBe(0); // 0.7·-0.2 + 0.3·0.6 = 0.04 < τ
    expect(S[5]).toBeCloseTo(0.7 * 0.3 + 0.3 * 0.1, 12);
    expect([S[0], S[4], S[8]]).toEqual([1, 1, 1]);
    expect(() => fusedSimilarity(sp, st, 3, 1.5, 0.1)).toThrow('alpha = 1.5 must be in [0, 1]');
    expect(() => fusedSimilarity(sp, st.slice(1), 3, 0.5, 0.1)).toThrow('expected 3 × 3 = 9');
  });
});
