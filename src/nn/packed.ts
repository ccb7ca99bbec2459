// Weights kept in their storage form: bf16/f16 tensors, or block-packed MXFP4 / FP8 codes with a scales tensor
// attached. A packed weight is its codes tensor (u8; (..., N, K/2) for MXFP4, (..., N, K) for FP8) registered here with
// its scales, so parameters stay one tensor each; `logicalShape` gives the (..., N, K) it stands for.
import { cast, dequantize, reshape } from '../tensor/api.js';
import { bytesPerElement } from '../tensor/dtype.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import type { BlockFormat, WeightFormat } from '../tensor/ops.js';
import { ShapeError, fmtInfo, sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** The half-precision storage dtypes a weight may keep from a checkpoint (computed with quantMatmul). */
export type HalfDType = 'bf16' | 'f16';
export const isHalf = (t: Tensor): t is Tensor & { dtype: HalfDType } => t.dtype === 'bf16' || t.dtype === 'f16';

/** What makes a codes tensor a packed weight: its scales (..., N, K / groupSize), format and logical K. */
export interface Packing {
  readonly format: BlockFormat;
  readonly scales: Tensor;
  readonly groupSize: number;
  /** K, the logical columns */
  readonly cols: number;
}

const PACKINGS = new WeakMap<Tensor, Packing>();

/** Values per scale of each block format's codes, and values per byte. */
const PER_BYTE: Record<BlockFormat, number> = { mxfp4: 2, fp8: 1 };
const SCALE_DTYPE: Record<BlockFormat, 'u8' | 'f32'> = { mxfp4: 'u8', fp8: 'f32' };

/**
 * Makes `codes` a packed weight: u8 codes (..., N, K / perByte) with `scales` (..., N, K / groupSize) (E8M0 bytes for
 * MXFP4 with groupSize 32, f32 for FP8 E4M3). The scales are kept alive with the codes and freed with them
 * (freeWeight). Returns `codes`.
 */
export function packWeight(codes: Tensor, scales: Tensor, format: BlockFormat, groupSize: number): Tensor {
  const per = PER_BYTE[format];
  const cols = (codes.shape.at(-1) ?? 0) * per;
  const lead = codes.shape.slice(0, -1);
  const want = [...lead, cols / groupSize];
  const ok = codes.dtype === 'u8' && codes.rank >= 2 && scales.dtype === SCALE_DTYPE[format] && Number.isInteger(groupSize) && groupSize > 0
    && cols % groupSize === 0 && (format !== 'mxfp4' || groupSize === 32) && scales.shape.join() === want.join();
  if (!ok) {
    throw new ShapeError(`packWeight: ${format} codes ${fmtInfo(codes.shape, codes.dtype)} and scales ${fmtInfo(scales.shape, scales.dtype)} (group size ${groupSize}) do not fit u8 (..., N, K/${per}) and ${SCALE_DTYPE[format]} (..., N, K/${format === 'mxfp4' ? 32 : 'groupSize'})`);
  }
  PACKINGS.set(codes, { format, scales: keep(scales), groupSize, cols });
  return codes;
}

export const packingOf = (t: Tensor): Packing | undefined => PACKINGS.get(t);

/** How a weight (N, K) is stored for quantMatmul, or null for a plain f32 weight (matmul). */
export function storedForm(t: Tensor): { format: WeightFormat; scales: Tensor | null; groupSize: number } | null {
  const p = PACKINGS.get(t);
  if (p) return { format: p.format, scales: p.scales, groupSize: p.groupSize };
  return isHalf(t) ? { format: t.dtype, scales: null, groupSize: 32 } : null;
}

/** Whether a weight is kept in a storage form (bf16/f16 or packed) rather than f32. */
export const isKept = (t: Tensor): boolean => isHalf(t) || PACKINGS.has(t);

/** The shape a weight stands for: a packed weight's (..., N, K), any other tensor's own shape. */
export function logicalShape(t: Tensor): number[] {
  const p = PACKINGS.get(t);
  return p ? [...t.shape.slice(0, -1), p.cols] : [...t.shape];
}

/** Elements a weight stands for (its parameter count). */
export const logicalSize = (t: Tensor): number => sizeOf(logicalShape(t));

/** Bytes a weight occupies: its own storage plus a packed weight's scales. */
export function storedBytes(t: Tensor): number {
  const p = PACKINGS.get(t);
  return t.size * bytesPerElement(t.dtype) + (p ? p.scales.size * bytesPerElement(p.scales.dtype) : 0);
}

/** Frees a weight and a packed weight's scales. */
export function freeWeight(t: Tensor): void {
  PACKINGS.get(t)?.scales.dispose();
  t.dispose();
}

/** A kept weight (..., N, K) as f32 of its logical shape (half widened, packed dequantised); f32 is returned as is. */
export function widenWeight(t: Tensor): Tensor {
  const p = PACKINGS.get(t);
  if (!p) return isHalf(t) ? noGrad(() => cast(t, 'f32')) : t;
  const shape = logicalShape(t);
  const rows = sizeOf(shape) / p.cols;
  return noGrad(() => tidy(() => reshape(dequantize(reshape(t, [rows, t.shape.at(-1)!]), reshape(p.scales, [rows, p.cols / p.groupSize]), p.format, p.groupSize), shape)));
}
