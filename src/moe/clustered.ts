// The clustered MoE block (docs/CLUSTERED.md): E experts in G groups of M = E/G; inside a group each expert matrix
// is a shared base plus a rank-r residual A·B; tokens are routed in two stages (group, then expert); x·base is
// computed once per token and group and only the low-rank terms run per expert. No expert matrix is materialised.
import { Linear } from '../nn/layers.js';
import { Module, initNormal } from '../nn/module.js';
import { SwiGLU, swiglu } from '../nn/swiglu.js';
import {
  add, backendSupports, canReadSync, clusteredFfn, div, gather, groupedMatmul, log, logSumExp, matmul, mean, mul, needsGrad, ones, reshape,
  routeTopK, scatterAdd, scatterAlong, sigmoid, silu, softmax, square, sum, takeAlong, tensor, topk, zeros,
} from '../tensor/api.js';
import { Op } from '../tensor/ops.js';
import { assign, noGrad, tidy } from '../tensor/engine.js';
import type { Rng } from '../tensor/random.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { fastLowRankFactors } from '../cluster/svd.js';
import { CentroidEma, ParamSimilarityCache, fusedSimilarity } from '../cluster/similarity.js';
import { clusterExperts } from '../cluster/kmeans.js';
import { Router } from './block.js';
import { countSlots, indicesAndBins } from './dispatch.js';

export interface ClusteredConfig {
  /** H: model width */
  hidden: number;
  /** E: routed experts */
  experts: number;
  /** K: experts per token */
  topK: number;
  /** I: width of each routed expert */
  expertWidth: number;
  /** G: expert groups (must divide E) */
  groups: number;
  /** r: rank of each expert's residual factors */
  rank: number;
  /** k_g: groups chosen per token in stage 1; default 1 */
  groupTopK?: number;
  /** stage-1 scores: 'lse' (log Σ exp of member logits; default) or 'linear' (a separate (G, H) group router) */
  groupRouter?: 'lse' | 'linear';
  /** renormalise the K weights p_group·p_expert; default true */
  renormalize?: boolean;
  sharedWidth?: number;
  sharedGate?: boolean;
  /** expert-level Switch balance loss weight; default 1e-2 */
  auxLossCoef?: number;
  /** group-level balance loss KL(mean p_group ‖ uniform) weight; default 1e-2 */
  groupAuxCoef?: number;
  /** router z-loss weight; default 1e-3 */
  zLossCoef?: number;
  /** keep a selection bias per expert (aux-loss-free balancing at both stages, `updateBias`); default false */
  selectionBias?: boolean;
}

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

export interface ClusteredWeights {
  router: Tensor; // (E, H)
  bias?: Tensor; // (E) selection-only score bias
  groupRouter?: Tensor; // (G, H) with groupRouter 'linear'
  experts: ClusteredExpertWeights;
  shared?: { gate: Tensor; up: Tensor; down: Tensor };
  sharedGate?: Tensor; // (1, H)
}

export interface TwoStageRoute {
  logits: Tensor; // (T, E) the expert router logits (the input)
  weights: Tensor; // (T, K) p_group·p_expert of the chosen experts, renormalised
  experts: Tensor; // (T, K) i32
  probs: Tensor; // (T, E) p_group·p_expert
  groupProbs: Tensor; // (T, G)
  aux: {
    switch: Tensor; // () expert-level Switch loss, 1 when balanced
    group: Tensor; // () KL(mean group probability ‖ uniform), 0 when balanced
    z: Tensor; // () router z-loss
  };
}

/**
 * Two-stage routing: p_group from the group scores, p_expert = softmax over the experts of each group; the top
 * k_g groups are chosen, then the top K experts inside them by p_group·p_expert. With 'lse' group scores
 * (groupLogits null) p_group·p_expert equals softmax(logits) exactly. A `bias` (E) changes selection only: experts
 * are ranked by p_group·p_expert + b_e and groups by the sum of that over their members (so one bias per expert
 * balances both stages); the weights stay p_group·p_expert.
 */
