// Kernel entry points exported to JS: each does chunk `chunk` of `nchunks` (the last two arguments) of its work.
import { MR, SCRATCH_BYTES, gridColumns, rangeLo, slot } from './common';
export { setSlot } from './common';
import { gemm } from './gemm';
import { qgemm } from './quant';
export * from './nn';
export * from './moe';
export * from './gemm_packed';

/** First byte above the module's static data; the JS allocator starts above it. */
export function heapBase(): usize {
  return __heap_base;
}

/** Bytes of per-thread scratch (packing buffers) a kernel call needs. */
export function scratchBytes(): i32 {
  return SCRATCH_BYTES;
}

/**
 * The chunk grid of a (M, N) product split into at most `nchunks` tiles: nb column blocks (8-aligned) by mb row
 * blocks (MR-aligned), nb a divisor of nchunks, shaped so tiles are about square in work. A function of (M, N, nchunks) only, so a chunk
 * computes the same numbers whichever thread runs it and however many threads there are.
 */
function gridCols(M: i32, N: i32, nchunks: i32): i32 {
  const maxNb = max(1, (N + 7) / 8);
  if (M <= MR) return min(nchunks, maxNb);
  return gridColumns(nchunks, Math.sqrt(<f64>nchunks * <f64>N / <f64>M), maxNb);
}

/** Chunk `chunk` of `nchunks` of C (M, N) = op(A)·op(B): one tile of the grid above (nothing when past the grid). */
function gemmChunk(a: usize, lda: i32, transA: bool, b: usize, ldb: i32, transB: bool, c: usize, ldc: i32,
  bias: usize, M: i32, N: i32, K: i32, accumulate: bool, scratch: usize, chunk: i32, nchunks: i32): void {
  if (nchunks <= 1) {
    gemm(a, lda, transA, b, ldb, transB, c, ldc, bias, M, N, K, accumulate, scratch);
    return;
  }
  const nb = gridCols(M, N, nchunks);
  const mb = min(nchunks / nb, max(1, (M + MR - 1) / MR));
  if (chunk >= mb * nb) return;
  const bi = chunk / nb, bj = chunk % nb;
  const m0 = rangeLo(M, MR, bi, mb), m1 = rangeLo(M, MR, bi + 1, mb);
  const n0 = rangeLo(N, 8, bj, nb), n1 = rangeLo(N, 8, bj + 1, nb);
  if (m1 <= m0 || n1 <= n0) return;
  const aoff = transA ? <usize>m0 : <usize>m0 * <usize>lda;
  const boff = transB ? <usize>n0 * <usize>ldb : <usize>n0;
  gemm(a + (aoff << 2), lda, transA, b + (boff << 2), ldb, transB, c + <usize>m0 * (<usize>ldc << 2) + (<usize>n0 << 2), ldc,
    bias ? bias + (<usize>n0 << 2) : 0, m1 - m0, n1 - n0, K, accumulate, scratch);
}

/**
 * C (M, N) = op(A)·op(B) [+ bias (N)] [+ C], `batch` problems with element strides (0 = broadcast).
 * A (M, K) or stored (K, M) when transA; B (K, N) or stored (N, K) when transB. Row-major f32.
 */
export function matmul(a: usize, b: usize, c: usize, bias: usize, M: i32, N: i32, K: i32, transA: i32, transB: i32,
  accumulate: i32, batch: i32, strideA: i32, strideB: i32, strideC: i32, scratch: usize, scratchStride: i32,
  chunk: i32, nchunks: i32): void {
  const sc = scratch + slot() * <usize>scratchStride;
  const lda = transA ? M : K, ldb = transB ? K : N;
  const ta = transA != 0, tb = transB != 0, acc = accumulate != 0;
  if (nchunks > 1 && batch >= nchunks) {
    const b0 = rangeLo(batch, 1, chunk, nchunks), b1 = rangeLo(batch, 1, chunk + 1, nchunks);
    for (let i = b0; i < b1; i++) {
      gemm(a + <usize>i * <usize>strideA * 4, lda, ta, b + <usize>i * <usize>strideB * 4, ldb, tb,
        c + <usize>i * <usize>strideC * 4, N, bias, M, N, K, acc, sc);
    }
    return;
  }
  for (let i = 0; i < batch; i++) {
    gemmChunk(a + <usize>i * <usize>strideA * 4, lda, ta, b + <usize>i * <usize>strideB * 4, ldb, tb,
      c + <usize>i * <usize>strideC * 4, N, bias, M, N, K, acc, sc, chunk, nchunks);
  }
}


/**
 * MoE grouped matmul: rows offsets[e]..offsets[e+1] of y (T, N) = those rows of x (T, K) · W_e,
 * W (E, K, N), or (E, N, K) when transW. Every expert's product is split into the same number of chunks.
 */
export function groupedMatmul(x: usize, w: usize, y: usize, offsets: usize, E: i32, K: i32, N: i32, transW: i32,
  scratch: usize, scratchStride: i32, chunk: i32, nchunks: i32): void {
  const sc = scratch + slot() * <usize>scratchStride;
  const wsz = <usize>K * <usize>N * 4;
  for (let e = 0; e < E; e++) {
    const r0 = load<i32>(offsets + (<usize>e << 2)), r1 = load<i32>(offsets + (<usize>(e + 1) << 2));
    if (r1 <= r0) continue;
    gemmChunk(x + <usize>r0 * <usize>K * 4, K, false, w + <usize>e * wsz, transW ? K : N, transW != 0,
      y + <usize>r0 * <usize>N * 4, N, 0, r1 - r0, N, K, false, sc, chunk, nchunks);
  }
}

/** dW_e (K, N) = x_eᵀ (K, T_e) · dy_e (T_e, N) per segment; dW (E, K, N); empty segments give zeros. */
export function groupedMatmulWeightGrad(x: usize, dy: usize, dw: usize, offsets: usize, E: i32, K: i32, N: i32,
  scratch: usize, scratchStride: i32, chunk: i32, nchunks: i32): void {
  const sc = scratch + slot() * <usize>scratchStride;
  const wsz = <usize>K * <usize>N * 4;
  for (let e = 0; e < E; e++) {
    const r0 = load<i32>(offsets + (<usize>e << 2)), r1 = load<i32>(offsets + (<usize>(e + 1) << 2));
    gemmChunk(x + <usize>r0 * <usize>K * 4, K, true, dy + <usize>r0 * <usize>N * 4, N, false,
      dw + <usize>e * wsz, N, 0, K, N, max(0, r1 - r0), false, sc, chunk, nchunks);
  }
}

/** y (M, N) = x (M, K) · Wᵀ, W (N, K) quantised (format 0 int8, 1 int4, 2 f16, 3 bf16, 4 mxfp4, 5 fp8), split over N. */
export function qmatmul(x: usize, w: usize, scales: usize, y: usize, M: i32, N: i32, K: i32, format: i32, groupSize: i32,
  scratch: usize, scratchStride: i32, chunk: i32, nchunks: i32): void {
  const sc = scratch + slot() * <usize>scratchStride;
  const q = N >= 8 * nchunks ? 8 : 1;
  qgemm(x, w, scales, y, M, N, K, format, groupSize, rangeLo(N, q, chunk, nchunks), rangeLo(N, q, chunk + 1, nchunks), sc);
}
export * from './nn';
