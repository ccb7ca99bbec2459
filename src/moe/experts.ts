// Experts: E gated MLPs (SwiGLU, or gpt-oss's clamped SwiGLU, optionally with biases) applied to expert-sorted rows
// with grouped matmuls (f32), or per expert segment with quantMatmul (weights kept from a checkpoint as stored:
// bf16/f16, MXFP4, FP8).
import { halfTrainingError } from '../nn/layers.js';
import { logicalShape, packingOf, storedForm } from '../nn/packed.js';
import { add, canReadSync, concat, groupedMatmul, maximum, mul, needsGrad, neg, ones, quantMatmul, reshape, sigmoid, silu, slice, zeros } from '../tensor/api.js';
import { getBackend } from '../tensor/engine.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { WeightFormat } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Stacked expert weights, layout (E, in, out) so rows multiply without a transpose:
 * gate/up (E, H, I), down (E, I, H). HF per-expert Linear weights convert as gate[e] = gate_proj.weight.T.
 * Kept as a checkpoint stores them (bf16/f16, or packed MXFP4 / FP8: nn/packed) they are in the (N, K) orientation
 * quantMatmul reads, as HF's per-expert Linear weights: gate/up (E, I, H), down (E, H, I) (logical shapes);
 * `keptExperts` tells which form a set is.
 * Biases (gpt-oss) are optional and come together: gateBias/upBias (E, I), downBias (E, H).
 */
export interface ExpertWeights {
  gate: Tensor; // (E, H, I)
  up: Tensor; // (E, H, I)
  down: Tensor; // (E, I, H)
  gateBias?: Tensor; // (E, I)
  upBias?: Tensor; // (E, I)
  downBias?: Tensor; // (E, H)
}

/**
 * The gated activation h(g, u) of the expert MLP. 'swiglu': silu(g)·u (Llama, Mixtral, Qwen, DeepSeek).
 * 'swiglu-oai' (gpt-oss): g clamped above at `limit`, u clamped to [−limit, limit], then g·σ(alpha·g)·(u + 1).
 */
export type ExpertActivation = { kind: 'swiglu' } | { kind: 'swiglu-oai'; limit: number; alpha: number };
export const SWIGLU: ExpertActivation = { kind: 'swiglu' };

/** The activation of gate (N, I) and up (N, I) pre-activations -> (N, I). */
export function expertActivation(g: Tensor, u: Tensor, act: ExpertActivation): Tensor {
  if (act.kind === 'swiglu') return mul(silu(g), u);
  const { limit, alpha } = act;
  const gc = neg(maximum(neg(g), -limit)); // (N, I) min(g, limit)
  const uc = neg(maximum(neg(maximum(u, -limit)), -limit)); // (N, I) clamp(u, −limit, limit)
  return mul(mul(gc, sigmoid(mul(gc, alpha))), add(uc, 1)); // (N, I)
}

/** Whether these are plain SwiGLU experts without biases: what the fused moeFfn kernel computes. */
export const plainSwiglu = (w: ExpertWeights, act: ExpertActivation = SWIGLU): boolean => act.kind === 'swiglu' && !w.gateBias && !w.upBias && !w.downBias;

/** The storage format of experts kept as stored ((N, K) orientation), or null for f32 (E, in, out) experts. */
export const keptExperts = (w: ExpertWeights): WeightFormat | null => storedForm(w.gate)?.format ?? null;

/** Each row's expert bias: rows offsets[e]..offsets[e+1] get bias[e]. bias (E, C) -> (N, C), differentiable in bias. */
function rowBias(N: number, bias: Tensor, offsets: Tensor): Tensor {
  const [E, C] = bias.shape as [number, number];
  return groupedMatmul(ones([N, 1]), reshape(bias, [E, 1, C]), offsets); // (N, C)
}