export function twoStageRoute(logits: Tensor, groupLogits: Tensor | null, o: { groups: number; K: number; groupTopK: number; renormalize: boolean; bias?: Tensor }): TwoStageRoute {
  if (logits.rank !== 2) throw new ShapeError(`twoStageRoute: logits ${fmtInfo(logits.shape, logits.dtype)} must be (T, E)`);
  const [T, E] = logits.shape as [number, number];
  const G = o.groups;
  if (!Number.isInteger(G) || G < 1 || E % G !== 0) throw new Error(`twoStageRoute: groups ${G} must divide E = ${E}`);
  const M = E / G;
  if (!(o.groupTopK >= 1 && o.groupTopK <= G && o.groupTopK * M >= o.K)) throw new Error(`twoStageRoute: groupTopK ${o.groupTopK} must be in [1, ${G}] and hold K = ${o.K} experts (${M} per group)`);
  let probs: Tensor; // (T, E)
  let pg: Tensor; // (T, G)
  let z = mean(square(logSumExp(logits, -1))); // ()
  if (groupLogits === null) {
    probs = softmax(logits, -1);
    pg = sum(reshape(probs, [T, G, M]), -1);
  } else {
    if (groupLogits.rank !== 2 || groupLogits.shape[0] !== T || groupLogits.shape[1] !== G) throw new ShapeError(`twoStageRoute: group logits ${fmtInfo(groupLogits.shape, groupLogits.dtype)} must be (T = ${T}, G = ${G})`);
    pg = softmax(groupLogits, -1);
    const pe = softmax(reshape(logits, [T, G, M]), -1); // (T, G, M)
    probs = reshape(mul(reshape(pg, [T, G, 1]), pe), [T, E]);
    z = add(z, mean(square(logSumExp(groupLogits, -1))));
  }
  if (o.bias && (o.bias.rank !== 1 || o.bias.shape[0] !== E)) throw new ShapeError(`twoStageRoute: bias ${fmtInfo(o.bias.shape, o.bias.dtype)} must be (E = ${E})`);
  const bias = o.bias;
  const experts = noGrad(() => {
    const sel = bias ? add(probs, bias) : probs; // (T, E) selection scores
    if (o.groupTopK === G) return topk(sel, o.K).indices;
    return pickInGroups(sel, bias ? sum(reshape(sel, [T, G, M]), -1) : pg, G, o.groupTopK, o.K);
  });
  const w = takeAlong(probs, experts); // (T, K)
  const weights = o.renormalize ? div(w, sum(w, -1, true)) : w;
  const slots = noGrad(() => scatterAlong(ones(experts.shape), experts, E)); // (T, E)
  const f = noGrad(() => div(sum(slots, 0), T * o.K)); // (E)
  const sw = mul(sum(mul(f, mean(probs, 0))), E); // ()
  const Pg = mean(pg, 0); // (G)
  const kl = sum(mul(Pg, log(add(mul(Pg, G), 1e-12)))); // ()
  return { logits, weights, experts, probs, groupProbs: pg, aux: { switch: sw, group: kl, z } };
}

/**
 * The top k_g groups of each token by their score, then its top K experts inside them by score (descending, ties
 * to the lower index, as topk). Selection is not differentiable, so it runs on the host: one read of the (T, E)
 * and (T, G) probabilities instead of a chain of masking ops.
 */
