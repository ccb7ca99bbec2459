// One step of continuous batching: the rows of several sequences (decode tokens, whole or chunked prompts, or a
// prompt's hidden state passing a group of layers) in one forward. Every sequence attends over its own slot of a KV
// pool from its own position; the MoE blocks see all rows of the step at once, which is what batching buys an MoE model.
import type { MoELM } from '../models/moe-lm.js';
import type { RoutingObserver } from '../moe/pipeline.js';
import { KVPool } from '../nn/kv-pool.js';
import { concat, gather, reshape, slice, tensor } from '../tensor/api.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import { ShapeError } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** One sequence's part of a step. */
export interface StepSegment {
  /** token ids entering at layer `from` (which must be 0), or … */
  ids?: readonly number[];
  /** … the hidden state (1, T, H) a previous step left at layer `from` (layered prefill) */
  hidden?: Tensor;
  /** the sequence's slot in the KV pool */
  slot: number;
  /** the layers this step runs for the segment, [from, to); default all */
  from?: number;
  to?: number;
}

export interface StepResult {
  /** per segment that reached the last layer: the logits (V) of its last row; null otherwise */
  logits: (Float32Array | null)[];
  /** per segment that stopped before the last layer: its hidden state (1, T, H), kept for the next step; else null */
  hidden: (Tensor | null)[];
}

/** A KV pool for `maxSlots` sequences of the model's context, shaped by its attention layers. */
export function newKVPool(model: MoELM, maxSlots: number): KVPool {
  return new KVPool(model.layers.map((l) => l.selfAttn.kvShape), { maxSlots, maxLen: model.cfg.maxSeqLen });
}

/** Runs one ragged step. Reads the logits synchronously (CPU backends). The caller disposes returned hidden states. */
export function raggedStep(model: MoELM, segments: readonly StepSegment[], pool: KVPool, observer?: RoutingObserver): StepResult {
  const { layers: L, hidden: H, maxSeqLen } = model.cfg;
  if (pool.shapes.length !== L) throw new Error(`raggedStep: the KV pool has ${pool.shapes.length} layers, the model ${L}`);
  const slots = new Set<number>();
  const spans = segments.map((s, i) => {
    const from = s.from ?? 0, to = s.to ?? L;
    if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from < to && to <= L)) throw new RangeError(`segment ${i}: layers [${from}, ${to}) are not within [0, ${L})`);
    if ((s.ids === undefined) === (s.hidden === undefined)) throw new Error(`segment ${i}: give ids or hidden, not ${s.ids ? 'both' : 'neither'}`);
    if (s.ids && from !== 0) throw new Error(`segment ${i}: token ids enter at layer 0, not ${from}`);
    if (slots.has(s.slot)) throw new Error(`segment ${i}: slot ${s.slot} appears twice in one step`);
    slots.add(s.slot);
    const rows = s.ids ? s.ids.length : s.hidden!.shape[1]!;
    if (rows < 1) throw new RangeError(`segment ${i}: no rows`);
    const end = pool.length(from, s.slot) + rows;
    if (end > maxSeqLen) throw new RangeError(`segment ${i}: positions up to ${end} exceed maxSeqLen ${maxSeqLen}`);
    return { from, to, rows };
  });
  const part = (active: readonly number[]) => active.map((i) => ({ slot: segments[i]!.slot, rows: spans[i]!.rows }));
  if (spans.every((sp, i) => sp.from === 0 && sp.to === L && segments[i]!.ids)) return wholeStep(model, segments, part(segments.map((_, i) => i)), pool, observer);
  return noGrad(() => tidy(() => {
    const xs: Tensor[] = segments.map((s) => s.hidden ?? model.model.embedTokens.forward(tensor(Int32Array.from(s.ids!), [1, s.ids!.length], 'i32'))); // (1, T, H)
    for (let l = 0; l < L; l++) {
      const active = spans.flatMap((sp, i) => (sp.from <= l && l < sp.to ? [i] : []));
      if (active.length === 0) continue;
      const x = active.length === 1 ? xs[active[0]!]! : concat(active.map((i) => xs[i]!), 1); // (1, ΣT, H)
      const y = model.layers[l]!.forwardRagged(x, part(active), pool, l, { aux: false, ...(observer ? { observer, layer: l } : {}) }).y;
      let off = 0;
      for (const i of active) {
        xs[i] = active.length === 1 ? y : slice(y, [0, off, 0], [1, spans[i]!.rows, H]);
        off += spans[i]!.rows;
      }
    }
    const logits: (Float32Array | null)[] = [];
    const hidden: (Tensor | null)[] = [];
    spans.forEach((sp, i) => {
      if (sp.to < L) {
        logits.push(null);
        hidden.push(keep(xs[i]!));
        return;
      }
      const last = slice(xs[i]!, [0, sp.rows - 1, 0], [1, 1, H]); // (1, 1, H)
      const v = model.head(reshape(last, [1, H])).dataSync(); // (1, V)
      if (v.length !== model.cfg.vocabSize) throw new ShapeError(`raggedStep: logits of ${v.length}, expected ${model.cfg.vocabSize}`);
      logits.push(Float32Array.from(v));
      hidden.push(null);
    });
    return { logits, hidden };
  }));
}

/**
 * The common step, every segment through every layer from token ids: the rows stay one tensor from the embedding to
 * the head (one embedding, one gather of the segments' last rows, one LM head).
 */
function wholeStep(model: MoELM, segments: readonly StepSegment[], parts: readonly { slot: number; rows: number }[], pool: KVPool, observer?: RoutingObserver): StepResult {
  const { hidden: H, vocabSize: V } = model.cfg;
  const N = parts.reduce((a, p) => a + p.rows, 0);
  return noGrad(() => tidy(() => {
    const ids = Int32Array.from(segments.flatMap((s) => s.ids!));
    let x = model.model.embedTokens.forward(tensor(ids, [1, N], 'i32')); // (1, N, H)
    model.layers.forEach((layer, l) => {
      x = layer.forwardRagged(x, parts, pool, l, { aux: false, ...(observer ? { observer, layer: l } : {}) }).y;
    });
    let end = 0;
    const last = Int32Array.from(parts, (p) => (end += p.rows) - 1); // each segment's last row
    const v = model.head(gather(reshape(x, [N, H]), tensor(last, [last.length], 'i32'))).dataSync(); // (B, V)
    if (v.length !== V * segments.length) throw new ShapeError(`raggedStep: logits of ${v.length}, expected ${segments.length} × ${V}`);
    return { logits: segments.map((_, i) => Float32Array.from(v.subarray(i * V, (i + 1) * V))), hidden: segments.map(() => null) };
  }));
}
