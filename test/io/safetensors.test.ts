// safetensors: reads transformers' files, round-trips its own, and rejects damaged or hostile files cleanly.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';
import { Rng } from '../../src/tensor/random.js';
import { SafetensorsError, SafetensorsFile, checkFinite, encodeSafetensors, nonFinite, writeSafetensors } from '../../src/io/safetensors.js';
import { f32ToF16 } from '../../src/tensor/dtype.js';
import { tensor } from '../../src/tensor/api.js';
import { setBackend } from '../../src/backend/registry.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.js';
import { poke } from '../helpers/poke.js';
import { fixture } from '../helpers/fixtures.js';

const mixtral = fixture('hf/mixtral/model.safetensors');
const dir = tempDir('moekit-st-');

function header(obj: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const hb = Buffer.from(JSON.stringify(obj));
  const out = new Uint8Array(8 + hb.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  out.set(data, 8 + hb.length);
  return out;
}

async function open(bytes: Uint8Array, name = 'f.safetensors'): Promise<SafetensorsFile> {
  const p = path.join(dir, name);
  writeFileSync(p, bytes);
  return SafetensorsFile.open(p);
}

describe('safetensors reader', () => {
  it("opens transformers' mixtral fixture lazily and reads a tensor by byte range", async () => {
    const f = await SafetensorsFile.open(mixtral);
    const norm = f.info('model.norm.weight');
    expect(norm.dtype).toBe('F32');
    expect(norm.shape).toEqual([64]);
    const v = new Float32Array((await f.readBytes('model.norm.weight')).buffer);
    expect(v.length).toBe(64);
    expect(v.every((x) => Math.abs(x - 1) < 1)).toBe(true); // norm weights are 1 + N(0, 0.1)
    expect([...f.tensors.keys()].some((n) => n.includes('block_sparse_moe.experts.0.w1'))).toBe(true);
    await expect(f.readBytes('nope')).rejects.toThrow(/no tensor "nope"/);
    await f.close();
  });

  it('round-trips what the writer writes (metadata, order, bytes); the write is atomic', async () => {
    const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const b = Int32Array.from([7, -8]);
    const p = path.join(dir, 'rt.safetensors');
    await writeSafetensors(p, [{ name: 'a', dtype: 'F32', shape: [2, 3], data: a }, { name: 'b', dtype: 'I32', shape: [2], data: b }], { format: 'pt', step: '3' });
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const bytes = readFileSync(p);
    expect(Number(bytes.readBigUInt64LE(0)) % 8).toBe(0);
    const f = await SafetensorsFile.open(p);
    expect(f.metadata).toEqual({ format: 'pt', step: '3' });
    expect(Array.from(new Float32Array((await f.readBytes('a')).buffer))).toEqual(Array.from(a));
    expect(Array.from(new Int32Array((await f.readBytes('b')).buffer))).toEqual([7, -8]);
    await f.close();
  });

  const cases: [string, Uint8Array, RegExp][] = [
    ['a file shorter than 8 bytes', new Uint8Array(5), /less than the 8-byte header length/],
    ['a huge header length', (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 1n << 60n, true); return b; })(), /exceeds the 100000000-byte limit/],
    ['a header running past the end', (() => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 100n, true); return b; })(), /runs past the end of the file/],
    ['bad JSON', header('x').slice(0, 10), /not valid JSON|runs past/],
    ['negative offsets', header({ t: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, new Uint8Array(4)), /data_offsets \[-4,0\]/],
    ['a size that does not match dtype × shape', header({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)), /needs 8 bytes but data_offsets \[0, 4\] hold 4/],
    ['overlapping tensors', header({ a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] }, b: { dtype: 'U8', shape: [2], data_offsets: [2, 4] } }, new Uint8Array(4)), /overlap/],
    ['a gap between tensors', header({ a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] }, b: { dtype: 'U8', shape: [1], data_offsets: [2, 3] } }, new Uint8Array(3)), /gap/],
    ['trailing bytes', header({ a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(3)), /data section has 3 bytes/],
    ['an unknown dtype', header({ a: { dtype: 'Q7', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /dtype "Q7"/],
    ['a tensor past the end', header({ a: { dtype: 'U8', shape: [8], data_offsets: [0, 8] } }, new Uint8Array(2)), /ends at byte/],
    ['non-string metadata', header({ __metadata__: { step: 3 } }), /must be a string/],
    ['a header that is a JSON array', header([1, 2]), /header must be a JSON object/],
    ['a huge shape (no allocation follows it)', header({ a: { dtype: 'F32', shape: [2 ** 26, 2 ** 26], data_offsets: [0, 4] } }, new Uint8Array(4)), /needs 18014398509481984 bytes but data_offsets \[0, 4\] hold 4/],
    ['fractional offsets', header({ a: { dtype: 'U8', shape: [1], data_offsets: [0.5, 1.5] } }, new Uint8Array(2)), /data_offsets \[0.5,1.5\]/],
    ['a negative dimension', header({ a: { dtype: 'U8', shape: [-1], data_offsets: [0, 1] } }, new Uint8Array(1)), /shape \[-1\], expected non-negative integers/],
    ['a missing dtype', header({ a: { shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /dtype undefined, expected one of/],
  ];
  for (const [what, bytes, msg] of cases) {
    it(`rejects ${what}`, async () => {
      await expect(open(bytes)).rejects.toThrow(msg);
    });
  }

  it('rejects duplicate tensor names (which JSON.parse would hide)', async () => {
    const text = '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    const hb = Buffer.from(text);
    const b = new Uint8Array(8 + hb.length + 1);
    new DataView(b.buffer).setBigUint64(0, BigInt(hb.length), true);
    b.set(hb, 8);
    await expect(open(b)).rejects.toThrow('tensor "a" appears twice in the header');
  });

  it('fuzz: random truncations and header bit flips are rejected with a SafetensorsError or parse to a valid file', async () => {
    const good = encodeSafetensors([
      { name: 'w', dtype: 'F32', shape: [3, 4], data: new Float32Array(12) },
      { name: 'b', dtype: 'F16', shape: [4], data: new Uint16Array(4) },
    ]);
    const headerEnd = 8 + Number(new DataView(good.buffer).getBigUint64(0, true));
    const rng = new Rng(42);
    for (let i = 0; i < 200; i++) {
      const bytes = i % 2 === 0 ? good.slice(0, rng.int(good.length)) : good.slice();
      if (i % 2 === 1) bytes[rng.int(headerEnd)] ^= 1 << rng.int(8);
      try {
        const f = await open(bytes, `fuzz${i}.safetensors`);
        // accepted: every tensor must lie inside the file
        for (const t of f.tensors.values()) expect(t.end).toBeLessThanOrEqual(bytes.length);
        await f.close();
      } catch (e) {
        expect(e).toBeInstanceOf(SafetensorsError);
      }
    }
  });
});

describe('sharded checkpoints', () => {
  it('reads tensors across shards through model.safetensors.index.json and rejects a broken index', async () => {
    const { Checkpoint } = await import('../../src/models/hf/load.js');
    const d = tempDir('moekit-shards-');
    await writeSafetensors(path.join(d, 'model-00001-of-00002.safetensors'), [{ name: 'a', dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) }]);
    await writeSafetensors(path.join(d, 'model-00002-of-00002.safetensors'), [{ name: 'b', dtype: 'BF16', shape: [2], data: Uint16Array.from([0x3f80, 0xc000]) }]);
    const index = (map: Record<string, string>): void => writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: map }));
    index({ a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' });
    const ck = await Checkpoint.open(d);
    expect([...ck.names()].sort()).toEqual(['a', 'b']);
    expect(Array.from(await ck.readF32('b'))).toEqual([1, -2]);
    expect(ck.dataBytes).toBe(12);
    await ck.close();
    index({ a: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' });
    await expect(Checkpoint.open(d)).rejects.toThrow(/puts "c" in model-00002-of-00002.safetensors, which has no such tensor/);
    index({ a: '../escape.safetensors' });
    await expect(Checkpoint.open(d)).rejects.toThrow(/shard "..\/escape.safetensors" must be a file name/);
    index({ a: 'missing.safetensors' });
    await expect(Checkpoint.open(d)).rejects.toThrow(/cannot open .*missing.safetensors: ENOENT/);
    writeFileSync(path.join(d, 'model.safetensors.index.json'), '{"nope": 1}');
    await expect(Checkpoint.open(d)).rejects.toThrow(/"weight_map" is missing/);
  });
});

describe('non-finite values', () => {
  const nfDir = mkdtempSync(path.join(os.tmpdir(), 'moekit-st-nonfinite-'));
  afterAll(() => rmSync(nfDir, { recursive: true, force: true }));
  const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const bf16 = (xs: number[]): Uint16Array => Uint16Array.from(xs, (x) => new Uint32Array(Float32Array.of(x).buffer)[0]! >>> 16);

  it('are counted from the bits in F32, F64, F16 and BF16 (first flat index); integer dtypes hold none', () => {
    const xs = [1, -2, 65504, Number.NaN, 0, Number.POSITIVE_INFINITY, -3.5, Number.NEGATIVE_INFINITY];
    expect(nonFinite(bytes(Float32Array.from(xs)), 'F32')).toEqual({ count: 3, first: 3 });
    expect(nonFinite(bytes(Float64Array.from(xs)), 'F64')).toEqual({ count: 3, first: 3 });
    expect(nonFinite(bytes(Uint16Array.from(xs, f32ToF16)), 'F16')).toEqual({ count: 3, first: 3 });
    expect(nonFinite(bytes(bf16(xs)), 'BF16')).toEqual({ count: 3, first: 3 });
    // the largest finite values are not flagged; an F16 overflow is (65520 rounds to Infinity)
    expect(nonFinite(bytes(Float32Array.of(3.4028234e38, -3.4028234e38, 1e-45)), 'F32')).toEqual({ count: 0, first: -1 });
    expect(nonFinite(bytes(Float64Array.of(Number.MAX_VALUE, -Number.MAX_VALUE)), 'F64')).toEqual({ count: 0, first: -1 });
    expect(nonFinite(bytes(Uint16Array.of(f32ToF16(65504), f32ToF16(70000))), 'F16')).toEqual({ count: 1, first: 1 });
    expect(nonFinite(bytes(Uint16Array.of(0, 0x7c00, 1, 0xfe00, 0x3c00)), 'F16')).toEqual({ count: 2, first: 1 }); // odd count: one value at a time
    expect(nonFinite(bytes(Uint16Array.of(0, 0x7c00, 1, 0xffc0, 0x7f80)), 'BF16')).toEqual({ count: 2, first: 3 });
    expect(nonFinite(bytes(Uint16Array.of(0xff80, 0, 0, 0x7fc0)), 'BF16')).toEqual({ count: 2, first: 0 });
    expect(nonFinite(Uint8Array.of(0xff, 0xff, 0x7f, 0x80), 'U8')).toBeNull();
    expect(nonFinite(Uint8Array.of(0xff, 0xff, 0xff, 0xff), 'I32')).toBeNull();
    // unaligned views are read correctly
    const buf = new Uint8Array(9);
    buf.set(bytes(Float32Array.of(1, Number.NaN)), 1);
    expect(nonFinite(buf.subarray(1), 'F32')).toEqual({ count: 1, first: 1 });
    expect(() => checkFinite(bytes(Float32Array.of(0, Number.NaN)), 'F32', 'tensor "w"')).toThrow('tensor "w" has 1 non-finite value (NaN or ±Infinity) among 2, the first at flat index 1 (NaN)');
  });

  it('a tensor holding NaN or Infinity is refused when read, naming the file, the tensor, the count and the first index', async () => {
    const file = path.join(nfDir, 'nan.safetensors');
    const w = new Float32Array(12).fill(0.5);
    w[7] = Number.NaN;
    w[9] = Number.NEGATIVE_INFINITY;
    await writeSafetensors(file, [
      { name: 'ok', dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) },
      { name: 'bad', dtype: 'F32', shape: [3, 4], data: w },
      { name: 'half', dtype: 'F16', shape: [2], data: Uint16Array.of(f32ToF16(1), 0x7c00) },
      { name: 'ints', dtype: 'I32', shape: [1], data: Int32Array.of(-1) },
    ]);
    const f = await SafetensorsFile.open(file);
    try {
      expect(Array.from(await f.readF32('ok'))).toEqual([1, 2]);
      expect((await f.readBytes('ints')).length).toBe(4);
      const msg = `safetensors: ${file}: tensor "bad" (F32 [3, 4]) has 2 non-finite values (NaN or ±Infinity) among 12, the first at flat index 7 (NaN)`;
      await expect(f.readBytes('bad')).rejects.toThrow(msg);
      await expect(f.readF32('bad')).rejects.toThrow(SafetensorsError);
      await expect(f.readF32('half')).rejects.toThrow(`tensor "half" (F16 [2]) has 1 non-finite value (NaN or ±Infinity) among 2, the first at flat index 1 (Infinity)`);
      // tools that inspect damaged files can still read the bytes
      expect((await f.readBytes('bad', { allowNonFinite: true })).length).toBe(48);
    } finally {
      await f.close();
    }
  });

  it('training checkpoints (loadCheckpoint reads through readBytes) refuse a NaN weight too', async () => {
    await setBackend('js');
    const params: [string, Tensor][] = [['w', tensor(Float32Array.of(1, 2, 3, 4), [2, 2])]];
    const step = await saveCheckpoint(path.join(nfDir, 'ckpt'), params, null, { step: 1 });
    await poke(path.join(step, 'model.safetensors'), 'w', 3);
    await expect(loadCheckpoint(step, params, null)).rejects.toThrow(`safetensors: ${path.join(step, 'model.safetensors')}: tensor "w" (F32 [2, 2]) has 1 non-finite value (NaN or ±Infinity) among 4, the first at flat index 3 (NaN)`);
  });
});
