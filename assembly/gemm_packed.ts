// Two-phase parallel GEMM: both operands packed once into shared panels (phase 1, chunked over panels), then tiles
// of C computed from those panels (phase 2, chunked over a 2-D grid). Cutting a product into many chunks - so idle
// threads can take them - then repacks nothing, and a chunk computes the same numbers whichever thread runs it.
import { KC, MR, NR, OFF_BIAS, OFF_TILE, rangeLo, slot } from './common';
import { packA, packBPanel } from './gemm';
import { kernel2x16, kernel3x12 } from './microkernel';

/** Bytes of the packed A of an (M, K) operand: ceil(M/MR) panels of (K, MR). */
export function packedABytes(M: i32, K: i32): i32 {
  return ((M + MR - 1) / MR) * MR * K * 4;
}

/** Bytes of the packed B of a (K, N) operand: ceil(N/NR) panels of (K, NR). */
export function packedBBytes(N: i32, K: i32): i32 {
  return ((N + NR - 1) / NR) * NR * K * 4;
}

/**
 * Phase 1: packs A (M, K) (stored (K, M) when transA) into pa and B (K, N) (stored (N, K) when transB) into pb;
 * the A panels and then the B panels are numbered together and split into chunks.
 */
export function gemm_pack(a: usize, lda: i32, transA: i32, b: usize, ldb: i32, transB: i32, M: i32, N: i32, K: i32,
  pa: usize, pb: usize, chunk: i32, nchunks: i32): void {
  const na = (M + MR - 1) / MR, nb = (N + NR - 1) / NR;
  const p0 = rangeLo(na + nb, 1, chunk, nchunks), p1 = rangeLo(na + nb, 1, chunk + 1, nchunks);
  for (let p = p0; p < p1; p++) {
    if (p < na) {
      const i0 = p * MR;
      const src = transA ? a + (<usize>i0 << 2) : a + <usize>i0 * (<usize>lda << 2);
      packA(src, lda, transA != 0, K, min(MR, M - i0), pa + <usize>p * <usize>K * <usize>(MR * 4));
    } else {
      const q = p - na, j0 = q * NR;
      const src = transB ? b + <usize>j0 * (<usize>ldb << 2) : b + (<usize>j0 << 2);
      packBPanel(src, ldb, transB != 0, K, min(NR, N - j0), pb + <usize>q * <usize>K * <usize>(NR * 4));
    }
  }
}

/** Column blocks of the tile grid: the divisor of nchunks nearest (in ratio) to square tiles, at most one per panel. */
function tileCols(M: i32, N: i32, nchunks: i32): i32 {
  const maxNb = max(1, (N + NR - 1) / NR);
  const want = Math.sqrt(<f64>nchunks * <f64>N / <f64>max(M, 1));
  let best = 1;
  let bestErr = Infinity;
  for (let d = 1; d <= min(nchunks, maxNb); d++) {
    if (nchunks % d != 0) continue;
    const err = Math.abs(Math.log(<f64>d / want));
    if (err < bestErr) { best = d; bestErr = err; }
  }
  return best;
}

// @ts-ignore: decorator
@inline function kernel(ap: usize, bp: usize, kc: i32, c: usize, ldcb: usize, loadC: bool, bias: usize): void {
  if (ASC_FEATURE_RELAXED_SIMD) kernel3x12(ap, bp, kc, c, ldcb, loadC, bias);
  else kernel2x16(ap, bp, kc, c, ldcb, loadC, bias);
}

/**
 * Phase 2: tile `chunk` of C (M, N) = [C if accumulate] + [bias (N)] + A·B from the packed panels, K in blocks of KC
 * (the same order of additions as the one-call GEMM's packed path).
 */
export function gemm_tiles(pa: usize, pb: usize, c: usize, bias: usize, M: i32, N: i32, K: i32, accumulate: i32,
  scratch: usize, scratchStride: i32, chunk: i32, nchunks: i32): void {
  const nb = tileCols(M, N, nchunks);
  const mb = min(nchunks / nb, (M + MR - 1) / MR);
  if (chunk >= mb * nb) return;
  const bi = chunk / nb, bj = chunk % nb;
  const m0 = rangeLo(M, MR, bi, mb), m1 = rangeLo(M, MR, bi + 1, mb);
  const n0 = rangeLo(N, NR, bj, nb), n1 = rangeLo(N, NR, bj + 1, nb);
  if (m1 <= m0 || n1 <= n0) return;
  const sc = scratch + slot() * <usize>scratchStride;
  const tile = sc + OFF_TILE;
  const ldcb = <usize>N << 2;
  for (let pc = 0; pc < K; pc += KC) {
    const kc = min(KC, K - pc);
    const first = pc == 0;
    const loadC = !first || accumulate != 0;
    for (let ir = m0; ir < m1; ir += MR) {
      const mr = min(MR, M - ir);
      const apan = pa + (<usize>(ir / MR) * <usize>K + <usize>pc) * <usize>(MR * 4);
      for (let jr = n0; jr < n1; jr += NR) {
        const nr = min(NR, N - jr);
        const bpan = pb + (<usize>(jr / NR) * <usize>K + <usize>pc) * <usize>(NR * 4);
        let bb: usize = 0;
        if (first && bias) {
          if (nr == NR) bb = bias + (<usize>jr << 2);
          else {
            bb = sc + OFF_BIAS;
            for (let j = 0; j < NR; j++) store<f32>(bb + (<usize>j << 2), j < nr ? load<f32>(bias + (<usize>(jr + j) << 2)) : 0);
          }
        }
        const cp = c + <usize>ir * ldcb + (<usize>jr << 2);
        if (mr == MR && nr == NR) {
          kernel(apan, bpan, kc, cp, ldcb, loadC, bb);
        } else {
          if (loadC) {
            for (let i = 0; i < MR; i++) for (let j = 0; j < NR; j++) {
              store<f32>(tile + <usize>(i * NR + j) * 4, i < mr && j < nr ? load<f32>(cp + <usize>i * ldcb + (<usize>j << 2)) : 0);
            }
          }
          kernel(apan, bpan, kc, tile, <usize>NR << 2, loadC, bb);
          for (let i = 0; i < mr; i++) for (let j = 0; j < nr; j++) {
            store<f32>(cp + <usize>i * ldcb + (<usize>j << 2), load<f32>(tile + <usize>(i * NR + j) * 4));
          }
        }
      }
    }
  }
}
