// Routers: logits (T, E) -> top-k expert ids and weights, with the Switch balance loss and router z-loss as values:
// softmax top-k, sigmoid group-limited (DeepSeek-V3), and the clustered layer's two-stage group -> expert routing.
import { add, div, log, logSumExp, mean, mul, ones, reshape, scatterAlong, sigmoid, softmax, square, sum, takeAlong, tensor, topk, where } from '../tensor/api.js';
import { noGrad } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';

export type RouterKind = 'softmax-topk' | 'sigmoid-group';

export interface RouteOptions {
  kind: RouterKind;
  /** K experts per token */
  K: number;
  /** divide the K weights by their sum (Mixtral, Qwen3, DeepSeek-V3 norm_topk_prob); default true. sigmoid-group
   *  normalises the K sigmoid scores, then multiplies by routedScale either way */
  renormalize?: boolean;
  /** sigmoid-group: G expert groups (n_group); default 1 */
  groups?: number;
  /** sigmoid-group: groups kept per token (topk_group); default groups */
  topGroups?: number;
  /** sigmoid-group: multiplies the weights (routed_scaling_factor, 2.5 in DeepSeek-V3); default 1 */
  routedScale?: number;
  /** (E) score bias for SELECTION only (DeepSeek-V3 e_score_correction_bias); weights use the unbiased scores */
  bias?: Tensor;
}

export interface RouteResult {
  weights: Tensor; // (T, K) gate weights of the chosen experts
  experts: Tensor; // (T, K) i32 chosen expert ids
  probs: Tensor; // (T, E) softmax probabilities, or sigmoid scores normalised per token (sigmoid-group)
  logits: Tensor; // (T, E) the input
  aux: {
    /** E·Σ f_i·P_i, f_i = share of the T·K slots routed to i, P_i = mean prob; 1 when balanced (scale by α) */
    switch: Tensor; // () scalar
    /** mean over tokens of logsumexp(logits)² (ST-MoE router z-loss, scale by its coefficient) */
    z: Tensor; // () scalar
  };
}

/** Routes T tokens over E experts. Selection is piecewise constant; gradients flow through the weights. */
export function route(logits: Tensor, opts: RouteOptions): RouteResult {
  if (logits.rank !== 2 || logits.dtype !== 'f32') throw new ShapeError(`route: logits must be f32 (T, E), got ${fmtInfo(logits.shape, logits.dtype)}`);
  const [, E] = logits.shape as [number, number];
  const K = opts.K;
  if (!Number.isInteger(K) || K < 1 || K > E) throw new Error(`route: K = ${K} must be an integer in [1, E = ${E}]`);
  if (opts.bias && (opts.bias.rank !== 1 || opts.bias.shape[0] !== E)) throw new ShapeError(`route: bias ${fmtInfo(opts.bias.shape, opts.bias.dtype)} must be (E = ${E})`);
  const r = opts.kind === 'softmax-topk' ? softmaxTopk(logits, K, opts) : sigmoidGroup(logits, K, opts);
  const slots = noGrad(() => scatterAlong(ones(r.experts.shape), r.experts, E)); // (T, E) 1 where chosen
  const f = noGrad(() => div(sum(slots, 0), slots.shape[0]! * K)); // (E) share of slots
  const P = mean(r.probs, 0); // (E) mean router probability
  const sw = mul(sum(mul(f, P)), E); // ()
  const z = mean(square(logSumExp(logits, -1))); // ()
  return { ...r, logits, aux: { switch: sw, z } };
}

type Picked = { weights: Tensor; experts: Tensor; probs: Tensor };

function softmaxTopk(logits: Tensor, K: number, opts: RouteOptions): Picked {
  const probs = softmax(logits, -1); // (T, E)
  const bias = opts.bias;
  const experts = bias ? noGrad(() => topk(add(probs, bias), K).indices) : topk(probs, K).indices; // (T, K) i32
  const w = takeAlong(probs, experts); // (T, K)
  const weights = (opts.renormalize ?? true) ? div(w, sum(w, -1, true)) : w; // (T, K)
  return { weights, experts, probs };
}

function sigmoidGroup(logits: Tensor, K: number, opts: RouteOptions): Picked {
  const [T, E] = logits.shape as [number, number];
  const G = opts.groups ?? 1;
  const TG = opts.topGroups ?? G;
  if (!Number.isInteger(G) || G < 1 || E % G !== 0) throw new Error(`route: groups ${G} must divide E = ${E}`);
  if (!Number.isInteger(TG) || TG < 1 || TG > G || TG * (E / G) < K) throw new Error(`route: topGroups ${TG} must be in [1, groups ${G}] and keep at least K = ${K} of ${E / G} experts per group`);
  const scores = sigmoid(logits); // (T, E)
  const bias = opts.bias;
  const experts = noGrad(() => {
    const sel = bias ? add(scores, bias) : scores; // (T, E) selection scores
    let allowed = sel; // (T, E) with experts outside the top groups at -inf
    if (TG < G) {
      const grouped = reshape(sel, [T, G, E / G]); // (T, G, E/G)
      const groupScore = sum(topk(grouped, Math.min(2, E / G)).values, -1); // (T, G) sum of the top-2 per group
      const keepG = scatterAlong(ones([T, TG]), topk(groupScore, TG).indices, G); // (T, G) 1 for kept groups
      const mask = reshape(mul(reshape(keepG, [T, G, 1]), ones([1, 1, E / G])), [T, E]); // (T, E)
      allowed = where(mask, sel, -1e30);
    }
    return topk(allowed, K).indices; // (T, K) i32
  });
  const w = takeAlong(scores, experts); // (T, K) unbiased scores
  const weights = mul((opts.renormalize ?? true) ? div(w, sum(w, -1, true)) : w, opts.routedScale ?? 1); // (T, K)
  const probs = div(scores, sum(scores, -1, true)); // (T, E) normalised scores for the balance loss
  return { weights, experts, probs };
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

/** Load imbalance max/mean of per-expert counts (1 = perfectly balanced). */
export const imbalance = (counts: readonly number[]): number => {
  const m = counts.reduce((a, b) => a + b, 0) / Math.max(counts.length, 1);
  return m === 0 ? 0 : Math.max(...counts) / m;
};

/** Load statistics of one layer's expert counts: variance of the load fractions and max/mean load. */
export function loadStats(counts: readonly number[]): { variance: number; imbalance: number } {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0 || counts.length === 0) return { variance: 0, imbalance: 0 };
  const f = counts.map((c) => c / total);
  const mean = 1 / counts.length;
  return { variance: f.reduce((a, x) => a + (x - mean) ** 2, 0) / counts.length, imbalance: Math.max(...f) / mean };
}
