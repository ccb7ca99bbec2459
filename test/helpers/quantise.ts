// Test-side quantisers and decoders, written from the format definitions (not from src/): MXFP4 (E2M1 + E8M0) and
// block-scaled FP8 E4M3FN, so quantised checkpoints can be made here and their dequantised values known independently.

/** FP4 E2M1 code -> value from the bit formula: sign, 2 exponent bits (bias 1), 1 mantissa bit; exponent 0 subnormal. */
export function fp4Value(code: number): number {
  const sign = code & 8 ? -1 : 1;
  const e = (code >> 1) & 3;
  const m = code & 1;
  return sign * (e === 0 ? m * 0.5 : 2 ** (e - 1) * (1 + m / 2));
}

/** FP8 E4M3FN code -> value from the bit formula: bias 7, 3 mantissa bits, exponent 0 subnormal, S.1111.111 NaN. */
export function e4m3Value(code: number): number {
  const sign = code >> 7 ? -1 : 1;
  const e = (code >> 3) & 15;
  const m = code & 7;
  if (e === 15 && m === 7) return NaN;
  return sign * (e === 0 ? 2 ** -6 * (m / 8) : 2 ** (e - 7) * (1 + m / 8));
}

/** The code whose value is nearest `v` (first in code order on a tie, so +0 before -0). */
function nearest(v: number, value: (c: number) => number, codes: number): number {
  let best = 0;
  let bestErr = Infinity;
  for (let c = 0; c < codes; c++) {
    const x = value(c);
    if (Number.isNaN(x)) continue;
    const err = Math.abs(x - v);
    if (err < bestErr) {
      best = c;
      bestErr = err;
    }
  }
  return best;
}

export interface Mxfp4Parts {
  /** (..., rows, G, 16): two E2M1 codes per byte, low nibble = even value */
  blocks: Uint8Array;
  /** (..., rows, G): E8M0 exponents, 2^(s - 127) */
  scales: Uint8Array;
  /** the values the parts stand for, (..., rows, G * 32) */
  dequantised: Float32Array;
}

/**
 * MXFP4-quantises (n, 32) groups of `x` (rows of a multiple of 32): per group the exponent is floor(log2(amax)) - 2
 * (6 = 1.5 * 2^2 is E2M1's largest value), each value rounded to the nearest E2M1 value of the scaled grid.
 */
export function encodeMxfp4(x: Float32Array): Mxfp4Parts {
  if (x.length % 32 !== 0) throw new Error(`encodeMxfp4: ${x.length} values, expected a multiple of 32`);
  const groups = x.length / 32;
  const blocks = new Uint8Array(groups * 16);
  const scales = new Uint8Array(groups);
  const dequantised = new Float32Array(x.length);
  for (let g = 0; g < groups; g++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[g * 32 + i]!));
    const e = amax === 0 ? 0 : Math.max(-127, Math.min(127, Math.floor(Math.log2(amax)) - 2));
    scales[g] = e + 127;
    for (let i = 0; i < 32; i++) {
      const code = nearest(x[g * 32 + i]! / 2 ** e, fp4Value, 16);
      const k = g * 16 + (i >> 1);
      blocks[k] = blocks[k]! | (i % 2 === 0 ? code : code << 4);
      dequantised[g * 32 + i] = fp4Value(code) * 2 ** e;
    }
  }
  return { blocks, scales, dequantised };
}

export interface Fp8Parts {
  /** E4M3FN codes, the shape of the weight */
  codes: Uint8Array;
  /** (..., ceil(R / bR), ceil(C / bC)) float32 factors: value = e4m3(code) * scaleInv */
  scaleInv: Float32Array;
  dequantised: Float32Array;
}

/**
 * Block-FP8-quantises `x`, (n, R, C) matrices in (bR, bC) tiles (edge tiles partial): per tile scaleInv = amax / 448
 * (float32), codes the nearest E4M3FN values of x / scaleInv.
 */
export function encodeFp8Blocks(x: Float32Array, n: number, R: number, C: number, bR: number, bC: number): Fp8Parts {
  const gR = Math.ceil(R / bR);
  const gC = Math.ceil(C / bC);
  const codes = new Uint8Array(x.length);
  const scaleInv = new Float32Array(n * gR * gC);
  const dequantised = new Float32Array(x.length);
  const at = (m: number, r: number, c: number): number => (m * R + r) * C + c;
  for (let m = 0; m < n; m++) {
    for (let tr = 0; tr < gR; tr++) {
      for (let tc = 0; tc < gC; tc++) {
        let amax = 0;
        for (let r = tr * bR; r < Math.min(R, (tr + 1) * bR); r++) for (let c = tc * bC; c < Math.min(C, (tc + 1) * bC); c++) amax = Math.max(amax, Math.abs(x[at(m, r, c)]!));
        const s = Math.fround(amax === 0 ? 1 : amax / 448);
        scaleInv[(m * gR + tr) * gC + tc] = s;
        for (let r = tr * bR; r < Math.min(R, (tr + 1) * bR); r++) {
          for (let c = tc * bC; c < Math.min(C, (tc + 1) * bC); c++) {
            const code = nearest(x[at(m, r, c)]! / s, e4m3Value, 256);
            codes[at(m, r, c)] = code;
            dequantised[at(m, r, c)] = e4m3Value(code) * s;
          }
        }
      }
    }
  }
  return { codes, scaleInv, dequantised };
}

/** (n, R, C) -> (n, C, R). */
export function transpose(x: Float32Array, n: number, R: number, C: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let m = 0; m < n; m++) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[m * R * C + c * R + r] = x[m * R * C + r * C + c]!;
  return out;
}
