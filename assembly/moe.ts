// Token-at-a-time fused MoE FFNs for decode-sized batches: every expert product of a token is a GEMV straight from the
// weights, with no gathers, no temporaries outside the thread's workspace and one call for the whole layer. Threads
// split the tokens (each writes its own output rows). Larger batches use the grouped-GEMM chain (src/backend/wasm/moe.ts).
import { fma, slot } from './common';
import { gemvN } from './gemm';
import { at, lo, sp, vexp } from './nn_math';
import { F16C, f16tof32, f16x4c } from './quant';

/**
 * Four halves (u16 zero-extended in i32 lanes) → four f32, exact: |h|·2^13 as f32 bits times 2^112 rebiases the
 * exponent (subnormal halves become an f32 subnormal times 2^112, also exact); inf/nan get the all-ones exponent
 * back; the sign moves to bit 31. Fewer lane ops than quant.ts's f16x4c, which matters in the decode GEMV where
 * every weight is widened once per token.
 */
// @ts-ignore: decorator
@inline function h2f(h: v128, cEm: v128, cMul: v128, cSpec: v128, cExp: v128): v128 {
  const em = v128.and(h, cEm);
  const v = v128.or(f32x4.mul(i32x4.shl(em, 13), cMul), v128.and(i32x4.gt_s(em, cSpec), cExp));
  return v128.or(v, i32x4.shl(v128.xor(h, em), 16));
}

/**
 * y (N) += x (K) · B (K, N) with B stored as f16 (row stride ldb elements), widened in registers: four rows of B
 * per pass over y, eight columns per step (one 16-byte load of halves per row). Reads half the bytes of gemvN.
 */
function gemvNh(x: usize, b: usize, ldb: i32, y: usize, N: i32, K: i32): void {
  const ls = <usize>ldb << 1;
  const n8 = N & ~7;
  const cEm = i32x4.splat(0x7fff), cMul = f32x4.splat(reinterpret<f32>(<u32>0x77800000)), cSpec = i32x4.splat(0x7bff), cExp = i32x4.splat(0x7f800000);
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const xo = x + (<usize>k << 2);
    const x0 = v128.load32_splat(xo), x1 = v128.load32_splat(xo, 4), x2 = v128.load32_splat(xo, 8), x3 = v128.load32_splat(xo, 12);
    const b0 = b + <usize>k * ls;
    let n = 0;
    for (; n < n8; n += 8) {
      const yo = y + (<usize>n << 2);
      let p = b0 + (<usize>n << 1);
      let h = v128.load(p);
      let lo = fma(x0, h2f(i32x4.extend_low_i16x8_u(h), cEm, cMul, cSpec, cExp), v128.load(yo));
      let hi = fma(x0, h2f(i32x4.extend_high_i16x8_u(h), cEm, cMul, cSpec, cExp), v128.load(yo, 16));
      p += ls; h = v128.load(p);
      lo = fma(x1, h2f(i32x4.extend_low_i16x8_u(h), cEm, cMul, cSpec, cExp), lo);
      hi = fma(x1, h2f(i32x4.extend_high_i16x8_u(h), cEm, cMul, cSpec, cExp), hi);
      p += ls; h = v128.load(p);
      lo = fma(x2, h2f(i32x4.extend_low_i16x8_u(h), cEm, cMul, cSpec, cExp), lo);
      hi = fma(x2, h2f(i32x4.extend_high_i16x8_u(h), cEm, cMul, cSpec, cExp), hi);
      p += ls; h = v128.load(p);
      lo = fma(x3, h2f(i32x4.extend_low_i16x8_u(h), cEm, cMul, cSpec, cExp), lo);
      hi = fma(x3, h2f(i32x4.extend_high_i16x8_u(h), cEm, cMul, cSpec, cExp), hi);
      v128.store(yo, lo);
      v128.store(yo, hi, 16);
    }
    for (; n < N; n++) {
      let p = b0 + (<usize>n << 1);
      let s = load<f32>(y + (<usize>n << 2));
      for (let r = 0; r < 4; r++) { s += load<f32>(xo + (<usize>r << 2)) * f16tof32(<u32>load<u16>(p)); p += ls; }
      store<f32>(y + (<usize>n << 2), s);
    }
  }
  for (; k < K; k++) {
    const xs = load<f32>(x + (<usize>k << 2));
    const br = b + <usize>k * ls;
    for (let n = 0; n < N; n++) store<f32>(y + (<usize>n << 2), load<f32>(y + (<usize>n << 2)) + xs * f16tof32(<u32>load<u16>(br + (<usize>n << 1))));
  }
}

