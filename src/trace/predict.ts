// Lookahead expert prediction (docs/ROUTING.md): from what is known at MoE layer l, predict the experts a token will
// use at layer l+d. Predictors are fitted on one trace and scored on another: speculative gating (layer l+d's router
// on the hidden state entering layer l, directly or through a least-squares linear adapter), a path table (Lina:
// the token's expert set at layer l -> counts at l+d), activation-matrix matching (MoE-Infinity: the sequence's
// expert-activation matrix so far against stored ones) and the layer's most-loaded experts.
import type { RoutingTrace } from './types.js';

/** Routes hidden states (n·H, row-major) with a model layer's router: the chosen experts (n·K). */
export type LayerRouter = (hidden: Float32Array, n: number) => Int32Array;

export interface PredictScore {
  predictor: string;
  /** the traced layer index predicted from (along L) and the distance d */
  from: number;
  distance: number;
  /** the model's layer index of the predicted layer */
  layer: number;
  /** mean over tokens of |true top-K ∩ predicted top-K| / |true top-K| */
  recall: number;
  /** the same within the predicted top-2K */
  recall2k: number;
  /** share of tokens whose predicted top-K set equals the true one */
  exact: number;
  tokens: number;
}

/** A predictor: for each eval token, ranked expert ids for layer `from + d` (at least 2K of them where it can). */
type Ranker = (from: number, d: number) => (n: number) => ArrayLike<number>;

const slot = (t: RoutingTrace, n: number, l: number): Int16Array => t.experts.subarray((n * t.L + l) * t.K, (n * t.L + l + 1) * t.K);

/** Expert ids ranked by count, descending (ties to the lower id). */
function ranked(counts: ArrayLike<number>, E: number): Int32Array {
  return Int32Array.from({ length: E }, (_, i) => i).sort((a, b) => counts[b]! - counts[a]! || a - b);
}

/** Scores a ranker on the eval trace: recall@K, recall@2K and exact-set accuracy per (from, d). */
function score(name: string, ev: RoutingTrace, from: number, d: number, rank: (n: number) => ArrayLike<number>): PredictScore {
  const K = ev.K;
  let rec = 0;
  let rec2 = 0;
  let exact = 0;
  let tokens = 0;
  for (let n = 0; n < ev.N; n++) {
    const truth = Array.from(slot(ev, n, from + d)).filter((e) => e >= 0);
    if (truth.length === 0) continue;
    const r = rank(n);
    const topK = new Set(Array.prototype.slice.call(r, 0, K) as number[]);
    const top2K = new Set(Array.prototype.slice.call(r, 0, 2 * K) as number[]);
    const hit = truth.filter((e) => topK.has(e)).length;
    rec += hit / truth.length;
    rec2 += truth.filter((e) => top2K.has(e)).length / truth.length;
    if (hit === truth.length && truth.length === topK.size) exact++;
    tokens++;
  }
  const m = Math.max(tokens, 1);
  return { predictor: name, from, distance: d, layer: ev.layers[from + d]!, recall: rec / m, recall2k: rec2 / m, exact: exact / m, tokens };
}

/** The layer's most-loaded experts in the train trace. */
const frequency = (tr: RoutingTrace, E: number): Ranker => (from, d) => {
  const counts = new Float64Array(E);
  for (let n = 0; n < tr.N; n++) for (const e of slot(tr, n, from + d)) if (e >= 0) counts[e]!++;
  const r = ranked(counts, E);
  return () => r;
};

/** Lina-style path table: the sorted expert set at layer `from` -> counts of experts at `from + d`; unseen sets fall
 *  back to the layer's frequency ranking. */
const pathTable = (tr: RoutingTrace, ev: RoutingTrace, E: number): Ranker => (from, d) => {
  const key = (t: RoutingTrace, n: number): string => Array.from(slot(t, n, from)).sort((a, b) => a - b).join(',');
  const table = new Map<string, Float64Array>();
  const all = new Float64Array(E);
  for (let n = 0; n < tr.N; n++) {
    const k = key(tr, n);
    let c = table.get(k);
    if (!c) table.set(k, (c = new Float64Array(E)));
    for (const e of slot(tr, n, from + d)) if (e >= 0) { c[e]!++; all[e]!++; }
  }
  const fallback = ranked(all, E);
  const scale = Math.max(0, ...all) + 1; // the table's counts first, ties by overall frequency
  const memo = new Map<string, Int32Array>();
  return (n) => {
    const k = key(ev, n);
    let r = memo.get(k);
    if (!r) {
      const c = table.get(k);
      // the table's experts first, then the rest in frequency order
      r = c ? ranked(Float64Array.from(c, (x, e) => x * scale + all[e]!), E) : fallback;
      memo.set(k, r);
    }
    return r;
  };
};

