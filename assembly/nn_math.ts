// Vector math for the nn kernels (not exported to JS): exp, log, sigmoid, tanh, erf, gelu'.
import { fma } from './common';

// @ts-ignore: decorator
@inline export function sp(x: f32): v128 {
  return f32x4.splat(x);
}

// ---------------------------------------------------------------------------------------------------------------
// helpers

/** Start of thread tid's share of n items, chunks of q items (balanced), clipped to n. */
// @ts-ignore: decorator
@inline export function lo(n: i32, q: i32, tid: i32, nthreads: i32): i32 {
  const chunks = (n + q - 1) / q;
  return min(n, <i32>((<i64>chunks * tid) / nthreads) * q);
}

/** Horizontal max of an f32x4 (NaN-propagating). */
// @ts-ignore: decorator
@inline export function hmax(v: v128): f32 {
  const s = f32x4.max(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  const t = f32x4.max(s, i32x4.shuffle(s, s, 1, 0, 3, 2));
  return f32x4.extract_lane(t, 0);
}

/** [hsum(a), hsum(b), hsum(c), hsum(d)]. */
// @ts-ignore: decorator
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const u0 = f32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const u1 = f32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return f32x4.add(i32x4.shuffle(u0, u1, 0, 1, 4, 5), i32x4.shuffle(u0, u1, 2, 3, 6, 7));
}

// @ts-ignore: decorator
@inline export function at(p: usize, i: i32): usize {
  return p + (<usize>i << 2);
}

// ---------------------------------------------------------------------------------------------------------------
// vector math: exp and log (Cephes expf/logf: Cody–Waite range reduction + minimax polynomial, ~1 ulp), tanh, erf

