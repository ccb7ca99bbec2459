// Attention sinks (gpt-oss): a learnable logit per query head joins every query's softmax denominator and is dropped.
import { attentionLse, mul, reshape, sigmoid, sub, transpose } from '../tensor/api.js';
import type { AttentionParams } from '../tensor/ops.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * softmax over [s_i1 … s_iS, sink_h] with the sink's column dropped: each visible key's weight is its plain softmax
 * weight times Z/(Z + e^sink) = σ(lse_i − sink_h), Z = Σ_j e^{s_ij}. So o·σ(lse − sink) from the fused attention op,
 * whose log-sum-exp output is differentiable: gradients reach q, k, v and the sinks on every backend. It needs nothing
 * but the visible keys of each query, so a KV cache (startPos > 0) and sliding windows work unchanged.
 * q (B, T, Hq, D), k (B, S, Hkv, D), v (B, S, Hkv, Dv), sinks (Hq) -> (B, T, Hq, Dv)
 */
export function sinkAttention(q: Tensor, k: Tensor, v: Tensor, sinks: Tensor, opts: Partial<AttentionParams> = {}): Tensor {
  const [B, T, Hq] = q.shape as [number, number, number];
  if (sinks.rank !== 1 || sinks.shape[0] !== Hq) throw new ShapeError(`sinkAttention: sinks ${fmtInfo(sinks.shape, sinks.dtype)} must be (Hq = ${Hq})`);
  const { o, lse } = attentionLse(q, k, v, opts); // (B, T, Hq, Dv), (B, Hq, T)
  const keep = sigmoid(sub(transpose(lse, [0, 2, 1]), sinks)); // (B, T, Hq) share of the denominator the keys hold
  return mul(o, reshape(keep, [B, T, Hq, 1])); // (B, T, Hq, Dv)
}
