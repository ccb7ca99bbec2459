// safetensors one-byte float dtypes (F8_E4M3, F8_E5M2, F8_E8M0): header parsing, decoding, NaN / infinity detection.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile, decodeF32, nonFinite, writeSafetensors } from '../../src/io/safetensors.js';
import { tempDir } from '../helpers/tmp.js';

describe('safetensors FP8 dtypes', () => {
  it('reads F8_E4M3, F8_E5M2 and F8_E8M0 tensors as their float values (one byte each)', async () => {
    const f = path.join(tempDir('moekit-st-fp8-'), 'm.safetensors');
    await writeSafetensors(f, [
      { name: 'w', dtype: 'F8_E4M3', shape: [2, 2], data: Uint8Array.of(0x38, 0xb8, 0x7e, 0x01) },
      { name: 'v', dtype: 'F8_E5M2', shape: [3], data: Uint8Array.of(0x3c, 0x7b, 0x01) },
      { name: 's', dtype: 'F8_E8M0', shape: [2], data: Uint8Array.of(127, 120) },
    ]);
    const st = await SafetensorsFile.open(f);
    try {
      expect(st.info('w')).toMatchObject({ dtype: 'F8_E4M3', shape: [2, 2] });
      expect(st.info('w').end - st.info('w').begin).toBe(4);
      expect([...(await st.readF32('w'))]).toEqual([1, -1, 448, 2 ** -9]);
      expect([...(await st.readF32('v'))]).toEqual([1, 57344, 2 ** -16]);
      expect([...(await st.readF32('s'))]).toEqual([1, 2 ** -7]);
    } finally {
      await st.close();
    }
  });

  it('NaN codes are found (E4M3FN 0x7F / 0xFF, E5M2 exponent 31, E8M0 0xFF) and reading them is an error naming the tensor', async () => {
    expect(nonFinite(Uint8Array.of(0x7e, 0x7f, 0xff, 0x78), 'F8_E4M3')).toEqual({ count: 2, first: 1 });
    expect(nonFinite(Uint8Array.of(0x7b, 0x7c, 0xfd), 'F8_E5M2')).toEqual({ count: 2, first: 1 });
    expect(nonFinite(Uint8Array.of(0, 254, 255), 'F8_E8M0')).toEqual({ count: 1, first: 2 });
    expect(nonFinite(Uint8Array.of(0x7f), 'U8')).toBeNull();
    const f = path.join(tempDir('moekit-st-fp8-'), 'bad.safetensors');
    await writeSafetensors(f, [{ name: 'w', dtype: 'F8_E4M3', shape: [3], data: Uint8Array.of(0, 0x38, 0xff) }]);
    const st = await SafetensorsFile.open(f);
    try {
      await expect(st.readF32('w')).rejects.toThrow(/tensor "w" \(F8_E4M3 \[3\]\) has 1 non-finite value .* at flat index 2 \(NaN\)/);
    } finally {
      await st.close();
    }
  });

  it('decodeF32 names the tensor for a non-float dtype', () => {
    expect(() => decodeF32(new Uint8Array(2), 'U8', 'x')).toThrow('x has dtype U8, expected a floating-point tensor (F32, F16, BF16, F64, F8_E4M3, F8_E5M2, F8_E8M0)');
  });
});
