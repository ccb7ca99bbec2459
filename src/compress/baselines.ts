// Post-training expert compression baselines, applied to a trained standard MoE without retraining, at a given
// expert-parameter budget per layer (the clustered model's, for a fair comparison):
//   d2       shared frequency-weighted mean base + per-expert truncated-SVD residuals (D²-MoE style)
//   mc-smoe  the most used experts dominate; every other expert joins the dominant expert whose router logits
//            it resembles most; members merge by usage-weighted averaging (MC-SMoE style, without neuron alignment)
//   hc-smoe  agglomerative clustering (average linkage) on the experts' mean outputs over calibration tokens,
//            then usage-weighted merging (HC-SMoE style)
// Merged experts keep their router rows: tokens still pick E experts, several of which now share weights.
import { fastLowRankFactors } from '../cluster/svd.js';
import { cosineMatrix } from '../cluster/similarity.js';
import { plainExpertsProblem } from '../models/config.js';
import type { MoELM } from '../models/moe-lm.js';
import { MoEBlock } from '../moe/block.js';
import type { HostExperts } from '../moe/clustered-ffn.js';
import { RoutingRecorder } from '../moe/pipeline.js';
import { matmul, mul, reshape, sigmoid, sum, tensor, topk } from '../tensor/api.js';
import { assign, noGrad, tidy } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';

/** One layer's routed experts as host arrays: gate/up (E, H, I), down (E, I, H). */
export type LayerExperts = HostExperts;

export type BaselineMethod = 'd2' | 'mc-smoe' | 'hc-smoe';
export const BASELINE_METHODS: readonly BaselineMethod[] = ['d2', 'mc-smoe', 'hc-smoe'];

/** Expert parameters per layer of the clustered form: G bases and E rank-r residual pairs for each SwiGLU matrix. */
export function clusteredExpertParams(E: number, H: number, I: number, G: number, r: number): number {
  return G * 3 * H * I + E * 3 * r * (H + I);
}

export function layerExperts(block: MoEBlock): LayerExperts {
  const w = block.experts.weights;
  const [E, H, I] = w.gate.shape as [number, number, number];
  const host = (t: Tensor): Float32Array => Float32Array.from(t.dataSync() as Float32Array);
  return { E, H, I, gate: host(w.gate), up: host(w.up), down: host(w.down) };
}

export function setLayerExperts(block: MoEBlock, l: LayerExperts): void {
  const w = block.experts.weights;
  const [E, H, I] = w.gate.shape as [number, number, number];
  if (l.E !== E || l.H !== H || l.I !== I) throw new Error(`setLayerExperts: experts of shape E=${l.E} H=${l.H} I=${l.I} for a block with E=${E} H=${H} I=${I}`);
  noGrad(() => tidy(() => {
    assign(w.gate, tensor(l.gate, [E, H, I]));
    assign(w.up, tensor(l.up, [E, H, I]));
    assign(w.down, tensor(l.down, [E, I, H]));
  }));
}

/** What the baselines learn from calibration tokens, per MoE layer (null for dense layers). */
export interface LayerCalibration {
  /** top-K selections per expert */
  freq: Float64Array;
  /** router logits (N, E) of the calibration tokens */
  routerLogits: Float32Array;
  /** mean SwiGLU output of each expert over all calibration tokens (E, H) */
  meanOutputs: Float32Array;
  /** mean input of the tokens routed to each expert (E, H) (zeros for an expert no token chose) */
  meanInputs: Float32Array;
  tokens: number;
}

export type Calibration = (LayerCalibration | null)[];

/**
 * Runs calibration tokens through the model and records, per MoE layer, the inputs' routing (frequencies and
 * router logits) and every expert's mean output on them.
 */
