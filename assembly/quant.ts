// On-the-fly dequantisation (int8, int4, f16, bf16) and the quantised matmul y = x · Wᵀ.
import { KC, NR, NC, OFF_BP, OFF_TMP } from './common';
import { dot, macroKernel, packBPanel } from './gemm';

export const FMT_INT8: i32 = 0;
export const FMT_INT4: i32 = 1;
export const FMT_F16: i32 = 2;
export const FMT_BF16: i32 = 3;

/** Exact IEEE half → f32 (subnormals, inf, nan included). */
export function f16tof32(h: u32): f32 {
  const em = h & 0x7fff;
  const sign = (h & 0x8000) << 16;
  let bits: u32;
  if (em >= 0x7c00) bits = (em << 13) | 0x7f800000;
  else bits = reinterpret<u32>(reinterpret<f32>(em << 13) * reinterpret<f32>(<u32>0x77800000));
  return reinterpret<f32>(bits | sign);
}

/** Four halves (u16 zero-extended in i32 lanes) → four f32, exact. */
// @ts-ignore: decorator
@inline function f16x4(h: v128): v128 {
  const em = v128.and(h, i32x4.splat(0x7fff));
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const sh = i32x4.shl(em, 13);
  const norm = f32x4.mul(sh, i32x4.splat(0x77800000));
  const special = v128.or(sh, i32x4.splat(0x7f800000));
  const isSpecial = i32x4.gt_s(em, i32x4.splat(0x7bff));
  return v128.or(v128.bitselect(special, norm, isSpecial), sign);
}

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
    for (let n = n0; n < n1; n++) {
      for (let m = 0; m < M; m++) store<f32>(y + <usize>m * ldyb + (<usize>n << 2), 0);
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
