// Routers: logits (T, E) -> top-k expert ids and weights, with the Switch balance loss and router z-loss as values.
import { add, div, logSumExp, mean, mul, ones, reshape, scatterAlong, sigmoid, softmax, square, sum, takeAlong, topk, where } from '../tensor/api.js';
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
