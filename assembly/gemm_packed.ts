// Two-phase parallel GEMM over segments (one matmul, the experts of a grouped matmul, or of its weight gradient):
// every operand panel packed once into shared memory (phase 1, chunked over panels), then tiles of the outputs
// computed from those panels (phase 2, chunked over a 2-D grid). Cutting the work into many chunks - so idle threads
// can take them - then repacks nothing, and a chunk computes the same numbers whichever thread runs it.
import { KC, MR, NR, OFF_BIAS, OFF_TILE, gridColumns, rangeLo, slot } from './common';
import { packA, packBPanel, tileKernel } from './gemm';

/**
 * Segment s: C_s (M_s, N) (row stride N) = op(A_s) (M_s, R_s) · op(B_s) (R_s, N), described by SEG_WORDS u32 at
 * segs + s·SEG_WORDS·4: a, lda, transA, b, ldb, transB, c, M, R, bOff (byte offset of its first packed B panel).
 * Row panel p (MR rows of one segment) is PANEL_WORDS u32 at panels + p·PANEL_WORDS·4: segment, first row, aOff.
 */
export const SEG_WORDS = 10;
export const PANEL_WORDS = 3;

export function gemmMR(): i32 { return MR; }
export function gemmNR(): i32 { return NR; }

// @ts-ignore: decorator
@inline function seg(segs: usize, s: u32, field: i32): u32 {
  return load<u32>(segs + ((<usize>s * SEG_WORDS + <usize>field) << 2));
}

// @ts-ignore: decorator
@inline function pan(panels: usize, p: i32, field: i32): u32 {
  return load<u32>(panels + ((<usize>p * PANEL_WORDS + <usize>field) << 2));
}

/**
 * Phase 1: packs the P row panels of A (each (R_s, MR)) and then, per segment in `bsegs` (S2 segment ids), its
 * ceil(N/NR) column panels of B (each (R_s, NR)); the P + S2·ceil(N/NR) panels are split into chunks.
 */
export function gemm_pack(segs: usize, panels: usize, P: i32, bsegs: usize, S2: i32, N: i32, pa: usize, pb: usize,
  chunk: i32, nchunks: i32): void {
  const nbp = (N + NR - 1) / NR;
  const total = P + S2 * nbp;
  const i0 = rangeLo(total, 1, chunk, nchunks), i1 = rangeLo(total, 1, chunk + 1, nchunks);
  for (let i = i0; i < i1; i++) {
    if (i < P) {
      const s = pan(panels, i, 0), r0 = <i32>pan(panels, i, 1);
      const a = <usize>seg(segs, s, 0), lda = <i32>seg(segs, s, 1), transA = seg(segs, s, 2) != 0;
      const M = <i32>seg(segs, s, 7), R = <i32>seg(segs, s, 8);
      const src = transA ? a + (<usize>r0 << 2) : a + <usize>r0 * (<usize>lda << 2);
      packA(src, lda, transA, R, min(MR, M - r0), pa + <usize>pan(panels, i, 2));
    } else {
      const k = i - P, s = load<u32>(bsegs + (<usize>(k / nbp) << 2)), j0 = (k % nbp) * NR;
      const b = <usize>seg(segs, s, 3), ldb = <i32>seg(segs, s, 4), transB = seg(segs, s, 5) != 0, R = <i32>seg(segs, s, 8);
      const src = transB ? b + <usize>j0 * (<usize>ldb << 2) : b + (<usize>j0 << 2);
      packBPanel(src, ldb, transB, R, min(NR, N - j0), pb + <usize>seg(segs, s, 9) + <usize>(k % nbp) * <usize>R * <usize>(NR * 4));
    }
  }
}

/** Column blocks of the tile grid (NR-aligned, square tiles in work). */
function tileCols(rows: i32, N: i32, nchunks: i32): i32 {
  return gridColumns(nchunks, Math.sqrt(<f64>nchunks * <f64>N / <f64>max(rows, 1)), max(1, (N + NR - 1) / NR));
}

/**
 * Phase 2: tile `chunk` of the grid over (P row panels) × (N columns in NR-aligned blocks): C = [C if accumulate] +
 * [bias (N)] + A·B for its panels and columns, R in blocks of KC; a segment with R = 0 gets [C] + [bias] (or zeros).
 */
export function gemm_tiles(segs: usize, panels: usize, P: i32, N: i32, pa: usize, pb: usize, bias: usize, accumulate: i32,
  scratch: usize, scratchStride: i32, chunk: i32, nchunks: i32): void {
  const nb = tileCols(P * MR, N, nchunks);
  const mb = min(nchunks / nb, P);
  if (chunk >= mb * nb) return;
  const bi = chunk / nb, bj = chunk % nb;
  const p0 = rangeLo(P, 1, bi, mb), p1 = rangeLo(P, 1, bi + 1, mb);
  const n0 = rangeLo(N, NR, bj, nb), n1 = rangeLo(N, NR, bj + 1, nb);
  if (p1 <= p0 || n1 <= n0) return;
  const sc = scratch + slot() * <usize>scratchStride;
  const tile = sc + OFF_TILE;
  const ldcb = <usize>N << 2;
  let maxR = 0;
  for (let p = p0; p < p1; p++) {
    const s = pan(panels, p, 0), R = <i32>seg(segs, s, 8);
    maxR = max(maxR, R);
    if (R > 0) continue;
    // nothing to multiply: the rows are [C] + [bias], or zeros
    const r0 = <i32>pan(panels, p, 1), mr = min(MR, <i32>seg(segs, s, 7) - r0);
    const c = <usize>seg(segs, s, 6) + <usize>r0 * ldcb;
    for (let i = 0; i < mr; i++) for (let j = n0; j < n1; j++) {
      const q = c + <usize>i * ldcb + (<usize>j << 2);
      store<f32>(q, (accumulate ? load<f32>(q) : 0) + (bias ? load<f32>(bias + (<usize>j << 2)) : 0));
    }
  }
  for (let pc = 0; pc < maxR; pc += KC) {
    const first = pc == 0;
    const loadC = !first || accumulate != 0;
    for (let p = p0; p < p1; p++) {
      const s = pan(panels, p, 0), R = <i32>seg(segs, s, 8);
      if (pc >= R) continue;
      const kc = min(KC, R - pc);
      const r0 = <i32>pan(panels, p, 1), mr = min(MR, <i32>seg(segs, s, 7) - r0);
      const apan = pa + <usize>pan(panels, p, 2) + <usize>pc * <usize>(MR * 4);
      const bseg = pb + <usize>seg(segs, s, 9);
      const crow = <usize>seg(segs, s, 6) + <usize>r0 * ldcb;
      for (let jr = n0; jr < n1; jr += NR) {
        const nr = min(NR, N - jr);
        const bpan = bseg + (<usize>(jr / NR) * <usize>R + <usize>pc) * <usize>(NR * 4);
        let bb: usize = 0;
        if (first && bias) {
          if (nr == NR) bb = bias + (<usize>jr << 2);
          else {
            bb = sc + OFF_BIAS;
            for (let j = 0; j < NR; j++) store<f32>(bb + (<usize>j << 2), j < nr ? load<f32>(bias + (<usize>(jr + j) << 2)) : 0);
          }
        }
        tileKernel(apan, bpan, kc, crow + (<usize>jr << 2), ldcb, mr, nr, loadC, bb, tile);
      }
    }
  }
}
