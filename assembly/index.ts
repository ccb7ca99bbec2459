// Kernel entry points exported to JS: each splits its work by (tid, nthreads), the last two arguments.
import { MR, SCRATCH_BYTES, rangeLo } from './common';
import { gemm } from './gemm';
import { qgemm } from './quant';
export * from './nn';
export * from './moe';

/** First byte above the module's static data; the JS allocator starts above it. */
export function heapBase(): usize {
  return __heap_base;
}

/** Bytes of per-thread scratch (packing buffers) a kernel call needs. */
export function scratchBytes(): i32 {
  return SCRATCH_BYTES;
}

/** One thread's share of C (M, N) = op(A)·op(B): split over N (8-aligned) when wide enough, else over M. */
function gemmShare(a: usize, lda: i32, transA: bool, b: usize, ldb: i32, transB: bool, c: usize, ldc: i32,
  bias: usize, M: i32, N: i32, K: i32, accumulate: bool, scratch: usize, tid: i32, nthreads: i32): void {
  if (nthreads <= 1) {
    gemm(a, lda, transA, b, ldb, transB, c, ldc, bias, M, N, K, accumulate, scratch);
    return;
  }
  if (N >= 16 * nthreads || M < 2 * MR * nthreads) {
    const q = N >= 8 * nthreads ? 8 : 1;
    const n0 = rangeLo(N, q, tid, nthreads), n1 = rangeLo(N, q, tid + 1, nthreads);
    if (n1 <= n0) return;
    const boff = transB ? <usize>n0 * <usize>ldb : <usize>n0;
    gemm(a, lda, transA, b + (boff << 2), ldb, transB, c + (<usize>n0 << 2), ldc, bias ? bias + (<usize>n0 << 2) : 0,
      M, n1 - n0, K, accumulate, scratch);
  } else {
    const m0 = rangeLo(M, MR, tid, nthreads), m1 = rangeLo(M, MR, tid + 1, nthreads);
    if (m1 <= m0) return;
    const aoff = transA ? <usize>m0 : <usize>m0 * <usize>lda;
    gemm(a + (aoff << 2), lda, transA, b, ldb, transB, c + <usize>m0 * (<usize>ldc << 2), ldc, bias,
      m1 - m0, N, K, accumulate, scratch);
  }
}

/**
 * C (M, N) = op(A)·op(B) [+ bias (N)] [+ C], `batch` problems with element strides (0 = broadcast).
 * A (M, K) or stored (K, M) when transA; B (K, N) or stored (N, K) when transB. Row-major f32.
 */
export function matmul(a: usize, b: usize, c: usize, bias: usize, M: i32, N: i32, K: i32, transA: i32, transB: i32,
  accumulate: i32, batch: i32, strideA: i32, strideB: i32, strideC: i32, scratch: usize, scratchStride: i32,
  tid: i32, nthreads: i32): void {
  const sc = scratch + <usize>tid * <usize>scratchStride;
  const lda = transA ? M : K, ldb = transB ? K : N;
  const ta = transA != 0, tb = transB != 0, acc = accumulate != 0;
  if (nthreads > 1 && batch >= nthreads && (batch % nthreads == 0 || batch >= 4 * nthreads)) {
    const b0 = rangeLo(batch, 1, tid, nthreads), b1 = rangeLo(batch, 1, tid + 1, nthreads);
    for (let i = b0; i < b1; i++) {
      gemm(a + <usize>i * <usize>strideA * 4, lda, ta, b + <usize>i * <usize>strideB * 4, ldb, tb,
        c + <usize>i * <usize>strideC * 4, N, bias, M, N, K, acc, sc);
    }
    return;
  }
  for (let i = 0; i < batch; i++) {
    gemmShare(a + <usize>i * <usize>strideA * 4, lda, ta, b + <usize>i * <usize>strideB * 4, ldb, tb,
      c + <usize>i * <usize>strideC * 4, N, bias, M, N, K, acc, sc, tid, nthreads);
  }
}

/**
 * MoE grouped matmul: rows offsets[e]..offsets[e+1] of y (T, N) = those rows of x (T, K) · W_e,
 * W (E, K, N), or (E, N, K) when transW. Every expert's columns are split across threads (balanced by rows×N).
 */
export function groupedMatmul(x: usize, w: usize, y: usize, offsets: usize, E: i32, K: i32, N: i32, transW: i32,
  scratch: usize, scratchStride: i32, tid: i32, nthreads: i32): void {
  const sc = scratch + <usize>tid * <usize>scratchStride;
  const wsz = <usize>K * <usize>N * 4;
  for (let e = 0; e < E; e++) {
    const r0 = load<i32>(offsets + (<usize>e << 2)), r1 = load<i32>(offsets + (<usize>(e + 1) << 2));
    if (r1 <= r0) continue;
    gemmShare(x + <usize>r0 * <usize>K * 4, K, false, w + <usize>e * wsz, transW ? K : N, transW != 0,
      y + <usize>r0 * <usize>N * 4, N, 0, r1 - r0, N, K, false, sc, tid, nthreads);
  }
}

/** dW_e (K, N) = x_eᵀ (K, T_e) · dy_e (T_e, N) per segment; dW (E, K, N); empty segments give zeros. */
export function groupedMatmulWeightGrad(x: usize, dy: usize, dw: usize, offsets: usize, E: i32, K: i32, N: i32,
  scratch: usize, scratchStride: i32, tid: i32, nthreads: i32): void {
  const sc = scratch + <usize>tid * <usize>scratchStride;
  const wsz = <usize>K * <usize>N * 4;
  for (let e = 0; e < E; e++) {
    const r0 = load<i32>(offsets + (<usize>e << 2)), r1 = load<i32>(offsets + (<usize>(e + 1) << 2));
    gemmShare(x + <usize>r0 * <usize>K * 4, K, true, dy + <usize>r0 * <usize>N * 4, N, false,
      dw + <usize>e * wsz, N, 0, K, N, max(0, r1 - r0), false, sc, tid, nthreads);
  }
}

/** y (M, N) = x (M, K) · Wᵀ, W (N, K) quantised (format 0 int8, 1 int4, 2 f16, 3 bf16), split over N. */
export function qmatmul(x: usize, w: usize, scales: usize, y: usize, M: i32, N: i32, K: i32, format: i32, groupSize: i32,
  scratch: usize, scratchStride: i32, tid: i32, nthreads: i32): void {
  const sc = scratch + <usize>tid * <usize>scratchStride;
  const q = N >= 8 * nthreads ? 8 : 1;
  qgemm(x, w, scales, y, M, N, K, format, groupSize, rangeLo(N, q, tid, nthreads), rangeLo(N, q, tid + 1, nthreads), sc);
}
export * from './nn';
