// Routing statistics over a RoutingTrace, as pure single-pass loops over its Int16Array: expert loads per layer and per
// sequence, activated experts per batch, co-activation and layer-to-layer transition counts.
import type { RoutingTrace } from './types.js';

/** Tokens per block in the pair loops: a block's rows for all layers (CHUNK·L·K int16) stay in cache while each layer's E×E counts are updated. */
const CHUNK = 2048;

/** Load balance of one layer (or one sequence at one layer) over all E experts. */
export interface LoadStats {
  /** (E) tokens routed to each expert; −1 slots are not counted */
  counts: number[];
  /** routed slots in all: the sum of counts */
  total: number;
  /** max(counts) / mean(counts); 0 when nothing was routed */
  max_over_mean: number;
  /** population standard deviation / mean; 0 when nothing was routed */
  cv: number;
  /** Gini coefficient of the counts: 0 = perfectly even, (E − 1)/E = everything on one expert */
  gini: number;
  /** Shannon entropy of counts/total in bits: log2(E) = perfectly even */
  entropy_bits: number;
  /** experts whose count exceeds hotFactor · mean, ascending */
  hot: number[];
}

/** Load statistics of one count vector (E entries). */
export function loadStats(counts: ArrayLike<number>, hotFactor = 2): LoadStats {
  const E = counts.length;
  let total = 0;
  let max = 0;
  for (let e = 0; e < E; e++) {
    const c = counts[e]!;
    total += c;
    if (c > max) max = c;
  }
  const out = Array.from(counts);
  if (total === 0 || E === 0) return { counts: out, total, max_over_mean: 0, cv: 0, gini: 0, entropy_bits: 0, hot: [] };
  const mean = total / E;
  let sq = 0;
  let h = 0;
  const hot: number[] = [];
  for (let e = 0; e < E; e++) {
    const c = counts[e]!;
    sq += (c - mean) * (c - mean);
    if (c > 0) h -= (c / total) * Math.log2(c / total);
    if (c > hotFactor * mean) hot.push(e);
  }
  const sorted = Float64Array.from(out).sort();
  let weighted = 0;
  for (let i = 0; i < E; i++) weighted += (i + 1) * sorted[i]!;
  const gini = (2 * weighted) / (E * total) - (E + 1) / E;
  return { counts: out, total, max_over_mean: max / mean, cv: Math.sqrt(sq / E) / mean, gini: Math.max(0, gini), entropy_bits: h, hot };
}

/** The trace's E, or `experts` where given; an error when neither says, or when the two differ. */
export function expertsOf(trace: RoutingTrace, experts?: number): number {
  const E = experts ?? trace.E;
  if (E === null || E === undefined) throw new Error('the trace does not say how many experts each layer has (E); pass it (--experts E)');
  if (!Number.isInteger(E) || E < 1) throw new Error(`experts must be a positive integer, got ${E}`);
  if (trace.E !== null && experts !== undefined && trace.E !== experts) throw new Error(`the trace has E = ${trace.E} experts but ${experts} were given`);
  return E;
}

/** (L·E) tokens per expert per layer, row-major [layer][expert]; an error naming [n, l, k] for an id outside [−1, E). */
export function layerCounts(trace: RoutingTrace, E: number): Uint32Array {
  const { N, L, K, experts } = trace;
  const counts = new Uint32Array(L * E);
  for (let n = 0; n < N; n++) {
    for (let l = 0; l < L; l++) {
      const base = (n * L + l) * K;
      const row = l * E;
      for (let k = 0; k < K; k++) {
        const e = experts[base + k]!;
        if (e < 0) {
          if (e === -1) continue;
        } else if (e < E) {
          counts[row + e]!++;
          continue;
        }
        throw new Error(`expert id ${e} at [${n}, ${l}, ${k}] (token, layer, slot) is outside [-1, ${E}) (E = ${E})`);
      }
    }
  }
  return counts;
}

/** Activated experts for one batch size B (the N tokens split in order into ⌊N/B⌋ batches of B). */
export interface Activated {
  batch: number;
  /** ⌊N/B⌋ */
  batches: number;
  /** (L) mean over batches of the distinct experts the batch selects at each layer */
  mean_unique: number[];
  /** E·(1 − (1 − K/E)^B): the expectation when each token picks K distinct experts uniformly at random */
  theory_uniform: number;
  /** (L) routed slots per batch (−1 slots left out; B·K without them) / mean_unique: slots per activated expert */
  tokens_per_expert: number[];
}

