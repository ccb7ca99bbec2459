// Grouping experts: K-means++ seeding and medoid Lloyd iterations on a distance matrix D = 1 − S, then a
// greedy balancing pass so every group holds exactly E/G experts (the clustered layer needs equal groups),
// refined by pairwise swaps that lower the total intra-group distance.

import type { Rng } from '../tensor/random.js';

export interface KmeansResult {
  /** cluster of each point */
  assignment: Int32Array;
  /** medoid (point index) of each cluster */
  medoids: Int32Array;
  /** Σ distance of each point to its medoid */
  cost: number;
}

function checkDistances(D: ArrayLike<number>, n: number, k: number, who: string): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${who}: ${n} points, expected a positive integer`);
  if (!Number.isInteger(k) || k < 1 || k > n) throw new RangeError(`${who}: ${k} clusters, expected an integer in 1..${n}`);
  if (D.length !== n * n) throw new RangeError(`${who}: distance matrix of ${D.length} values, expected ${n} × ${n} = ${n * n}`);
  for (let i = 0; i < D.length; i++) {
    if (!Number.isFinite(D[i]!)) throw new RangeError(`${who}: distance[${Math.floor(i / n)}][${i % n}] = ${D[i]} is not finite`);
  }
}

/**
 * K-means++ on a distance matrix: seeds are drawn with probability ∝ squared distance to the nearest seed,
 * then medoid Lloyd iterations (assign to the nearest medoid, move each medoid to the member minimising the
 * summed distance to its cluster) until stable. The best of `restarts` runs is returned.
 */
export function kmeansPlusPlus(D: ArrayLike<number>, n: number, k: number, rng: Rng, opts: { iters?: number; restarts?: number } = {}): KmeansResult {
  checkDistances(D, n, k, 'kmeansPlusPlus');
  const iters = opts.iters ?? 50;
  const restarts = opts.restarts ?? 8;
  let best: KmeansResult | null = null;
  for (let r = 0; r < restarts; r++) {
    const res = lloyd(D, n, k, seed(D, n, k, rng), iters);
    if (!best || res.cost < best.cost - 1e-12) best = res;
  }
  return best!;
}

function seed(D: ArrayLike<number>, n: number, k: number, rng: Rng): Int32Array {
  const medoids = new Int32Array(k);
  const chosen = new Uint8Array(n);
  medoids[0] = Math.min(n - 1, Math.floor(rng.uniform() * n));
  chosen[medoids[0]!] = 1;
  const near = new Float64Array(n).fill(Infinity);
  for (let c = 1; c < k; c++) {
    const prev = medoids[c - 1]!;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const d = Math.max(0, D[i * n + prev]!);
      if (d * d < near[i]!) near[i] = d * d;
      if (!chosen[i]) total += near[i]!;
    }
    let pick = -1;
    if (total > 0) {
      let u = rng.uniform() * total;
      for (let i = 0; i < n; i++) {
        if (chosen[i]) continue;
        u -= near[i]!;
        if (u < 0) {
          pick = i;
          break;
        }
      }
    }
    if (pick < 0) {
      // all remaining points coincide with a seed (or rounding): take a random unchosen one
      const free: number[] = [];
      for (let i = 0; i < n; i++) if (!chosen[i]) free.push(i);
      pick = free[Math.min(free.length - 1, Math.floor(rng.uniform() * free.length))]!;
    }
    medoids[c] = pick;
    chosen[pick] = 1;
  }
  return medoids;
}

function assignNearest(D: ArrayLike<number>, n: number, medoids: Int32Array, assignment: Int32Array): number {
  let cost = 0;
  for (let i = 0; i < n; i++) {
    let bc = 0;
    let bd = Infinity;
    for (let c = 0; c < medoids.length; c++) {
      const d = D[i * n + medoids[c]!]!;
      if (d < bd) {
        bd = d;
        bc = c;
      }
    }
    assignment[i] = bc;
    cost += bd;
  }
  return cost;
}

function lloyd(D: ArrayLike<number>, n: number, k: number, medoids: Int32Array, iters: number): KmeansResult {
  const assignment = new Int32Array(n);
  let cost = assignNearest(D, n, medoids, assignment);
  for (let it = 0; it < iters; it++) {
    let moved = false;
    for (let c = 0; c < k; c++) {
      const members: number[] = [];
      for (let i = 0; i < n; i++) if (assignment[i] === c) members.push(i);
      if (members.length === 0) continue;
      let bm = medoids[c]!;
      let bs = Infinity;
      for (const m of members) {
        let s = 0;
        for (const o of members) s += D[m * n + o]!;
        if (s < bs - 1e-12 || (Math.abs(s - bs) <= 1e-12 && m === medoids[c])) {
          bs = s;
          bm = m;
        }
      }
      if (bm !== medoids[c]) {
        medoids[c] = bm;
        moved = true;
      }
    }
    if (!moved) break;
    cost = assignNearest(D, n, medoids, assignment);
  }
  return { assignment, medoids, cost };
}

/** Σ over groups of the summed pairwise distance of its members. */
export function intraCost(D: ArrayLike<number>, n: number, assignment: Int32Array): number {
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (assignment[i] === assignment[j]) s += D[i * n + j]!;
  return s;
}

/**
 * Makes every cluster exactly n/k points: clusters keep their medoids (an empty cluster takes the point
 * farthest from its own medoid), then points are assigned greedily in order of increasing distance to a
 * medoid whose cluster still has room; finally pairwise swaps between clusters are applied while they lower
 * the total intra-cluster distance.
 */
export function balanceGroups(assignment: ArrayLike<number>, D: ArrayLike<number>, n: number, k: number): Int32Array {
  checkDistances(D, n, k, 'balanceGroups');
  if (n % k !== 0) throw new RangeError(`balanceGroups: ${k} groups cannot split ${n} points evenly`);
  if (assignment.length !== n) throw new RangeError(`balanceGroups: ${assignment.length} assignments, expected ${n}`);
  const size = n / k;
  // medoid of each current cluster
  const medoids = new Int32Array(k).fill(-1);
  const used = new Uint8Array(n);
  for (let c = 0; c < k; c++) {
    const members: number[] = [];
    for (let i = 0; i < n; i++) if (assignment[i] === c) members.push(i);
    let bm = -1;
    let bs = Infinity;
    for (const m of members) {
      let s = 0;
      for (const o of members) s += D[m * n + o]!;
      if (s < bs) {
        bs = s;
        bm = m;
      }
    }
    if (bm >= 0) {
      medoids[c] = bm;
      used[bm] = 1;
    }
  }
  for (let c = 0; c < k; c++) {
    if (medoids[c]! >= 0) continue;
    let far = -1;
    let fd = -Infinity;
    for (let i = 0; i < n; i++) {
      if (used[i]) continue;
      let d = Infinity;
      for (let o = 0; o < k; o++) if (medoids[o]! >= 0) d = Math.min(d, D[i * n + medoids[o]!]!);
      if (d === Infinity) d = 0;
      if (d > fd) {
        fd = d;
        far = i;
      }
    }
    medoids[c] = far;
    used[far] = 1;
  }
  const out = new Int32Array(n).fill(-1);
  const fill = new Int32Array(k);
  for (let c = 0; c < k; c++) {
    out[medoids[c]!] = c;
    fill[c] = 1;
  }
  const pairs: [number, number, number][] = [];
  for (let i = 0; i < n; i++) {
    if (out[i]! >= 0) continue;
    for (let c = 0; c < k; c++) pairs.push([D[i * n + medoids[c]!]!, i, c]);
  }
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  for (const [, i, c] of pairs) {
    if (out[i]! >= 0 || fill[c]! >= size) continue;
    out[i] = c;
    fill[c]!++;
  }
  // local search: swap two points of different groups while the summed intra-group distance drops
  const gain = (i: number, j: number): number => {
    const ci = out[i]!;
    const cj = out[j]!;
    let delta = 0;
    for (let o = 0; o < n; o++) {
      if (o === i || o === j) continue;
      if (out[o] === ci) delta += D[j * n + o]! - D[i * n + o]!;
      else if (out[o] === cj) delta += D[i * n + o]! - D[j * n + o]!;
    }
    return delta;
  };
  for (let pass = 0; pass < 4 * n; pass++) {
    let bi = -1;
    let bj = -1;
    let bd = -1e-12;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        if (out[i] === out[j]) continue;
        const d = gain(i, j);
        if (d < bd) {
          bd = d;
          bi = i;
          bj = j;
        }
      }
    }
    if (bi < 0) break;
    const t = out[bi]!;
    out[bi] = out[bj]!;
    out[bj] = t;
  }
  return out;
}

export interface ExpertClustering {
  /** group of each expert */
  assignment: Int32Array;
  /** members of each group, ascending; groups ordered by their smallest member */
  groups: number[][];
  /** mean similarity of the expert pairs that share a group */
  intraSimilarity: number;
}

/** Groups n experts into k equal groups by similarity S (n × n): K-means++ on D = 1 − S, then balancing. */
export function clusterExperts(S: ArrayLike<number>, n: number, k: number, rng: Rng, opts: { iters?: number; restarts?: number } = {}): ExpertClustering {
  if (S.length !== n * n) throw new RangeError(`clusterExperts: similarity matrix of ${S.length} values, expected ${n} × ${n} = ${n * n}`);
  if (!Number.isInteger(k) || k < 1 || n % k !== 0) throw new RangeError(`clusterExperts: ${k} groups must be a positive integer dividing ${n} experts`);
  const D = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) D[i] = 1 - S[i]!;
  for (let i = 0; i < n; i++) D[i * n + i] = 0;
  const km = kmeansPlusPlus(D, n, k, rng, opts);
  const balanced = balanceGroups(km.assignment, D, n, k);
  const groups: number[][] = Array.from({ length: k }, () => []);
  for (let i = 0; i < n; i++) groups[balanced[i]!]!.push(i);
  groups.sort((a, b) => a[0]! - b[0]!);
  const assignment = new Int32Array(n);
  groups.forEach((ms, g) => ms.forEach((m) => (assignment[m] = g)));
  let s = 0;
  let pairs = 0;
  for (const ms of groups) {
    for (let a = 0; a < ms.length; a++) {
      for (let b = a + 1; b < ms.length; b++) {
        s += S[ms[a]! * n + ms[b]!]!;
        pairs++;
      }
    }
  }
  return { assignment, groups, intraSimilarity: pairs > 0 ? s / pairs : 1 };
}
