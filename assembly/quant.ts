// On-the-fly dequantisation (int8, int4, f16, bf16, MXFP4, FP8 E4M3) and the quantised matmul y = x · Wᵀ.
import { KC, NR, NC, OFF_BP, OFF_TMP, fma, hsum } from './common';
import { dot, macroKernel, packBPanel } from './gemm';

export const FMT_INT8: i32 = 0;
export const FMT_INT4: i32 = 1;
export const FMT_F16: i32 = 2;
export const FMT_BF16: i32 = 3;
export const FMT_MXFP4: i32 = 4;
export const FMT_FP8: i32 = 5;

/** E2M1 values by 4-bit code (OCP MX FP4: +0, 0.5, 1, 1.5, 2, 3, 4, 6, then the same negated). */
const FP4_VALUES: usize = memory.data<f32>([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], 16);

/** FP8 E4M3FN code -> f32 (bias 7, subnormals m/8 · 2^-6, no infinities, 0x7F / 0xFF NaN). */
function e4m3(c: u32): f32 {
  const e = (c >> 3) & 15, m = c & 7;
  const sign: u32 = (c & 0x80) << 24;
  if (e == 15 && m == 7) return NaN;
  // normal: rebias the exponent (7 -> 127); subnormal: m · 2^-9 (exact)
  const mag: f32 = e == 0 ? <f32>m * reinterpret<f32>(<u32>(127 - 9) << 23) : reinterpret<f32>(((e + 120) << 23) | (m << 20));
  return reinterpret<f32>(reinterpret<u32>(mag) | sign);
}

/** Every E4M3 code's value (filled on first use). */
const FP8_VALUES: usize = memory.data(256 * 4, 16);
let fp8Ready = false;
function fp8Table(): usize {
  if (!fp8Ready) {
    for (let c: u32 = 0; c < 256; c++) store<f32>(FP8_VALUES + (<usize>c << 2), e4m3(c));
    fp8Ready = true;
  }
  return FP8_VALUES;
}

/** E8M0 scale byte -> 2^(b - 127) (0xFF NaN; 0 is 2^-127, a subnormal, exact). */
// @ts-ignore: decorator
@inline function e8m0(b: u32): f32 {
  if (b == 255) return NaN;
  if (b == 0) return reinterpret<f32>(<u32>0x00400000);
  return reinterpret<f32>(b << 23);
}

/** Exact IEEE half → f32 (subnormals, inf, nan included). */
export function f16tof32(h: u32): f32 {
  const em = h & 0x7fff;
  const sign = (h & 0x8000) << 16;
  let bits: u32;
  if (em >= 0x7c00) bits = (em << 13) | 0x7f800000;
  else bits = reinterpret<u32>(reinterpret<f32>(em << 13) * reinterpret<f32>(<u32>0x77800000));
  return reinterpret<f32>(bits | sign);
}

/**
 * Four halves (u16 zero-extended in i32 lanes) → four f32, exact, with no denormal arithmetic (slow on x86):
 * normals and inf/nan rebias the exponent in integer lanes (inf/nan get a second rebias to exponent 255, keeping
 * the payload); subnormal halves are em · 2^-24, an exact int→float conversion times a power of two that lands
 * on a normal f32. Constants come in as arguments so loops load them once (V8 does not hoist splats).
 */
// @ts-ignore: decorator
@inline export function f16x4c(h: v128, cEm: v128, cBias: v128, cSpec: v128, cSub: v128, cTiny: v128): v128 {
  const em = v128.and(h, cEm);
  const sign = i32x4.shl(v128.xor(h, em), 16);
  let t = i32x4.add(i32x4.shl(em, 13), cBias);
  t = i32x4.add(t, v128.and(i32x4.gt_s(em, cSpec), cBias));
  const sub = f32x4.mul(f32x4.convert_i32x4_s(em), cTiny);
  return v128.or(v128.bitselect(sub, t, i32x4.gt_s(cSub, em)), sign);
}

// @ts-ignore: decorator
@inline function f16x4(h: v128): v128 {
  return f16x4c(h, i32x4.splat(0x7fff), i32x4.splat(112 << 23), i32x4.splat(0x7bff), i32x4.splat(0x0400), i32x4.splat(0x33800000));
}

