// Dispatch: sort the T·K routing slots by expert (indices and bins), optional capacity drop, permute and un-permute.
import { gather, mul, reshape, scatterAdd, tensor } from '../tensor/api.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { binSlots, type SlotBins } from '../tensor/moe-plan.js';

export interface Bins extends SlotBins {
  /** per-expert slot capacity (Infinity when dropless) */
  capacity: number;
}

export interface BinsOptions {
  /** capacity = ceil(factor · T·K / E) slots per expert; the slots of the highest token indices are dropped.
   *  Undefined: dropless (MegaBlocks). */
  capacityFactor?: number;
}

/** Reads experts (T, K) i32 on the host and bins the slots per expert (stable: lower token index first). */
export function indicesAndBins(experts: Tensor, E: number, opts: BinsOptions = {}): Bins {
  if (experts.rank !== 2 || experts.dtype !== 'i32') throw new ShapeError(`indicesAndBins: experts must be i32 (T, K), got ${fmtInfo(experts.shape, experts.dtype)}`);
  const [T, K] = experts.shape as [number, number];
  const f = opts.capacityFactor;
  if (f !== undefined && !(f > 0)) throw new Error(`indicesAndBins: capacityFactor ${f} must be > 0`);
  const capacity = f === undefined ? Infinity : Math.ceil((f * T * K) / E);
  return { ...binSlots(experts.dataSync(), E, K, capacity, 'indicesAndBins'), capacity };
}

/** Rows of x (T, H) in bin order -> (N, H), N = kept slots. */
export function permute(x: Tensor, bins: Bins): Tensor {
  return gather(x, tensor(bins.tokens, [bins.tokens.length], 'i32')); // (N, H)
}

/** Weighted scatter-add of expert outputs y (N, H) back to token rows: (T, H); dropped slots add nothing. */
export function unpermute(y: Tensor, bins: Bins, weights: Tensor, T: number): Tensor {
  const N = bins.order.length;
  if (y.rank !== 2 || y.shape[0] !== N) throw new ShapeError(`unpermute: y ${fmtInfo(y.shape, y.dtype)} must have ${N} rows (kept slots)`);
  if (weights.rank !== 2 || weights.shape[0] !== T) throw new ShapeError(`unpermute: weights ${fmtInfo(weights.shape, weights.dtype)} must be (T = ${T}, K)`);
  const gate = gather(reshape(weights, [weights.size, 1]), tensor(bins.order, [N], 'i32')); // (N, 1)
  return scatterAdd(mul(y, gate), tensor(bins.tokens, [N], 'i32'), T); // (T, H)
}

/** The offsets as an i32 tensor (E+1) for groupedMatmul. */
export const offsetsTensor = (bins: Bins): Tensor => tensor(bins.offsets, [bins.offsets.length], 'i32');