/** Per-sequence expert-activation matrices (L × E counts) of a trace. */
function sequenceMatrices(t: RoutingTrace, E: number): Float64Array[] {
  const bySeq = new Map<number, Float64Array>();
  for (let n = 0; n < t.N; n++) {
    const s = t.seq ? t.seq[n]! : 0;
    let m = bySeq.get(s);
    if (!m) bySeq.set(s, (m = new Float64Array(t.L * E)));
    for (let l = 0; l < t.L; l++) for (const e of slot(t, n, l)) if (e >= 0) m[l * E + e]!++;
  }
  return [...bySeq.values()];
}

/**
 * MoE-Infinity-style activation-matrix matching: the eval token's sequence matrix so far (earlier tokens, all layers,
 * plus this token's layers up to `from`) is matched by cosine to the train sequences' matrices; the best match's row
 * `from + d` ranks the experts. A token with nothing seen yet uses the frequency ranking.
 */
const matrixMatch = (tr: RoutingTrace, ev: RoutingTrace, E: number): Ranker => {
  const stored = sequenceMatrices(tr, E).map((m) => {
    let norm = 0;
    for (const x of m) norm += x * x;
    return { m, norm: Math.sqrt(norm) || 1 };
  });
  return (from, d) => {
    const freq = frequency(tr, E)(from, d)(0);
    const pos = new Float64Array(E); // each expert's place in the frequency ranking
    for (let i = 0; i < freq.length; i++) pos[freq[i]!] = i;
    const L = ev.L;
    const cur = new Float64Array(L * E);
    let curSeq = Number.NaN;
    let upTo = -1; // tokens of the current sequence already folded into `cur`
    return (n) => {
      const s = ev.seq ? ev.seq[n]! : 0;
      if (s !== curSeq) {
        cur.fill(0);
        curSeq = s;
        upTo = n;
      }
      for (; upTo < n; upTo++) for (let l = 0; l < L; l++) for (const e of slot(ev, upTo, l)) if (e >= 0) cur[l * E + e]!++;
      const q = Float64Array.from(cur);
      for (let l = 0; l <= from; l++) for (const e of slot(ev, n, l)) if (e >= 0) q[l * E + e]!++;
      let qn = 0;
      for (const x of q) qn += x * x;
      if (qn === 0 || stored.length === 0) return freq;
      let best = -Infinity;
      let row: Float64Array | null = null;
      for (const { m, norm } of stored) {
        let dot = 0;
        for (let i = 0; i < q.length; i++) dot += q[i]! * m[i]!;
        const c = dot / norm;
        if (c > best) { best = c; row = m; }
      }
      const r = row!.subarray((from + d) * E, (from + d + 1) * E);
      return ranked(Float64Array.from(r, (x, e) => x * (E + 1) + (E - pos[e]!)), E);
    };
  };
};

/** Least-squares linear map A (H × H) with h_{l+d} ≈ h_l · A over the train trace's tokens (ridge 1e-3). */
export function fitAdapter(tr: RoutingTrace, from: number, d: number): Float64Array {
  const H = tr.H!;
  const xtx = new Float64Array(H * H);
  const xty = new Float64Array(H * H);
  for (let n = 0; n < tr.N; n++) {
    const x = tr.hidden!.subarray((n * tr.L + from) * H, (n * tr.L + from + 1) * H);
    const y = tr.hidden!.subarray((n * tr.L + from + d) * H, (n * tr.L + from + d + 1) * H);
    for (let i = 0; i < H; i++) {
      const xi = x[i]!;
      if (xi === 0) continue;
      for (let j = 0; j < H; j++) { xtx[i * H + j]! += xi * x[j]!; xty[i * H + j]! += xi * y[j]!; }
    }
  }
  for (let i = 0; i < H; i++) xtx[i * H + i]! += 1e-3 * Math.max(1, tr.N);
  return solve(xtx, xty, H);
}

