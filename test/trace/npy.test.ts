// .npy routing traces: every integer dtype and format version round-trips bit-exactly; malformed files are refused with the file and what was expected.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readNpyTrace, writeNpy, type NpyData, type NpyDtype } from '../../src/trace/npy.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-npy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const N = 5;
const L = 3;
const K = 2;
const E = 100;
/** (N·L·K) ids in [−1, E) with a −1 now and then */
const ids = Int16Array.from({ length: N * L * K }, (_, i) => (i % 7 === 3 ? -1 : (i * 37) % E));
const unsignedIds = Int16Array.from(ids, (v) => (v < 0 ? 0 : v));

const typed: Record<NpyDtype, (a: Int16Array) => NpyData> = {
  '<i1': (a) => Int8Array.from(a),
  '|i1': (a) => Int8Array.from(a),
  '<i2': (a) => Int16Array.from(a),
  '<i4': (a) => Int32Array.from(a),
  '<i8': (a) => BigInt64Array.from(a, (v) => BigInt(v)),
  '|u1': (a) => Uint8Array.from(a),
  '<u1': (a) => Uint8Array.from(a),
  '<u2': (a) => Uint16Array.from(a),
  '<u4': (a) => Uint32Array.from(a),
  '<u8': (a) => BigUint64Array.from(a, (v) => BigInt(v)),
};

/** A .npy file from a header text and data bytes, the way numpy lays it out (version 1.0). */
function rawNpy(name: string, header: string, data: Uint8Array, magic = '\x93NUMPY'): string {
  const file = path.join(dir, name);
  const h = Buffer.from(header, 'latin1');
  const pre = Buffer.from([...Buffer.from(magic, 'latin1'), 1, 0, h.length & 0xff, h.length >> 8]);
  writeFileSync(file, Buffer.concat([pre, h, data]));
  return file;
}