/** The f16x4 constants in memory: cEm, cBias, cSpec, cSub, cTiny (= 2^-24 as f32 bits), one i32x4 each. */
export const F16C: usize = memory.data<u32>([
  0x7fff, 0x7fff, 0x7fff, 0x7fff, 112 << 23, 112 << 23, 112 << 23, 112 << 23, 0x7bff, 0x7bff, 0x7bff, 0x7bff,
  0x0400, 0x0400, 0x0400, 0x0400, 0x33800000, 0x33800000, 0x33800000, 0x33800000], 16);

/** 16 signed bytes × scale → four f32x4 stored at dst. */
// @ts-ignore: decorator
@inline function i8x16ToF32(v: v128, s: v128, dst: usize): void {
  const lo = i16x8.extend_low_i8x16_s(v), hi = i16x8.extend_high_i8x16_s(v);
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), s));
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), s), 16);
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), s), 32);
  v128.store(dst, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), s), 48);
}

/** Dequantises elements [k0, k1) of row n of W (N, K) into dst (k1 - k0) f32. */
export function dequantRow(format: i32, w: usize, scales: usize, n: i32, K: i32, gs: i32, k0: i32, k1: i32, dst: usize): void {
  if (format == FMT_F16 || format == FMT_BF16) {
    const row = w + (<usize>n * <usize>K + <usize>k0) * 2;
    const len = k1 - k0;
    let k = 0;
    if (format == FMT_F16) {
      for (; k + 8 <= len; k += 8) {
        const v = v128.load(row + (<usize>k << 1));
        v128.store(dst + (<usize>k << 2), f16x4(i32x4.extend_low_i16x8_u(v)));
        v128.store(dst + (<usize>k << 2), f16x4(i32x4.extend_high_i16x8_u(v)), 16);
      }
      for (; k < len; k++) store<f32>(dst + (<usize>k << 2), f16tof32(load<u16>(row + (<usize>k << 1))));
    } else {
      for (; k + 8 <= len; k += 8) {
        const v = v128.load(row + (<usize>k << 1));
        v128.store(dst + (<usize>k << 2), i32x4.shl(i32x4.extend_low_i16x8_u(v), 16));
        v128.store(dst + (<usize>k << 2), i32x4.shl(i32x4.extend_high_i16x8_u(v), 16), 16);
      }
      for (; k < len; k++) store<u32>(dst + (<usize>k << 2), <u32>load<u16>(row + (<usize>k << 1)) << 16);
    }
    return;
  }
  const ng = K / gs;
  if (format == FMT_MXFP4 || format == FMT_FP8) {
    blockDequantRow(format, w, scales, n, K, gs, ng, k0, k1, dst);
    return;
  }
  const srow = scales + <usize>n * <usize>ng * 2;
  const int4 = format == FMT_INT4;
  const row = int4 ? w + <usize>n * <usize>(K >> 1) : w + <usize>n * <usize>K;
  let k = k0;
  while (k < k1) {
    const g = k / gs;
    const e = min(k1, (g + 1) * gs);
    const s = f16tof32(load<u16>(srow + (<usize>g << 1)));
    const sv = f32x4.splat(s);
    if (int4) {
      if ((k & 1) == 0) {
        for (; k + 16 <= e; k += 16) {
          const v = v128.load64_zero(row + (<usize>k >> 1));
          const lo = i8x16.shr_s(i8x16.shl(v, 4), 4);
          const hi = i8x16.shr_s(v, 4);
          const q = i8x16.shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
          i8x16ToF32(q, sv, dst + (<usize>(k - k0) << 2));
        }
      }
      for (; k < e; k++) {
        const byte = <i32>load<u8>(row + (<usize>k >> 1));
        const nib = (k & 1) ? byte >> 4 : byte & 15;
        store<f32>(dst + (<usize>(k - k0) << 2), <f32>((nib ^ 8) - 8) * s);
      }
    } else {
      for (; k + 16 <= e; k += 16) i8x16ToF32(v128.load(row + <usize>k), sv, dst + (<usize>(k - k0) << 2));
      for (; k < e; k++) store<f32>(dst + (<usize>(k - k0) << 2), <f32>load<i8>(row + <usize>k) * s);
    }
  }
}

