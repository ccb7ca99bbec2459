// Minifloat decoders against values computed here from each format's bit formula: all 16 FP4 E2M1 codes, all 256
// FP8 E4M3FN, E5M2 and E8M0 codes.
import { describe, expect, it } from 'vitest';
import { E4M3_VALUES, E5M2_VALUES, E8M0_VALUES, FP4_E2M1_VALUES, decodeBytes, e4m3ToF32, e5m2ToF32, e8m0ToF32 } from '../../src/tensor/minifloat.js';
import { e4m3Value, fp4Value } from '../helpers/quantise.js';

/** Object.is, so -0 and +0 differ and NaN equals NaN. */
const same = (a: number, b: number): boolean => Object.is(a, b);

describe('FP4 E2M1', () => {
  it('all 16 codes: the OCP table, hand-written', () => {
    const hand = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];
    expect([...FP4_E2M1_VALUES]).toEqual(hand);
    for (let c = 0; c < 16; c++) expect(same(FP4_E2M1_VALUES[c]!, hand[c]!)).toBe(true);
  });
  it('all 16 codes: the bit formula (sign, 2 exponent bits with bias 1, 1 mantissa bit)', () => {
    for (let c = 0; c < 16; c++) expect(same(FP4_E2M1_VALUES[c]!, fp4Value(c))).toBe(true);
  });
});

describe('FP8 E4M3FN', () => {
  it('all 256 codes equal (-1)^s 2^(e-7) (1 + m/8), subnormals 2^-6 m/8, NaN only at 0x7F and 0xFF', () => {
    let nan = 0;
    for (let c = 0; c < 256; c++) {
      const s = c >> 7;
      const e = (c >> 3) & 15;
      const m = c & 7;
      const want = e === 15 && m === 7 ? NaN : (s ? -1 : 1) * (e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
      expect(same(e4m3ToF32(c), want), `code 0x${c.toString(16)}`).toBe(true);
      expect(same(E4M3_VALUES[c]!, want)).toBe(true);
      expect(same(e4m3ToF32(c), e4m3Value(c))).toBe(true);
      if (Number.isNaN(want)) nan++;
    }
    expect(nan).toBe(2);
  });
  it('landmarks: max 448, min normal 2^-6, min subnormal 2^-9, 1.0 = 0x38, no infinities', () => {
    expect(e4m3ToF32(0x7e)).toBe(448);
    expect(e4m3ToF32(0xfe)).toBe(-448);
    expect(e4m3ToF32(0x08)).toBe(2 ** -6);
    expect(e4m3ToF32(0x01)).toBe(2 ** -9);
    expect(e4m3ToF32(0x38)).toBe(1);
    expect(e4m3ToF32(0x78)).toBe(256); // exponent 15 is finite in the fn variant
    expect(same(e4m3ToF32(0x80), -0)).toBe(true);
    expect([...E4M3_VALUES].some((v) => v === Infinity || v === -Infinity)).toBe(false);
  });
});

describe('FP8 E5M2', () => {
  it('all 256 codes equal (-1)^s 2^(e-15) (1 + m/4), subnormals 2^-14 m/4, infinities and NaN at exponent 31', () => {
    for (let c = 0; c < 256; c++) {
      const s = c >> 7 ? -1 : 1;
      const e = (c >> 2) & 31;
      const m = c & 3;
      const want = e === 31 ? (m === 0 ? s * Infinity : NaN) : s * (e === 0 ? (m / 4) * 2 ** -14 : (1 + m / 4) * 2 ** (e - 15));
      expect(same(e5m2ToF32(c), want), `code 0x${c.toString(16)}`).toBe(true);
      expect(same(E5M2_VALUES[c]!, want)).toBe(true);
    }
    expect(e5m2ToF32(0x7b)).toBe(57344);
  });
});

describe('E8M0', () => {
  it('all 256 codes equal 2^(code - 127), 0xFF is NaN; the float32 table keeps 2^-127 exactly', () => {
    for (let c = 0; c < 255; c++) {
      expect(e8m0ToF32(c)).toBe(2 ** (c - 127));
      expect(E8M0_VALUES[c]).toBe(2 ** (c - 127));
    }
    expect(e8m0ToF32(255)).toBeNaN();
    expect(E8M0_VALUES[255]).toBeNaN();
    expect(e8m0ToF32(127)).toBe(1);
  });
});

describe('decodeBytes', () => {
  it('maps codes through a table', () => {
    expect([...decodeBytes(Uint8Array.of(0x38, 0xb8, 0x7e, 0x00), E4M3_VALUES)]).toEqual([1, -1, 448, 0]);
    expect([...decodeBytes(Uint8Array.of(127, 128, 126), E8M0_VALUES)]).toEqual([1, 2, 0.5]);
  });
});