export function calibrate(model: MoELM, ids: Int32Array, opts: { batch?: number; seqLen: number }): Calibration {
  const T = opts.seqLen;
  const B = opts.batch ?? 8;
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`calibrate: seqLen ${T} must be a positive integer`);
  const rows = Math.floor(ids.length / T);
  if (rows < 1) throw new RangeError(`calibrate: ${ids.length} calibration tokens, need at least one window of ${T}`);
  const blocks = model.layers.map((l) => (l.mlp instanceof MoEBlock ? l.mlp : null));
  const inputs: Float32Array[][] = blocks.map(() => []);
  // the routing observer hands over each MoE layer's input (the hidden state entering the block)
  const rec = new RoutingRecorder({ hidden: true });
  noGrad(() => {
    for (let r = 0; r < rows; r += B) {
      const n = Math.min(B, rows - r);
      tidy(() => model.forward(tensor(ids.subarray(r * T, (r + n) * T), [n, T], 'i32'), { observer: rec, aux: false }));
    }
  });
  for (const e of rec.events()) if (blocks[e.layer]) inputs[e.layer]!.push(e.hidden!);
  return blocks.map((b, i) => {
    if (!b) return null;
    const H = b.cfg.hidden;
    const E = b.cfg.experts;
    const parts = inputs[i]!;
    const N = parts.reduce((a, p) => a + p.length, 0) / H;
    const X = new Float32Array(N * H);
    let o = 0;
    for (const p of parts) {
      X.set(p, o);
      o += p.length;
    }
    return noGrad(() => tidy(() => {
      const x = tensor(X, [N, H]);
      const logits = matmul(x, b.gate.weight, { transB: true }); // (N, E)
      const sel = Int32Array.from(topk(logits, b.cfg.topK).indices.dataSync());
      const freq = new Float64Array(E);
      for (const e of sel) freq[e]!++;
      const meanInputs = new Float32Array(E * H);
      const K = b.cfg.topK;
      for (let t = 0; t < N; t++) {
        for (let k = 0; k < K; k++) {
          const e = sel[t * K + k]!;
          for (let h = 0; h < H; h++) meanInputs[e * H + h]! += X[t * H + h]! / freq[e]!;
        }
      }
      const w = b.experts.weights;
      const meanOutputs = new Float32Array(E * H);
      for (let e = 0; e < E; e++) {
        const ge = reshape(sliceExpert(w.gate, e), [H, b.cfg.expertWidth]);
        const ue = reshape(sliceExpert(w.up, e), [H, b.cfg.expertWidth]);
        const de = reshape(sliceExpert(w.down, e), [b.cfg.expertWidth, H]);
        const g = matmul(x, ge);
        const h = mul(mul(g, sigmoid(g)), matmul(x, ue)); // SwiGLU
        const y = sum(matmul(h, de), 0); // (H)
        const ys = y.dataSync() as Float32Array;
        for (let k = 0; k < H; k++) meanOutputs[e * H + k] = ys[k]! / N;
      }
      return { freq, routerLogits: Float32Array.from(logits.dataSync() as Float32Array), meanOutputs, meanInputs, tokens: N };
    }));
  });
}

function sliceExpert(w: Tensor, e: number): Tensor {
  const [, a, b] = w.shape as [number, number, number];
  return tensor((w.dataSync() as Float32Array).subarray(e * a * b, (e + 1) * a * b), [a, b]);
}

export interface BaselineResult {
  method: BaselineMethod;
  /** unique expert parameters after compression, all MoE layers */
  params: number;
  /** per MoE layer: the members of each merged expert (mc-smoe, hc-smoe) or the residual rank (d2) */
  layers: { params: number; groups?: number[][]; rank?: number }[];
}

