// Node: GGUF (llama.cpp's model file, version 3): typed key/value metadata, tensor infos and 32-byte aligned tensor
// data; a writer (atomic) and a header reader that checks every length against the file. Tensor element types: F32,
// F16, BF16 and the block formats Q8_0 and Q4_0 (32 values a block with an f16 scale), quantised as ggml does.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { f32ToBf16, f32ToF16 } from '../tensor/dtype.js';
import { writeFileAtomic } from './safetensors.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** ggml tensor types moekit writes, with their ggml_type numbers. */
export const GGML_TYPES = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPES;
const TYPE_NAMES = new Map<number, GgmlType>(Object.entries(GGML_TYPES).map(([k, v]) => [v, k as GgmlType]));

/** Metadata value types (gguf_type). */
const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;

/** A metadata value: numbers are u32 unless typed; arrays of strings, i32 or f32. */
export type GgufValue = string | boolean | number | { u32: number } | { i32: number } | { f32: number } | { u64: number } | string[] | { i32s: number[] } | { f32s: number[] };

export interface GgufTensorIn {
  name: string;
  /** numpy order (slowest first), as safetensors; GGUF stores it reversed */
  shape: readonly number[];
  type: GgmlType;
  data: Float32Array;
}

/** Bytes of `n` values of a type; the block types need n to be a multiple of 32. */
export function ggmlBytes(type: GgmlType, n: number): number {
  if (type === 'F32') return 4 * n;
  if (type === 'F16' || type === 'BF16') return 2 * n;
  if (n % 32 !== 0) throw new RangeError(`GGUF: ${type} needs rows of a multiple of 32 values, got ${n}`);
  return (n / 32) * (type === 'Q8_0' ? 34 : 18);
}

/** Encodes f32 values as a ggml type (row-major, blocks of 32 along the last dimension). */
export function ggmlEncode(type: GgmlType, x: Float32Array): Uint8Array {
  const out = new Uint8Array(ggmlBytes(type, x.length));
  const dv = new DataView(out.buffer);
  if (type === 'F32') out.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  else if (type === 'F16' || type === 'BF16') {
    const f = type === 'F16' ? f32ToF16 : f32ToBf16;
    for (let i = 0; i < x.length; i++) dv.setUint16(2 * i, f(x[i]!), true);
  } else if (type === 'Q8_0') {
    // ggml quantize_row_q8_0_ref: d = amax / 127, q = round(x / d)
    for (let b = 0; b < x.length / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[32 * b + j]!));
      const d = Math.fround(amax / 127), id = d ? Math.fround(1 / d) : 0;
      dv.setUint16(34 * b, f32ToF16(d), true);
      for (let j = 0; j < 32; j++) {
        const v = Math.fround(x[32 * b + j]! * id);
        dv.setInt8(34 * b + 2 + j, Math.sign(v) * Math.round(Math.abs(v))); // roundf: halves away from zero
      }
    }
  } else {
    // ggml quantize_row_q4_0_ref: the value of largest magnitude maps to -8; q = min(15, trunc(x / d + 8.5));
    // byte j holds value j in its low nibble and value j + 16 in its high one
    for (let b = 0; b < x.length / 32; b++) {
      let amax = 0, max = 0;
      for (let j = 0; j < 32; j++) {
        const v = x[32 * b + j]!;
        if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
      }
      const d = Math.fround(max / -8), id = d ? Math.fround(1 / d) : 0;
      dv.setUint16(18 * b, f32ToF16(d), true);
      const q = (v: number): number => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
      for (let j = 0; j < 16; j++) out[18 * b + 2 + j] = q(x[32 * b + j]!) | (q(x[32 * b + j + 16]!) << 4);
    }
  }
  return out;
}

