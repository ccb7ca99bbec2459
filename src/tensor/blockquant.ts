// Block-scaled weight formats -> float32: MXFP4 (32 E2M1 values sharing one E8M0 exponent) and FP8 with one scale
// factor per tile of a matrix (DeepSeek-V3's `weight_scale_inv`).
import { E8M0_VALUES, FP4_E2M1_VALUES } from './minifloat.js';

/** Bytes of one MXFP4 block (two E2M1 codes per byte). */
export const MXFP4_BLOCK_BYTES = 16;
/** Values of one MXFP4 block, all sharing one E8M0 scale. */
export const MXFP4_BLOCK_VALUES = 32;

/**
 * MXFP4 -> float32. `blocks` holds n blocks of 16 bytes and `scales` their n E8M0 exponents. Value 2j of block g is
 * the low nibble of its byte j and value 2j+1 the high nibble, each an E2M1 code times 2^(scales[g] - 127)
 * (transformers' `convert_moe_packed_tensors`). Out: the n·32 values block after block, so (..., G, 16) blocks with
 * (..., G) scales give (..., G·32) rows.
 */
export function dequantMxfp4(blocks: Uint8Array, scales: Uint8Array): Float32Array {
  const n = scales.length;
  if (blocks.length !== n * MXFP4_BLOCK_BYTES) throw new Error(`dequantMxfp4: ${blocks.length} block bytes for ${n} scales, expected ${n * MXFP4_BLOCK_BYTES}`);
  const out = new Float32Array(n * MXFP4_BLOCK_VALUES); // (n, 32)
  for (let g = 0; g < n; g++) {
    const s = E8M0_VALUES[scales[g]!]!;
    const b0 = g * MXFP4_BLOCK_BYTES;
    const o0 = g * MXFP4_BLOCK_VALUES;
    for (let j = 0; j < MXFP4_BLOCK_BYTES; j++) {
      const b = blocks[b0 + j]!;
      out[o0 + 2 * j] = FP4_E2M1_VALUES[b & 0xf]! * s;
      out[o0 + 2 * j + 1] = FP4_E2M1_VALUES[b >> 4]! * s;
    }
  }
  return out;
}

/** Shape of a block-scaled FP8 tensor: N matrices of (R, C) with (bR, bC) tiles. */
export interface Fp8Blocks {
  /** matrices (the product of the leading dimensions, e.g. experts) */
  n: number;
  rows: number;
  cols: number;
  blockRows: number;
  blockCols: number;
}

/** The scale grid of one matrix: (ceil(R / bR), ceil(C / bC)); edge tiles are partial. */
export function fp8ScaleGrid(rows: number, cols: number, blockRows: number, blockCols: number): [number, number] {
  return [Math.ceil(rows / blockRows), Math.ceil(cols / blockCols)];
}

/**
 * Block-scaled FP8 -> float32: out[m, r, c] = values[codes[m, r, c]] · scaleInv[m, ⌊r / bR⌋, ⌊c / bC⌋], with `values`
 * the 256-entry table of the FP8 format (E4M3_VALUES or E5M2_VALUES) and `scaleInv` (N, ceil(R / bR), ceil(C / bC))
 * (DeepSeek-V3 inference/kernel.py `weight_dequant`; transformers' `Fp8Dequantize`).
 */
export function dequantFp8Blocks(codes: Uint8Array, values: Float32Array, scaleInv: Float32Array, s: Fp8Blocks): Float32Array {
  const { n, rows: R, cols: C, blockRows: bR, blockCols: bC } = s;
  const [gR, gC] = fp8ScaleGrid(R, C, bR, bC);
  if (codes.length !== n * R * C || scaleInv.length !== n * gR * gC) {
    throw new Error(`dequantFp8Blocks: ${codes.length} codes and ${scaleInv.length} scales for ${n} × (${R}, ${C}) in (${bR}, ${bC}) tiles, expected ${n * R * C} and ${n * gR * gC}`);
  }
  const out = new Float32Array(codes.length); // (N, R, C)
  for (let m = 0; m < n; m++) {
    for (let r = 0; r < R; r++) {
      const row = (m * R + r) * C;
      const srow = (m * gR + Math.floor(r / bR)) * gC;
      for (let c = 0; c < C; c++) out[row + c] = values[codes[row + c]!]! * scaleInv[srow + Math.floor(c / bC)]!;
    }
  }
  return out;
}

/** (N, R, C) row-major -> (N, C, R). */
export function transposeLast2(x: Float32Array, n: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let m = 0; m < n; m++) {
    const o = m * rows * cols;
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[o + c * rows + r] = x[o + r * cols + c]!;
  }
  return out;
}
