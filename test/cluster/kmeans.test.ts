// K-means++ recovers planted clusters, balancing yields equal groups without breaking clean clusters, and
// clusterExperts returns canonical balanced groups with their mean intra-group similarity.
import { describe, expect, it } from 'vitest';
import { cosineMatrix } from '../../src/cluster/similarity.js';
import { balanceGroups, clusterExperts, intraCost, kmeansPlusPlus } from '../../src/cluster/kmeans.js';
import { Rng } from '../../src/tensor/random.js';

/** n points in k planted clusters (shuffled), as a Euclidean distance matrix, with the true labels. */
function planted(sizes: number[], spread: number, seed: number): { D: Float64Array; labels: number[]; n: number } {
  const r = new Rng(seed);
  const centres = sizes.map(() => [r.normal() * 10, r.normal() * 10, r.normal() * 10]);
  const pts: number[][] = [];
  const labels: number[] = [];
  sizes.forEach((s, c) => {
    for (let i = 0; i < s; i++) {
      pts.push(centres[c]!.map((x) => x + spread * r.normal()));
      labels.push(c);
    }
  });
  // shuffle so clusters are not contiguous
  for (let i = pts.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [pts[i], pts[j]] = [pts[j]!, pts[i]!];
    [labels[i], labels[j]] = [labels[j]!, labels[i]!];
  }
  const n = pts.length;
  const D = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) D[i * n + j] = Math.hypot(...pts[i]!.map((x, d) => x - pts[j]![d]!));
  return { D, labels, n };
}

/** Same partition up to relabelling. */
function samePartition(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) for (let j = 0; j < a.length; j++) if ((a[i] === a[j]) !== (b[i] === b[j])) return false;
  return true;
}

describe('kmeansPlusPlus', () => {
  it('recovers well-separated planted clusters of unequal sizes', () => {
    for (const seed of [1, 2, 3]) {
      const { D, labels, n } = planted([5, 3, 8, 4], 0.3, seed);
      const km = kmeansPlusPlus(D, n, 4, new Rng(seed));
      expect(samePartition(km.assignment, labels)).toBe(true);
      expect(new Set(km.medoids).size).toBe(4);
      for (let i = 0; i < n; i++) expect(km.assignment[km.medoids[km.assignment[i]!]!]).toBe(km.assignment[i]);
    }
  });

  it('is deterministic for a seed and validates its input', () => {
    const { D, n } = planted([4, 4, 4], 2, 5);
    expect(Array.from(kmeansPlusPlus(D, n, 3, new Rng(7)).assignment)).toEqual(Array.from(kmeansPlusPlus(D, n, 3, new Rng(7)).assignment));
    expect(() => kmeansPlusPlus(D, n, 13, new Rng(1))).toThrow('13 clusters, expected an integer in 1..12');
    expect(() => kmeansPlusPlus(D.subarray(1), n, 3, new Rng(1))).toThrow('expected 12 × 12 = 144');
    const bad = Float64Array.from(D);
    bad[5] = NaN;
    expect(() => kmeansPlusPlus(bad, n, 3, new Rng(1))).toThrow('distance[0][5] = NaN is not finite');
  });
});

describe('balanceGroups', () => {
  it('makes groups of exactly n/k, keeps already balanced clean clusters, and never raises the intra-group cost of a balanced greedy fill', () => {
    const clean = planted([4, 4, 4], 0.2, 11);
    const km = kmeansPlusPlus(clean.D, clean.n, 3, new Rng(1));
    expect(samePartition(balanceGroups(km.assignment, clean.D, clean.n, 3), clean.labels)).toBe(true);
    // unbalanced clusters (6, 2, 4) forced into 3 groups of 4
    const u = planted([6, 2, 4], 0.5, 12);
    const ku = kmeansPlusPlus(u.D, u.n, 3, new Rng(2));
    const b = balanceGroups(ku.assignment, u.D, u.n, 3);
    const sizes = [0, 0, 0];
    for (const g of b) sizes[g]!++;
    expect(sizes).toEqual([4, 4, 4]);
    // the 4-cluster stays whole; the big cluster gives up exactly the two points that fill the 2-cluster's group
    const four = u.labels.map((l, i) => (l === 2 ? i : -1)).filter((i) => i >= 0);
    expect(new Set(four.map((i) => b[i])).size).toBe(1);
    // local search: no single swap lowers the cost further
    const cost = intraCost(u.D, u.n, b);
    for (let i = 0; i < u.n; i++) {
      for (let j = i + 1; j < u.n; j++) {
        if (b[i] === b[j]) continue;
        const s = Int32Array.from(b);
        [s[i], s[j]] = [s[j]!, s[i]!];
        expect(intraCost(u.D, u.n, s)).toBeGreaterThanOrEqual(cost - 1e-9);
      }
    }
    expect(() => balanceGroups(ku.assignment, u.D, u.n, 5)).toThrow('5 groups cannot split 12 points evenly');
  });
});

describe('clusterExperts', () => {
  it('groups experts with similar weights (cosine) into canonical balanced groups', () => {
    const r = new Rng(4);
    const protos = Array.from({ length: 4 }, () => Array.from({ length: 32 }, () => r.normal()));
    const owner = [2, 0, 1, 3, 0, 2, 1, 3]; // experts 1 & 4, 2 & 6, 0 & 5, 3 & 7 belong together
    const experts = owner.map((o) => protos[o]!.map((x) => x + 0.05 * r.normal()));
    const S = cosineMatrix(experts);
    const c = clusterExperts(S, 8, 4, new Rng(1));
    expect(c.groups).toEqual([[0, 5], [1, 4], [2, 6], [3, 7]]);
    expect(Array.from(c.assignment)).toEqual([0, 1, 2, 3, 1, 0, 2, 3]);
    let s = 0;
    for (const g of c.groups) s += S[g[0]! * 8 + g[1]!]!;
    expect(c.intraSimilarity).toBeCloseTo(s / 4, 12);
    expect(c.intraSimilarity).toBeGreaterThan(0.99);
    expect(() => clusterExperts(S, 8, 3, new Rng(1))).toThrow('3 groups must be a positive integer dividing 8 experts');
  });
});
