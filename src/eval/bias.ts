// What a model's selection bias (aux-loss-free balancing) does to its outputs: the share of routing decisions (one
// token's top-K expert set at one MoE layer) and the largest logit that change when the bias is dropped.
import { selectionBiases } from '../models/hf/fit.js';
import type { MoELM } from '../models/moe-lm.js';
import { RoutingRecorder } from '../moe/pipeline.js';
import { tensor } from '../tensor/api.js';
import { noGrad, tidy } from '../tensor/engine.js';

export interface BiasEffect {
  /** largest |bias| over all MoE layers (0: the bias changes nothing) */
  maxBias: number;
  /** tokens run */
  tokens: number;
  /** routing decisions compared: tokens × MoE layers */
  decisions: number;
  /** decisions whose expert set differs without the bias */
  changed: number;
  /** changed / decisions */
  fraction: number;
  /** largest |logit| difference over the tokens run */
  maxLogitDiff: number;
}

/** Per window: the chosen expert ids of every MoE layer (sorted within each token's K) and the logits. */
function runAll(model: MoELM, ids: Int32Array, window: number): { routes: Int32Array[][]; logits: Float32Array[] } {
  const routes: Int32Array[][] = [];
  const logits: Float32Array[] = [];
  const K = model.cfg.topK;
  for (let b = 0; b < ids.length; b += window) {
    const chunk = ids.subarray(b, Math.min(b + window, ids.length));
    const rec = new RoutingRecorder();
    tidy(() => noGrad(() => {
      const out = model.forward(tensor(Int32Array.from(chunk), [1, chunk.length], 'i32'), { observer: rec, aux: false });
      logits.push(Float32Array.from(out.logits.dataSync()));
    }));
    routes.push(rec.events().map(({ experts: r }) => {
      for (let t = 0; t < r.length; t += K) r.subarray(t, t + K).sort();
      return r;
    }));
  }
  return { routes, logits };
}

/**
 * Runs `ids` (in windows of `window` tokens) with the model's selection bias and without it, and counts how many
 * routing decisions and how much the logits change. The model is left as it was (the bias is restored).
 */
export function selectionBiasEffect(model: MoELM, ids: Int32Array, window: number): BiasEffect {
  const { biases, maxAbs: maxBias } = selectionBiases(model);
  const none: BiasEffect = { maxBias, tokens: ids.length, decisions: 0, changed: 0, fraction: 0, maxLogitDiff: 0 };
  if (maxBias === 0 || ids.length === 0) return none;
  const w = Math.max(1, Math.min(window, model.cfg.maxSeqLen));
  const withBias = runAll(model, ids, w);
  const K = model.cfg.topK;
  let without: ReturnType<typeof runAll>;
  try {
    for (const [n, b] of biases) noGrad(() => model.setTensor(n, tensor(new Float32Array(b.length), [b.length])));
    without = runAll(model, ids, w);
  } finally {
    for (const [n, b] of biases) noGrad(() => model.setTensor(n, tensor(b, [b.length])));
  }
  let decisions = 0;
  let changed = 0;
  let maxLogitDiff = 0;
  withBias.routes.forEach((layers, c) => layers.forEach((a, l) => {
    const b = without.routes[c]![l]!;
    for (let t = 0; t < a.length; t += K) {
      decisions++;
      for (let k = 0; k < K; k++) {
        if (a[t + k] !== b[t + k]) {
          changed++;
          break;
        }
      }
    }
  }));
  withBias.logits.forEach((a, c) => {
    const b = without.logits[c]!;
    for (let i = 0; i < a.length; i++) maxLogitDiff = Math.max(maxLogitDiff, Math.abs(a[i]! - b[i]!));
  });
  return { maxBias, tokens: ids.length, decisions, changed, fraction: decisions ? changed / decisions : 0, maxLogitDiff };
}
