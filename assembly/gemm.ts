// SIMD128 GEMM core: A/B panel packing, register-blocked micro-kernel dispatch, cache blocking, GEMV paths.
import { fma, hsum, MR, NR, KC, MC, NC, OFF_BP, OFF_AP, OFF_TILE, OFF_BIAS } from './common';
import { kernel3x12, kernel2x16 } from './microkernel';

/**
 * Packs a (kc, w<=NR) slice of B into one panel (kc, NR), zero-padding columns >= w.
 * src points at element (k0, n0); non-transposed B is (K, N) with row stride ldb,
 * transposed B is stored (N, K) with row stride ldb.
 */
export function packBPanel(src: usize, ldb: i32, transB: bool, kc: i32, w: i32, dst: usize): void {
  const ls = <usize>ldb << 2;
  const ps = <usize>NR << 2;
  if (!transB) {
    if (w == NR) {
      for (let k = 0; k < kc; k++) {
        for (let v = 0; v < NR; v += 4) v128.store(dst + (<usize>v << 2), v128.load(src + (<usize>v << 2)));
        src += ls; dst += ps;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        for (let j = 0; j < NR; j++) store<f32>(dst + (<usize>j << 2), j < w ? load<f32>(src + (<usize>j << 2)) : 0);
        src += ls; dst += ps;
      }
    }
    return;
  }
  if (w == NR) {
    const k4 = kc & ~3;
    for (let g = 0; g < NR; g += 4) {
      const r0 = src + <usize>g * ls, r1 = r0 + ls, r2 = r1 + ls, r3 = r2 + ls;
      let d = dst + (<usize>g << 2);
      for (let k = 0; k < k4; k += 4) {
        const o = <usize>k << 2;
        transpose4(v128.load(r0 + o), v128.load(r1 + o), v128.load(r2 + o), v128.load(r3 + o), d, ps);
        d += ps << 2;
      }
    }
    for (let k = k4; k < kc; k++) {
      for (let j = 0; j < NR; j++) store<f32>(dst + <usize>k * ps + (<usize>j << 2), load<f32>(src + <usize>j * ls + (<usize>k << 2)));
    }
  } else {
    for (let k = 0; k < kc; k++) {
      for (let j = 0; j < NR; j++) {
        store<f32>(dst + (<usize>j << 2), j < w ? load<f32>(src + <usize>j * ls + (<usize>k << 2)) : 0);
      }
      dst += ps;
    }
  }
}