/** Activated experts per layer for batch size B; null when ⌊N/B⌋ = 0. */
export function activatedExperts(trace: RoutingTrace, E: number, B: number): Activated | null {
  const { N, L, K, experts } = trace;
  if (!Number.isInteger(B) || B < 1) throw new Error(`batch size must be a positive integer, got ${B}`);
  const batches = Math.floor(N / B);
  if (batches === 0) return null;
  const stamp = new Int32Array(L * E).fill(-1); // (L, E) the last batch that selected each expert
  const unique = new Float64Array(L); // (L) distinct experts summed over batches
  const slots = new Float64Array(L); // (L) routed slots summed over batches
  // whole batches in chunks of about CHUNK tokens, layers within a chunk (the chunk's rows stay in cache)
  const per = Math.max(1, Math.floor(CHUNK / B));
  for (let b0 = 0; b0 < batches; b0 += per) {
    const b1 = Math.min(batches, b0 + per);
    for (let l = 0; l < L; l++) {
      const row = l * E;
      let seen = 0, routed = 0;
      for (let b = b0; b < b1; b++) {
        const n1 = (b + 1) * B;
        for (let n = b * B; n < n1; n++) {
          const base = (n * L + l) * K;
          for (let k = 0; k < K; k++) {
            const e = experts[base + k]!;
            if (e < 0) continue;
            routed++;
            const x = row + e;
            const d = stamp[x]! ^ b; // 0 when this batch already selected e
            seen += (d | -d) >>> 31; // without a branch: it would be taken at random for middling B
            stamp[x] = b;
          }
        }
      }
      unique[l]! += seen;
      slots[l]! += routed;
    }
  }
  const mean_unique = Array.from(unique, (u) => u / batches);
  return {
    batch: B,
    batches,
    mean_unique,
    theory_uniform: E * (1 - Math.pow(1 - K / E, B)),
    tokens_per_expert: mean_unique.map((u, l) => (u > 0 ? slots[l]! / batches / u : 0)),
  };
}

/**
 * (L·E·E) co-activation per layer, [layer][a][b]: tokens that chose both a and b at that layer (symmetric; the
 * diagonal [a][a] is the tokens that chose a). Pairs are taken over the K slots of each token, −1 slots left out.
 */
export function coactivation(trace: RoutingTrace, E: number): Uint32Array {
  const { N, L, K, experts } = trace;
  const EE = E * E;
  const m = new Uint32Array(L * EE);
  const ids = new Int32Array(K); // (K) the token's valid ids at the layer
  // tokens in chunks, layers within a chunk: one layer's E×E block stays in cache while its rows are read
  for (let n0 = 0; n0 < N; n0 += CHUNK) {
    const n1 = Math.min(N, n0 + CHUNK);
    for (let l = 0; l < L; l++) {
      const sub = m.subarray(l * EE, (l + 1) * EE); // (E, E) this layer
      for (let n = n0; n < n1; n++) {
        const base = (n * L + l) * K;
        let c = 0;
        for (let k = 0; k < K; k++) {
          const e = experts[base + k]!;
          if (e >= 0) ids[c++] = e;
        }
        for (let i = 0; i < c; i++) {
          const a = ids[i]!;
          const row = a * E;
          sub[row + a]!++;
          for (let j = i + 1; j < c; j++) sub[row + ids[j]!]!++;
        }
      }
    }
  }
  // each unordered pair was counted once at [a][b] in slot order: make the matrix symmetric
  for (let l = 0; l < L; l++) {
    const off = l * EE;
    for (let a = 0; a < E; a++) {
      for (let b = a + 1; b < E; b++) {
        const s = m[off + a * E + b]! + m[off + b * E + a]!;
        m[off + a * E + b] = s;
        m[off + b * E + a] = s;
      }
    }
  }
  return m;
}

/**
 * ((L−1)·E·E) transitions between consecutive traced layers, [l][a][b]: slot pairs where a token chose a at layer l
 * and b at layer l + 1 (K·K pairs per token, −1 slots left out).
 */
