// moekit's routing-trace file: a safetensors file with `experts` I16 [N, L, K] (−1 = no expert), `scores` F16
// [N, L, K] (gate weights), `tokens` I32 [N], `seq` I32 [N] (sequence id), optional `hidden` F16 [N, L, H] (the state
// entering each MoE layer), and `__metadata__` (format, model, experts, top_k, layers, corpus, ...). TraceWriter
// streams rows to one temporary part file per tensor and assembles the file when N is known, so memory stays flat.
import fs from 'node:fs';
import path from 'node:path';
import { MAX_HEADER_BYTES, ST_DTYPE_BYTES, parseHeader, type StDType } from '../io/safetensors.js';
import { f16ToF32, f32ToF16 } from '../tensor/dtype.js';
import type { RoutingTrace } from './types.js';

export const TRACE_FORMAT = 'moekit-trace';
export const TRACE_VERSION = '1';

export interface TraceShape {
  /** experts per layer */
  E: number;
  /** experts per token */
  K: number;
  /** the model's index of each traced (MoE) layer */
  layers: number[];
  /** width of the hidden states, when they are recorded */
  H?: number;
}

/** Rows of a trace, n tokens at a time, laid out [token][layer][slot] (hidden [token][layer][H]). */
export interface TraceRows {
  experts: Int16Array; // n·L·K
  scores: Float32Array; // n·L·K
  tokens: Int32Array; // n
  seq: Int32Array; // n
  hidden?: Float32Array; // n·L·H
}

const PARTS = [['experts', 'I16'], ['scores', 'F16'], ['tokens', 'I32'], ['seq', 'I32'], ['hidden', 'F16']] as const;
type PartName = (typeof PARTS)[number][0];

const toF16 = (x: Float32Array): Uint16Array => Uint16Array.from(x, f32ToF16);
const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Streams a trace to `file`: `append` writes each tensor's rows to its part file next to the target; `finish` writes
 * the header and the parts into a temporary file, syncs it and renames it over `file` (a crash never leaves a
 * half-written trace); `abort` removes the parts.
 */
export class TraceWriter {
  readonly file: string;
  readonly shape: TraceShape;
  readonly metadata: Record<string, string>;
  N = 0;
  #fds = new Map<PartName, { fd: number; path: string }>();

