// Shared constants (blocking sizes, scratch layout) and SIMD helpers for the wasm kernels.

/** Micro-kernel height (rows of A per register tile): 3x12 with relaxed FMA, 2x16 with plain mul+add. */
export const MR: i32 = ASC_FEATURE_RELAXED_SIMD ? 3 : 2;
/** Micro-kernel width (columns of B per register tile). */
export const NR: i32 = ASC_FEATURE_RELAXED_SIMD ? 12 : 16;
/** K block: a packed B block is (KC, NC), a packed A block is (MC, KC). */
export const KC: i32 = 384;
export const MC: i32 = 144;
export const NC: i32 = 1152;

// Per-thread scratch layout, byte offsets from the thread's scratch pointer.
export const OFF_BP: usize = 0; // packed B: (ceil(NC/NR), KC, NR)
export const OFF_AP: usize = OFF_BP + <usize>(KC * NC * 4); // packed A: (ceil(MC/MR), KC, MR)
export const OFF_TMP: usize = OFF_AP + <usize>(MC * KC * 4); // dequant rows: (NR, KC)
export const OFF_TILE: usize = OFF_TMP + <usize>(16 * KC * 4); // edge tile: (MR, NR)
export const OFF_BIAS: usize = OFF_TILE + 256; // padded bias: (NR)
export const SCRATCH_BYTES: i32 = <i32>(OFF_BIAS + 64);

/** c + a*b, fused (relaxed) when the build has relaxed SIMD. */
// @ts-ignore: decorator
@inline export function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(f32x4.mul(a, b), c);
  }
}

/** Horizontal sum of an f32x4. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  const t = f32x4.add(s, i32x4.shuffle(s, s, 1, 0, 3, 2));
  return f32x4.extract_lane(t, 0);
}

/**
 * This instance's thread slot (0 = the main thread, w = worker w), set once by setSlot when a worker starts. Work is
 * split into chunks by (chunk, nchunks) arguments whatever thread runs them; per-thread scratch is indexed by slot.
 */
let threadSlot: i32 = 0;
export function setSlot(s: i32): void { threadSlot = s; }
// @ts-ignore: decorator
@inline export function slot(): usize { return <usize>threadSlot; }

/**
 * Column blocks of a chunk grid: the divisor of nchunks at most maxNb nearest (in ratio) to `want` (the count that
 * makes tiles square in work), so every chunk is a tile.
 */
export function gridColumns(nchunks: i32, want: f64, maxNb: i32): i32 {
  let best = 1;
  let bestErr = Infinity;
  for (let d = 1; d <= min(nchunks, maxNb); d++) {
    if (nchunks % d != 0) continue;
    const err = Math.abs(Math.log(<f64>d / want));
    if (err < bestErr) { best = d; bestErr = err; }
  }
  return best;
}

/** Balanced range [lo, hi) of `chunks` chunks of `q` elements for thread tid, clipped to n. */
// @ts-ignore: decorator
@inline export function rangeLo(n: i32, q: i32, tid: i32, nthreads: i32): i32 {
  const chunks = (n + q - 1) / q;
  return min(n, <i32>((<i64>chunks * tid) / nthreads) * q);
}