export function transitions(trace: RoutingTrace, E: number): Uint32Array {
  const { N, L, K, experts } = trace;
  const EE = E * E;
  const m = new Uint32Array(Math.max(0, L - 1) * EE);
  const next = new Int32Array(K); // (K) the token's valid ids at layer l + 1
  for (let n0 = 0; n0 < N; n0 += CHUNK) {
    const n1 = Math.min(N, n0 + CHUNK);
    for (let l = 0; l + 1 < L; l++) {
      const sub = m.subarray(l * EE, (l + 1) * EE); // (E, E) this layer pair
      for (let n = n0; n < n1; n++) {
        const base = (n * L + l) * K;
        let c = 0;
        for (let j = 0; j < K; j++) {
          const b = experts[base + K + j]!;
          if (b >= 0) next[c++] = b;
        }
        const c4 = c & ~3;
        for (let i = 0; i < K; i++) {
          const a = experts[base + i]!;
          if (a < 0) continue;
          const row = a * E;
          let j = 0;
          for (; j < c4; j += 4) {
            sub[row + next[j]!]!++;
            sub[row + next[j + 1]!]!++;
            sub[row + next[j + 2]!]!++;
            sub[row + next[j + 3]!]!++;
          }
          for (; j < c; j++) sub[row + next[j]!]!++;
        }
      }
    }
  }
  return m;
}

/** Load balance within sequences: per layer, the mean over sequences of max_over_mean and cv. */
export interface SequenceStats {
  /** sequences (distinct seq ids) */
  count: number;
  /** mean tokens per sequence */
  tokens_mean: number;
  /** (L) mean over sequences of each sequence's max_over_mean at the layer */
  max_over_mean: number[];
  /** (L) mean over sequences of each sequence's cv at the layer */
  cv: number[];
  /** the mean of max_over_mean over layers */
  mean_max_over_mean: number;
  /** the mean of cv over layers */
  mean_cv: number;
}

/** Per-sequence load statistics when the trace has `seq`; null otherwise. */
export function sequenceStats(trace: RoutingTrace, E: number): SequenceStats | null {
  const { N, L, K, experts, seq } = trace;
  if (!seq) return null;
  if (seq.length !== N) throw new Error(`seq has ${seq.length} entries but the trace has N = ${N} tokens`);
  // dense sequence index per token, then the tokens grouped by sequence (counting sort keeps their order)
  const dense = new Map<number, number>();
  const idx = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    let s = dense.get(seq[n]!);
    if (s === undefined) dense.set(seq[n]!, (s = dense.size));
    idx[n] = s;
  }
  const S = dense.size;
  const start = new Int32Array(S + 1);
  for (let n = 0; n < N; n++) start[idx[n]! + 1]!++;
  for (let s = 0; s < S; s++) start[s + 1]! += start[s]!;
  const fill = start.slice(0, S);
  const order = new Int32Array(N);
  for (let n = 0; n < N; n++) order[fill[idx[n]!]!++] = n;
  const sumMax = new Float64Array(L);
  const sumCv = new Float64Array(L);
  const counts = new Float64Array(E);
  for (let s = 0; s < S; s++) {
    for (let l = 0; l < L; l++) {
      counts.fill(0);
      for (let i = start[s]!; i < start[s + 1]!; i++) {
        const base = (order[i]! * L + l) * K;
        for (let k = 0; k < K; k++) {
          const e = experts[base + k]!;
          if (e >= 0) counts[e]!++;
        }
      }
      let total = 0;
      let max = 0;
      for (let e = 0; e < E; e++) {
        total += counts[e]!;
        if (counts[e]! > max) max = counts[e]!;
      }
      if (total === 0) continue;
      const mean = total / E;
      let sq = 0;
      for (let e = 0; e < E; e++) sq += (counts[e]! - mean) * (counts[e]! - mean);
      sumMax[l]! += max / mean;
      sumCv[l]! += Math.sqrt(sq / E) / mean;
    }
  }
  const max_over_mean = Array.from(sumMax, (v) => v / S);
  const cv = Array.from(sumCv, (v) => v / S);
  const avg = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return { count: S, tokens_mean: N / S, max_over_mean, cv, mean_max_over_mean: avg(max_over_mean), mean_cv: avg(cv) };
}