describe('readNpyTrace', () => {
  for (const dtype of Object.keys(typed) as NpyDtype[]) {
    it(`round-trips ${dtype} bit-exactly`, () => {
      const want = dtype.includes('u') ? unsignedIds : ids;
      const file = path.join(dir, `rt${dtype.replace(/[<|]/, '_')}.npy`);
      writeNpy(file, typed[dtype](want), [N, L, K], dtype);
      const t = readNpyTrace(file, { experts: E });
      expect([t.N, t.L, t.K, t.E]).toEqual([N, L, K, E]);
      expect(t.experts).toEqual(want);
      expect(t.layers).toEqual([0, 1, 2]);
      expect(t.metadata).toMatchObject({ format: 'npy', dtype, source: file });
    });
  }

  it("writes the bytes np.save writes (numpy 2.4: np.save(f, np.array([[[1, -1, 3], [4, 5, 6]]], dtype='<i8')))", () => {
    const file = path.join(dir, 'numpy.npy');
    writeNpy(file, BigInt64Array.from([1n, -1n, 3n, 4n, 5n, 6n]), [1, 2, 3], '<i8');
    // magic, version 1.0, header length 0x76 = 118, the dict padded with spaces to a 128-byte preamble, then 6 int64
    const dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2, 3), }";
    const header = Buffer.from(`\x93NUMPY\x01\x00\x76\x00${dict}${' '.repeat(128 - 10 - dict.length - 1)}\n`, 'latin1');
    const data = Buffer.from(BigInt64Array.from([1n, -1n, 3n, 4n, 5n, 6n]).buffer);
    expect(readFileSync(file)).toEqual(Buffer.concat([header, data]));
  });

  it('format versions 2.0 and 3.0, and chunks smaller than the array (int64 read 3 elements at a time)', () => {
    for (const version of [1, 2, 3] as const) {
      const file = path.join(dir, `v${version}.npy`);
      writeNpy(file, typed['<i8'](ids), [N, L, K], '<i8', { version });
      for (const chunkBytes of [8, 24, 1 << 20]) expect(readNpyTrace(file, { chunkBytes }).experts).toEqual(ids);
    }
  });

  it('without experts, E is null and ids up to 32767 are read; rank 2 [N, K] is one layer', () => {
    const big = Int32Array.from([0, 32767, -1, 5]);
    const file = path.join(dir, 'rank2.npy');
    writeNpy(file, big, [2, 2], '<i4');
    const t = readNpyTrace(file);
    expect([t.N, t.L, t.K, t.E]).toEqual([2, 1, 2, null]);
    expect(Array.from(t.experts)).toEqual([0, 32767, -1, 5]);
  });

  it('an id outside [−1, E) names the file, [n, l, k], the value and the range', () => {
    const bad = Int16Array.from(ids);
    bad[(3 * L + 2) * K + 1] = E; // token 3, layer 2, slot 1
    const file = path.join(dir, 'range.npy');
    writeNpy(file, typed['<i8'](bad), [N, L, K], '<i8');
    expect(() => readNpyTrace(file, { experts: E, chunkBytes: 16 })).toThrow(`npy: ${file}: expert id 100 at [3, 2, 1] (token, layer, slot) is outside [-1, 100) (E = 100, −1 = no expert)`);
    // int64 values beyond int32 and below −1 are named exactly
    const huge = BigInt64Array.from(ids, (v) => BigInt(v));
    huge[7] = 2n ** 40n + 3n;
    writeNpy(file, huge, [N, L, K], '<i8');
    expect(() => readNpyTrace(file)).toThrow(`expert id 1099511627779 at [1, 0, 1] (token, layer, slot) is outside [-1, 32768)`);
    huge[7] = -2n;
    writeNpy(file, huge, [N, L, K], '<i8');
    expect(() => readNpyTrace(file, { experts: E })).toThrow('expert id -2 at [1, 0, 1]');
    const u = BigUint64Array.from(unsignedIds, (v) => BigInt(v));
    u[0] = 2n ** 64n - 1n; // would read as −1 if taken as signed
    writeNpy(file, u, [N, L, K], '<u8');
    expect(() => readNpyTrace(file)).toThrow('expert id 18446744073709551615 at [0, 0, 0]');
  });

  it('malformed files: magic, header, order, rank, dtype, short data', () => {
    const d8 = new Uint8Array(N * L * K * 8);
    const hdr = (descr: string, shape: string, fortran = 'False'): string => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }\n`;
    expect(() => readNpyTrace(rawNpy('magic.npy', hdr('<i8', '(5, 3, 2)'), d8, 'NUMPY!'))).toThrow(/magic\.npy is not a NumPy \.npy file \(expected the magic string/);
    expect(() => readNpyTrace(rawNpy('dict.npy', "['descr', '<i8']\n", d8))).toThrow(/dict\.npy: header is not a Python dict literal/);
    expect(() => readNpyTrace(rawNpy('fortran.npy', hdr('<i8', '(5, 3, 2)', 'True'), d8))).toThrow(/fortran\.npy is in Fortran order \(fortran_order: True\); expected a C-order array/);
    expect(() => readNpyTrace(rawNpy('rank1.npy', hdr('<i8', '(30,)'), d8))).toThrow(/rank1\.npy has shape \(30\), rank 1; expected \[N, L, K\]/);
    expect(() => readNpyTrace(rawNpy('rank4.npy', hdr('<i8', '(5, 3, 2, 1)'), d8))).toThrow('rank 4; expected [N, L, K] (tokens, layers, top-k) or [N, K]');
    expect(() => readNpyTrace(rawNpy('float.npy', hdr('<f4', '(5, 3, 2)'), d8))).toThrow(/float\.npy has dtype '<f4'; expected an integer dtype, one of '<i1'/);
    expect(() => readNpyTrace(rawNpy('be.npy', hdr('>i4', '(5, 3, 2)'), d8))).toThrow(/be\.npy has big-endian dtype '>i4'; expected little-endian/);
    expect(() => readNpyTrace(rawNpy('struct.npy', "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (5, 3, 2), }\n", d8))).toThrow('structured dtype');
    expect(() => readNpyTrace(rawNpy('short.npy', hdr('<i8', '(5, 3, 3)'), d8))).toThrow(/short\.npy: shape \(5, 3, 3\) of <i8 needs 360 bytes of data after the \d+-byte header, but the file has 240/);
    const v9 = rawNpy('v9.npy', hdr('<i8', '(5, 3, 2)'), d8);
    const b = readFileSync(v9);
    b[6] = 9;
    writeFileSync(v9, b);
    expect(() => readNpyTrace(v9)).toThrow('has format version 9.0, expected 1.0, 2.0 or 3.0');
    const cut = path.join(dir, 'cut.npy');
    writeFileSync(cut, Buffer.from([0x93, ...Buffer.from('NUMPY'), 1, 0, 0xe8, 0x03, 0x7b])); // a 1000-byte header in an 11-byte file
    expect(() => readNpyTrace(cut)).toThrow(`npy: ${cut} declares a 1000-byte header ending at byte 1010 but the file has 11 bytes`);
  });
});
