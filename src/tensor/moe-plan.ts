// Host-side routing plans, shared by the MoE layer (src/moe) and the backends' fused MoE kernels: routing slots
// binned by expert, and the clustered layer's (token, group) pairs. Pure functions over host ids (T·K, row-major).

/** Routing slots per expert from host ids (T·K), checking every id is in [0, E). `label` names the caller in errors. */
export function countSlots(ids: ArrayLike<number>, E: number, K: number, label = 'countSlots'): number[] {
  const counts = new Array<number>(E).fill(0);
  for (let s = 0; s < ids.length; s++) {
    const e = ids[s]!;
    if (!(e >= 0 && e < E)) throw new RangeError(`${label}: slot ${s} (token ${Math.floor(s / K)}) names expert ${e}, outside [0, ${E})`);
    counts[e]!++;
  }
  return counts;
}

export interface SlotBins {
  /** kept slots (flat t·K + k) sorted by expert, then by slot (token) index */
  order: Int32Array;
  /** token row of each kept slot, in `order` */
  tokens: Int32Array;
  /** slots routed to each expert before any drop (E) */
  routed: number[];
  /** slots kept per expert (E) */
  counts: number[];
  /** (E+1) prefix sums of counts: expert e owns rows offsets[e]..offsets[e+1] of the permuted rows */
  offsets: Int32Array;
  /** slots dropped by the capacity limit */
  dropped: number;
}

/**
 * Bins the slots of host ids (T·K) per expert, stable (lower token index first). With a finite `capacity` per expert
 * the slots past it (highest token indices) are dropped.
 */
export function binSlots(ids: ArrayLike<number>, E: number, K: number, capacity = Infinity, label = 'binSlots'): SlotBins {
  const routed = countSlots(ids, E, K, label);
  const counts = routed.map((c) => Math.min(c, capacity));
  const offsets = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + counts[e]!;
  const total = offsets[E]!;
  const order = new Int32Array(total);
  const fill = offsets.slice(0, E);
  for (let s = 0; s < ids.length; s++) {
    const e = ids[s]!;
    if (fill[e]! < offsets[e + 1]!) order[fill[e]!++] = s; // slots visited in token order: first come, first kept
  }
  const tokens = order.map((s) => Math.floor(s / K));
  return { order, tokens, routed, counts, offsets, dropped: ids.length - total };
}

/** The (token, group) pairs of a clustered layer: x·base runs once per pair, the low-rank terms once per slot. */
export interface GroupPairs {
  /** (G+1) prefix sums: group g owns pair rows groupOffsets[g]..groupOffsets[g+1] */
  groupOffsets: Int32Array;
  /** token of each pair row (P), pairs sorted by group (stable in token order) */
  pairTokens: Int32Array;
  /** pair row of each binned slot, in the bins' `order` (N) */
  slotPair: Int32Array;
  /** pairs per group (G): how often each group's base runs */
  tokensPerGroup: number[];
  /** tokens whose K experts sit in more than one group */
  crossGroup: number;
}

/** Pairs of host ids (T·K) whose experts are in G contiguous groups of M = E/G; `order` is the bins' slot order. */
export function groupPairs(ids: ArrayLike<number>, order: Int32Array, K: number, E: number, G: number): GroupPairs {
  const M = E / G;
  const T = ids.length / K;
  const pairGroup: number[] = [];
  const pairToken: number[] = [];
  const pairOfSlot = new Int32Array(ids.length);
  let crossGroup = 0;
  for (let t = 0; t < T; t++) {
    const first = pairGroup.length;
    for (let k = 0; k < K; k++) {
      const g = Math.floor(ids[t * K + k]! / M);
      let p = first;
      while (p < pairGroup.length && pairGroup[p] !== g) p++;
      if (p === pairGroup.length) {
        pairGroup.push(g);
        pairToken.push(t);
      }
      pairOfSlot[t * K + k] = p;
    }
    if (pairGroup.length - first > 1) crossGroup++;
  }
  const P = pairGroup.length;
  const tokensPerGroup = new Array<number>(G).fill(0);
  for (const g of pairGroup) tokensPerGroup[g]!++;
  const groupOffsets = new Int32Array(G + 1);
  for (let g = 0; g < G; g++) groupOffsets[g + 1] = groupOffsets[g]! + tokensPerGroup[g]!;
  const rowOfPair = new Int32Array(P);
  const fill = groupOffsets.slice(0, G);
  for (let p = 0; p < P; p++) rowOfPair[p] = fill[pairGroup[p]!]!++;
  const pairTokens = new Int32Array(P);
  for (let p = 0; p < P; p++) pairTokens[rowOfPair[p]!] = pairToken[p]!;
  const slotPair = Int32Array.from(order, (s) => rowOfPair[pairOfSlot[s]!]!);
  return { groupOffsets, pairTokens, slotPair, tokensPerGroup, crossGroup };
}
