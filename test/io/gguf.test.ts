// GGUF: a written file reads back (metadata of every type, tensor shapes in numpy order, 32-byte aligned offsets, the
// bytes); Q8_0 and Q4_0 blocks decode to within a step of the input (half a step for Q8_0) with ggml's layout (f16 scale, then int8
// values / nibbles with value j low and j + 16 high); truncated and foreign files are refused naming what is missing.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ggmlEncode, readGgufHeader, writeGguf } from '../../src/io/gguf.js';
import { f16ToF32 } from '../../src/tensor/dtype.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moekit-gguf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Decodes ggml Q8_0 / Q4_0 blocks as the GGUF spec lays them out. */
function decode(type: 'Q8_0' | 'Q4_0', b: Uint8Array): number[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: number[] = [];
  const size = type === 'Q8_0' ? 34 : 18;
  for (let o = 0; o < b.length; o += size) {
    const d = f16ToF32(dv.getUint16(o, true));
    if (type === 'Q8_0') for (let j = 0; j < 32; j++) out.push(d * dv.getInt8(o + 2 + j));
    else {
      const block = new Array<number>(32);
      for (let j = 0; j < 16; j++) {
        block[j] = d * ((b[o + 2 + j]! & 15) - 8);
        block[j + 16] = d * ((b[o + 2 + j]! >> 4) - 8);
      }
      out.push(...block);
    }
  }
  return out;
}

describe('GGUF', () => {
  it('writes metadata and tensors that read back, aligned, in numpy order', async () => {
    const file = path.join(dir, 'a.gguf');
    const a = Float32Array.from({ length: 6 }, (_, i) => i - 2.5);
    const b = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const bytes = await writeGguf(file, {
      'general.architecture': 'llama', 'x.count': 7, 'x.eps': { f32: 1e-6 }, 'x.flag': true, 'x.signed': { i32: -3 },
      'x.big': { u64: 2 ** 40 }, 'x.words': ['a b', 'ċ'], 'x.ids': { i32s: [1, -1] }, 'x.scores': { f32s: [0.5, -2] },
    }, [{ name: 'a', shape: [2, 3], type: 'F32', data: a }, { name: 'b', shape: [2, 32], type: 'Q8_0', data: b }]);
    const raw = readFileSync(file);
    expect(raw.length).toBe(bytes);
    const h = readGgufHeader(file);
    expect(h.version).toBe(3);
    expect(h.metadata).toEqual({
      'general.architecture': 'llama', 'x.count': 7, 'x.eps': Math.fround(1e-6), 'x.flag': true, 'x.signed': -3,
      'x.big': 2 ** 40, 'x.words': ['a b', 'ċ'], 'x.ids': [1, -1], 'x.scores': [0.5, -2],
    });
    expect(h.tensors.map((t) => [t.name, t.shape, t.type, t.bytes])).toEqual([['a', [2, 3], 'F32', 24], ['b', [2, 32], 'Q8_0', 68]]);
    for (const t of h.tensors) expect(t.offset % 32).toBe(0);
    expect(Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset + h.tensors[0]!.offset, raw.byteOffset + h.tensors[0]!.offset + 24)))).toEqual(Array.from(a));
    expect(Array.from(raw.subarray(h.tensors[1]!.offset, h.tensors[1]!.offset + 68))).toEqual(Array.from(ggmlEncode('Q8_0', b)));
  });

  it('Q8_0 and Q4_0 blocks decode to within a step (half a step for Q8_0); the largest magnitude is kept', () => {
    const x = Float32Array.from({ length: 64 }, (_, i) => (i < 32 ? Math.cos(i) * 3 : (i - 40) / 7));
    for (const type of ['Q8_0', 'Q4_0'] as const) {
      const enc = ggmlEncode(type, x);
      expect(enc.length).toBe(type === 'Q8_0' ? 68 : 36);
      const got = decode(type, enc);
      for (let b = 0; b < 2; b++) {
        const block = Array.from(x.subarray(32 * b, 32 * b + 32));
        const amax = Math.max(...block.map(Math.abs));
        const step = type === 'Q8_0' ? amax / 127 : amax / 8;
        const worst = Math.max(...block.map((v, j) => Math.abs(v - got[32 * b + j]!)));
        // half a step; Q4_0's grid is -8..7 steps with the largest magnitude at -8, so values beyond 7 steps on the
        // other side clamp to 7 (up to a whole step); + the f16 rounding of the scale
        expect(worst).toBeLessThanOrEqual((type === 'Q8_0' ? step / 2 : step) + amax * 1e-3);
        // the value of largest magnitude is represented exactly up to the scale's rounding
        const jmax = block.findIndex((v) => Math.abs(v) === amax);
        expect(Math.abs(got[32 * b + jmax]! - block[jmax]!)).toBeLessThanOrEqual(amax * 1e-3);
      }
    }
    expect(() => ggmlEncode('Q4_0', new Float32Array(40))).toThrow('GGUF: Q4_0 needs rows of a multiple of 32 values, got 40');
  });

  it('refuses a truncated file and a file that is not GGUF, naming what is missing', async () => {
    const file = path.join(dir, 'b.gguf');
    await writeGguf(file, { 'general.architecture': 'llama' }, [{ name: 'w', shape: [4, 32], type: 'F16', data: new Float32Array(128) }]);
    const raw = readFileSync(file);
    const cut = path.join(dir, 'cut.gguf');
    writeFileSync(cut, raw.subarray(0, raw.length - 10));
    expect(() => readGgufHeader(cut)).toThrow(/truncated GGUF: tensor w needs bytes \d+\.\.\d+, the file has \d+/);
    writeFileSync(cut, raw.subarray(0, 30));
    expect(() => readGgufHeader(cut)).toThrow(/truncated GGUF: .* needs bytes/);
    writeFileSync(cut, 'not a model at all');
    expect(() => readGgufHeader(cut)).toThrow('not a GGUF file (the first 4 bytes are not "GGUF")');
  });
});