/** Solves S·A = B for A (S symmetric positive definite, H × H) by Cholesky. */
function solve(S: Float64Array, B: Float64Array, H: number): Float64Array {
  const Lc = new Float64Array(H * H);
  for (let i = 0; i < H; i++) {
    for (let j = 0; j <= i; j++) {
      let s = S[i * H + j]!;
      for (let k = 0; k < j; k++) s -= Lc[i * H + k]! * Lc[j * H + k]!;
      Lc[i * H + j] = i === j ? Math.sqrt(Math.max(s, 1e-12)) : s / Lc[j * H + j]!;
    }
  }
  const A = new Float64Array(H * H);
  const z = new Float64Array(H);
  for (let c = 0; c < H; c++) {
    for (let i = 0; i < H; i++) {
      let s = B[i * H + c]!;
      for (let k = 0; k < i; k++) s -= Lc[i * H + k]! * z[k]!;
      z[i] = s / Lc[i * H + i]!;
    }
    for (let i = H - 1; i >= 0; i--) {
      let s = z[i]!;
      for (let k = i + 1; k < H; k++) s -= Lc[k * H + i]! * A[k * H + c]!;
      A[i * H + c] = s / Lc[i * H + i]!;
    }
  }
  return A;
}

/** Speculative gating: layer from+d's router on the eval trace's hidden state entering layer `from`, optionally
 *  through an adapter. Ranks the K routed experts first, then the rest by frequency. */
const speculative = (ev: RoutingTrace, routers: LayerRouter[], E: number, freq: Ranker, adapter?: (from: number, d: number) => Float64Array): Ranker => (from, d) => {
  const H = ev.H!;
  const K = ev.K;
  const x = new Float32Array(ev.N * H);
  const A = adapter?.(from, d);
  for (let n = 0; n < ev.N; n++) {
    const h = ev.hidden!.subarray((n * ev.L + from) * H, (n * ev.L + from + 1) * H);
    if (!A) x.set(h, n * H);
    else for (let j = 0; j < H; j++) {
      let s = 0;
      for (let i = 0; i < H; i++) s += h[i]! * A[i * H + j]!;
      x[n * H + j] = s;
    }
  }
  const ids = routers[from + d]!(x, ev.N);
  const fr = freq(from, d)(0);
  return (n) => {
    const own = Array.from(ids.subarray(n * K, (n + 1) * K));
    return [...own, ...Array.from(fr).filter((e) => !own.includes(e))];
  };
};

export interface PredictOptions {
  /** distances d to predict ahead */
  distances: number[];
  /** each traced layer's router (needed, with hidden states in both traces, for speculative gating) */
  routers?: LayerRouter[];
}

/** Every predictor at every layer pair (l, l+d) of the traces: fitted on `train`, scored on `evalTrace`. */
export function predictExperts(train: RoutingTrace, evalTrace: RoutingTrace, o: PredictOptions): PredictScore[] {
  const E = train.E ?? evalTrace.E;
  if (E === null) throw new Error('predict: the number of experts is unknown (pass --experts for .npy traces)');
  if (train.L !== evalTrace.L || train.K !== evalTrace.K) throw new Error(`predict: the traces differ in shape: train L ${train.L}, K ${train.K}; eval L ${evalTrace.L}, K ${evalTrace.K}`);
  const freq = frequency(train, E);
  const rankers: [string, Ranker][] = [['frequency', freq], ['path table', pathTable(train, evalTrace, E)], ['activation matrix', matrixMatch(train, evalTrace, E)]];
  if (o.routers && train.hidden && evalTrace.hidden) {
    rankers.push(['speculative gating', speculative(evalTrace, o.routers, E, freq)]);
    rankers.push(['speculative gating + adapter', speculative(evalTrace, o.routers, E, freq, (from, d) => fitAdapter(train, from, d))]);
  }
  const out: PredictScore[] = [];
  for (const d of o.distances) {
    if (!Number.isInteger(d) || d < 1) throw new RangeError(`predict: distance ${d} must be a positive integer`);
    for (let from = 0; from + d < train.L; from++) for (const [name, r] of rankers) out.push(score(name, evalTrace, from, d, r(from, d)));
  }
  return out;
}
