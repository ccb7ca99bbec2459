// The segmented two-phase GEMM on the wasm runtime (assembly/gemm_packed.ts): one matmul, the experts of a grouped
// matmul or of its weight gradient as segments; every panel packed once, then output tiles, both phases in chunks.
import type { WasmRuntime } from './runtime.js';

/** C (M, N) (row stride N) = op(A) (M, R) · op(B) (R, N); pointers are byte offsets, strides in elements. */
export interface GemmSegment {
  a: number;
  lda: number;
  transA: boolean;
  b: number;
  ldb: number;
  transB: boolean;
  c: number;
  M: number;
  R: number;
}

const SEG_WORDS = 10;
const PANEL_WORDS = 3;

/**
 * Runs every segment (C = [C if accumulate] + [bias (N)] + A·B; a segment with R = 0 gets [C] + [bias] or zeros) as
 * `nchunks` chunks of packing and then `nchunks` chunks of tiles.
 */
export function segmentedGemm(rt: WasmRuntime, segs: readonly GemmSegment[], N: number, nchunks: number, opts: { bias?: number; accumulate?: boolean } = {}): void {
  const MR = rt.call1('gemmMR', []), NR = rt.call1('gemmNR', []);
  const nbp = Math.ceil(N / NR);
  const panels: number[] = [];
  const bsegs: number[] = [];
  const bOff: number[] = [];
  let aBytes = 0;
  let bBytes = 0;
  segs.forEach((s, i) => {
    for (let r0 = 0; r0 < s.M; r0 += MR) {
      panels.push(i, r0, aBytes);
      aBytes += MR * s.R * 4;
    }
    bOff.push(bBytes);
    if (s.M > 0 && s.R > 0) {
      bsegs.push(i);
      bBytes += nbp * NR * s.R * 4;
    }
  });
  if (aBytes + bBytes >= 2 ** 32) throw new RangeError(`segmentedGemm: packed operands of ${aBytes + bBytes} bytes exceed wasm memory`);
  const P = panels.length / PANEL_WORDS;
  const pad = (n: number): number => Math.ceil(n / 64) * 64;
  const segBytes = pad(segs.length * SEG_WORDS * 4), panelBytes = pad(panels.length * 4), bsegBytes = pad(bsegs.length * 4);
  const base = rt.alloc(Math.max(64, segBytes + panelBytes + bsegBytes + pad(aBytes) + bBytes));
  try {
    const segPtr = base, panelPtr = base + segBytes, bsegPtr = panelPtr + panelBytes, pa = bsegPtr + bsegBytes, pb = pa + pad(aBytes);
    const st = new Uint32Array(segs.length * SEG_WORDS);
    segs.forEach((s, i) => st.set([s.a, s.lda, s.transA ? 1 : 0, s.b, s.ldb, s.transB ? 1 : 0, s.c, s.M, s.R, bOff[i]!], i * SEG_WORDS));
    new Uint32Array(rt.memory.buffer, segPtr, st.length).set(st);
    new Uint32Array(rt.memory.buffer, panelPtr, panels.length).set(panels);
    new Uint32Array(rt.memory.buffer, bsegPtr, bsegs.length).set(bsegs);
    rt.parallel('gemm_pack', [segPtr, panelPtr, P, bsegPtr, bsegs.length, N, pa, pb], nchunks);
    const s = rt.scratch();
    rt.parallel('gemm_tiles', [segPtr, panelPtr, P, N, pa, pb, opts.bias ?? 0, opts.accumulate ? 1 : 0, s.ptr, s.stride], nchunks);
  } finally {
    rt.free(base);
  }
}
