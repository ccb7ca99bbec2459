// Typed wrappers for the GEMM-family wasm kernels: validate arguments, pick a chunk count, dispatch.
import { chunksFor } from './chunks.js';
import { segmentedGemm, type GemmSegment } from './segmented.js';
import type { WasmRuntime } from './runtime.js';

/** Pointers are byte offsets into the runtime's memory; sizes and strides are in elements. */
export interface MatmulParams {
  a: number; // (M, K) row-major, or stored (K, M) when transA
  b: number; // (K, N) row-major, or stored (N, K) when transB
  c: number; // (M, N) row-major
  bias?: number; // (N), 0 or absent = none
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** C += op(A)·op(B) instead of C = ... */
  accumulate?: boolean;
  batch?: number;
  /** Element strides between batch items; 0 broadcasts the operand. Defaults: M·K, K·N, M·N. */
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /** Chunk count override (default: by problem size; never by thread count, so results do not depend on it). */
  chunks?: number;
}

export interface GroupedMatmulParams {
  x: number; // (T, K), rows sorted by expert
  w: number; // (E, K, N), or (E, N, K) when transW
  y: number; // (T, N)
  offsets: number; // Int32 (E + 1): offsets[0] = 0, offsets[E] = T, non-decreasing
  E: number;
  K: number;
  N: number;
  transW?: boolean;
  /** Chunk count override (default: by problem size). */
  chunks?: number;
}

export interface GroupedMatmulWeightGradParams {
  x: number; // (T, K)
  dy: number; // (T, N)
  dw: number; // (E, K, N)
  offsets: number; // Int32 (E + 1)
  E: number;
  K: number;
  N: number;
  /** Chunk count override (default: by problem size). */
  chunks?: number;
}

/** Quantised weight formats: int8 / int4 with f16 group scales, plain f16 / bf16 bits, MXFP4 (E8M0 byte scales per 32
 *  values) or FP8 E4M3 (f32 group scales). */
export type QFormat = 'int8' | 'int4' | 'f16' | 'bf16' | 'mxfp4' | 'fp8';
const FORMAT_CODE: Record<QFormat, number> = { int8: 0, int4: 1, f16: 2, bf16: 3, mxfp4: 4, fp8: 5 };
/** Formats whose data packs two values per byte. */
const PACKED_FORMATS: ReadonlySet<QFormat> = new Set(['int4', 'mxfp4']);

export interface QMatmulParams {
  x: number; // (M, K) f32
  w: number; // int8: Int8 (N, K); int4 / mxfp4: Uint8 (N, K/2) low nibble first; fp8: Uint8 (N, K); f16/bf16: Uint16 (N, K)
  scales?: number; // (N, K/groupSize): f16 bits for int8/int4, E8M0 bytes for mxfp4, f32 for fp8
  y: number; // (M, N) f32
  M: number;
  N: number;
  K: number;
  format: QFormat;
  /** Elements per scale group for the scaled formats (default 32, always 32 for mxfp4; must divide K; even for int4). */
  groupSize?: number;
  /** Chunk count override (default: by problem size). */
  chunks?: number;
}

/** Rows of A up to which A·Bᵀ runs as row-times-rows dot products (assembly/gemm.ts SMALL_M), not packed panels. */
const SMALL_M = 8;

/** Flops (or equivalent work) below which dispatching to workers costs more than it saves. */
const MIN_PARALLEL_WORK = 1 << 18;
/** Flops a chunk of a larger product gets at least (claiming a chunk and its tile edges stay a few % of its work). */
const MIN_CHUNK_WORK = 1 << 22;

function pickChunks(work: number, requested: number | undefined): number {
  if (requested !== undefined) return chunksFor(requested, 1);
  return work < MIN_PARALLEL_WORK ? 1 : Math.max(2, chunksFor(work, MIN_CHUNK_WORK));
}

