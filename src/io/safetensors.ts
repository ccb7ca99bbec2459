// safetensors: a validating, lazy reader (header only; tensors read by byte range) and an atomic writer.
import type { FileHandle } from 'node:fs/promises';
import { f16ToF32 } from '../tensor/dtype.js';
import { E4M3_VALUES, E5M2_VALUES, E8M0_VALUES, decodeBytes } from '../tensor/minifloat.js';

/** Node's file APIs, loaded on first use so this module also loads in browsers (which only encode/parse). */
const nodeFs = () => import('node:fs/promises');
const nodePath = async () => (await import('node:path')).default;

/** Element types of the safetensors format that moekit reads and writes. */
export type StDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2' | 'F8_E8M0' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';
export const ST_DTYPE_BYTES: { [D in StDType]: number } = { F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** One-byte float dtypes (FP8 E4M3FN, FP8 E5M2, E8M0 scales): each code's value, by code. */
const BYTE_FLOATS: { [D in StDType]?: Float32Array } = { F8_E4M3: E4M3_VALUES, F8_E5M2: E5M2_VALUES, F8_E8M0: E8M0_VALUES };

/** Largest header the reader accepts (the format's own limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface StTensorInfo {
  readonly name: string;
  readonly dtype: StDType;
  readonly shape: readonly number[];
  /** byte range in the file (absolute offsets) */
  readonly begin: number;
  readonly end: number;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Names of the top-level keys of a JSON object text, in order, duplicates kept (JSON.parse would hide them). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = c === '{' && depth === 1;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
  }
  return keys;
}

function fail(where: string, msg: string): never {
  throw new SafetensorsError(`safetensors: ${where}: ${msg}`);
}

/** Validates a header (the JSON text after the 8-byte length) against the file size; returns tensors and metadata. */
export function parseHeader(text: string, headerLen: number, fileSize: number, where: string): { tensors: StTensorInfo[]; metadata: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(where, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) fail(where, 'header must be a JSON object');
  const keys = topLevelKeys(text);
  const dup = keys.find((k, i) => keys.indexOf(k) !== i);
  if (dup !== undefined) fail(where, `tensor "${dup}" appears twice in the header`);
  const dataStart = 8 + headerLen;
  const dataLen = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: StTensorInfo[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail(where, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(where, `__metadata__ value of "${k}" must be a string, got ${typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (!e || typeof e !== 'object') fail(where, `entry of tensor "${name}" must be an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in ST_DTYPE_BYTES)) fail(where, `tensor "${name}" has dtype ${JSON.stringify(e.dtype)}, expected one of ${Object.keys(ST_DTYPE_BYTES).join(', ')}`);
    const dtype = e.dtype as StDType;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(where, `tensor "${name}" has shape ${JSON.stringify(e.shape)}, expected non-negative integers`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      fail(where, `tensor "${name}" has data_offsets ${JSON.stringify(off)}, expected [begin, end] with 0 <= begin <= end`);
    }
    const shape = e.shape as number[];
    const want = shape.reduce((a, d) => a * d, 1) * ST_DTYPE_BYTES[dtype];
    const [b, en] = off as [number, number];
    if (en - b !== want) fail(where, `tensor "${name}" (${dtype} [${shape.join(', ')}]) needs ${want} bytes but data_offsets [${b}, ${en}] hold ${en - b}`);
    if (en > dataLen) fail(where, `tensor "${name}" ends at byte ${dataStart + en} but the file has ${fileSize}`);
    tensors.push({ name, dtype, shape, begin: dataStart + b, end: dataStart + en });
  }
  const sorted = [...tensors].sort((x, y) => x.begin - y.begin || x.end - y.end);
  let at = dataStart;
  for (const t of sorted) {
    if (t.begin !== at) fail(where, `tensor "${t.name}" starts at data byte ${t.begin - dataStart} but the previous tensor ends at ${at - dataStart} (${t.begin < at ? 'overlap' : 'gap'})`);
    at = t.end;
  }
  if (at !== fileSize) fail(where, `tensors end at data byte ${at - dataStart} but the data section has ${dataLen} bytes`);
  return { tensors, metadata };
}

