// MXFP4 and block-FP8 dequantisation against hand-computed values: nibble order, scale per block, partial edge tiles.
import { describe, expect, it } from 'vitest';
import { dequantFp8Blocks, dequantMxfp4, fp8ScaleGrid, transposeLast2 } from '../../src/tensor/blockquant.js';
import { E4M3_VALUES, E5M2_VALUES } from '../../src/tensor/minifloat.js';
import { e4m3Value, fp4Value } from '../helpers/quantise.js';

describe('dequantMxfp4', () => {
  it('byte j holds values 2j (low nibble) and 2j+1 (high nibble), times 2^(scale - 127)', () => {
    const blocks = new Uint8Array(32);
    blocks[0] = 0x72; // low 2 -> 1.0, high 7 -> 6.0
    blocks[1] = 0xf9; // low 9 -> -0.5, high 15 -> -6.0
    blocks[15] = 0x1d; // low 13 -> -3.0, high 1 -> 0.5
    blocks[16] = 0x35; // block 2: low 5 -> 3.0, high 3 -> 1.5
    const out = dequantMxfp4(blocks, Uint8Array.of(128, 125)); // scales 2, 1/4
    expect(out.length).toBe(64);
    expect([...out.subarray(0, 4)]).toEqual([2, 12, -1, -12]);
    expect([...out.subarray(30, 34)]).toEqual([-6, 1, 0.75, 0.375]);
    expect(out.subarray(4, 30).every((v) => v === 0)).toBe(true);
  });
  it('every byte and scale against the bit formula', () => {
    const n = 256;
    const blocks = Uint8Array.from({ length: n * 16 }, (_, i) => (i * 37 + 11) & 0xff);
    const scales = Uint8Array.from({ length: n }, (_, g) => 100 + (g % 50));
    const out = dequantMxfp4(blocks, scales);
    for (let g = 0; g < n; g++) {
      for (let j = 0; j < 16; j++) {
        const b = blocks[g * 16 + j]!;
        expect(out[g * 32 + 2 * j]).toBe(fp4Value(b & 15) * 2 ** (scales[g]! - 127));
        expect(out[g * 32 + 2 * j + 1]).toBe(fp4Value(b >> 4) * 2 ** (scales[g]! - 127));
      }
    }
  });
  it('rejects mismatched lengths', () => {
    expect(() => dequantMxfp4(new Uint8Array(17), new Uint8Array(1))).toThrow('17 block bytes for 1 scales, expected 16');
  });
});

describe('dequantFp8Blocks', () => {
  it('one scale per tile, partial edge tiles (5 x 3 in 2 x 2 tiles -> a 3 x 2 grid)', () => {
    expect(fp8ScaleGrid(5, 3, 2, 2)).toEqual([3, 2]);
    const codes = new Uint8Array(15).fill(0x38); // 1.0 everywhere
    codes[14] = 0xc0; // -2.0 at (4, 2)
    const scale = Float32Array.of(1, 2, 3, 4, 5, 6); // (3, 2)
    const out = dequantFp8Blocks(codes, E4M3_VALUES, scale, { n: 1, rows: 5, cols: 3, blockRows: 2, blockCols: 2 });
    expect([...out]).toEqual([1, 1, 2, 1, 1, 2, 3, 3, 4, 3, 3, 4, 5, 5, -12]);
  });
  it('stacks of matrices use their own scale grids; E5M2 codes decode through their table', () => {
    const codes = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 29 + 3) % 0x7e);
    const scale = Float32Array.of(0.5, 0.25, 8, 16); // (2, 1, 2) with 4 x 2 tiles
    const out = dequantFp8Blocks(codes, E4M3_VALUES, scale, { n: 2, rows: 3, cols: 4, blockRows: 4, blockCols: 2 });
    for (let m = 0; m < 2; m++) for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) {
      const i = (m * 3 + r) * 4 + c;
      expect(out[i]).toBe(Math.fround(e4m3Value(codes[i]!) * scale[m * 2 + (c >> 1)]!));
    }
    const e5 = dequantFp8Blocks(Uint8Array.of(0x3c, 0xc0), E5M2_VALUES, Float32Array.of(3), { n: 1, rows: 1, cols: 2, blockRows: 128, blockCols: 128 });
    expect([...e5]).toEqual([3, -6]);
  });
  it('rejects a scale grid of the wrong size', () => {
    expect(() => dequantFp8Blocks(new Uint8Array(4), E4M3_VALUES, new Float32Array(2), { n: 1, rows: 2, cols: 2, blockRows: 1, blockCols: 1 })).toThrow('expected 4 and 4');
  });
});

describe('transposeLast2', () => {
  it('(2, 2, 3) -> (2, 3, 2)', () => {
    const x = Float32Array.from({ length: 12 }, (_, i) => i);
    expect([...transposeLast2(x, 2, 2, 3)]).toEqual([0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
  });
});