/** Little-endian byte builder for the header. */
class Bytes {
  parts: Uint8Array[] = [];
  size = 0;
  push(b: Uint8Array): void {
    this.parts.push(b);
    this.size += b.length;
  }
  num(kind: 'u8' | 'u32' | 'i32' | 'f32' | 'u64', v: number): void {
    const b = new DataView(new ArrayBuffer(kind === 'u64' ? 8 : kind === 'u8' ? 1 : 4));
    if (kind === 'u8') b.setUint8(0, v);
    else if (kind === 'u32') b.setUint32(0, v, true);
    else if (kind === 'i32') b.setInt32(0, v, true);
    else if (kind === 'f32') b.setFloat32(0, v, true);
    else b.setBigUint64(0, BigInt(v), true);
    this.push(new Uint8Array(b.buffer));
  }
  str(s: string): void {
    const e = new TextEncoder().encode(s);
    this.num('u64', e.length);
    this.push(e);
  }
}

function putValue(b: Bytes, key: string, v: GgufValue): void {
  b.str(key);
  if (typeof v === 'string') { b.num('u32', T.STRING); b.str(v); }
  else if (typeof v === 'boolean') { b.num('u32', T.BOOL); b.num('u8', v ? 1 : 0); }
  else if (typeof v === 'number' || 'u32' in v) { b.num('u32', T.U32); b.num('u32', typeof v === 'number' ? v : v.u32); }
  else if (Array.isArray(v)) { b.num('u32', T.ARRAY); b.num('u32', T.STRING); b.num('u64', v.length); for (const s of v) b.str(s); }
  else if ('i32' in v) { b.num('u32', T.I32); b.num('i32', v.i32); }
  else if ('f32' in v) { b.num('u32', T.F32); b.num('f32', v.f32); }
  else if ('u64' in v) { b.num('u32', T.U64); b.num('u64', v.u64); }
  else if ('i32s' in v) { b.num('u32', T.ARRAY); b.num('u32', T.I32); b.num('u64', v.i32s.length); for (const x of v.i32s) b.num('i32', x); }
  else { b.num('u32', T.ARRAY); b.num('u32', T.F32); b.num('u64', v.f32s.length); for (const x of v.f32s) b.num('f32', x); }
}

const align = (n: number): number => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;

/** Writes a GGUF file atomically; returns its size in bytes. */
export async function writeGguf(file: string, metadata: Readonly<Record<string, GgufValue>>, tensors: readonly GgufTensorIn[]): Promise<number> {
  const b = new Bytes();
  b.num('u32', GGUF_MAGIC);
  b.num('u32', GGUF_VERSION);
  b.num('u64', tensors.length);
  b.num('u64', Object.keys(metadata).length);
  for (const [k, v] of Object.entries(metadata)) putValue(b, k, v);
  const blobs = tensors.map((t) => {
    const n = t.shape.reduce((a, c) => a * c, 1);
    if (n !== t.data.length) throw new RangeError(`writeGguf: ${t.name} has ${t.data.length} values for shape (${t.shape.join(', ')})`);
    return ggmlEncode(t.type, t.data);
  });
  let offset = 0;
  tensors.forEach((t, i) => {
    b.str(t.name);
    b.num('u32', t.shape.length);
    for (const d of [...t.shape].reverse()) b.num('u64', d);
    b.num('u32', GGML_TYPES[t.type]);
    b.num('u64', offset);
    offset = align(offset + blobs[i]!.length);
  });
  const out = new Uint8Array(align(b.size) + offset);
  let at = 0;
  for (const p of b.parts) { out.set(p, at); at += p.length; }
  at = align(b.size);
  blobs.forEach((blob) => { out.set(blob, at); at = align(at + blob.length); });
  await writeFileAtomic(file, out);
  return out.length;
}

export interface GgufTensorInfo {
  name: string;
  /** numpy order */
  shape: number[];
  type: GgmlType;
  /** absolute byte offset in the file, and bytes */
  offset: number;
  bytes: number;
}