/**
 * dequantRow for the block-scaled checkpoint formats: MXFP4 (E2M1 nibbles, low first, E8M0 byte scales) and FP8 E4M3
 * (one code per byte, f32 scales). Each value is its code's exact value times the scale, rounded once (as the loader's
 * dequantisation).
 */
function blockDequantRow(format: i32, w: usize, scales: usize, n: i32, K: i32, gs: i32, ng: i32, k0: i32, k1: i32, dst: usize): void {
  if (format == FMT_MXFP4) {
    const row = w + <usize>n * <usize>(K >> 1);
    const srow = scales + <usize>n * <usize>ng;
    for (let k = k0; k < k1; k++) {
      const byte = <u32>load<u8>(row + (<usize>k >> 1));
      const nib = (k & 1) ? byte >> 4 : byte & 15;
      const s = e8m0(<u32>load<u8>(srow + <usize>(k / gs)));
      store<f32>(dst + (<usize>(k - k0) << 2), load<f32>(FP4_VALUES + (<usize>nib << 2)) * s);
    }
    return;
  }
  const table = fp8Table();
  const row = w + <usize>n * <usize>K;
  const srow = scales + <usize>n * <usize>ng * 4;
  for (let k = k0; k < k1; k++) {
    const s = load<f32>(srow + (<usize>(k / gs) << 2));
    store<f32>(dst + (<usize>(k - k0) << 2), load<f32>(table + (<usize>load<u8>(row + <usize>k) << 2)) * s);
  }
}

/** 16 quantised values (int8 bytes, or 16 int4 nibbles low first from 8 bytes) as signed i8x16. */
// @ts-ignore: decorator
@inline function q16(p: usize, int4: bool): v128 {
  if (int4) {
    const v = v128.load64_zero(p);
    return i8x16.shuffle(i8x16.shr_s(i8x16.shl(v, 4), 4), i8x16.shr_s(v, 4), 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  }
  return v128.load(p);
}

/** p + (16 signed bytes of q as f32) · (x0..x3). */
// @ts-ignore: decorator
@inline function qfma16(q: v128, x0: v128, x1: v128, x2: v128, x3: v128, p: v128): v128 {
  const lo = i16x8.extend_low_i8x16_s(q), hi = i16x8.extend_high_i8x16_s(q);
  p = fma(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), x0, p);
  p = fma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), x1, p);
  p = fma(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), x2, p);
  return fma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), x3, p);
}

/** f16 scale → splatted f32x4. */
// @ts-ignore: decorator
@inline function scaleAt(p: usize): v128 {
  return f32x4.splat(f16tof32(load<u16>(p)));
}

/**
 * y[n..n+4) (stride 4 B) += four rows of int8/int4 W (row stride rb bytes, scale rows stride sb bytes) · x (K):
 * dequantisation fused into the dot product, group partial sums scaled once per group. Needs gs % 16 == 0.
 */
function qdot4(x: usize, w: usize, rb: usize, sc: usize, sb: usize, K: i32, gs: i32, int4: bool, y: usize): void {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0), acc2 = f32x4.splat(0), acc3 = f32x4.splat(0);
  const step: usize = int4 ? 8 : 16;
  let xp = x;
  const xe = x + (<usize>K << 2);
  const gb = <usize>gs << 2;
  while (xp < xe) {
    const ge = xp + gb;
    let p0 = f32x4.splat(0), p1 = f32x4.splat(0), p2 = f32x4.splat(0), p3 = f32x4.splat(0);
    for (; xp < ge; xp += 64, w += step) {
      const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
      p0 = qfma16(q16(w, int4), x0, x1, x2, x3, p0);
      p1 = qfma16(q16(w + rb, int4), x0, x1, x2, x3, p1);
      p2 = qfma16(q16(w + 2 * rb, int4), x0, x1, x2, x3, p2);
      p3 = qfma16(q16(w + 3 * rb, int4), x0, x1, x2, x3, p3);
    }
    acc0 = fma(p0, scaleAt(sc), acc0);
    acc1 = fma(p1, scaleAt(sc + sb), acc1);
    acc2 = fma(p2, scaleAt(sc + 2 * sb), acc2);
    acc3 = fma(p3, scaleAt(sc + 3 * sb), acc3);
    sc += 2;
  }
  store<f32>(y, load<f32>(y) + hsum(acc0)); store<f32>(y, load<f32>(y, 4) + hsum(acc1), 4);
  store<f32>(y, load<f32>(y, 8) + hsum(acc2), 8); store<f32>(y, load<f32>(y, 12) + hsum(acc3), 12);
}