/** Stores the 4x4 transpose of rows r0..r3 as four v128 at dst + i*ps. */
// @ts-ignore: decorator
@inline function transpose4(r0: v128, r1: v128, r2: v128, r3: v128, dst: usize, ps: usize): void {
  const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5);
  const t1 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const t2 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(dst, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
  v128.store(dst + ps, i32x4.shuffle(t0, t1, 2, 3, 6, 7));
  v128.store(dst + 2 * ps, i32x4.shuffle(t2, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * ps, i32x4.shuffle(t2, t3, 2, 3, 6, 7));
}

/** Packs B (kc, nc) into panels: dst (ceil(nc/NR), kc, NR). */
export function packB(src: usize, ldb: i32, transB: bool, kc: i32, nc: i32, dst: usize): void {
  for (let j = 0; j < nc; j += NR) {
    const off = transB ? <usize>j * <usize>ldb : <usize>j;
    packBPanel(src + (off << 2), ldb, transB, kc, min(NR, nc - j), dst + <usize>(j * kc) * 4);
  }
}

/**
 * Packs A (mc, kc) into panels dst (ceil(mc/MR), kc, MR), zero-padding rows >= mc.
 * src points at element (m0, k0); A is (M, K) row stride lda, or stored (K, M) when transA.
 */
export function packA(src: usize, lda: i32, transA: bool, kc: i32, mc: i32, dst: usize): void {
  const ls = <usize>lda << 2;
  const ps = <usize>MR << 2;
  for (let i = 0; i < mc; i += MR) {
    const h = min(MR, mc - i);
    if (!transA) {
      const base = src + <usize>i * ls;
      for (let r = 0; r < MR; r++) {
        let d = dst + (<usize>r << 2);
        if (r < h) {
          const p = base + <usize>r * ls;
          for (let k = 0; k < kc; k++) { store<f32>(d, load<f32>(p + (<usize>k << 2))); d += ps; }
        } else {
          for (let k = 0; k < kc; k++) { store<f32>(d, 0); d += ps; }
        }
      }
    } else {
      let s = src + (<usize>i << 2);
      let d = dst;
      for (let k = 0; k < kc; k++) {
        for (let r = 0; r < MR; r++) store<f32>(d + (<usize>r << 2), r < h ? load<f32>(s + (<usize>r << 2)) : 0);
        s += ls; d += ps;
      }
    }
    dst += <usize>(MR * kc) << 2;
  }
}

/** Dispatches to the build's micro-kernel. */
// @ts-ignore: decorator
@inline function kernel(ap: usize, bp: usize, kc: i32, c: usize, ldcb: usize, loadC: bool, bias: usize): void {
  if (ASC_FEATURE_RELAXED_SIMD) kernel3x12(ap, bp, kc, c, ldcb, loadC, bias);
  else kernel2x16(ap, bp, kc, c, ldcb, loadC, bias);
}

/**
 * One (mr <= MR, nr <= NR) block of C at cp (row stride ldcb bytes) = [C if loadC] + [bias] + A panel · B panel over
 * kc; a partial block goes through the (MR, NR) `tile` buffer.
 */
export function tileKernel(apan: usize, bpan: usize, kc: i32, cp: usize, ldcb: usize, mr: i32, nr: i32, loadC: bool, bb: usize, tile: usize): void {
  if (mr == MR && nr == NR) {
    kernel(apan, bpan, kc, cp, ldcb, loadC, bb);
    return;
  }
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

/**
 * Multiplies packed A panels of an (M, kc) slice of A (packed here, MC rows at a time) by a packed
 * B block bp (ceil(nc/NR), kc, NR) into C (M, nc) (row stride ldc): C = [C if loadC] + [bias] + A·B.
 */
export function macroKernel(a: usize, lda: i32, transA: bool, kc: i32, M: i32, bp: usize, nc: i32,
  c: usize, ldc: i32, loadC: bool, bias: usize, scratch: usize): void {
  const apk = scratch + OFF_AP;
  const tile = scratch + OFF_TILE;
  const ldcb = <usize>ldc << 2;
  for (let ic = 0; ic < M; ic += MC) {
    const mc = min(MC, M - ic);
    packA(transA ? a + (<usize>ic << 2) : a + <usize>ic * (<usize>lda << 2), lda, transA, kc, mc, apk);
    for (let ir = 0; ir < mc; ir += MR) {
      const mr = min(MR, mc - ir);
      const apan = apk + <usize>(ir * kc) * 4;
      for (let jr = 0; jr < nc; jr += NR) {
      const nr = min(NR, nc - jr);
      const bpan = bp + <usize>(jr * kc) * 4;
      let bb: usize = 0;
      if (bias) {
        if (nr == NR) bb = bias + (<usize>jr << 2);
        else {
          bb = scratch + OFF_BIAS;
          for (let j = 0; j < NR; j++) store<f32>(bb + (<usize>j << 2), j < nr ? load<f32>(bias + (<usize>(jr + j) << 2)) : 0);
        }
      }
        tileKernel(apan, bpan, kc, c + <usize>(ic + ir) * ldcb + (<usize>jr << 2), ldcb, mr, nr, loadC, bb, tile);
      }
    }
  }
}

/** C (M, N) = [C if accumulate] + [bias (N)]: the K = 0 case and GEMV initialisation. */
export function initC(c: usize, ldc: i32, bias: usize, M: i32, N: i32, accumulate: bool): void {
  for (let i = 0; i < M; i++) {
    const row = c + <usize>i * (<usize>ldc << 2);
    for (let j = 0; j < N; j++) {
      const p = row + (<usize>j << 2);
      let v: f32 = accumulate ? load<f32>(p) : 0;
      if (bias) v += load<f32>(bias + (<usize>j << 2));
      store<f32>(p, v);
    }
  }
}

/** y (N) += x (K) · B (K, N), B row stride ldb; memory-bound streaming over rows of B. */
export function gemvN(x: usize, b: usize, ldb: i32, y: usize, N: i32, K: i32): void {
  const ls = <usize>ldb << 2;
  const n4 = N & ~3;
  let k = 0;
  // Eight rows of B per pass over y: two independent accumulation chains, one y load/store per 8 FMAs.
  for (; k + 8 <= K; k += 8) {
    const xo = x + (<usize>k << 2);
    const x0 = v128.load32_splat(xo), x1 = v128.load32_splat(xo, 4), x2 = v128.load32_splat(xo, 8), x3 = v128.load32_splat(xo, 12);
    const x4 = v128.load32_splat(xo, 16), x5 = v128.load32_splat(xo, 20), x6 = v128.load32_splat(xo, 24), x7 = v128.load32_splat(xo, 28);
    const b0 = b + <usize>k * ls;
    let n = 0;
    for (; n < n4; n += 4) {
      const o = <usize>n << 2;
      let p = b0 + o;
      let v = fma(x0, v128.load(p), v128.load(y + o)); p += ls;
      let w = f32x4.mul(x1, v128.load(p)); p += ls;
      v = fma(x2, v128.load(p), v); p += ls;
      w = fma(x3, v128.load(p), w); p += ls;
      v = fma(x4, v128.load(p), v); p += ls;
      w = fma(x5, v128.load(p), w); p += ls;
      v = fma(x6, v128.load(p), v); p += ls;
      w = fma(x7, v128.load(p), w);
      v128.store(y + o, f32x4.add(v, w));
    }
    for (; n < N; n++) {
      const o = <usize>n << 2;
      let p = b0 + o;
      let s = load<f32>(y + o);
      for (let r = 0; r < 8; r++) { s += load<f32>(xo + (<usize>r << 2)) * load<f32>(p); p += ls; }
      store<f32>(y + o, s);
    }
  }
  for (; k < K; k++) {
    const xs = load<f32>(x + (<usize>k << 2));
    const xv = f32x4.splat(xs);
    const br = b + <usize>k * ls;
    let n = 0;
    for (; n < n4; n += 4) {
      const o = <usize>n << 2;
      v128.store(y + o, fma(xv, v128.load(br + o), v128.load(y + o)));
    }
    for (; n < N; n++) store<f32>(y + (<usize>n << 2), load<f32>(y + (<usize>n << 2)) + xs * load<f32>(br + (<usize>n << 2)));
  }
}

/** dot(x (K), r (K)) with SIMD, two accumulators. */
export function dot(x: usize, r: usize, K: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let k = 0;
  for (; k + 8 <= K; k += 8) {
    const o = <usize>k << 2;
    a0 = fma(v128.load(x + o), v128.load(r + o), a0);
    a1 = fma(v128.load(x + o, 16), v128.load(r + o, 16), a1);
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; k < K; k++) s += load<f32>(x + (<usize>k << 2)) * load<f32>(r + (<usize>k << 2));
  return s;
}

/** y (N) += x (K) · Bᵀ, B stored (N, K) with row stride ldb: four rows of B per pass over x. */
function gemvT(x: usize, b: usize, ldb: i32, y: usize, N: i32, K: i32): void {
  const ls = <usize>ldb << 2;
  let n = 0;
  for (; n + 4 <= N; n += 4) {
    const r0 = b + <usize>n * ls, r1 = r0 + ls, r2 = r1 + ls, r3 = r2 + ls;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0);
    let k = 0;
    for (; k + 8 <= K; k += 8) {
      const o = <usize>k << 2;
      const xv = v128.load(x + o), xw = v128.load(x + o, 16);
      a0 = fma(v128.load(r0 + o), xv, a0); e0 = fma(v128.load(r0 + o, 16), xw, e0);
      a1 = fma(v128.load(r1 + o), xv, a1); e1 = fma(v128.load(r1 + o, 16), xw, e1);
      a2 = fma(v128.load(r2 + o), xv, a2); e2 = fma(v128.load(r2 + o, 16), xw, e2);
      a3 = fma(v128.load(r3 + o), xv, a3); e3 = fma(v128.load(r3 + o, 16), xw, e3);
    }
    let s0 = hsum(f32x4.add(a0, e0)), s1 = hsum(f32x4.add(a1, e1)), s2 = hsum(f32x4.add(a2, e2)), s3 = hsum(f32x4.add(a3, e3));
    for (; k < K; k++) {
      const o = <usize>k << 2;
      const xs = load<f32>(x + o);
      s0 += xs * load<f32>(r0 + o); s1 += xs * load<f32>(r1 + o); s2 += xs * load<f32>(r2 + o); s3 += xs * load<f32>(r3 + o);
    }
    const yo = y + (<usize>n << 2);
    store<f32>(yo, load<f32>(yo) + s0); store<f32>(yo, load<f32>(yo, 4) + s1, 4);
    store<f32>(yo, load<f32>(yo, 8) + s2, 8); store<f32>(yo, load<f32>(yo, 12) + s3, 12);
  }
  for (; n < N; n++) {
    const yo = y + (<usize>n << 2);
    store<f32>(yo, load<f32>(yo) + dot(x, b + <usize>n * ls, K));
  }
}

/** Rows of A up to which C = A·Bᵀ runs as gemmSmallT (decode batches) rather than through packed panels. */
export const SMALL_M: i32 = 8;

/**
 * C (M, N) += A (M, K) · Bᵀ, B stored (N, K), for small M (decode batches): four rows of A per pass over each row of
 * B, so B is read M/4 times instead of M. Every output is summed exactly as gemvT sums it (two accumulators over
 * alternating 4-wide steps of K, their sum, then the tail), so a row gets the same bits whatever else is in the batch.
 */
function gemmSmallT(a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, M: i32, N: i32, K: i32): void {
  const ls = <usize>ldb << 2, la = <usize>lda << 2, lc = <usize>ldc << 2;
  let m = 0;
  for (; m + 4 <= M; m += 4) {
    const x0 = a + <usize>m * la, x1 = x0 + la, x2 = x1 + la, x3 = x2 + la;
    const c0 = c + <usize>m * lc, c1 = c0 + lc, c2 = c1 + lc, c3 = c2 + lc;
    for (let n = 0; n < N; n++) {
      const r = b + <usize>n * ls;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0);
      let k = 0;
      for (; k + 8 <= K; k += 8) {
        const o = <usize>k << 2;
        const bv = v128.load(r + o), bw = v128.load(r + o, 16);
        a0 = fma(bv, v128.load(x0 + o), a0); e0 = fma(bw, v128.load(x0 + o, 16), e0);
        a1 = fma(bv, v128.load(x1 + o), a1); e1 = fma(bw, v128.load(x1 + o, 16), e1);
        a2 = fma(bv, v128.load(x2 + o), a2); e2 = fma(bw, v128.load(x2 + o, 16), e2);
        a3 = fma(bv, v128.load(x3 + o), a3); e3 = fma(bw, v128.load(x3 + o, 16), e3);
      }
      let s0 = hsum(f32x4.add(a0, e0)), s1 = hsum(f32x4.add(a1, e1)), s2 = hsum(f32x4.add(a2, e2)), s3 = hsum(f32x4.add(a3, e3));
      for (; k < K; k++) {
        const o = <usize>k << 2;
        const bs = load<f32>(r + o);
        s0 += load<f32>(x0 + o) * bs; s1 += load<f32>(x1 + o) * bs; s2 += load<f32>(x2 + o) * bs; s3 += load<f32>(x3 + o) * bs;
      }
      const o = <usize>n << 2;
      store<f32>(c0 + o, load<f32>(c0 + o) + s0); store<f32>(c1 + o, load<f32>(c1 + o) + s1);
      store<f32>(c2 + o, load<f32>(c2 + o) + s2); store<f32>(c3 + o, load<f32>(c3 + o) + s3);
    }
  }
  for (; m < M; m++) gemvT(a + <usize>m * la, b, ldb, c + <usize>m * lc, N, K);
}