/** Compresses every MoE layer of `model` in place to at most `budget` expert parameters per layer. */
export function compressBaseline(model: MoELM, method: BaselineMethod, calib: Calibration, budget: number): BaselineResult {
  if (!BASELINE_METHODS.includes(method)) throw new Error(`compressBaseline: method "${method}" is not one of ${BASELINE_METHODS.join(', ')}`);
  if (calib.length !== model.layers.length) throw new Error(`compressBaseline: calibration for ${calib.length} layers, the model has ${model.layers.length}`);
  const gated = plainExpertsProblem(model.cfg);
  if (gated) throw new Error(`compressBaseline: ${gated}`);
  if (!Number.isFinite(budget) || budget < 1) throw new RangeError(`compressBaseline: budget ${budget} must be a positive number of expert parameters per layer`);
  // checked on every layer before any is changed: a budget above what a layer holds compresses nothing
  model.layers.forEach((layer, i) => {
    if (!(layer.mlp instanceof MoEBlock)) return;
    const [E, H, I] = layer.mlp.experts.weights.gate.shape as [number, number, number];
    const full = 3 * E * H * I;
    if (budget > full) throw new RangeError(`compressBaseline: budget ${budget} expert parameters per layer is above the ${full} that layer ${i} holds (E=${E} experts of 3 x ${H} x ${I}); expected at most ${full}`);
  });
  const out: BaselineResult = { method, params: 0, layers: [] };
  model.layers.forEach((layer, i) => {
    if (!(layer.mlp instanceof MoEBlock)) return;
    const c = calib[i];
    if (!c) throw new Error(`compressBaseline: no calibration for MoE layer ${i}`);
    const ex = layerExperts(layer.mlp);
    const r = method === 'd2' ? d2Compress(ex, c, budget) : mergeCompress(ex, c, budget, method);
    setLayerExperts(layer.mlp, r.experts);
    out.params += r.params;
    out.layers.push({ params: r.params, ...(r.groups ? { groups: r.groups } : {}), ...(r.rank !== undefined ? { rank: r.rank } : {}) });
  });
  return out;
}

type Compressed = { experts: LayerExperts; params: number; groups?: number[][]; rank?: number };

const MATS = [
  { k: 'gate', io: (H: number, I: number): [number, number] => [H, I] },
  { k: 'up', io: (H: number, I: number): [number, number] => [H, I] },
  { k: 'down', io: (H: number, I: number): [number, number] => [I, H] },
] as const;

/** D²-MoE style: one usage-weighted base per matrix and a rank-r' SVD of each expert's delta, r' the largest rank within budget. */
export function d2Compress(ex: LayerExperts, c: LayerCalibration, budget: number): Compressed {
  const { E, H, I } = ex;
  const baseParams = 3 * H * I;
  if (budget < baseParams) throw new RangeError(`d2: budget ${budget} expert parameters is below one shared base (${baseParams})`);
  const rank = Math.min(Math.min(H, I), Math.floor((budget - baseParams) / (3 * E * (H + I))));
  const wsum = c.freq.reduce((a, b) => a + b, 0);
  const wts = Array.from(c.freq, (f) => (wsum > 0 ? f / wsum : 1 / E));
  const out: LayerExperts = { E, H, I, gate: new Float32Array(ex.gate.length), up: new Float32Array(ex.up.length), down: new Float32Array(ex.down.length) };
  for (const m of MATS) {
    const [din, dout] = m.io(H, I);
    const sz = din * dout;
    const src = ex[m.k];
    const base = new Float32Array(sz);
    for (let e = 0; e < E; e++) for (let j = 0; j < sz; j++) base[j]! += wts[e]! * src[e * sz + j]!;
    for (let e = 0; e < E; e++) {
      const dst = out[m.k].subarray(e * sz, (e + 1) * sz);
      dst.set(base);
      if (rank < 1) continue;
      const delta = new Float32Array(sz);
      for (let j = 0; j < sz; j++) delta[j] = src[e * sz + j]! - base[j]!;
      const f = fastLowRankFactors(delta, din, dout, rank, { seed: 17 + e });
      for (let i = 0; i < din; i++) {
        for (let q = 0; q < rank; q++) {
          const a = f.A[i * rank + q]!;
          if (a === 0) continue;
          for (let j = 0; j < dout; j++) dst[i * dout + j]! += a * f.B[q * dout + j]!;
        }
      }
    }
  }
  return { experts: out, params: baseParams + 3 * E * rank * (H + I), rank };
}