/** e^x per lane, like Math.exp rounded to f32: overflow to +inf, gradual underflow to denormals and 0, NaN kept. */
// @ts-ignore: decorator
@inline export function vexp(x: v128): v128 {
  // clamping keeps NaN (wasm min/max propagate it); at the clamp bounds the result overflows to inf / rounds to 0
  const xc = f32x4.min(f32x4.max(x, sp(-104.0)), sp(88.8));
  // n = round(x log2 e) via the 1.5 * 2^23 shifter: its low mantissa bits hold n as an integer
  const t = fma(xc, sp(1.44269504088896341), sp(12582912.0));
  const n = f32x4.sub(t, sp(12582912.0));
  let r = fma(n, sp(-0.693359375), xc);
  r = fma(n, sp(2.12194440e-4), r);
  let p = sp(1.9875691500e-4);
  p = fma(p, r, sp(1.3981999507e-3));
  p = fma(p, r, sp(8.3334519073e-3));
  p = fma(p, r, sp(4.1665795894e-2));
  p = fma(p, r, sp(1.6666665459e-1));
  p = fma(p, r, sp(5.0000001201e-1));
  p = fma(p, f32x4.mul(r, r), f32x4.add(r, sp(1)));
  // 2^n as two factors so that n in [-150, 128] neither overflows nor flushes before the final product
  const ni = i32x4.sub(t, i32x4.splat(0x4b400000));
  const n1 = i32x4.shr_s(ni, 1);
  const s1 = i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(i32x4.sub(ni, n1), i32x4.splat(127)), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

/** ln x per lane, like Math.log: -inf at 0, NaN below 0 and at NaN, +inf at +inf, denormals handled. */
// @ts-ignore: decorator
@inline export function vlog(x: v128): v128 {
  const tiny = f32x4.lt(x, sp(1.17549435e-38));
  const xs = v128.bitselect(f32x4.mul(x, sp(8388608.0)), x, tiny);
  let e = i32x4.sub(i32x4.shr_u(xs, 23), i32x4.splat(127));
  e = i32x4.sub(e, v128.and(tiny, i32x4.splat(23)));
  const m = v128.or(v128.and(xs, i32x4.splat(0x007fffff)), i32x4.splat(0x3f800000)); // [1, 2)
  const big = f32x4.ge(m, sp(1.41421356237));
  const t = v128.bitselect(fma(m, sp(0.5), sp(-1)), f32x4.sub(m, sp(1)), big);
  e = i32x4.sub(e, big);
  const ef = f32x4.convert_i32x4_s(e);
  const z = f32x4.mul(t, t);
  let p = sp(7.0376836292e-2);
  p = fma(p, t, sp(-1.1514610310e-1));
  p = fma(p, t, sp(1.1676998740e-1));
  p = fma(p, t, sp(-1.2420140846e-1));
  p = fma(p, t, sp(1.4249322787e-1));
  p = fma(p, t, sp(-1.6668057665e-1));
  p = fma(p, t, sp(2.0000714765e-1));
  p = fma(p, t, sp(-2.4999993993e-1));
  p = fma(p, t, sp(3.3333331174e-1));
  let y = f32x4.mul(f32x4.mul(p, t), z);
  y = fma(ef, sp(-2.12194440e-4), y);
  y = fma(z, sp(-0.5), y);
  y = f32x4.add(t, y);
  y = fma(ef, sp(0.693359375), y);
  y = v128.bitselect(sp(-<f32>Infinity), y, f32x4.eq(x, sp(0)));
  y = v128.bitselect(sp(<f32>NaN), y, f32x4.lt(x, sp(0)));
  return v128.bitselect(x, y, v128.or(f32x4.ne(x, x), f32x4.eq(x, sp(<f32>Infinity))));
}

/** 1 / (1 + e^-x). */
// @ts-ignore: decorator
@inline export function vsigmoid(x: v128): v128 {
  return f32x4.div(sp(1), f32x4.add(sp(1), vexp(f32x4.neg(x))));
}

/** tanh x: odd polynomial below 0.625 (Cephes tanhf), 1 - 2/(e^2|x| + 1) with the sign above. */
// @ts-ignore: decorator
@inline export function vtanh(x: v128): v128 {
  const ax = f32x4.abs(x);
  const z = f32x4.mul(x, x);
  let p = sp(-5.70498872745e-3);
  p = fma(p, z, sp(2.06390887954e-2));
  p = fma(p, z, sp(-5.37397155531e-2));
  p = fma(p, z, sp(1.33314422036e-1));
  p = fma(p, z, sp(-3.33332819422e-1));
  const small = fma(f32x4.mul(p, z), x, x);
  const e = vexp(f32x4.add(ax, ax));
  let big = f32x4.sub(sp(1), f32x4.div(sp(2), f32x4.add(e, sp(1))));
  big = v128.or(big, v128.and(x, i32x4.splat(0x80000000)));
  return v128.bitselect(small, big, f32x4.lt(ax, sp(0.625)));
}

/**
 * erfc(|u|) for z = |u| (the js reference's Numerical Recipes fit, |error| < 1.2e-7):
 * 1 + erf(u) is 2 - r for u >= 0 and r for u < 0.
 */
// @ts-ignore: decorator
@inline function verfcAbs(z: v128): v128 {
  const t = f32x4.div(sp(1), fma(z, sp(0.5), sp(1)));
  let p = sp(0.17087277);
  p = fma(p, t, sp(-0.82215223));
  p = fma(p, t, sp(1.48851587));
  p = fma(p, t, sp(-1.13520398));
  p = fma(p, t, sp(0.27886807));
  p = fma(p, t, sp(-0.18628806));
  p = fma(p, t, sp(0.09678418));
  p = fma(p, t, sp(0.37409196));
  p = fma(p, t, sp(1.00002368));
  p = fma(p, t, sp(-1.26551223));
  return f32x4.mul(t, vexp(f32x4.sub(p, f32x4.mul(z, z))));
}

/** 1 + erf(u). */
// @ts-ignore: decorator
@inline export function vOnePlusErf(u: v128): v128 {
  const r = verfcAbs(f32x4.abs(u));
  return v128.bitselect(f32x4.sub(sp(2), r), r, f32x4.ge(u, sp(0)));
}

export const INV_SQRT_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
export const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

/** gelu'(x): erf form, or the tanh form with 0.5(1 + tanh u) = sigmoid(2u). */
// @ts-ignore: decorator
@inline export function vgeluDeriv(x: v128, tanhApprox: bool): v128 {
  if (tanhApprox) {
    const x2 = f32x4.mul(x, x);
    const u = f32x4.mul(sp(SQRT_2_OVER_PI), fma(f32x4.mul(x2, x), sp(0.044715), x));
    const du = f32x4.mul(sp(SQRT_2_OVER_PI), fma(x2, sp(3 * 0.044715), sp(1)));
    const e = vexp(f32x4.min(f32x4.mul(sp(-2), u), sp(80)));
    const s = f32x4.div(sp(1), f32x4.add(sp(1), e));
    // 0.5(1+th) + 0.5 x (1 - th^2) du = s + 2 x s (1 - s) du, with 1 - s = e s computed without cancellation
    const xs = f32x4.mul(f32x4.add(x, x), f32x4.mul(f32x4.mul(s, s), e));
    return fma(xs, du, s);
  }
  const a = f32x4.mul(sp(0.5), vOnePlusErf(f32x4.mul(x, sp(INV_SQRT_2))));
  const g = vexp(f32x4.mul(sp(-0.5), f32x4.mul(x, x)));
  return fma(f32x4.mul(x, sp(INV_SQRT_2PI)), g, a);
}