function checkDims(op: string, dims: Record<string, number>): void {
  for (const [k, v] of Object.entries(dims)) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${op}: ${k} must be a non-negative integer, got ${v}`);
  }
}

/** C (M, N) = op(A)·op(B) [+ bias] [+ C], over `batch` problems. */
export function matmul(rt: WasmRuntime, p: MatmulParams): void {
  const batch = p.batch ?? 1;
  checkDims('matmul', { M: p.M, N: p.N, K: p.K, batch });
  if (p.M === 0 || p.N === 0 || batch === 0) return;
  const sA = p.strideA ?? p.M * p.K, sB = p.strideB ?? p.K * p.N, sC = p.strideC ?? p.M * p.N;
  const nc = pickChunks(2 * p.M * p.N * Math.max(p.K, 1) * batch, p.chunks);
  const s = rt.scratch();
  // products that take the packed path (not a GEMV, not a thin product; the same test as gemm() in assembly/gemm.ts),
  // cut into chunks: pack both operands once, then compute tiles from the shared panels
  if (nc > 1 && batch === 1 && p.M > 1 && p.K > 0 && !(!p.transA && !p.transB && (p.K <= 16 || p.N <= 8)) && !(p.transB && !p.transA && p.M <= SMALL_M)) {
    segmentedGemm(rt, [{ a: p.a, lda: p.transA ? p.M : p.K, transA: !!p.transA, b: p.b, ldb: p.transB ? p.K : p.N, transB: !!p.transB, c: p.c, M: p.M, R: p.K }],
      p.N, nc, { bias: p.bias ?? 0, accumulate: !!p.accumulate });
    return;
  }
  rt.parallel('matmul', [p.a, p.b, p.c, p.bias ?? 0, p.M, p.N, p.K, p.transA ? 1 : 0, p.transB ? 1 : 0,
    p.accumulate ? 1 : 0, batch, sA, sB, sC, s.ptr, s.stride], nc);
}

/** y rows of expert e = x rows of expert e · W_e, for every expert segment. */
export function groupedMatmul(rt: WasmRuntime, p: GroupedMatmulParams): void {
  checkDims('groupedMatmul', { E: p.E, K: p.K, N: p.N });
  if (p.E === 0 || p.N === 0) return;
  const T = rt.i32(p.offsets, p.E + 1)[p.E]!;
  const nc = pickChunks(2 * T * p.N * Math.max(p.K, 1), p.chunks);
  if (nc > 1 && p.K > 0) {
    // cut into chunks: every expert's weight and every row panel packed once, then tiles
    const off = rt.i32(p.offsets, p.E + 1);
    const segs: GemmSegment[] = [];
    for (let e = 0; e < p.E; e++) {
      const r0 = off[e]!, r1 = off[e + 1]!;
      if (r1 > r0) segs.push({ a: p.x + r0 * p.K * 4, lda: p.K, transA: false, b: p.w + e * p.K * p.N * 4, ldb: p.transW ? p.K : p.N, transB: !!p.transW, c: p.y + r0 * p.N * 4, M: r1 - r0, R: p.K });
    }
    segmentedGemm(rt, segs, p.N, nc);
    return;
  }
  const s = rt.scratch();
  rt.parallel('groupedMatmul', [p.x, p.w, p.y, p.offsets, p.E, p.K, p.N, p.transW ? 1 : 0, s.ptr, s.stride], nc);
}

/** dW_e (K, N) = x_eᵀ · dy_e for every expert segment (zeros for empty segments). */
export function groupedMatmulWeightGrad(rt: WasmRuntime, p: GroupedMatmulWeightGradParams): void {
  checkDims('groupedMatmulWeightGrad', { E: p.E, K: p.K, N: p.N });
  if (p.E === 0 || p.K === 0 || p.N === 0) return;
  const T = rt.i32(p.offsets, p.E + 1)[p.E]!;
  const nc = pickChunks(2 * Math.max(T, 1) * p.N * p.K, p.chunks);
  if (nc > 1) {
    // cut into chunks: dW_e (K, N) = x_eᵀ · dy_e per expert, every panel packed once, then tiles (empty experts: zeros)
    const off = rt.i32(p.offsets, p.E + 1);
    const segs: GemmSegment[] = [];
    for (let e = 0; e < p.E; e++) {
      const r0 = off[e]!, r1 = off[e + 1]!;
      segs.push({ a: p.x + r0 * p.K * 4, lda: p.K, transA: true, b: p.dy + r0 * p.N * 4, ldb: p.N, transB: false, c: p.dw + e * p.K * p.N * 4, M: p.K, R: Math.max(0, r1 - r0) });
    }
    segmentedGemm(rt, segs, p.N, nc);
    return;
  }
  const s = rt.scratch();
  rt.parallel('groupedMatmulWeightGrad', [p.x, p.dy, p.dw, p.offsets, p.E, p.K, p.N, s.ptr, s.stride], nc);
}

/** y (M, N) = x (M, K) · Wᵀ with W (N, K) dequantised on the fly. */
export function qmatmul(rt: WasmRuntime, p: QMatmulParams): void {
  checkDims('qmatmul', { M: p.M, N: p.N, K: p.K });
  const code = FORMAT_CODE[p.format];
  if (code === undefined) throw new RangeError(`qmatmul: unknown format ${String(p.format)}`);
  const scaled = p.format !== 'f16' && p.format !== 'bf16';
  const gs = scaled ? (p.groupSize ?? 32) : 1;
  if (scaled) {
    if (!Number.isInteger(gs) || gs <= 0 || p.K % gs !== 0) throw new RangeError(`qmatmul: groupSize ${gs} must divide K = ${p.K}`);
    if (p.format === 'mxfp4' && gs !== 32) throw new RangeError(`qmatmul: mxfp4 has one scale per 32 values, got groupSize ${gs}`);
    if (PACKED_FORMATS.has(p.format) && (gs % 2 !== 0 || p.K % 2 !== 0)) throw new RangeError(`qmatmul: ${p.format} needs an even groupSize and K (got ${gs}, ${p.K})`);
    if (!p.scales) throw new RangeError(`qmatmul: ${p.format} needs scales`);
  }
  if (p.M === 0 || p.N === 0) return;
  const nc = pickChunks(2 * p.M * p.N * Math.max(p.K, 1), p.chunks);
  const s = rt.scratch();
  rt.parallel('qmatmul', [p.x, p.w, p.scales ?? 0, p.y, p.M, p.N, p.K, code, gs, s.ptr, s.stride], nc);
}