/** Number of merged experts that fit in `budget` (each costs 3·H·I), at least 1 and at most E. */
export function mergedCount(E: number, H: number, I: number, budget: number): number {
  return Math.max(1, Math.min(E, Math.floor(budget / (3 * H * I))));
}

/** Groups for mc-smoe (dominant experts + router-logit similarity) or hc-smoe (average-linkage on mean outputs). */
export function mergeGroups(c: LayerCalibration, E: number, H: number, m: number, method: 'mc-smoe' | 'hc-smoe'): number[][] {
  if (method === 'mc-smoe') {
    const N = c.tokens;
    const cols = Array.from({ length: E }, (_, e) => Float32Array.from({ length: N }, (_, t) => c.routerLogits[t * E + e]!));
    const S = cosineMatrix(cols);
    const order = Array.from({ length: E }, (_, e) => e).sort((a, b) => c.freq[b]! - c.freq[a]! || a - b);
    const dominant = order.slice(0, m);
    const groups = dominant.map((d) => [d]);
    for (const e of order.slice(m)) {
      let best = 0;
      for (let g = 1; g < m; g++) if (S[e * E + dominant[g]!]! > S[e * E + dominant[best]!]!) best = g;
      groups[best]!.push(e);
    }
    return groups.map((g) => g.sort((a, b) => a - b)).sort((a, b) => a[0]! - b[0]!);
  }
  // average-linkage agglomerative clustering, Euclidean distance between mean outputs
  const dist = new Float64Array(E * E);
  for (let a = 0; a < E; a++) {
    for (let b = a + 1; b < E; b++) {
      let s = 0;
      for (let k = 0; k < H; k++) s += (c.meanOutputs[a * H + k]! - c.meanOutputs[b * H + k]!) ** 2;
      dist[a * E + b] = dist[b * E + a] = Math.sqrt(s);
    }
  }
  let clusters = Array.from({ length: E }, (_, e) => [e]);
  const link = (x: number[], y: number[]): number => {
    let s = 0;
    for (const a of x) for (const b of y) s += dist[a * E + b]!;
    return s / (x.length * y.length);
  };
  while (clusters.length > m) {
    let bi = 0;
    let bj = 1;
    let bd = Infinity;
    for (let i = 0; i < clusters.length; i++) {
      for (let j = i + 1; j < clusters.length; j++) {
        const d = link(clusters[i]!, clusters[j]!);
        if (d < bd) {
          bd = d;
          bi = i;
          bj = j;
        }
      }
    }
    const merged = [...clusters[bi]!, ...clusters[bj]!].sort((a, b) => a - b);
    clusters = clusters.filter((_, k) => k !== bi && k !== bj);
    clusters.push(merged);
  }
  return clusters.sort((a, b) => a[0]! - b[0]!);
}

/** Usage-weighted merge of each group into one expert that all its members then share. */
export function mergeCompress(ex: LayerExperts, c: LayerCalibration, budget: number, method: 'mc-smoe' | 'hc-smoe'): Compressed {
  const { E, H, I } = ex;
  const m = mergedCount(E, H, I, budget);
  const groups = mergeGroups(c, E, H, m, method);
  const out: LayerExperts = { E, H, I, gate: new Float32Array(ex.gate.length), up: new Float32Array(ex.up.length), down: new Float32Array(ex.down.length) };
  for (const g of groups) {
    const tot = g.reduce((a, e) => a + c.freq[e]!, 0);
    const w = g.map((e) => (tot > 0 ? c.freq[e]! / tot : 1 / g.length));
    for (const mat of MATS) {
      const [din, dout] = mat.io(H, I);
      const sz = din * dout;
      const merged = new Float32Array(sz);
      g.forEach((e, k) => {
        const src = ex[mat.k].subarray(e * sz, (e + 1) * sz);
        for (let j = 0; j < sz; j++) merged[j]! += w[k]! * src[j]!;
      });
      for (const e of g) out[mat.k].set(merged, e * sz);
    }
  }
  return { experts: out, params: groups.length * 3 * H * I, groups };
}