function pickInGroups(probs: Tensor, pg: Tensor, G: number, kg: number, K: number): Tensor {
  const [T, E] = probs.shape as [number, number];
  const M = E / G;
  const pv = probs.dataSync();
  const gv = pg.dataSync();
  const out = new Int32Array(T * K);
  const groups = new Int32Array(G);
  const cand = new Int32Array(kg * M);
  const byDesc = (v: ArrayLike<number>, base: number) => (a: number, b: number): number => v[base + b]! - v[base + a]! || a - b;
  for (let t = 0; t < T; t++) {
    for (let g = 0; g < G; g++) groups[g] = g;
    const chosen = Array.from(groups).sort(byDesc(gv, t * G)).slice(0, kg);
    let n = 0;
    for (const g of chosen) for (let j = 0; j < M; j++) cand[n++] = g * M + j;
    const best = Array.from(cand.subarray(0, n)).sort(byDesc(pv, t * E));
    for (let k = 0; k < K; k++) out[t * K + k] = best[k]!;
  }
  return tensor(out, [T, K], 'i32');
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
  if (xt.rank !== 2 || xt.shape[1] !== H) throw new ShapeError(`clusteredExperts: x ${fmtInfo(xt.shape, xt.dtype)} must be (T, ${H})`);
  const T = xt.shape[0]!;
  const K = ids.shape[1]!;
  const M = E / G;
  const bins = indicesAndBins(ids, E);
  const idv = ids.dataSync();
  // (token, group) pairs: pairOf[slot] = row of the pair in group-sorted order
  const pairGroup: number[] = [];
  const pairToken: number[] = [];
  const pairOfSlot = new Int32Array(T * K);
  let crossGroup = 0;
  for (let t = 0; t < T; t++) {
    const first = pairGroup.length;
    for (let k = 0; k < K; k++) {
      const g = Math.floor(idv[t * K + k]! / M);
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
  const gOff = new Int32Array(G + 1);
  for (let g = 0; g < G; g++) gOff[g + 1] = gOff[g]! + tokensPerGroup[g]!;
  const rowOfPair = new Int32Array(P);
  const fill = gOff.slice(0, G);
  for (let p = 0; p < P; p++) rowOfPair[p] = fill[pairGroup[p]!]!++;
  const pairTokens = new Int32Array(P);
  for (let p = 0; p < P; p++) pairTokens[rowOfPair[p]!] = pairToken[p]!;
  const N = bins.order.length;
  const slotPairRow = new Int32Array(N);
  for (let n = 0; n < N; n++) slotPairRow[n] = rowOfPair[pairOfSlot[bins.order[n]!]!]!;
  const result: ClusteredExpertsResult = { y: zeros([T, H]), tokensPerExpert: bins.routed, tokensPerGroup, crossGroup };
  if (N === 0) return result;
  result.y.dispose();
  const mm = opts.matmuls ?? f32Matmuls(w);
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
  if (opts.inputSums) {
    const rowExpert = new Int32Array(N);
    for (let e = 0; e < E; e++) rowExpert.fill(e, bins.offsets[e]!, bins.offsets[e + 1]!);
    result.inputSums = noGrad(() => tidy(() => Float32Array.from(scatterAdd(xs, tensor(rowExpert, [N], 'i32'), E).dataSync())));
  }
  return result;
}

export interface ClusteredOutput {
  y: Tensor;
  aux: { loss: Tensor; switch: Tensor; group: Tensor; z: Tensor };
  stats: { tokensPerExpert: number[]; dropped: number; tokensPerGroup: number[]; crossGroup: number; inputSums?: Float32Array };
  routing: TwoStageRoute;
}

/** The clustered block as a function of its weights. */
export function clusteredMoe(x: Tensor, w: ClusteredWeights, cfg: ClusteredConfig, opts: { inputSums?: boolean; matmuls?: ExpertMatmuls } = {}): ClusteredOutput {
  const H = cfg.hidden;
  if ((x.rank !== 2 && x.rank !== 3) || x.shape.at(-1) !== H) throw new ShapeError(`clustered MoE: input ${fmtInfo(x.shape, x.dtype)} must be (T, ${H}) or (B, T, ${H})`);
  const T = x.size / H;
  const xt = reshape(x, [T, H]);
  const logits = matmul(xt, w.router, { transB: true }); // (T, E)
  const groupLogits = w.groupRouter ? matmul(xt, w.groupRouter, { transB: true }) : null; // (T, G)
  const r = twoStageRoute(logits, groupLogits, { groups: cfg.groups, K: cfg.topK, groupTopK: cfg.groupTopK ?? 1, renormalize: cfg.renormalize ?? true, ...(w.bias ? { bias: w.bias } : {}) });
  const ex = !opts.inputSums && !opts.matmuls && T > 0 && fusedClustered(xt, r.weights, w.experts)
    ? { y: clusteredFfn(xt, r.experts, r.weights, w.experts), ...groupStats(r.experts.dataSync(), cfg.experts, cfg.groups, cfg.topK) }
    : clusteredExperts(xt, r.experts, r.weights, w.experts, opts);
  const y = addShared(ex.y, xt, w);
  const loss = add(add(mul(r.aux.switch, cfg.auxLossCoef ?? 1e-2), mul(r.aux.group, cfg.groupAuxCoef ?? 1e-2)), mul(r.aux.z, cfg.zLossCoef ?? 1e-3));
  const stats: ClusteredOutput['stats'] = { tokensPerExpert: ex.tokensPerExpert, dropped: 0, tokensPerGroup: ex.tokensPerGroup, crossGroup: ex.crossGroup };
  if (ex.inputSums) stats.inputSums = ex.inputSums;
  return { y: reshape(y, x.shape), aux: { loss, ...r.aux }, stats, routing: r };
}

/** Whether the clustered experts can run as the fused inference kernel: nothing to differentiate, backend has it. */
function fusedClustered(xt: Tensor, weights: Tensor, e: ClusteredExpertWeights): boolean {
  return !needsGrad(xt, weights, ...Object.values(e)) && backendSupports(Op.ClusteredFfn);
}

/** Slots per expert, (token, group) pairs per group and tokens spanning several groups, from host ids (T·K). */
function groupStats(ids: ArrayLike<number>, E: number, G: number, K: number): { tokensPerExpert: number[]; tokensPerGroup: number[]; crossGroup: number } {
  const tokensPerExpert = countSlots(ids, E, K);
  const M = E / G;
  const tokensPerGroup = new Array<number>(G).fill(0);
  let crossGroup = 0;
  const seen: number[] = [];
  for (let t = 0; t < ids.length / K; t++) {
    seen.length = 0;
    for (let k = 0; k < K; k++) {
      const g = Math.floor(ids[t * K + k]! / M);
      if (!seen.includes(g)) seen.push(g);
    }
    for (const g of seen) tokensPerGroup[g]!++;
    if (seen.length > 1) crossGroup++;
  }
  return { tokensPerExpert, tokensPerGroup, crossGroup };
}

/** y + the (gated) shared expert of xt, when the block has one. */
function addShared(y: Tensor, xt: Tensor, w: ClusteredWeights): Tensor {
  if (!w.shared) return y;
  let s = swiglu(xt, w.shared.gate, w.shared.up, w.shared.down);
  if (w.sharedGate) s = mul(sigmoid(matmul(xt, w.sharedGate, { transB: true })), s);
  return add(y, s);
}

/** What an inference forward (no balance losses) returns. */
export interface ClusteredInference {
  y: Tensor;
  /** the counts are empty (crossGroup 0) on backends that read only asynchronously (webgpu) */
  stats: { tokensPerExpert: number[]; dropped: number; tokensPerGroup: number[]; crossGroup: number };
  /** (T, K) i32 chosen experts */
  experts: Tensor;
  /** (T, E) router logits */
  logits: Tensor;
}

/**
 * The clustered block for inference: no balance losses, no gradient. With 'lse' group scores on a backend with the
 * fused kernels it is three ops (router matmul, `routeTopK` over groups, `clusteredFfn`) plus the shared expert;
 * otherwise `clusteredMoe` without its losses.
 */
export function clusteredInference(x: Tensor, w: ClusteredWeights, cfg: ClusteredConfig, opts: { inputSums?: boolean; matmuls?: ExpertMatmuls } = {}): ClusteredInference {
  const H = cfg.hidden;
  const fast = !w.groupRouter && !opts.inputSums && !opts.matmuls && (x.rank === 2 || x.rank === 3) && x.shape.at(-1) === H && x.size > 0
    && backendSupports(Op.RouteTopK) && backendSupports(Op.ClusteredFfn) && !needsGrad(x, w.router, ...Object.values(w.experts));
  if (!fast) {
    const o = clusteredMoe(x, w, cfg, opts);
    return { y: o.y, stats: o.stats, experts: o.routing.experts, logits: o.routing.logits };
  }
  const T = x.size / H;
  const xt = reshape(x, [T, H]);
  const kg = cfg.groupTopK ?? 1;
  const logits = matmul(xt, w.router, { transB: true }); // (T, E)
  const r = routeTopK(logits, cfg.topK, { groups: cfg.groups, topGroups: kg, renormalize: cfg.renormalize ?? true, ...(w.bias ? { bias: w.bias } : {}) });
  const y = addShared(clusteredFfn(xt, r.ids, r.weights, w.experts), xt, w);
  const stats = canReadSync() ? groupStats(r.ids.dataSync(), cfg.experts, cfg.groups, cfg.topK) : { tokensPerExpert: [], tokensPerGroup: [], crossGroup: 0 };
  return { y: reshape(y, x.shape), stats: { ...stats, dropped: 0 }, experts: r.ids, logits };
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

const MATS = [
  { name: 'gate', base: 'base_gate', a: 'gate_a', b: 'gate_b', io: (H: number, I: number) => [H, I] as const },
  { name: 'up', base: 'base_up', a: 'up_a', b: 'up_b', io: (H: number, I: number) => [H, I] as const },
  { name: 'down', base: 'base_down', a: 'down_a', b: 'down_b', io: (H: number, I: number) => [I, H] as const },
] as const;

/** Bases (G, ·, ·) and factors (E, ·, ·) of the clustered experts. HF-style names: experts.base_gate, experts.gate_a, … */
export class ClusteredExperts extends Module {
  readonly G: number;
  readonly E: number;
  readonly H: number;
  readonly I: number;
  readonly r: number;
  constructor(G: number, E: number, H: number, I: number, r: number) {
    super();
    this.G = G; this.E = E; this.H = H; this.I = I; this.r = r;
    for (const m of MATS) {
      const [din, dout] = m.io(H, I);
      this.addParameter(m.base, zeros([G, din, dout]));
    }
    for (const m of MATS) {
      const [din, dout] = m.io(H, I);
      this.addParameter(m.a, zeros([E, din, r]));
      this.addParameter(m.b, zeros([E, r, dout]));
    }
  }

  get weights(): ClusteredExpertWeights {
    const p = (n: string): Tensor => this.param(n);
    return {
      baseGate: p('base_gate'), baseUp: p('base_up'), baseDown: p('base_down'),
      gateA: p('gate_a'), gateB: p('gate_b'), upA: p('up_a'), upB: p('up_b'), downA: p('down_a'), downB: p('down_b'),
    };
  }

  /** Every tensor of this module (for optimizer resets). */
  tensors(): Tensor[] {
    return this.parameters().map(([, t]) => t);
  }

  /** W̃_e = base_{group(e)} + A_e·B_e for every expert, as host arrays. */
  effective(): HostExperts {
    const { G, E, H, I, r } = this;
    const M = E / G;
    const out: HostExperts = { E, H, I, gate: new Float32Array(E * H * I), up: new Float32Array(E * H * I), down: new Float32Array(E * I * H) };
    for (const m of MATS) {
      const [din, dout] = m.io(H, I);
      const base = this.param(m.base).dataSync() as Float32Array;
      const A = this.param(m.a).dataSync() as Float32Array;
      const B = this.param(m.b).dataSync() as Float32Array;
      const dst = out[m.name];
      const sz = din * dout;
      for (let e = 0; e < E; e++) {
        const g = Math.floor(e / M);
        dst.set(base.subarray(g * sz, (g + 1) * sz), e * sz);
        for (let i = 0; i < din; i++) {
          const o = e * sz + i * dout;
          for (let c = 0; c < r; c++) {
            const a = A[(e * din + i) * r + c]!;
            if (a === 0) continue;
            const bo = (e * r + c) * dout;
            for (let j = 0; j < dout; j++) dst[o + j]! += a * B[bo + j]!;
          }
        }
      }
    }
    return out;
  }

  /**
   * Sets bases and factors from full expert weights with contiguous groups (expert e in group ⌊e/M⌋): base = the
   * group mean, factors = rank-r SVD of W_e − base. Groups listed in `keep` are left as they are.
   * Returns the relative Frobenius error of the new form over the re-initialised groups.
   */
  compressFrom(full: HostExperts, opts: { keep?: ReadonlySet<number>; seed?: number } = {}): number {
    const { G, E, H, I, r } = this;
    if (full.E !== E || full.H !== H || full.I !== I) throw new ShapeError(`ClusteredExperts.compressFrom: experts (${full.E}, ${full.H}, ${full.I}) do not match (${E}, ${H}, ${I})`);
    const M = E / G;
    let errSq = 0;
    let totSq = 0;
    noGrad(() => tidy(() => {
      for (const m of MATS) {
        const [din, dout] = m.io(H, I);
        const sz = din * dout;
        const src = full[m.name];
        const base = Float32Array.from(this.param(m.base).dataSync() as Float32Array);
        const A = Float32Array.from(this.param(m.a).dataSync() as Float32Array);
        const B = Float32Array.from(this.param(m.b).dataSync() as Float32Array);
        for (let g = 0; g < G; g++) {
          if (opts.keep?.has(g)) continue;
          const mean = new Float64Array(sz);
          for (let e = g * M; e < (g + 1) * M; e++) for (let i = 0; i < sz; i++) mean[i]! += src[e * sz + i]! / M;
          base.set(mean, g * sz);
          for (let e = g * M; e < (g + 1) * M; e++) {
            const res = new Float64Array(sz);
            for (let i = 0; i < sz; i++) {
              res[i] = src[e * sz + i]! - mean[i]!;
              totSq += src[e * sz + i]! ** 2;
            }
            const f = fastLowRankFactors(res, din, dout, r, { seed: (opts.seed ?? 0) * 7919 + e * 31 + dout });
            let rs = 0;
            for (let i = 0; i < sz; i++) rs += res[i]! ** 2;
            errSq += f.relError ** 2 * rs;
            A.set(f.A, e * din * r);
            B.set(f.B, e * r * dout);
          }
        }
        assign(this.param(m.base), tensor(base, [G, din, dout]));
        assign(this.param(m.a), tensor(A, [E, din, r]));
        assign(this.param(m.b), tensor(B, [E, r, dout]));
      }
    }));
    return totSq > 0 ? Math.sqrt(errSq / totSq) : 0;
  }
}

/** One regrouping of one layer. */
export interface RegroupEvent {
  /** members of each new group, as original expert ids (the ids experts had when the block was built) */
  membership: number[][];
  /** mean fused similarity of expert pairs inside a group */
  intraSimilarity: number;
  /** groups whose members changed (their bases and factors were re-initialised) */
  changedGroups: number;
  /** relative Frobenius error of the re-initialised experts' new form against their previous effective weights */
  relError: number;
}

export interface RegroupOptions {
  alpha: number;
  tau: number;
  rng: Rng;
}

/** Clustered MoE block. Names: gate.weight (E, H), group_gate.weight (G, H) ('linear' only), experts.*, shared_expert.*. */
export class ClusteredMoEBlock extends Module {
  readonly cfg: ClusteredConfig;
  readonly gate: Router;
  readonly groupGate: Linear | null;
  readonly experts: ClusteredExperts;
  readonly sharedExpert: SwiGLU | null;
  readonly sharedExpertGate: Linear | null;
  /** slot s holds original expert ids[s] (regrouping moves experts between slots) */
  ids: Int32Array;
  /** activation centroids (EMA of routed inputs), updated by forward() while `tracking` */
  readonly centroids: CentroidEma;
  readonly paramSimilarity: ParamSimilarityCache;
  tracking = false;
  /** when set, forward() multiplies with this form (e.g. FP16 bases + INT4 factors) instead of the f32 parameters */
  inference: ExpertMatmuls | null = null;
  /**
   * when set (and `inference` is not), inference forwards run the fused `clusteredFfn` kernel on these weights instead
   * of the f32 parameters: e.g. `fusedInferenceWeights(quantizeClustered(...))`, FP16 bases + dequantised factors
   */
  inferenceWeights: ClusteredExpertWeights | null = null;

  constructor(cfg: ClusteredConfig, rng: Rng, opts: { beta?: number; eps?: number } = {}) {
    super();
    const { hidden: H, experts: E, topK: K, expertWidth: I, groups: G, rank: r } = cfg;
    for (const [n, v] of [['hidden', H], ['experts', E], ['topK', K], ['expertWidth', I], ['groups', G], ['rank', r]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`ClusteredMoEBlock: ${n} = ${v} must be a positive integer`);
    }
    if (E % G !== 0) throw new Error(`ClusteredMoEBlock: groups ${G} must divide experts ${E}`);
    const kg = cfg.groupTopK ?? 1;
    if (kg > G || kg * (E / G) < K) throw new Error(`ClusteredMoEBlock: groupTopK ${kg} must be <= groups ${G} and hold topK ${K} experts (${E / G} per group)`);
    this.cfg = { ...cfg };
    this.gate = this.addModule('gate', new Router(E, H, rng, cfg.selectionBias ?? false));
    this.groupGate = cfg.groupRouter === 'linear' ? this.addModule('group_gate', new Linear(H, G, rng)) : null;
    this.experts = this.addModule('experts', new ClusteredExperts(G, E, H, I, r));
    const S = cfg.sharedWidth ?? 0;
    this.sharedExpert = S > 0 ? this.addModule('shared_expert', new SwiGLU(H, S, rng)) : null;
    this.sharedExpertGate = S > 0 && cfg.sharedGate ? this.addModule('shared_expert_gate', new Linear(H, 1, rng)) : null;
    this.ids = Int32Array.from({ length: E }, (_, i) => i);
    this.centroids = new CentroidEma(E, H, opts.beta ?? 0.05);
    this.paramSimilarity = new ParamSimilarityCache(opts.eps ?? 1e-3);
    // initialisation: random full experts (as a standard MoE), contiguous groups, then base = mean + rank-r SVD residuals
    const seed = rng.nextU32();
    const init = (din: number, dout: number): Float32Array => noGrad(() => tidy(() => Float32Array.from(initNormal([E, din, dout], rng, 1 / Math.sqrt(din)).dataSync())));
    this.experts.compressFrom({ E, H, I, gate: init(H, I), up: init(H, I), down: init(I, H) }, { seed });
  }

  get weights(): ClusteredWeights {
    const w: ClusteredWeights = { router: this.gate.weight, experts: this.experts.weights };
    if (this.gate.bias) w.bias = this.gate.bias;
    if (this.groupGate) w.groupRouter = this.groupGate.weight;
    if (this.sharedExpert) w.shared = { gate: this.sharedExpert.gateProj.weight, up: this.sharedExpert.upProj.weight, down: this.sharedExpert.downProj.weight };
    if (this.sharedExpertGate) w.sharedGate = this.sharedExpertGate.weight;
    return w;
  }

  forward(x: Tensor): ClusteredOutput {
    const out = clusteredMoe(x, this.weights, this.cfg, { inputSums: this.tracking, ...(this.inference ? { matmuls: this.inference } : {}) });
    if (out.stats.inputSums) this.centroids.update(out.stats.inputSums, out.stats.tokensPerExpert);
    return out;
  }

  /** Inference forward without balance losses (see `clusteredInference`); centroids are tracked as in forward(). */
  infer(x: Tensor): ClusteredInference {
    if (this.tracking) {
      const o = this.forward(x);
      return { y: o.y, stats: o.stats, experts: o.routing.experts, logits: o.routing.logits };
    }
    const w = this.weights;
    if (this.inferenceWeights && !this.inference) w.experts = this.inferenceWeights;
    return clusteredInference(x, w, this.cfg, this.inference ? { matmuls: this.inference } : {});
  }

  /**
   * Auxiliary-loss-free balancing step (DeepSeek-V3) on the per-expert selection bias: −γ for experts above the mean
   * load, +γ below. Groups balance through it too, since a group is ranked by its members' scores.
   */
  updateBias(counts: readonly number[], gamma = 1e-3): void {
    this.gate.nudgeBias(counts, gamma, 'ClusteredMoEBlock');
  }

  /** Parameters a regrouping may re-initialise or permute (reset their optimizer moments after `regroup`). */
  regroupTensors(): Tensor[] {
    return [this.gate.weight, ...(this.groupGate ? [this.groupGate.weight] : []), ...this.experts.tensors()];
  }

  /** The fused similarity S = α·S_param + (1−α)·S_task (pruned below τ) of the current slots. */
  similarity(alpha: number, tau: number): Float64Array {
    const E = this.cfg.experts;
    const eff = this.experts.effective();
    const sz = eff.H * eff.I;
    const vecs = Array.from({ length: E }, (_, e) => {
      const v = new Float32Array(3 * sz);
      v.set(eff.gate.subarray(e * sz, (e + 1) * sz), 0);
      v.set(eff.up.subarray(e * sz, (e + 1) * sz), sz);
      v.set(eff.down.subarray(e * sz, (e + 1) * sz), 2 * sz);
      return v;
    });
    this.paramSimilarity.update(vecs);
    const sp = this.paramSimilarity.matrix();
    let observed = 0;
    for (let e = 0; e < E; e++) if (this.centroids.observed(e)) observed++;
    const st = observed === E ? this.centroids.similarity() : sp; // no activation data yet: weights only
    return fusedSimilarity(sp, st, E, alpha, tau);
  }

  /**
   * Regroups the experts by fused similarity (K-means++ on 1 − S, balanced sizes), moves them so each group's
   * slots are contiguous, and re-initialises the bases and factors of groups whose membership changed from the
   * current effective weights (base = mean, factors = rank-r SVD of the residuals). The router rows move with
   * their experts, so only the truncation changes the function.
   */
  regroup(o: RegroupOptions): RegroupEvent {
    const { experts: E, groups: G, hidden: H } = this.cfg;
    const M = E / G;
    const S = this.similarity(o.alpha, o.tau);
    const c = clusterExperts(S, E, G, o.rng);
    const perm = c.groups.flat(); // new slot s holds old slot perm[s]
    const keep = new Set<number>();
    c.groups.forEach((members, g) => {
      const old = Math.floor(members[0]! / M);
      if (members.every((m, j) => m === old * M + j)) keep.add(g);
    });
    const event: RegroupEvent = { membership: c.groups.map((ms) => ms.map((m) => this.ids[m]!)), intraSimilarity: c.intraSimilarity, changedGroups: G - keep.size, relError: 0 };
    if (keep.size === G) return event;
    const eff = this.experts.effective();
    const moved: HostExperts = { E, H, I: eff.I, gate: new Float32Array(eff.gate.length), up: new Float32Array(eff.up.length), down: new Float32Array(eff.down.length) };
    for (const k of ['gate', 'up', 'down'] as const) {
      const sz = eff[k].length / E;
      perm.forEach((old, s) => moved[k].set(eff[k].subarray(old * sz, (old + 1) * sz), s * sz));
    }
    // router rows and factors move with their experts; kept groups' bases move with their group
    noGrad(() => tidy(() => {
      const w = this.experts.weights;
      const idx = tensor(Int32Array.from(perm), [E], 'i32');
      for (const t of [w.gateA, w.gateB, w.upA, w.upB, w.downA, w.downB, this.gate.weight, ...(this.gate.bias ? [this.gate.bias] : [])]) assign(t, gather(t, idx));
      const gidx = tensor(Int32Array.from(c.groups, (ms) => Math.floor(ms[0]! / M)), [G], 'i32');
      for (const t of [w.baseGate, w.baseUp, w.baseDown]) assign(t, gather(t, gidx)); // changed groups are overwritten below
    }));
    event.relError = this.experts.compressFrom(moved, { keep, seed: o.rng.nextU32() });
    if (this.groupGate) {
      const wr = this.gate.weight.dataSync() as Float32Array; // (E, H), already permuted
      const wg = Float32Array.from(this.groupGate.weight.dataSync() as Float32Array);
      const oldG = Float32Array.from(wg);
      c.groups.forEach((ms, g) => {
        if (keep.has(g)) wg.set(oldG.subarray(Math.floor(ms[0]! / M) * H, (Math.floor(ms[0]! / M) + 1) * H), g * H);
        else for (let h = 0; h < H; h++) {
          let s = 0;
          for (let j = 0; j < M; j++) s += wr[(g * M + j) * H + h]!;
          wg[g * H + h] = s / M;
        }
      });
      noGrad(() => tidy(() => assign(this.groupGate!.weight, tensor(wg, [G, H]))));
    }
    this.ids = Int32Array.from(perm, (old) => this.ids[old]!);
    this.centroids.permute(perm);
    this.paramSimilarity.permute(perm);
    return event;
  }

  /** Expert parameters one token uses: k_g bases and K experts' factors. */
  activeExpertParams(): number {
    const { H, I, r } = this.experts;
    return (this.cfg.groupTopK ?? 1) * 3 * H * I + this.cfg.topK * 3 * r * (H + I);
  }
}