/**
 * General single-thread GEMM on a sub-problem: C (M, N) (row stride ldc) = [C] + [bias (N)] + op(A)·op(B).
 * A (M, K) row stride lda, or stored (K, M) when transA; B (K, N) row stride ldb, or stored (N, K) when transB.
 */
export function gemm(a: usize, lda: i32, transA: bool, b: usize, ldb: i32, transB: bool,
  c: usize, ldc: i32, bias: usize, M: i32, N: i32, K: i32, accumulate: bool, scratch: usize): void {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) { initC(c, ldc, bias, M, N, accumulate); return; }
  if (M == 1 && (!transA || lda == 1)) {
    initC(c, ldc, bias, 1, N, accumulate);
    if (transB) gemvT(a, b, ldb, c, N, K);
    else gemvN(a, b, ldb, c, N, K);
    return;
  }
  if (M <= SMALL_M && transB && !transA) {
    initC(c, ldc, bias, M, N, accumulate);
    gemmSmallT(a, lda, b, ldb, c, ldc, M, N, K);
    return;
  }
  if (!transA && !transB && (K <= 16 || N <= 8)) {
    // thin products (low-rank factors): packing costs more than it saves; one row-times-matrix pass per row of A
    initC(c, ldc, bias, M, N, accumulate);
    for (let m = 0; m < M; m++) gemvN(a + <usize>m * (<usize>lda << 2), b, ldb, c + <usize>m * (<usize>ldc << 2), N, K);
    return;
  }
  const bp = scratch + OFF_BP;
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const bsrc = transB ? b + (<usize>jc * <usize>ldb + <usize>pc) * 4 : b + (<usize>pc * <usize>ldb + <usize>jc) * 4;
      packB(bsrc, ldb, transB, kc, nc, bp);
      const asrc = transA ? a + <usize>pc * (<usize>lda << 2) : a + (<usize>pc << 2);
      const first = pc == 0;
      macroKernel(asrc, lda, transA, kc, M, bp, nc, c + (<usize>jc << 2), ldc,
        !first || accumulate, first && bias ? bias + (<usize>jc << 2) : 0, scratch);
    }
  }
}