/** Largest |x[i]| over K floats (NaN if any is NaN). */
function maxAbs(x: usize, K: i32): f32 {
  let m = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + (<usize>k << 2))));
  let r = f32x4.max(f32x4.max(sp(f32x4.extract_lane(m, 0)), sp(f32x4.extract_lane(m, 1))), f32x4.max(sp(f32x4.extract_lane(m, 2)), sp(f32x4.extract_lane(m, 3))));
  for (; k < K; k++) r = f32x4.max(r, sp(Mathf.abs(load<f32>(x + (<usize>k << 2)))));
  return f32x4.extract_lane(r, 0);
}

/**
 * gemvNh for finite halves and |x| < 2^15, with two lane ops per four weights instead of nine: the sign-extended
 * half shifted left by 13 and masked is the f32 h·2^-112 (subnormal halves land on f32 subnormals, also exact), and
 * the 2^112 moves onto x (exact: a power of two that cannot overflow below 2^15). Each product (h·2^-112)·(x·2^112)
 * is the same real number as h·x, so every fma rounds exactly as gemvNh's. Inf/NaN halves would come out finite,
 * hence the finiteness precondition (checked once per tensor by the caller).
 */
function gemvNhScaled(x: usize, b: usize, ldb: i32, y: usize, N: i32, K: i32): void {
  const ls = <usize>ldb << 1;
  const n8 = N & ~7;
  const cMask = i32x4.splat(<i32>0x8fffe000), c112 = f32x4.splat(reinterpret<f32>(<u32>0x77800000));
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const xo = x + (<usize>k << 2);
    const x0 = f32x4.mul(v128.load32_splat(xo), c112), x1 = f32x4.mul(v128.load32_splat(xo, 4), c112);
    const x2 = f32x4.mul(v128.load32_splat(xo, 8), c112), x3 = f32x4.mul(v128.load32_splat(xo, 12), c112);
    const b0 = b + <usize>k * ls;
    let n = 0;
    for (; n < n8; n += 8) {
      const yo = y + (<usize>n << 2);
      let p = b0 + (<usize>n << 1);
      let h = v128.load(p);
      let lo = fma(x0, v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(h), 13), cMask), v128.load(yo));
      let hi = fma(x0, v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(h), 13), cMask), v128.load(yo, 16));
      p += ls; h = v128.load(p);
      lo = fma(x1, v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(h), 13), cMask), lo);
      hi = fma(x1, v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(h), 13), cMask), hi);
      p += ls; h = v128.load(p);
      lo = fma(x2, v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(h), 13), cMask), lo);
      hi = fma(x2, v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(h), 13), cMask), hi);
      p += ls; h = v128.load(p);
      lo = fma(x3, v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(h), 13), cMask), lo);
      hi = fma(x3, v128.and(i32x4.shl(i32x4.extend_high_i16x8_s(h), 13), cMask), hi);
      v128.store(yo, lo);
      v128.store(yo, hi, 16);
    }
    for (; n < N; n++) {
      let p = b0 + (<usize>n << 1);
      let s = load<f32>(y + (<usize>n << 2));
      for (let r = 0; r < 4; r++) { s += load<f32>(xo + (<usize>r << 2)) * f16tof32(<u32>load<u16>(p)); p += ls; }
      store<f32>(y + (<usize>n << 2), s);
    }
  }
  for (; k < K; k++) {
    const xs = load<f32>(x + (<usize>k << 2));
    const br = b + <usize>k * ls;
    for (let n = 0; n < N; n++) store<f32>(y + (<usize>n << 2), load<f32>(y + (<usize>n << 2)) + xs * f16tof32(<u32>load<u16>(br + (<usize>n << 1))));
  }
}

/**
 * y = x·B for the clustered bases: f32 when h16 = 0; f16 when h16 = 1; f16 known finite when h16 = 2, which takes
 * gemvNhScaled whenever this x allows it (|x| < 2^15; same results, fewer lane ops).
 */
// @ts-ignore: decorator
@inline function gemvBase(h16: i32, x: usize, b: usize, ldb: i32, y: usize, N: i32, K: i32): void {
  if (h16 == 2 && maxAbs(x, K) < <f32>32768) gemvNhScaled(x, b, ldb, y, N, K);
  else if (h16 != 0) gemvNh(x, b, ldb, y, N, K);
  else gemvN(x, b, ldb, y, N, K);
}

