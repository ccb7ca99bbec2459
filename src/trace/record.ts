// Tracing a model: runs token sequences through it (inference forwards, batched windows) with a routing observer and
// streams what every MoE layer chose into a TraceWriter.
import type { MoELM } from '../models/moe-lm.js';
import { RoutingRecorder } from '../moe/pipeline.js';
import { SwiGLU } from '../nn/swiglu.js';
import { tensor } from '../tensor/api.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { TraceWriter, type TraceShape } from './format.js';

/** The layers of `model` a trace records (its MoE layers) and their shape. */
export function traceShape(model: MoELM, hidden: boolean): TraceShape {
  const layers = model.layers.flatMap((l, i) => (l.mlp instanceof SwiGLU ? [] : [i]));
  return { E: model.cfg.experts, K: model.cfg.topK, layers, ...(hidden ? { H: model.cfg.hidden } : {}) };
}

export interface TraceOptions {
  /** tokens per forward window (at most the model's maxSeqLen) */
  window: number;
  /** windows per forward */
  batch: number;
  /** record the hidden state entering each MoE layer */
  hidden: boolean;
  /** called after each forward with the tokens traced so far */
  onProgress?: (tokens: number) => void;
}

/**
 * Traces `sequences` (token ids; each is one sequence id, split into windows of `window` tokens, which do not see
 * each other) through `model` into `writer`. Windows of equal length are batched `batch` at a time. Returns the
 * number of tokens traced.
 */
export async function traceModel(model: MoELM, sequences: Iterable<Int32Array>, writer: TraceWriter, o: TraceOptions): Promise<number> {
  const { K, layers, H } = writer.shape;
  const L = layers.length;
  if (!Number.isInteger(o.window) || o.window < 1 || o.window > model.cfg.maxSeqLen) throw new RangeError(`trace: window ${o.window} must be an integer in [1, maxSeqLen ${model.cfg.maxSeqLen}]`);
  if (!Number.isInteger(o.batch) || o.batch < 1) throw new RangeError(`trace: batch ${o.batch} must be a positive integer`);
  const V = model.cfg.vocabSize;
  let pending: { ids: Int32Array; seq: number }[] = [];
  let done = 0;
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const T = pending[0]!.ids.length;
    const B = pending.length;
    const ids = new Int32Array(B * T);
    pending.forEach((w, b) => ids.set(w.ids, b * T));
    const rec = new RoutingRecorder({ hidden: H !== undefined });
    noGrad(() => tidy(() => void model.forward(tensor(ids, [B, T], 'i32'), { aux: false, observer: rec })));
    const events = await rec.read();
    if (events.length !== L) throw new Error(`trace: the forward reported ${events.length} MoE layers, expected ${L}`);
    const n = B * T;
    const rows = { experts: new Int16Array(n * L * K), scores: new Float32Array(n * L * K), tokens: ids, seq: new Int32Array(n), ...(H !== undefined ? { hidden: new Float32Array(n * L * H) } : {}) };
    pending.forEach((w, b) => rows.seq.fill(w.seq, b * T, (b + 1) * T));
    events.forEach((e, l) => {
      for (let t = 0; t < n; t++) {
        const dst = (t * L + l) * K;
        for (let k = 0; k < K; k++) {
          rows.experts[dst + k] = e.experts[t * K + k]!;
          rows.scores[dst + k] = e.weights[t * K + k]!;
        }
        if (H !== undefined) rows.hidden!.set(e.hidden!.subarray(t * H, (t + 1) * H), (t * L + l) * H);
      }
    });
    writer.append(rows);
    done += n;
    o.onProgress?.(done);
    pending = [];
  };
  let seq = 0;
  for (const s of sequences) {
    const bad = s.findIndex((id) => !(id >= 0 && id < V));
    if (bad >= 0) throw new RangeError(`trace: sequence ${seq} has token ${s[bad]} at position ${bad}, outside the model's vocabulary [0, ${V})`);
    for (let at = 0; at < s.length; at += o.window) {
      const w = s.subarray(at, Math.min(at + o.window, s.length));
      if (pending.length > 0 && pending[0]!.ids.length !== w.length) await flush();
      pending.push({ ids: w, seq });
      if (pending.length === o.batch) await flush();
    }
    seq++;
  }
  await flush();
  return done;
}
