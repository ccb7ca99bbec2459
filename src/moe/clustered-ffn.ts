// The clustered layer's experts computation (docs/CLUSTERED.md): per (token, group) pair x·base once, per slot the
// low-rank terms (x·A)·B. The weights' layout, the matmul forms (f32 grouped, quantised), the composed computation
// and the choice of the fused `clusteredFfn` kernel; the forms of the experts (f32 module, quantised, fused,
// offloaded) all run through `runClusteredExperts`.
import { add, backendSupports, canReadSync, clusteredFfn, gather, groupedMatmul, mul, needsGrad, reshape, scatterAdd, silu, tensor, zeros } from '../tensor/api.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { countSlots, groupPairs } from '../tensor/moe-plan.js';
import { Op } from '../tensor/ops.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { indicesAndBins } from './dispatch.js';

/** Bases per group and low-rank factors per expert, layout (·, in, out) like ExpertWeights. */
export interface ClusteredExpertWeights {
  baseGate: Tensor; // (G, H, I)
  baseUp: Tensor; // (G, H, I)
  baseDown: Tensor; // (G, I, H)
  gateA: Tensor; // (E, H, r)
  gateB: Tensor; // (E, r, I)
  upA: Tensor; // (E, H, r)
  upB: Tensor; // (E, r, I)
  downA: Tensor; // (E, I, r)
  downB: Tensor; // (E, r, H)
}

export type ExpertMatrix = 'gate' | 'up' | 'down';

/**
 * How the clustered op multiplies: `base` takes rows sorted by group (offsets over G + 1) and applies each group's
 * base of one matrix; `lowRank` takes rows sorted by expert (offsets over E + 1) and applies (x·A_e)·B_e.
 * The training form uses grouped f32 matmuls; the inference form (compress/precision) reads FP16 bases and
 * INT4/INT8 factors with the quantised matmul.
 */
export interface ExpertMatmuls {
  base(x: Tensor, m: ExpertMatrix, offsets: Int32Array): Tensor;
  lowRank(x: Tensor, m: ExpertMatrix, offsets: Int32Array): Tensor;
}

/** The f32 grouped-matmul form (differentiable). */
export function f32Matmuls(w: ClusteredExpertWeights): ExpertMatmuls {
  const base = { gate: w.baseGate, up: w.baseUp, down: w.baseDown };
  const fac = { gate: [w.gateA, w.gateB], up: [w.upA, w.upB], down: [w.downA, w.downB] } as const;
  // the same offsets arrive for every matrix of one call: make their tensor once
  const made = new WeakMap<Int32Array, Tensor>();
  const offsets = (off: Int32Array): Tensor => {
    let t = made.get(off);
    if (!t || t.disposed) made.set(off, (t = tensor(off, [off.length], 'i32')));
    return t;
  };
  return {
    base: (x, m, off) => groupedMatmul(x, base[m], offsets(off)),
    lowRank: (x, m, off) => {
      const o = offsets(off);
      return groupedMatmul(groupedMatmul(x, fac[m][0], o), fac[m][1], o);
    },
  };
}

export interface ClusteredExpertsResult {
  y: Tensor; // (T, H)
  tokensPerExpert: number[];
  /** (token, group) pairs per group: how often each group's base ran */
  tokensPerGroup: number[];
  /** tokens whose K experts sit in more than one group */
  crossGroup: number;
  /** (E·H) sum of the inputs routed to each expert, when asked for (activation centroids) */
  inputSums?: Float32Array;
}

/**
 * The fused clustered expert computation for routed tokens: per (token, group) pair x·base_gate and x·base_up
 * once; per slot the low-rank terms (x·A)·B; h = silu(g)·u weighted by the routing weight; the base down
 * projection runs once per pair on Σ_slots w·h, the low-rank down terms per slot. Equal to Σ_k w_k·SwiGLU_k(x)
 * with W̃_k = base + A_k·B_k.
 */
export function clusteredExperts(xt: Tensor, ids: Tensor, weights: Tensor, w: ClusteredExpertWeights, opts: { inputSums?: boolean; matmuls?: ExpertMatmuls } = {}): ClusteredExpertsResult {
  const [G, H, I] = w.baseGate.shape as [number, number, number];
  const [E, , r] = w.gateA.shape as [number, number, number];
  const shapes: [string, Tensor, number[]][] = [
    ['baseUp', w.baseUp, [G, H, I]], ['baseDown', w.baseDown, [G, I, H]], ['gateB', w.gateB, [E, r, I]], ['upA', w.upA, [E, H, r]],
    ['upB', w.upB, [E, r, I]], ['downA', w.downA, [E, I, r]], ['downB', w.downB, [E, r, H]],
  ];
  for (const [n, t, s] of shapes) if (t.shape.join() !== s.join()) throw new ShapeError(`clusteredExperts: ${n} ${fmtInfo(t.shape, t.dtype)} must be (${s.join(', ')}) for baseGate (${G}, ${H}, ${I}) and gateA (${E}, ${H}, ${r})`);
  if (E % G !== 0) throw new ShapeError(`clusteredExperts: ${G} groups must divide ${E} experts`);
  return composedExperts(xt, ids, weights, { G, E, H }, opts.matmuls ?? f32Matmuls(w), opts.inputSums ?? false);
}