/** out[0] (i32) = 1 when none of the n halves at src is inf or NaN (exponent all ones), else 0. */
export function f16_finite(src: usize, n: i32, out: usize, tid: i32, nthreads: i32): void {
  const cExp = i16x8.splat(0x7c00);
  let bad = i16x8.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) bad = v128.or(bad, i16x8.eq(v128.and(v128.load(src + (<usize>i << 1)), cExp), cExp));
  let ok = !v128.any_true(bad);
  for (; i < n; i++) if ((<u32>load<u16>(src + (<usize>i << 1)) & 0x7c00) == 0x7c00) ok = false;
  store<i32>(out, ok ? 1 : 0);
}

/** dst (n f32) = src (n f16), exact; rows split over threads in blocks of 4 elements. */
export function widen_f16(src: usize, dst: usize, n: i32, tid: i32, nthreads: i32): void {
  const i0 = lo(n, 4, tid, nthreads), i1 = lo(n, 4, tid + 1, nthreads);
  const cEm = v128.load(F16C), cBias = v128.load(F16C, 16), cSpec = v128.load(F16C, 32), cSub = v128.load(F16C, 48), cTiny = v128.load(F16C, 64);
  let i = i0;
  for (; i + 4 <= i1; i += 4) v128.store(dst + (<usize>i << 2), f16x4c(i32x4.extend_low_i16x8_u(v128.load64_zero(src + (<usize>i << 1))), cEm, cBias, cSpec, cSub, cTiny));
  for (; i < i1; i++) store<f32>(dst + (<usize>i << 2), f16tof32(<u32>load<u16>(src + (<usize>i << 1))));
}

/** h (n) = silu(g)·u·w, written over g; when hs != 0 also hs += h. */
// @ts-ignore: decorator
@inline function swiglu(g: usize, u: usize, w: f32, n: i32, hs: usize): void {
  const wv = sp(w);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const x = v128.load(at(g, j));
    const h = f32x4.mul(f32x4.mul(f32x4.div(x, f32x4.add(sp(1), vexp(f32x4.neg(x)))), v128.load(at(u, j))), wv);
    v128.store(at(g, j), h);
    if (hs) v128.store(at(hs, j), f32x4.add(v128.load(at(hs, j)), h));
  }
  for (; j < n; j++) {
    const x = load<f32>(at(g, j));
    const h = f32x4.extract_lane(f32x4.div(sp(x), f32x4.add(sp(1), vexp(sp(-x)))), 0) * load<f32>(at(u, j)) * w;
    store<f32>(at(g, j), h);
    if (hs) store<f32>(at(hs, j), load<f32>(at(hs, j)) + h);
  }
}

/** Byte size of n f32, rounded up to 16. */
// @ts-ignore: decorator
@inline function vb(n: i32): usize {
  return <usize>((n + 3) & ~3) << 2;
}

/**
 * y (T, H) = Σ_k wts[t, k]·(silu(x·gate_e)⊙(x·up_e))·down_e, e = ids[t, k]; gate/up (E, H, I), down (E, I, H).
 * Workspace per thread slot: 2·I floats (rounded), at work + slot·workStride.
 */
export function moe_ffn_tokens(x: usize, ids: usize, wts: usize, gate: usize, up: usize, down: usize, y: usize,
  T: i32, K: i32, H: i32, I: i32, work: usize, workStride: i32, tid: i32, nthreads: i32): void {
  const t0 = lo(T, 1, tid, nthreads), t1 = lo(T, 1, tid + 1, nthreads);
  const g = work + slot() * <usize>workStride, u = g + vb(I);
  const wsz = <usize>H * <usize>I * 4;
  for (let t = t0; t < t1; t++) {
    const xr = x + <usize>t * <usize>H * 4, yr = y + <usize>t * <usize>H * 4;
    memory.fill(yr, 0, <usize>H * 4);
    for (let k = 0; k < K; k++) {
      const s = <usize>(t * K + k) << 2;
      const e = <usize>load<i32>(ids + s);
      memory.fill(g, 0, vb(I));
      memory.fill(u, 0, vb(I));
      gemvN(xr, gate + e * wsz, I, g, I, H);
      gemvN(xr, up + e * wsz, I, u, I, H);
      swiglu(g, u, load<f32>(wts + s), I, 0);
      gemvN(g, down + e * wsz, H, yr, H, I);
    }
  }
}

/**
 * The clustered FFN token by token: per distinct group of the token's K experts x·base_gate and x·base_up once and
 * Σ h through base_down once; per expert the low-rank terms (x·A)·B. Bases (G, ·, ·), f32 or (h16) f16; factors
 * (E, ·, ·) f32; M = E / G. Workspace per thread: 5·I + R floats (rounded).
 */