  constructor(file: string, shape: TraceShape, metadata: Record<string, string> = {}) {
    const { E, K, layers, H } = shape;
    if (!Number.isInteger(E) || E < 1 || E > 32767) throw new RangeError(`TraceWriter: experts ${E} must be an integer in [1, 32767] (ids are stored as int16)`);
    if (!Number.isInteger(K) || K < 1) throw new RangeError(`TraceWriter: top-k ${K} must be a positive integer`);
    if (layers.length === 0) throw new RangeError('TraceWriter: no layers to trace (the model has no MoE layer)');
    if (H !== undefined && (!Number.isInteger(H) || H < 1)) throw new RangeError(`TraceWriter: hidden width ${H} must be a positive integer`);
    this.file = file;
    this.shape = { ...shape, layers: [...layers] };
    this.metadata = metadata;
    for (const [name] of PARTS) {
      if (name === 'hidden' && H === undefined) continue;
      const p = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${name}.part`);
      this.#fds.set(name, { fd: fs.openSync(p, 'w'), path: p });
    }
  }

  /** Appends n tokens' rows. */
  append(rows: TraceRows): void {
    const { K, layers, H } = this.shape;
    const L = layers.length;
    const n = rows.tokens.length;
    const want: [string, ArrayLike<number> | undefined, number][] = [['experts', rows.experts, n * L * K], ['scores', rows.scores, n * L * K], ['seq', rows.seq, n]];
    if (H !== undefined) want.push(['hidden', rows.hidden, n * L * H]);
    for (const [name, a, len] of want) if (!a || a.length !== len) throw new RangeError(`TraceWriter.append: ${name} has ${a?.length ?? 'no'} values for ${n} tokens, expected ${len}`);
    this.#write('experts', bytesOf(rows.experts));
    this.#write('scores', bytesOf(toF16(rows.scores)));
    this.#write('tokens', bytesOf(rows.tokens));
    this.#write('seq', bytesOf(rows.seq));
    if (H !== undefined) this.#write('hidden', bytesOf(toF16(rows.hidden!)));
    this.N += n;
  }

  #write(name: PartName, b: Uint8Array): void {
    const f = this.#fds.get(name)!;
    let off = 0;
    while (off < b.length) off += fs.writeSync(f.fd, b, off, b.length - off);
  }

  /** Writes the trace file (atomically) and removes the parts. */
  finish(): void {
    const { E, K, layers, H } = this.shape;
    const L = layers.length;
    const N = this.N;
    const shapes: Record<PartName, number[]> = { experts: [N, L, K], scores: [N, L, K], tokens: [N], seq: [N], hidden: [N, L, H ?? 0] };
    const metadata: Record<string, string> = {
      format: TRACE_FORMAT, version: TRACE_VERSION, experts: String(E), top_k: String(K), layers: JSON.stringify(layers),
      dtype: 'experts int16 (-1 = none), scores float16, tokens int32, seq int32' + (H !== undefined ? ', hidden float16' : ''), ...this.metadata,
    };
    const header: Record<string, unknown> = { __metadata__: metadata };
    let at = 0;
    const order = PARTS.filter(([n]) => this.#fds.has(n));
    for (const [name, dtype] of order) {
      const bytes = shapes[name].reduce((a, d) => a * d, 1) * ST_DTYPE_BYTES[dtype as StDType];
      header[name] = { dtype, shape: shapes[name], data_offsets: [at, at + bytes] };
      at += bytes;
    }
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
    const hb = Buffer.from(json, 'utf8');
    const tmp = path.join(path.dirname(this.file), `.${path.basename(this.file)}.${process.pid}.tmp`);
    const out = fs.openSync(tmp, 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(hb.length));
      fs.writeSync(out, len);
      fs.writeSync(out, hb);
      const buf = Buffer.alloc(1 << 22);
      for (const [name] of order) {
        const f = this.#fds.get(name)!;
        fs.closeSync(f.fd);
        const src = fs.openSync(f.path, 'r');
        try {
          for (let r; (r = fs.readSync(src, buf, 0, buf.length, null)) > 0;) {
            let off = 0;
            while (off < r) off += fs.writeSync(out, buf, off, r - off);
          }
        } finally {
          fs.closeSync(src);
        }
      }
      fs.fsyncSync(out);
    } catch (e) {
      fs.closeSync(out);
      fs.rmSync(tmp, { force: true });
      this.#removeParts();
      throw e;
    }
    fs.closeSync(out);
    fs.renameSync(tmp, this.file);
    this.#removeParts();
  }

  /** Removes the part files without writing the trace. */
  abort(): void {
    for (const f of this.#fds.values()) {
      try {
        fs.closeSync(f.fd);
      } catch {
        // already closed by finish()
      }
    }
    this.#removeParts();
  }

  #removeParts(): void {
    for (const f of this.#fds.values()) fs.rmSync(f.path, { force: true });
    this.#fds.clear();
  }
}

/** Reads a moekit trace file into memory (hidden states too, when it has them). */
export function readTrace(file: string): RoutingTrace {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new Error(`${file}: ${size} bytes is too short for a safetensors trace (expected an 8-byte header length first)`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const hlen = Number(lenBuf.readBigUInt64LE(0));
    if (hlen > MAX_HEADER_BYTES || 8 + hlen > size) throw new Error(`${file}: header length ${hlen} does not fit the file of ${size} bytes`);
    const hb = Buffer.alloc(hlen);
    fs.readSync(fd, hb, 0, hlen, 8);
    const { tensors, metadata } = parseHeader(hb.toString('utf8'), hlen, size, file);
    if (metadata.format !== TRACE_FORMAT) throw new Error(`${file}: __metadata__.format is ${JSON.stringify(metadata.format)}, expected "${TRACE_FORMAT}" (a trace written by moekit trace)`);
    const info = new Map(tensors.map((t) => [t.name, t]));
    const read = (name: string, dtype: StDType, rank: number): { bytes: Buffer; shape: number[] } => {
      const t = info.get(name);
      if (!t) throw new Error(`${file}: no tensor "${name}" (a moekit trace has experts, scores, tokens and seq)`);
      if (t.dtype !== dtype || t.shape.length !== rank) throw new Error(`${file}: "${name}" is ${t.dtype} [${t.shape.join(', ')}], expected ${dtype} of rank ${rank}`);
      const n = t.end - t.begin;
      const bytes = Buffer.alloc(n);
      for (let off = 0; off < n;) off += fs.readSync(fd, bytes, off, n - off, t.begin + off);
      return { bytes, shape: [...t.shape] };
    };
    const ex = read('experts', 'I16', 3);
    const [N, L, K] = ex.shape as [number, number, number];
    const experts = new Int16Array(ex.bytes.buffer, ex.bytes.byteOffset, N * L * K);
    const sc = read('scores', 'F16', 3);
    if (sc.shape.join() !== ex.shape.join()) throw new Error(`${file}: scores [${sc.shape.join(', ')}] must have the shape of experts [${ex.shape.join(', ')}]`);
    const scores = Float32Array.from(new Uint16Array(sc.bytes.buffer, sc.bytes.byteOffset, N * L * K), f16ToF32);
    const ints = (name: string): Int32Array => {
      const r = read(name, 'I32', 1);
      if (r.shape[0] !== N) throw new Error(`${file}: ${name} has ${r.shape[0]} entries for ${N} tokens`);
      return new Int32Array(r.bytes.buffer, r.bytes.byteOffset, N);
    };
    const E = Number(metadata.experts);
    if (!Number.isInteger(E) || E < 1) throw new Error(`${file}: __metadata__.experts ${JSON.stringify(metadata.experts)} must be a positive integer`);
    let layers: number[];
    try {
      layers = JSON.parse(metadata.layers ?? 'null') as number[];
    } catch {
      throw new Error(`${file}: __metadata__.layers ${JSON.stringify(metadata.layers)} is not a JSON list of layer indices`);
    }
    if (!Array.isArray(layers) || layers.length !== L) throw new Error(`${file}: __metadata__.layers ${JSON.stringify(metadata.layers)} must list ${L} layer indices`);
    const out: RoutingTrace = { N, L, K, E, experts, layers, scores, tokens: ints('tokens'), seq: ints('seq'), metadata };
    if (info.has('hidden')) {
      const h = read('hidden', 'F16', 3);
      if (h.shape[0] !== N || h.shape[1] !== L) throw new Error(`${file}: hidden [${h.shape.join(', ')}] must be [${N}, ${L}, H]`);
      out.H = h.shape[2]!;
      out.hidden = Float32Array.from(new Uint16Array(h.bytes.buffer, h.bytes.byteOffset, N * L * out.H), f16ToF32);
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}