/** Eight halves (f16 or bf16 bits) → two f32x4. */
// @ts-ignore: decorator
@inline function h8lo(v: v128, f16: bool, cEm: v128, cBias: v128, cSpec: v128, cSub: v128, cTiny: v128): v128 {
  return f16 ? f16x4c(i32x4.extend_low_i16x8_u(v), cEm, cBias, cSpec, cSub, cTiny) : i32x4.shl(i32x4.extend_low_i16x8_u(v), 16);
}
// @ts-ignore: decorator
@inline function h8hi(v: v128, f16: bool, cEm: v128, cBias: v128, cSpec: v128, cSub: v128, cTiny: v128): v128 {
  return f16 ? f16x4c(i32x4.extend_high_i16x8_u(v), cEm, cBias, cSpec, cSub, cTiny) : i32x4.shl(i32x4.extend_high_i16x8_u(v), 16);
}

/** y[n..n+4) += four rows of f16/bf16 W (row stride rb bytes) · x (K), converted in registers. */
function hdot4(x: usize, w: usize, rb: usize, K: i32, f16: bool, y: usize): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let e0 = f32x4.splat(0), e1 = f32x4.splat(0), e2 = f32x4.splat(0), e3 = f32x4.splat(0);
  const cEm = v128.load(F16C), cBias = v128.load(F16C, 16), cSpec = v128.load(F16C, 32), cSub = v128.load(F16C, 48);
  const cTiny = v128.load(F16C, 64);
  let xp = x;
  const k8 = K & ~7;
  const xe = x + (<usize>k8 << 2);
  for (; xp < xe; xp += 32, w += 16) {
    const x0 = v128.load(xp), x1 = v128.load(xp, 16);
    let v = v128.load(w);
    a0 = fma(h8lo(v, f16, cEm, cBias, cSpec, cSub, cTiny), x0, a0); e0 = fma(h8hi(v, f16, cEm, cBias, cSpec, cSub, cTiny), x1, e0);
    v = v128.load(w + rb);
    a1 = fma(h8lo(v, f16, cEm, cBias, cSpec, cSub, cTiny), x0, a1); e1 = fma(h8hi(v, f16, cEm, cBias, cSpec, cSub, cTiny), x1, e1);
    v = v128.load(w + 2 * rb);
    a2 = fma(h8lo(v, f16, cEm, cBias, cSpec, cSub, cTiny), x0, a2); e2 = fma(h8hi(v, f16, cEm, cBias, cSpec, cSub, cTiny), x1, e2);
    v = v128.load(w + 3 * rb);
    a3 = fma(h8lo(v, f16, cEm, cBias, cSpec, cSub, cTiny), x0, a3); e3 = fma(h8hi(v, f16, cEm, cBias, cSpec, cSub, cTiny), x1, e3);
  }
  let s0 = hsum(f32x4.add(a0, e0)), s1 = hsum(f32x4.add(a1, e1)), s2 = hsum(f32x4.add(a2, e2)), s3 = hsum(f32x4.add(a3, e3));
  for (let k = k8; k < K; k++) {
    const xs = load<f32>(x + (<usize>k << 2));
    const o = <usize>(k - k8) << 1;
    if (f16) {
      s0 += xs * f16tof32(load<u16>(w + o)); s1 += xs * f16tof32(load<u16>(w + rb + o));
      s2 += xs * f16tof32(load<u16>(w + 2 * rb + o)); s3 += xs * f16tof32(load<u16>(w + 3 * rb + o));
    } else {
      s0 += xs * reinterpret<f32>(<u32>load<u16>(w + o) << 16); s1 += xs * reinterpret<f32>(<u32>load<u16>(w + rb + o) << 16);
      s2 += xs * reinterpret<f32>(<u32>load<u16>(w + 2 * rb + o) << 16); s3 += xs * reinterpret<f32>(<u32>load<u16>(w + 3 * rb + o) << 16);
    }
  }
  store<f32>(y, load<f32>(y) + s0); store<f32>(y, load<f32>(y, 4) + s1, 4);
  store<f32>(y, load<f32>(y, 8) + s2, 8); store<f32>(y, load<f32>(y, 12) + s3, 12);
}