export function clustered_ffn_tokens(x: usize, ids: usize, wts: usize, bg: usize, bu: usize, bd: usize, ga: usize, gb: usize,
  ua: usize, ub: usize, da: usize, db: usize, y: usize, T: i32, K: i32, M: i32, H: i32, I: i32, R: i32, h16: i32,
  work: usize, workStride: i32, tid: i32, nthreads: i32): void {
  const half = h16 != 0;
  const t0 = lo(T, 1, tid, nthreads), t1 = lo(T, 1, tid + 1, nthreads);
  const baseG = work + slot() * <usize>workStride, baseU = baseG + vb(I), hs = baseU + vb(I);
  const g = hs + vb(I), u = g + vb(I), lr = u + vb(I);
  const bsz = <usize>H * <usize>I * (half ? 2 : 4), asz = <usize>H * <usize>R * 4, fsz = <usize>R * <usize>I * 4;
  const dasz = <usize>I * <usize>R * 4, dbsz = <usize>R * <usize>H * 4;
  for (let t = t0; t < t1; t++) {
    const xr = x + <usize>t * <usize>H * 4, yr = y + <usize>t * <usize>H * 4;
    memory.fill(yr, 0, <usize>H * 4);
    for (let k = 0; k < K; k++) {
      const grp = load<i32>(ids + (<usize>(t * K + k) << 2)) / M;
      let seen = false;
      for (let j = 0; j < k; j++) if (load<i32>(ids + (<usize>(t * K + j) << 2)) / M == grp) seen = true;
      if (seen) continue;
      const go = <usize>grp * bsz;
      memory.fill(baseG, 0, vb(I));
      memory.fill(baseU, 0, vb(I));
      memory.fill(hs, 0, vb(I));
      gemvBase(h16, xr, bg + go, I, baseG, I, H);
      gemvBase(h16, xr, bu + go, I, baseU, I, H);
      for (let j = k; j < K; j++) {
        const s = <usize>(t * K + j) << 2;
        const e = <usize>load<i32>(ids + s);
        if (<i32>e / M != grp) continue;
        memory.copy(g, baseG, vb(I));
        memory.copy(u, baseU, vb(I));
        memory.fill(lr, 0, vb(R));
        gemvN(xr, ga + e * asz, R, lr, R, H);
        gemvN(lr, gb + e * fsz, I, g, I, R);
        memory.fill(lr, 0, vb(R));
        gemvN(xr, ua + e * asz, R, lr, R, H);
        gemvN(lr, ub + e * fsz, I, u, I, R);
        swiglu(g, u, load<f32>(wts + s), I, hs);
        memory.fill(lr, 0, vb(R));
        gemvN(g, da + e * dasz, R, lr, R, I);
        gemvN(lr, db + e * dbsz, H, yr, H, R);
      }
      gemvBase(h16, hs, bd + go, H, yr, H, I);
    }
  }
}

/**
 * Low-rank expert rows: out[n] = (base ? base[baseIdx[n]] : 0) + (x[n]·A_e)·B_e with e = rowExpert[n], A (E, din, R),
 * B (E, R, dout); split over rows. Both factors of an expert fit in L1, so a row-at-a-time GEMV pair beats a thin
 * GEMM. Workspace per thread slot: R floats (rounded) at work + slot·workStride.
 */
export function lowrank_rows(x: usize, A: usize, B: usize, base: usize, baseIdx: usize, out: usize, rowExpert: usize,
  n: i32, din: i32, R: i32, dout: i32, work: usize, workStride: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(n, 1, tid, nthreads), r1 = lo(n, 1, tid + 1, nthreads);
  const lr = work + slot() * <usize>workStride;
  const asz = <usize>din * <usize>R * 4, bsz = <usize>R * <usize>dout * 4;
  const ob = <usize>dout * 4;
  for (let r = r0; r < r1; r++) {
    const e = <usize>load<i32>(rowExpert + (<usize>r << 2));
    const o = out + <usize>r * ob;
    if (base) memory.copy(o, base + <usize>load<i32>(baseIdx + (<usize>r << 2)) * ob, ob);
    else memory.fill(o, 0, ob);
    memory.fill(lr, 0, vb(R));
    gemvN(x + <usize>r * <usize>din * 4, A + e * asz, R, lr, R, din);
    gemvN(lr, B + e * bsz, dout, o, dout, R);
  }
}
