// Experts: E SwiGLU MLPs applied to expert-sorted rows with grouped matmuls.
import { groupedMatmul, mul, silu } from '../tensor/api.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Stacked expert weights, layout (E, in, out) so rows multiply without a transpose:
 * gate/up (E, H, I), down (E, I, H). HF per-expert Linear weights convert as gate[e] = gate_proj.weight.T.
 */
export interface ExpertWeights {
  gate: Tensor; // (E, H, I)
  up: Tensor; // (E, H, I)
  down: Tensor; // (E, I, H)
}

/** xs (N, H) sorted by expert, offsets i32 (E+1) -> (N, H) = down_e(silu(x·gate_e) · (x·up_e)) per segment. */
export function experts(xs: Tensor, offsets: Tensor, w: ExpertWeights): Tensor {
  const [E, H, I] = w.gate.shape as [number, number, number];
  const ok = w.gate.rank === 3 && w.up.shape.join() === w.gate.shape.join() && w.down.shape.join() === [E, I, H].join() && xs.rank === 2 && xs.shape[1] === H;
  if (!ok) throw new ShapeError(`experts: xs ${fmtInfo(xs.shape, xs.dtype)}, gate ${fmtInfo(w.gate.shape, 'f32')}, up ${fmtInfo(w.up.shape, 'f32')}, down ${fmtInfo(w.down.shape, 'f32')} do not fit (N, H), (E, H, I), (E, H, I), (E, I, H)`);
  const g = groupedMatmul(xs, w.gate, offsets); // (N, I)
  const u = groupedMatmul(xs, w.up, offsets); // (N, I)
  return groupedMatmul(mul(silu(g), u), w.down, offsets); // (N, H)
}
