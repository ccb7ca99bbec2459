// Megatron-LM router traces (router_trace_rank{R}.jsonl, one record per step and MoE layer with its top-K expert ids per token): read into a RoutingTrace, and write one.
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import type { RoutingTrace } from './types.js';

export interface ReadMegatronOptions {
  /** experts per layer (E): ids must lie in [−1, E); without it the trace's E is null */
  experts?: number;
}

/** The field names read from each record: Megatron's own first, then the aliases tolerated (docs/ROUTING.md says why). */
const IDS_FIELDS = ['top_indices', 'topk_indices'] as const;
const LAYER_FIELDS = ['layer', 'layer_number'] as const;

/** One traced layer while reading: its records' ids, in order of appearance. */
interface LayerRows {
  chunks: Int16Array[];
  /** tokens so far */
  n: number;
}

/** Calls `onLine(text, lineNumber)` for each line of a file, reading it in chunks (a line may span chunks). */
function forEachLine(file: string, onLine: (text: string, line: number) => void): void {
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.allocUnsafe(4 << 20);
    let pending: Buffer[] = [];
    let line = 0;
    let position = 0;
    for (;;) {
      const got = readSync(fd, chunk, 0, chunk.length, position);
      position += got;
      if (got === 0) break;
      let start = 0;
      for (let nl = chunk.indexOf(10, 0); nl !== -1 && nl < got; nl = chunk.indexOf(10, start)) {
        const piece = chunk.subarray(start, nl);
        const text = pending.length ? Buffer.concat([...pending, piece]).toString('utf8') : piece.toString('utf8');
        pending = [];
        onLine(text, ++line);
        start = nl + 1;
      }
      if (start < got) pending.push(Buffer.from(chunk.subarray(start, got)));
    }
    if (pending.length) onLine(Buffer.concat(pending).toString('utf8'), ++line);
  } finally {
    closeSync(fd);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads a Megatron-LM router trace (JSONL) into a RoutingTrace. Each decoder record adds its tokens, in order, to
 * its layer; every layer must end with the same number of tokens N. Layers are ordered by their layer number.
 * Multi-token-prediction records (`"block": "mtp"` or an `mtp_idx`) are skipped and counted in the metadata.
 */
export function readMegatronJsonl(file: string, opts: ReadMegatronOptions = {}): RoutingTrace {
  const E = opts.experts ?? null;
  if (E !== null && (!Number.isInteger(E) || E < 1 || E > 32768)) throw new Error(`megatron: experts must be an integer in [1, 32768], got ${E}`);
  const hi = E ?? 32768;
  const layers = new Map<number, LayerRows>();
  let K = -1;
  let kLine = 0;
  let records = 0;
  let skipped = 0;
  const steps = new Set<number>();
  const ranks = new Set<number>();
  forEachLine(file, (text, line) => {
    if (text.trim() === '') return;
    const at = `megatron: ${file}:${line}`;
    let rec: unknown;
    try {
      rec = JSON.parse(text);
    } catch (e) {
      throw new Error(`${at}: not valid JSON (${(e as Error).message})`);
    }
    if (!isObject(rec)) throw new Error(`${at}: expected a JSON object {"layer": …, "top_indices": [[…], …]}, got ${Array.isArray(rec) ? 'an array' : typeof rec}`);
    if ((rec.block !== undefined && rec.block !== 'decoder') || rec.mtp_idx !== undefined) {
      skipped++;
      return;
    }
    const layerKey = LAYER_FIELDS.find((f) => rec[f] !== undefined);
    const layer = layerKey === undefined ? undefined : rec[layerKey];
    if (!Number.isInteger(layer) || (layer as number) < 0) throw new Error(`${at}: "layer" is ${JSON.stringify(layer)}, expected a non-negative integer`);
    const idsKey = IDS_FIELDS.find((f) => rec[f] !== undefined);
    const rows = idsKey === undefined ? undefined : rec[idsKey];
    if (!Array.isArray(rows)) throw new Error(`${at}: "top_indices" is ${rows === undefined ? 'missing' : JSON.stringify(rows).slice(0, 60)}, expected an array of per-token expert id arrays`);
    if (rec.num_tokens !== undefined && rec.num_tokens !== rows.length) throw new Error(`${at}: "num_tokens" is ${JSON.stringify(rec.num_tokens)} but "${idsKey}" has ${rows.length} rows`);
    if (K < 0) {
      const first: unknown = rows[0];
      if (Array.isArray(first)) K = first.length;
      else if (rows.length === 0 && Number.isInteger(rec.topk)) K = rec.topk as number;
      if (K >= 0) kLine = line;
    }
    if (rec.topk !== undefined && rows.length > 0 && rec.topk !== K) throw new Error(`${at}: "topk" is ${JSON.stringify(rec.topk)} but the rows have ${K} expert ids`);
    const ids = new Int16Array(rows.length * Math.max(K, 0));
    for (let t = 0; t < rows.length; t++) {
      const row: unknown = rows[t];
      if (!Array.isArray(row)) throw new Error(`${at}: token ${t} of "${idsKey}" is ${JSON.stringify(row)}, expected an array of expert ids`);
      if (row.length !== K) throw new Error(`${at}: token ${t} has ${row.length} expert ids, but K = ${K} (from line ${kLine}); the rows are ragged`);
      for (let k = 0; k < K; k++) {
        const v: unknown = row[k];
        if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${at}: token ${t}, slot ${k}: expert id ${JSON.stringify(v)} is not an integer`);
        if (v < -1 || v >= hi) {
          throw new Error(`${at}: token ${t}, slot ${k}: expert id ${v} is outside ${E === null ? '[-1, 32768) (ids are stored as int16)' : `[-1, ${E}) (E = ${E}, −1 = no expert)`}`);
        }
        ids[t * K + k] = v;
      }
    }
    let entry = layers.get(layer as number);
    if (!entry) layers.set(layer as number, (entry = { chunks: [], n: 0 }));
    entry.chunks.push(ids);
    entry.n += rows.length;
    records++;
    if (Number.isInteger(rec.step)) steps.add(rec.step as number);
    if (Number.isInteger(rec.rank)) ranks.add(rec.rank as number);
  });
  if (layers.size === 0) throw new Error(`megatron: ${file} has no decoder records (expected JSON lines {"layer": …, "top_indices": [[…], …]})`);
  const order = [...layers.keys()].sort((a, b) => a - b);
  const N = layers.get(order[0]!)!.n;
  for (const l of order) {
    const n = layers.get(l)!.n;
    if (n !== N) {
      const all = order.map((x) => `${x}: ${layers.get(x)!.n}`).join(', ');
      throw new Error(`megatron: ${file}: layer ${l} has ${n} tokens but layer ${order[0]} has ${N}; every layer needs the same tokens (tokens per layer: ${all})`);
    }
  }
  const L = order.length;
  if (K < 0) K = 0;
  const experts = new Int16Array(N * L * K);
  order.forEach((layer, l) => {
    let n = 0;
    for (const c of layers.get(layer)!.chunks) {
      const rows = c.length / K;
      for (let t = 0; t < rows; t++, n++) {
        const to = (n * L + l) * K;
        for (let k = 0; k < K; k++) experts[to + k] = c[t * K + k]!;
      }
    }
  });
  const metadata: Record<string, string> = { source: file, format: 'megatron-jsonl', records: String(records), steps: String(steps.size) };
  if (ranks.size) metadata.ranks = [...ranks].sort((a, b) => a - b).join(',');
  if (skipped) metadata.skipped_mtp_records = String(skipped);
  return { N, L, K, E, experts, layers: order, metadata };
}

export interface WriteMegatronOptions {
  /** tokens per record (one "step"); default all N in one step */
  tokensPerStep?: number;
  /** the "rank" field (default 0) */
  rank?: number;
}

/** Writes a trace as Megatron-LM's router trace JSONL: for each step of tokens, one decoder record per layer. */
export function writeMegatronJsonl(file: string, trace: RoutingTrace, opts: WriteMegatronOptions = {}): void {
  const { N, L, K, experts } = trace;
  const per = Math.max(1, opts.tokensPerStep ?? N);
  const fd = openSync(file, 'w');
  try {
    for (let step = 0, t0 = 0; t0 < N || (N === 0 && step === 0); step++, t0 += per) {
      const t1 = Math.min(N, t0 + per);
      for (let l = 0; l < L; l++) {
        const rows: number[][] = [];
        for (let n = t0; n < t1; n++) rows.push(Array.from(experts.subarray((n * L + l) * K, (n * L + l + 1) * K)));
        const rec = { step, stage: 'pre_dispatch', block: 'decoder', layer: trace.layers[l] ?? l, rank: opts.rank ?? 0, num_tokens: t1 - t0, topk: K, top_indices: rows };
        writeSync(fd, `${JSON.stringify(rec)}\n`);
      }
      if (N === 0) break;
    }
  } finally {
    closeSync(fd);
  }
}