export interface GgufHeader {
  version: number;
  metadata: Record<string, unknown>;
  tensors: GgufTensorInfo[];
}

/** Reads a GGUF file's metadata and tensor infos, checking that every tensor lies within the file. */
export function readGgufHeader(file: string): GgufHeader {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    let pos = 0;
    const take = (n: number, what: string): DataView => {
      if (pos + n > size) throw new RangeError(`${file}: truncated GGUF: ${what} needs bytes ${pos}..${pos + n}, the file has ${size}`);
      const buf = Buffer.alloc(n);
      readSync(fd, buf, 0, n, pos);
      pos += n;
      return new DataView(buf.buffer, buf.byteOffset, n);
    };
    const u32 = (w: string): number => take(4, w).getUint32(0, true);
    const u64 = (w: string): number => Number(take(8, w).getBigUint64(0, true));
    const str = (w: string): string => {
      const n = u64(w);
      const v = take(n, w);
      return new TextDecoder().decode(new Uint8Array(v.buffer, v.byteOffset, n));
    };
    const value = (type: number, w: string): unknown => {
      switch (type) {
        case T.U8: return take(1, w).getUint8(0);
        case T.I8: return take(1, w).getInt8(0);
        case T.U16: return take(2, w).getUint16(0, true);
        case T.I16: return take(2, w).getInt16(0, true);
        case T.U32: return u32(w);
        case T.I32: return take(4, w).getInt32(0, true);
        case T.F32: return take(4, w).getFloat32(0, true);
        case T.BOOL: return take(1, w).getUint8(0) !== 0;
        case T.STRING: return str(w);
        case T.U64: return u64(w);
        case T.I64: return Number(take(8, w).getBigInt64(0, true));
        case T.F64: return take(8, w).getFloat64(0, true);
        case T.ARRAY: {
          const et = u32(w), n = u64(w);
          return Array.from({ length: n }, () => value(et, w));
        }
        default: throw new Error(`${file}: ${w} has unknown GGUF value type ${type}`);
      }
    };
    if (u32('the magic') !== GGUF_MAGIC) throw new Error(`${file}: not a GGUF file (the first 4 bytes are not "GGUF")`);
    const version = u32('the version');
    if (version !== 2 && version !== 3) throw new Error(`${file}: GGUF version ${version} is not supported (2 or 3)`);
    const nt = u64('the tensor count'), nkv = u64('the metadata count');
    const metadata: Record<string, unknown> = {};
    for (let i = 0; i < nkv; i++) {
      const k = str(`metadata key ${i}`);
      metadata[k] = value(u32(`the type of ${k}`), k);
    }
    const infos = Array.from({ length: nt }, (_, i) => {
      const name = str(`tensor ${i}'s name`);
      const dims = Array.from({ length: u32(`${name}'s rank`) }, () => u64(`${name}'s shape`));
      const t = u32(`${name}'s type`);
      const type = TYPE_NAMES.get(t);
      if (!type) throw new Error(`${file}: tensor ${name} has ggml type ${t}, which moekit does not read (F32, F16, BF16, Q8_0, Q4_0)`);
      return { name, shape: dims.reverse(), type, rel: u64(`${name}'s offset`) };
    });
    const alignment = typeof metadata['general.alignment'] === 'number' ? (metadata['general.alignment'] as number) : GGUF_ALIGNMENT;
    const start = Math.ceil(pos / alignment) * alignment;
    const tensors = infos.map((t) => {
      const bytes = ggmlBytes(t.type, t.shape.reduce((a, c) => a * c, 1));
      const offset = start + t.rel;
      if (offset + bytes > size) throw new RangeError(`${file}: truncated GGUF: tensor ${t.name} needs bytes ${offset}..${offset + bytes}, the file has ${size}`);
      return { name: t.name, shape: t.shape, type: t.type, offset, bytes };
    });
    return { version, metadata, tensors };
  } finally {
    closeSync(fd);
  }
}
