// Minifloat element codes -> numbers: FP8 E4M3FN and E5M2, E8M0 scale exponents and FP4 E2M1 (OCP MX formats).
import { f16ToF32 } from './dtype.js';

/**
 * FP4 E2M1 (1 sign bit, 2 exponent bits with bias 1, 1 mantissa bit; no infinities or NaN), the 16 values by code:
 * codes 0-7 are +0, 0.5, 1, 1.5, 2, 3, 4, 6 and codes 8-15 the same with the sign bit set (OCP MX v1.0; transformers'
 * `FP4_VALUES` in integrations/mxfp4.py).
 */
export const FP4_E2M1_VALUES: Float32Array = Float32Array.of(0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6);

/**
 * FP8 E4M3FN bits -> number (torch.float8_e4m3fn, safetensors F8_E4M3): 1 sign, 4 exponent bits with bias 7, 3 mantissa
 * bits; exponent 0 is subnormal (m/8 · 2^-6); no infinities; 0x7F and 0xFF are NaN; the largest magnitude is 448.
 */
export function e4m3ToF32(code: number): number {
  const sign = code & 0x80 ? -1 : 1;
  const exp = (code >> 3) & 0xf;
  const mant = code & 0x7;
  if (exp === 0xf && mant === 0x7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

/**
 * FP8 E5M2 bits -> number (torch.float8_e5m2, safetensors F8_E5M2): IEEE-style with bias 15, subnormals, infinities
 * and NaN; the same bits as the high byte of an IEEE half.
 */
export function e5m2ToF32(code: number): number {
  return f16ToF32((code & 0xff) << 8);
}

/** E8M0 scale bits -> number (torch.float8_e8m0fnu, safetensors F8_E8M0, MX block scales): 2^(code - 127); 0xFF is NaN. */
export function e8m0ToF32(code: number): number {
  return code === 0xff ? NaN : 2 ** ((code & 0xff) - 127);
}

const table = (f: (code: number) => number): Float32Array => Float32Array.from({ length: 256 }, (_, i) => f(i));

/** Every E4M3FN code's value, by code. */
export const E4M3_VALUES: Float32Array = table(e4m3ToF32);
/** Every E5M2 code's value, by code. */
export const E5M2_VALUES: Float32Array = table(e5m2ToF32);
/** Every E8M0 code's value, by code (2^-127 for code 0 is a float32 subnormal, kept exactly). */
export const E8M0_VALUES: Float32Array = table(e8m0ToF32);

/** One-byte codes as float32 values through a 256-entry table (E4M3_VALUES, E5M2_VALUES or E8M0_VALUES). */
export function decodeBytes(codes: Uint8Array, values: Float32Array): Float32Array {
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = values[codes[i]!]!;
  return out;
}