/** An open safetensors file: the header is parsed and checked; tensors are read on demand by byte range. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly tensors: ReadonlyMap<string, StTensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static async open(file: string): Promise<SafetensorsFile> {
    const fs = await nodeFs();
    const handle = await fs.open(file, 'r').catch((e: NodeJS.ErrnoException) => {
      throw new SafetensorsError(`safetensors: cannot open ${file}: ${e.code ?? e.message}`);
    });
    try {
      const { size } = await handle.stat();
      if (size < 8) fail(file, `file has ${size} bytes, less than the 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      await handle.read(lenBuf, 0, 8, 0);
      const len = lenBuf.readBigUInt64LE(0);
      if (len > BigInt(MAX_HEADER_BYTES)) fail(file, `header length ${len} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      const headerLen = Number(len);
      if (8 + headerLen > size) fail(file, `header length ${headerLen} runs past the end of the file (${size} bytes)`);
      const hb = Buffer.alloc(headerLen);
      await handle.read(hb, 0, headerLen, 8);
      const { tensors, metadata } = parseHeader(hb.toString('utf8'), headerLen, size, file);
      return new SafetensorsFile(file, handle, new Map(tensors.map((t) => [t.name, t])), metadata);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  info(name: string): StTensorInfo {
    const t = this.tensors.get(name);
    if (!t) fail(this.path, `no tensor "${name}" (the file has ${this.tensors.size} tensors)`);
    return t;
  }

  /**
   * The raw little-endian bytes of one tensor (copied into a fresh, aligned buffer). A floating-point tensor holding
   * NaN or ±Infinity is an error naming the file, the tensor, how many and the first index (one pass over the bits),
   * unless `allowNonFinite` (for tools that inspect broken files).
   */
  async readBytes(name: string, opts: { allowNonFinite?: boolean } = {}): Promise<Uint8Array> {
    const t = this.info(name);
    const out = new Uint8Array(t.end - t.begin);
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await this.handle.read(out, done, out.length - done, t.begin + done);
      if (bytesRead === 0) fail(this.path, `file shrank while reading "${name}"`);
      done += bytesRead;
    }
    if (!opts.allowNonFinite) checkFinite(out, t.dtype, `safetensors: ${this.path}: tensor "${name}" (${t.dtype} [${t.shape.join(', ')}])`);
    return out;
  }

  /** One floating-point tensor (F32, F16, BF16, F64, or FP8 / E8M0 codes without their block scales) as float32 values. */
  async readF32(name: string): Promise<Float32Array> {
    return decodeF32(await this.readBytes(name), this.info(name).dtype, `${this.path}: "${name}"`);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Float dtypes: element bytes, and the exponent mask of the (high) word; all exponent bits set = NaN or ±Infinity. */
const FLOAT_WORDS: { [D in StDType]?: { mask: number; wordBytes: 2 | 4; stride: number; hi: number } } = {
  F64: { mask: 0x7ff00000, wordBytes: 4, stride: 2, hi: 1 },
  F32: { mask: 0x7f800000, wordBytes: 4, stride: 1, hi: 0 },
  F16: { mask: 0x7c00, wordBytes: 2, stride: 1, hi: 0 },
  BF16: { mask: 0x7f80, wordBytes: 2, stride: 1, hi: 0 },
};

/**
 * NaN and ±Infinity in little-endian float bytes (F64, F32, F16, BF16, and the one-byte F8_E4M3, F8_E5M2, F8_E8M0),
 * found from the bit patterns in one pass without decoding: how many, and the first (flat element index). `null` for
 * integer dtypes, which cannot hold them.
 */
export function nonFinite(bytes: Uint8Array, dtype: StDType): { count: number; first: number } | null {
  const byteValues = BYTE_FLOATS[dtype];
  if (byteValues) {
    let count = 0;
    let first = -1;
    for (let i = 0; i < bytes.length; i++) if (!Number.isFinite(byteValues[bytes[i]!]!) && count++ === 0) first = i;
    return { count, first };
  }
  const f = FLOAT_WORDS[dtype];
  if (!f) return null;
  const nWords = bytes.byteLength / f.wordBytes;
  let src = bytes;
  if (bytes.byteOffset % f.wordBytes !== 0) src = bytes.slice(); // a fresh buffer is aligned
  const { mask, stride, hi } = f;
  let count = 0;
  let first = -1;
  if (LITTLE_ENDIAN && f.wordBytes === 2 && nWords % 2 === 0 && src.byteOffset % 4 === 0) {
    // two 16-bit values per 32-bit word (element 2i in the low half): half the loop iterations
    const w = new Uint32Array(src.buffer, src.byteOffset, nWords / 2);
    const hiMask = (mask << 16) >>> 0;
    for (let i = 0; i < w.length; i++) {
      const v = w[i]!;
      if ((v & mask) === mask && count++ === 0) first = 2 * i;
      if ((v & hiMask) >>> 0 === hiMask && count++ === 0) first = 2 * i + 1;
    }
  } else if (LITTLE_ENDIAN) {
    const w = f.wordBytes === 4 ? new Uint32Array(src.buffer, src.byteOffset, nWords) : new Uint16Array(src.buffer, src.byteOffset, nWords);
    for (let i = hi; i < nWords; i += stride) {
      if ((w[i]! & mask) === mask) {
        if (count++ === 0) first = (i - hi) / stride;
      }
    }
  } else {
    const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
    for (let i = hi; i < nWords; i += stride) {
      const v = f.wordBytes === 4 ? dv.getUint32(4 * i, true) : dv.getUint16(2 * i, true);
      if ((v & mask) === mask) {
        if (count++ === 0) first = (i - hi) / stride;
      }
    }
  }
  return { count, first };
}

/** Throws a SafetensorsError starting with `what` (the file and tensor) when float bytes hold NaN or ±Infinity. */
export function checkFinite(bytes: Uint8Array, dtype: StDType, what: string): void {
  const r = nonFinite(bytes, dtype);
  if (!r || r.count === 0) return;
  const n = bytes.byteLength / ST_DTYPE_BYTES[dtype];
  const v = decodeF32(bytes.subarray(r.first * ST_DTYPE_BYTES[dtype], (r.first + 1) * ST_DTYPE_BYTES[dtype]).slice(), dtype, what)[0]!;
  throw new SafetensorsError(
    `${what} has ${r.count} non-finite value${r.count === 1 ? '' : 's'} (NaN or ±Infinity) among ${n}, the first at flat index ${r.first} (${v}); expected finite weights (the file is damaged, or it was saved from a diverged run)`,
  );
}

/**
 * Little-endian F32 / F16 / BF16 / F64 bytes, or one-byte F8_E4M3 / F8_E5M2 / F8_E8M0 codes, as float32 values (aligned
 * F32 bytes are viewed, not copied; FP8 codes are decoded as they are, without any block scale); other dtypes are an
 * error naming `what`.
 */
export function decodeF32(bytes: Uint8Array, dtype: StDType, what: string): Float32Array {
  const n = bytes.byteLength / ST_DTYPE_BYTES[dtype];
  const byteValues = BYTE_FLOATS[dtype];
  if (byteValues) return decodeBytes(bytes, byteValues);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32' && LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n); // a view: no copy
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(2 * i, true));
      return out;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new SafetensorsError(`safetensors: ${what} has dtype ${dtype}, expected a floating-point tensor (F32, F16, BF16, F64, F8_E4M3, F8_E5M2, F8_E8M0)`);
  }
}