/** xs (N, H) sorted by expert, offsets i32 (E+1) -> (N, H) = down_e(act(x·gate_e + bg_e, x·up_e + bu_e)) + bd_e per segment. */
export function experts(xs: Tensor, offsets: Tensor, w: ExpertWeights, act: ExpertActivation = SWIGLU): Tensor {
  const kept = keptExperts(w);
  if (kept) return storedExperts(xs, offsets, w, act, kept);
  const [E, H, I] = w.gate.shape as [number, number, number];
  const ok = w.gate.rank === 3 && w.up.shape.join() === w.gate.shape.join() && w.down.shape.join() === [E, I, H].join() && xs.rank === 2 && xs.shape[1] === H;
  if (!ok) throw new ShapeError(`experts: xs ${fmtInfo(xs.shape, xs.dtype)}, gate ${fmtInfo(w.gate.shape, 'f32')}, up ${fmtInfo(w.up.shape, 'f32')}, down ${fmtInfo(w.down.shape, 'f32')} do not fit (N, H), (E, H, I), (E, H, I), (E, I, H)`);
  for (const [name, b, width] of [['gateBias', w.gateBias, I], ['upBias', w.upBias, I], ['downBias', w.downBias, H]] as const) {
    if (b && (b.rank !== 2 || b.shape[0] !== E || b.shape[1] !== width)) throw new ShapeError(`experts: ${name} ${fmtInfo(b.shape, b.dtype)} must be (E = ${E}, ${width})`);
  }
  const N = xs.shape[0]!;
  let g = groupedMatmul(xs, w.gate, offsets); // (N, I)
  let u = groupedMatmul(xs, w.up, offsets); // (N, I)
  if (w.gateBias) g = add(g, rowBias(N, w.gateBias, offsets));
  if (w.upBias) u = add(u, rowBias(N, w.upBias, offsets));
  const y = groupedMatmul(expertActivation(g, u, act), w.down, offsets); // (N, H)
  return w.downBias ? add(y, rowBias(N, w.downBias, offsets)) : y;
}

/**
 * experts() for weights kept as stored: gate/up (E, I, H), down (E, H, I) (logical shapes) in bf16/f16, MXFP4 or FP8.
 * One quantMatmul per matrix and non-empty expert segment (the offsets are read on the host); no gradient reaches the
 * weights (upcast them to train).
 */
function storedExperts(xs: Tensor, offsets: Tensor, w: ExpertWeights, act: ExpertActivation, format: WeightFormat): Tensor {
  const [gs, us, ds] = [logicalShape(w.gate), logicalShape(w.up), logicalShape(w.down)];
  const [E, I, H] = gs as [number, number, number];
  const ok = gs.length === 3 && storedForm(w.up)?.format === format && storedForm(w.down)?.format === format && us.join() === gs.join() && ds.join() === [E, H, I].join() && xs.rank === 2 && xs.shape[1] === H && offsets.size === E + 1;
  if (!ok) throw new ShapeError(`experts: xs ${fmtInfo(xs.shape, xs.dtype)}, gate ${fmtInfo(gs, w.gate.dtype)}, up ${fmtInfo(us, w.up.dtype)}, down ${fmtInfo(ds, w.down.dtype)}, offsets (${offsets.size}) do not fit (N, H), ${format} (E, I, H), (E, I, H), (E, H, I), (E+1)`);
  if (needsGrad(w.gate, w.up, w.down)) throw new Error(halfTrainingError(`experts: ${format} expert weights (${E} x ${I} x ${H})`));
  if (!canReadSync()) throw new Error(`experts: ${format} experts run per expert segment and need the offsets on the host; backend ${getBackend().name} reads asynchronously (load the model with loadDtype 'f32' / --load-dtype f32)`);
  const off = offsets.dataSync(); // (E+1)
  const mat2 = (m: Tensor, e: number): Tensor => reshape(slice(m, [e, 0, 0], [1, m.shape[1]!, m.shape[2]!]), [m.shape[1]!, m.shape[2]!]); // (N, ·) of expert e
  const mm = (x: Tensor, m: Tensor, e: number): Tensor => {
    const p = packingOf(m);
    return quantMatmul(x, mat2(m, e), p ? mat2(p.scales, e) : null, format, p?.groupSize ?? 32);
  };
  const rowBiasOf = (b: Tensor, e: number): Tensor => slice(b, [e, 0], [1, b.shape[1]!]); // (1, C)
  const parts: Tensor[] = [];
  for (let e = 0; e < E; e++) {
    const n = off[e + 1]! - off[e]!;
    if (n <= 0) continue;
    const seg = slice(xs, [off[e]!, 0], [n, H]); // (n, H)
    let g = mm(seg, w.gate, e); // (n, I)
    let u = mm(seg, w.up, e); // (n, I)
    if (w.gateBias) g = add(g, rowBiasOf(w.gateBias, e));
    if (w.upBias) u = add(u, rowBiasOf(w.upBias, e));
    const y = mm(expertActivation(g, u, act), w.down, e); // (n, H)
    parts.push(w.downBias ? add(y, rowBiasOf(w.downBias, e)) : y);
  }
  if (parts.length === 0) return zeros([xs.shape[0]!, H]);
  return parts.length === 1 ? parts[0]! : concat(parts, 0); // (N, H)
}
