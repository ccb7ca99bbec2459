// NumPy .npy routing traces: read an integer array of expert ids [N, L, K] (or [N, K]) in chunks into a RoutingTrace, and write .npy files.
import { closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import type { RoutingTrace } from './types.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"

/** The integer dtypes read and written: little-endian (or byte-order-free) signed and unsigned integers. */
export type NpyDtype = '<i1' | '|i1' | '<i2' | '<i4' | '<i8' | '|u1' | '<u1' | '<u2' | '<u4' | '<u8';

/** Bytes per element and signedness of each dtype kind ('i1' … 'u8'). */
const KINDS: Record<string, { bytes: number; signed: boolean }> = {
  i1: { bytes: 1, signed: true },
  i2: { bytes: 2, signed: true },
  i4: { bytes: 4, signed: true },
  i8: { bytes: 8, signed: true },
  u1: { bytes: 1, signed: false },
  u2: { bytes: 2, signed: false },
  u4: { bytes: 4, signed: false },
  u8: { bytes: 8, signed: false },
};

const SUPPORTED = "'<i1', '|i1', '<i2', '<i4', '<i8', '|u1', '<u2', '<u4', '<u8'";

/** The parsed header of a .npy file. */
export interface NpyHeader {
  version: [number, number];
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** byte offset of the array data */
  dataOffset: number;
}

/** Parses the header dict of a .npy file (`{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }`). */
export function parseNpyHeader(file: string, head: Uint8Array, fileBytes: number): NpyHeader {
  if (head.length < 10 || MAGIC.some((b, i) => head[i] !== b)) {
    throw new Error(`npy: ${file} is not a NumPy .npy file (expected the magic string \\x93NUMPY at byte 0)`);
  }
  const major = head[6]!;
  const minor = head[7]!;
  if (major !== 1 && major !== 2 && major !== 3) throw new Error(`npy: ${file} has format version ${major}.${minor}, expected 1.0, 2.0 or 3.0`);
  const lenBytes = major === 1 ? 2 : 4;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 8 + lenBytes) throw new Error(`npy: ${file} ends inside its header (${fileBytes} bytes)`);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataOffset = 8 + lenBytes + headerLen;
  if (dataOffset > fileBytes || dataOffset > head.length) {
    throw new Error(`npy: ${file} declares a ${headerLen}-byte header ending at byte ${dataOffset} but the file has ${fileBytes} bytes`);
  }
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(head.subarray(8 + lenBytes, dataOffset)).trim();
  if (!text.startsWith('{') || !text.endsWith('}')) {
    throw new Error(`npy: ${file}: header is not a Python dict literal (expected {'descr': …, 'fortran_order': …, 'shape': (…)}, got ${JSON.stringify(text.slice(0, 80))})`);
  }
  const descr = /['"]descr['"]\s*:\s*(['"])([^'"]*)\1/.exec(text);
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  const shape = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr) {
    const list = /['"]descr['"]\s*:\s*\[/.test(text);
    throw new Error(`npy: ${file}: header has ${list ? 'a structured dtype (a list of fields)' : 'no string "descr"'}; expected an integer dtype, one of ${SUPPORTED}`);
  }
  if (!fortran) throw new Error(`npy: ${file}: header has no 'fortran_order': True/False`);
  if (!shape) throw new Error(`npy: ${file}: header has no 'shape' tuple`);
  const dims = shape[1]!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (dims.some((d) => !/^\d+L?$/.test(d))) throw new Error(`npy: ${file}: shape (${shape[1]}) is not a tuple of non-negative integers`);
  return { version: [major, minor], descr: descr[2]!, fortranOrder: fortran[1] === 'True', shape: dims.map((d) => Number.parseInt(d, 10)), dataOffset };
}

export interface ReadNpyOptions {
  /** experts per layer (E): ids must lie in [−1, E); without it the trace's E is null */
  experts?: number;
  /** bytes read per chunk (default 8 MiB; rounded down to whole elements) */
  chunkBytes?: number;
}

/**
 * Reads a .npy array of expert ids, shape [N, L, K] (or [N, K], read as L = 1), C order, into a RoutingTrace.
 * The data is read in chunks and converted into the Int16Array as it comes, so an int64 file is never held whole.
 */
export function readNpyTrace(file: string, opts: ReadNpyOptions = {}): RoutingTrace {
  const E = opts.experts ?? null;
  if (E !== null && (!Number.isInteger(E) || E < 1 || E > 32768)) throw new Error(`npy: experts must be an integer in [1, 32768], got ${E}`);
  const fd = openSync(file, 'r');
  try {
    const fileBytes = fstatSync(fd).size;
    const probe = new Uint8Array(Math.min(fileBytes, 12));
    readSync(fd, probe, 0, probe.length, 0);
    let headBytes = probe.length;
    if (probe.length >= 12 && MAGIC.every((b, i) => probe[i] === b)) {
      const v = new DataView(probe.buffer);
      headBytes = Math.min(fileBytes, probe[6] === 1 ? 10 + v.getUint16(8, true) : 12 + v.getUint32(8, true));
    }
    const head = new Uint8Array(headBytes);
    readSync(fd, head, 0, headBytes, 0);
    const h = parseNpyHeader(file, head, fileBytes);
    const kind = dtypeKind(file, h.descr);
    if (h.fortranOrder) throw new Error(`npy: ${file} is in Fortran order (fortran_order: True); expected a C-order array (np.ascontiguousarray)`);
    if (h.shape.length !== 3 && h.shape.length !== 2) {
      throw new Error(`npy: ${file} has shape (${h.shape.join(', ')}), rank ${h.shape.length}; expected [N, L, K] (tokens, layers, top-k) or [N, K]`);
    }
    const [N, L, K] = h.shape.length === 3 ? (h.shape as [number, number, number]) : [h.shape[0]!, 1, h.shape[1]!];
    const count = N * L * K;
    const need = count * kind.bytes;
    if (h.dataOffset + need > fileBytes) {
      throw new Error(`npy: ${file}: shape (${h.shape.join(', ')}) of ${h.descr} needs ${need} bytes of data after the ${h.dataOffset}-byte header, but the file has ${fileBytes - h.dataOffset}`);
    }
    const experts = new Int16Array(count);
    const hi = E ?? 32768;
    const chunkElems = Math.max(1, Math.floor((opts.chunkBytes ?? 8 << 20) / kind.bytes));
    const buf = new ArrayBuffer(Math.min(count, chunkElems) * kind.bytes || 8);
    const u8 = new Uint8Array(buf);
    for (let start = 0; start < count; start += chunkElems) {
      const n = Math.min(chunkElems, count - start);
      readFully(fd, u8, n * kind.bytes, h.dataOffset + start * kind.bytes, file);
      const bad = convert(buf, kind, n, experts, start, hi);
      if (bad >= 0) throw outOfRange(file, start + bad, L, K, elementValue(buf, kind, bad), E);
    }
    return { N, L, K, E, experts, layers: Array.from({ length: L }, (_, l) => l), metadata: { source: file, format: 'npy', dtype: h.descr } };
  } finally {
    closeSync(fd);
  }
}

function dtypeKind(file: string, descr: string): { bytes: number; signed: boolean } {
  const m = /^([<>|=])([iu][1248])$/.exec(descr);
  const kind = m ? KINDS[m[2]!] : undefined;
  if (!m || !kind) throw new Error(`npy: ${file} has dtype '${descr}'; expected an integer dtype, one of ${SUPPORTED}`);
  if (m[1] === '>' && kind.bytes > 1) throw new Error(`npy: ${file} has big-endian dtype '${descr}'; expected little-endian (${SUPPORTED})`);
  return kind;
}

function readFully(fd: number, into: Uint8Array, bytes: number, position: number, file: string): void {
  let got = 0;
  while (got < bytes) {
    const r = readSync(fd, into, got, bytes - got, position + got);
    if (r === 0) throw new Error(`npy: ${file} ended at byte ${position + got} while reading the array data`);
    got += r;
  }
}

/** Converts n elements of `buf` into out[start..start+n); returns the index in `buf` of the first id outside [−1, hi), or −1. */
function convert(buf: ArrayBuffer, kind: { bytes: number; signed: boolean }, n: number, out: Int16Array, start: number, hi: number): number {
  if (kind.bytes === 8) {
    // (2n) little-endian int32 halves: the value fits an int32 when the high word is the low word's sign extension
    const w = new Int32Array(buf, 0, 2 * n);
    for (let i = 0; i < n; i++) {
      const lo = w[2 * i]!;
      const hiWord = w[2 * i + 1]!;
      if (hiWord !== (kind.signed ? lo >> 31 : 0) || (!kind.signed && lo < 0) || lo < -1 || lo >= hi) return i;
      out[start + i] = lo;
    }
    return -1;
  }
  const src =
    kind.bytes === 1 ? (kind.signed ? new Int8Array(buf, 0, n) : new Uint8Array(buf, 0, n))
    : kind.bytes === 2 ? (kind.signed ? new Int16Array(buf, 0, n) : new Uint16Array(buf, 0, n))
    : kind.signed ? new Int32Array(buf, 0, n) : new Uint32Array(buf, 0, n);
  for (let i = 0; i < n; i++) {
    const v = src[i]!;
    if (v < -1 || v >= hi) return i;
    out[start + i] = v;
  }
  return -1;
}

function elementValue(buf: ArrayBuffer, kind: { bytes: number; signed: boolean }, i: number): string {
  const v = new DataView(buf);
  const at = i * kind.bytes;
  if (kind.bytes === 8) return String(kind.signed ? v.getBigInt64(at, true) : v.getBigUint64(at, true));
  if (kind.bytes === 4) return String(kind.signed ? v.getInt32(at, true) : v.getUint32(at, true));
  if (kind.bytes === 2) return String(kind.signed ? v.getInt16(at, true) : v.getUint16(at, true));
  return String(kind.signed ? v.getInt8(at) : v.getUint8(at));
}

function outOfRange(file: string, flat: number, L: number, K: number, value: string, E: number | null): Error {
  const n = Math.floor(flat / (L * K));
  const l = Math.floor(flat / K) % L;
  const k = flat % K;
  const range = E === null ? '[-1, 32768) (ids are stored as int16; pass --experts to check against E)' : `[-1, ${E}) (E = ${E}, −1 = no expert)`;
  return new Error(`npy: ${file}: expert id ${value} at [${n}, ${l}, ${k}] (token, layer, slot) is outside ${range}`);
}

/** Typed arrays writeNpy accepts, each with the dtype kinds it can hold. */
export type NpyData = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

export interface WriteNpyOptions {
  /** format version (default 1, or 2 when the header does not fit 65535 bytes) */
  version?: 1 | 2 | 3;
  /** write 'fortran_order': True (the data is written as given) */
  fortranOrder?: boolean;
}

/** Writes `data` (row-major, product(shape) elements) as a .npy file of `dtype`, converting element by element when the array type differs. */
export function writeNpy(file: string, data: NpyData, shape: number[], dtype: NpyDtype, opts: WriteNpyOptions = {}): void {
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`npy: ${data.length} elements do not fill shape (${shape.join(', ')}) = ${count}`);
  const kind = KINDS[dtype.slice(1)]!;
  const body = new ArrayBuffer(count * kind.bytes);
  const v = new DataView(body);
  for (let i = 0; i < count; i++) {
    const x = data[i]!;
    const at = i * kind.bytes;
    if (kind.bytes === 8) {
      const b = BigInt(x);
      if (kind.signed) v.setBigInt64(at, b, true);
      else v.setBigUint64(at, b, true);
    } else {
      const n = Number(x);
      if (kind.bytes === 4) kind.signed ? v.setInt32(at, n, true) : v.setUint32(at, n, true);
      else if (kind.bytes === 2) kind.signed ? v.setInt16(at, n, true) : v.setUint16(at, n, true);
      else kind.signed ? v.setInt8(at, n) : v.setUint8(at, n);
    }
  }
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  const dict = `{'descr': '${dtype}', 'fortran_order': ${opts.fortranOrder ? 'True' : 'False'}, 'shape': (${dims}), }`;
  let version = opts.version ?? 1;
  const lenBytes = (ver: number): number => (ver === 1 ? 2 : 4);
  const pad = (ver: number): number => (64 - ((8 + lenBytes(ver) + dict.length + 1) % 64)) % 64;
  if (version === 1 && dict.length + 1 + pad(1) > 0xffff) version = 2;
  const header = `${dict}${' '.repeat(pad(version))}\n`;
  const pre = new Uint8Array(8 + lenBytes(version));
  pre.set(MAGIC);
  pre[6] = version;
  pre[7] = 0;
  const pv = new DataView(pre.buffer);
  if (version === 1) pv.setUint16(8, header.length, true);
  else pv.setUint32(8, header.length, true);
  writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), new Uint8Array(body)]));
}