/** The composed computation of `clusteredExperts` with any matmul form (`dims` are the experts' G, E and H). */
export function composedExperts(xt: Tensor, ids: Tensor, weights: Tensor, dims: { G: number; E: number; H: number }, mm: ExpertMatmuls, inputSums = false): ClusteredExpertsResult {
  const { G, E, H } = dims;
  if (xt.rank !== 2 || xt.shape[1] !== H) throw new ShapeError(`clusteredExperts: x ${fmtInfo(xt.shape, xt.dtype)} must be (T, ${H})`);
  const T = xt.shape[0]!;
  const K = ids.shape[1]!;
  const bins = indicesAndBins(ids, E);
  const { groupOffsets: gOff, pairTokens, slotPair: slotPairRow, tokensPerGroup, crossGroup } = groupPairs(ids.dataSync(), bins.order, K, E, G);
  const P = pairTokens.length;
  const N = bins.order.length;
  const result: ClusteredExpertsResult = { y: zeros([T, H]), tokensPerExpert: bins.routed, tokensPerGroup, crossGroup };
  if (N === 0) return result;
  result.y.dispose();
  const pairTokT = tensor(pairTokens, [P], 'i32');
  const slotPairT = tensor(slotPairRow, [N], 'i32');
  const slotTokT = tensor(bins.tokens, [N], 'i32');
  const xg = gather(xt, pairTokT); // (P, H) rows sorted by group
  const xs = gather(xt, slotTokT); // (N, H) rows sorted by expert
  const g = add(gather(mm.base(xg, 'gate', gOff), slotPairT), mm.lowRank(xs, 'gate', bins.offsets)); // (N, I)
  const u = add(gather(mm.base(xg, 'up', gOff), slotPairT), mm.lowRank(xs, 'up', bins.offsets)); // (N, I)
  const gate = gather(reshape(weights, [T * K, 1]), tensor(bins.order, [N], 'i32')); // (N, 1)
  const hw = mul(mul(silu(g), u), gate); // (N, I) weighted expert activations
  const yBase = mm.base(scatterAdd(hw, slotPairT, P), 'down', gOff); // (P, H)
  const yLow = mm.lowRank(hw, 'down', bins.offsets); // (N, H)
  result.y = add(scatterAdd(yBase, pairTokT, T), scatterAdd(yLow, slotTokT, T)); // (T, H)
  if (inputSums) {
    const rowExpert = new Int32Array(N);
    for (let e = 0; e < E; e++) rowExpert.fill(e, bins.offsets[e]!, bins.offsets[e + 1]!);
    result.inputSums = noGrad(() => tidy(() => Float32Array.from(scatterAdd(xs, tensor(rowExpert, [N], 'i32'), E).dataSync())));
  }
  return result;
}

/** The three SwiGLU matrices of E experts as host arrays, layout (E, in, out): gate/up (E, H, I), down (E, I, H). */
export interface HostExperts {
  E: number;
  H: number;
  I: number;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

/** The interface every form of the clustered experts has: the block's experts stage calls `run`. */
export interface ClusteredExpertsForm {
  /** 'f32': the trainable parameters; 'quantized': FP16 bases + INT4/INT8 factors; 'fused': that form laid out for
   *  the fused kernel; 'offloaded': the quantised form served from an offload file */
  readonly form: 'f32' | 'quantized' | 'fused' | 'offloaded';
  readonly G: number;
  readonly E: number;
  readonly H: number;
  readonly I: number;
  readonly r: number;
  /** xt (T, H), ids (T, K) i32, weights (T, K) -> each token's weighted expert outputs (T, H) and the counts */
  run(xt: Tensor, ids: Tensor, weights: Tensor, opts?: { inputSums?: boolean }): ClusteredExpertsResult;
}

/** Slots per expert, (token, group) pairs per group and tokens spanning several groups, from host ids (T·K). */
export function clusteredCounts(ids: ArrayLike<number>, E: number, G: number, K: number): { tokensPerExpert: number[]; tokensPerGroup: number[]; crossGroup: number } {
  const { tokensPerGroup, crossGroup } = groupPairs(ids, new Int32Array(0), K, E, G);
  return { tokensPerExpert: countSlots(ids, E, K), tokensPerGroup, crossGroup };
}

/**
 * The experts stage on weights `w`: the fused `clusteredFfn` kernel when nothing is to be differentiated or tracked,
 * no other matmul form is given and the backend has it; else the composed `clusteredExperts`.
 */
export function runClusteredExperts(xt: Tensor, ids: Tensor, weights: Tensor, w: ClusteredExpertWeights, opts: { inputSums?: boolean; matmuls?: ExpertMatmuls } = {}): ClusteredExpertsResult {
  const T = xt.shape[0]!;
  const [E] = w.gateA.shape as [number];
  const G = w.baseGate.shape[0]!;
  if (!opts.inputSums && !opts.matmuls && T > 0 && !needsGrad(xt, weights, ...Object.values(w)) && backendSupports(Op.ClusteredFfn)) {
    const y = clusteredFfn(xt, ids, weights, w);
    const counts = canReadSync() ? clusteredCounts(ids.dataSync(), E, G, ids.shape[1]!) : { tokensPerExpert: [], tokensPerGroup: [], crossGroup: 0 };
    return { y, ...counts };
  }
  return clusteredExperts(xt, ids, weights, w, opts);
}