/** Fused decode path for one x row: y[n0..n4) (+=) four W rows at a time; returns the first row not done. */
function qgemv4(x: usize, w: usize, scales: usize, y: usize, K: i32, format: i32, gs: i32, n0: i32, n1: i32): i32 {
  let n = n0;
  if (format == FMT_F16 || format == FMT_BF16) {
    const rb = <usize>K << 1;
    const f16 = format == FMT_F16;
    for (; n + 4 <= n1; n += 4) {
      if (f16) hdot4(x, w + <usize>n * rb, rb, K, true, y + (<usize>n << 2));
      else hdot4(x, w + <usize>n * rb, rb, K, false, y + (<usize>n << 2));
    }
    return n;
  }
  if ((gs & 15) || format == FMT_MXFP4 || format == FMT_FP8) return n;
  const int4 = format == FMT_INT4;
  const rb = int4 ? <usize>(K >> 1) : <usize>K;
  const sb = <usize>(K / gs) << 1;
  for (; n + 4 <= n1; n += 4) {
    if (int4) qdot4(x, w + <usize>n * rb, rb, scales + <usize>n * sb, sb, K, gs, true, y + (<usize>n << 2));
    else qdot4(x, w + <usize>n * rb, rb, scales + <usize>n * sb, sb, K, gs, false, y + (<usize>n << 2));
  }
  return n;
}

/**
 * Columns [n0, n1) of y (M, N) = x (M, K) · Wᵀ, W (N, K) quantised; single thread.
 * M < 4: dequantise one row chunk of W at a time and dot it with every x row.
 * Otherwise: dequantise (NR, KC) slices, pack them as B panels and run the GEMM macro-kernel.
 */
export function qgemm(x: usize, w: usize, scales: usize, y: usize, M: i32, N: i32, K: i32, format: i32, gs: i32,
  n0: i32, n1: i32, scratch: usize): void {
  if (n1 <= n0 || M <= 0) return;
  const tmp = scratch + OFF_TMP;
  const ldyb = <usize>N << 2;
  if (M < 4) {
    for (let m = 0; m < M; m++) for (let n = n0; n < n1; n++) store<f32>(y + <usize>m * ldyb + (<usize>n << 2), 0);
    let nf = n1;
    for (let m = 0; m < M; m++) nf = qgemv4(x + <usize>m * <usize>K * 4, w, scales, y + <usize>m * ldyb, K, format, gs, n0, n1);
    for (let n = nf; n < n1; n++) {
      for (let pc = 0; pc < K; pc += KC) {
        const kc = min(KC, K - pc);
        dequantRow(format, w, scales, n, K, gs, pc, pc + kc, tmp);
        for (let m = 0; m < M; m++) {
          const yo = y + <usize>m * ldyb + (<usize>n << 2);
          store<f32>(yo, load<f32>(yo) + dot(x + (<usize>m * <usize>K + <usize>pc) * 4, tmp, kc));
        }
      }
    }
    return;
  }
  if (K <= 0) {
    for (let m = 0; m < M; m++) for (let n = n0; n < n1; n++) store<f32>(y + <usize>m * ldyb + (<usize>n << 2), 0);
    return;
  }
  const bp = scratch + OFF_BP;
  for (let jc = n0; jc < n1; jc += NC) {
    const nc = min(NC, n1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      for (let j = 0; j < nc; j += NR) {
        const wdt = min(NR, nc - j);
        for (let r = 0; r < wdt; r++) {
          dequantRow(format, w, scales, jc + j + r, K, gs, pc, pc + kc, tmp + <usize>(r * kc) * 4);
        }
        packBPanel(tmp, kc, true, kc, wdt, bp + <usize>(j * kc) * 4);
      }
      macroKernel(x + (<usize>pc << 2), K, false, kc, M, bp, nc, y + (<usize>jc << 2), N, pc != 0, 0, scratch);
    }
  }
}
