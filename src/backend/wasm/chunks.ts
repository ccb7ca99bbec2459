// How an op is cut into chunks for the worker pool: a function of the problem's size only, never of the thread count.
import { MAX_CHUNKS } from './worker.js';

/**
 * Most chunks an op is cut into: enough for 16 threads to balance when some run slower than others, few enough that a
 * chunk's fixed costs (a call, GEMM packing of its tile) stay small. Part of the numerics: chunk layouts fix how
 * partial sums are grouped, so changing it changes results in the last bits (not across thread counts).
 */
export const CHUNK_CAP = 64;

/** Chunks for `work` units when one chunk should get at least `minPerChunk` of them, at most `cap` (and CHUNK_CAP). */
export function chunksFor(work: number, minPerChunk: number, cap: number = CHUNK_CAP): number {
  return Math.max(1, Math.min(CHUNK_CAP, MAX_CHUNKS, Math.floor(cap), Math.floor(work / minPerChunk)));
}