export interface StTensorIn {
  name: string;
  dtype: StDType;
  shape: readonly number[];
  /** little-endian element data (any typed array; its bytes are written as they are) */
  data: ArrayBufferView;
}

/** Serialises tensors (in the given order) and metadata (`{"format":"pt"}` by default); header padded to 8 bytes. */
export function encodeSafetensors(tensors: readonly StTensorIn[], metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let at = 0;
  for (const t of tensors) {
    if (t.name in header) fail('encode', `tensor "${t.name}" given twice`);
    const bytes = t.shape.reduce((a, d) => a * d, 1) * ST_DTYPE_BYTES[t.dtype];
    if (bytes !== t.data.byteLength) fail('encode', `tensor "${t.name}" (${t.dtype} [${t.shape.join(', ')}]) needs ${bytes} bytes, data has ${t.data.byteLength}`);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [at, at + bytes] };
    at += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + hb.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let pos = 8 + hb.length;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Writes a file atomically: a temporary file in the same directory, fsync, then rename over the target. */
export async function writeFileAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  const fs = await nodeFs();
  const path = await nodePath();
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const h = await fs.open(tmp, 'w');
  try {
    await h.writeFile(bytes);
    await h.sync();
  } finally {
    await h.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/** encodeSafetensors + writeFileAtomic. */
export async function writeSafetensors(file: string, tensors: readonly StTensorIn[], metadata?: Record<string, string>): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
