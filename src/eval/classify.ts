// Sequence classification on the LM body: final hidden states, a mean-pool + Linear head, fine-tuning and metrics.
import type { MoELM, ModelStats } from '../models/moe-lm.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { add, crossEntropy, argmax, div, maximum, mul, reshape, sum, tensor } from '../tensor/api.js';
import { backward, zeroGrad } from '../tensor/autograd.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdamW } from '../train/optim.js';

/** One labelled example: token ids and a class in [0, C). */
export interface ClassifyRow {
  ids: Int32Array | readonly number[];
  label: number;
}

/**
 * Final hidden states (after the last RMSNorm) of ids (B, T) i32 -> (B, T, H), with the MoE aux loss and stats.
 * MoELM has no method for this, so it runs model.model.embedTokens, model.layers and model.model.norm directly.
 */
export function hiddenStates(model: MoELM, ids: Tensor): { h: Tensor; aux: Tensor | null; stats: ModelStats } {
  if (ids.rank !== 2 || ids.dtype !== 'i32') throw new ShapeError(`hiddenStates: ids must be i32 (B, T), got ${fmtInfo(ids.shape, ids.dtype)}`);
  if (ids.shape[1]! > model.cfg.maxSeqLen) throw new RangeError(`hiddenStates: ${ids.shape[1]} tokens exceed maxSeqLen ${model.cfg.maxSeqLen}`);
  let x = model.model.embedTokens.forward(ids); // (B, T, H)
  let aux: Tensor | null = null; // ()
  const stats: ModelStats = [];
  for (const layer of model.layers) {
    const o = layer.forward(x);
    x = o.y; // (B, T, H)
    if (o.aux) aux = aux ? add(aux, o.aux) : o.aux;
    stats.push(o.stats);
  }
  return { h: model.model.norm.forward(x), aux, stats }; // h (B, T, H)
}

/** Mean of the hidden states over non-pad tokens, then Linear(H, C) with bias. */
export class ClassifierHead extends Module {
  readonly hidden: number;
  readonly classes: number;
  readonly proj: Linear;

  constructor(hidden: number, classes: number, seed = 0) {
    super();
    if (!(Number.isInteger(classes) && classes >= 2)) throw new RangeError(`ClassifierHead: classes must be an integer >= 2, got ${classes}`);
    this.hidden = hidden;
    this.classes = classes;
    this.proj = this.addModule('proj', new Linear(hidden, classes, new Rng(seed), { bias: true })); // W (C, H)
  }

  /** h (B, T, H), mask (B, T) f32 with 1 for real tokens -> logits (B, C) */
  forward(h: Tensor, mask: Tensor): Tensor {
    const [B, T, H] = h.shape as [number, number, number];
    if (h.rank !== 3 || H !== this.hidden) throw new ShapeError(`ClassifierHead: h ${fmtInfo(h.shape, h.dtype)} must be (B, T, ${this.hidden})`);
    if (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== T) throw new ShapeError(`ClassifierHead: mask ${fmtInfo(mask.shape, mask.dtype)} must be (${B}, ${T})`);
    const m = reshape(mask, [B, T, 1]); // (B, T, 1)
    const pooled = div(sum(mul(h, m), 1), maximum(sum(m, 1), 1)); // (B, H)
    return this.proj.forward(pooled); // (B, C)
  }
}

/** Right-pads (or truncates) rows to the longest one (at most maxLen): ids (B, T) i32, mask (B, T) f32. */
export function padBatch(rows: readonly ClassifyRow[], maxLen: number, padId = 0): { ids: Tensor; mask: Tensor } {
  const T = Math.max(1, Math.min(maxLen, Math.max(...rows.map((r) => r.ids.length))));
  const ids = new Int32Array(rows.length * T).fill(padId); // (B, T)
  const mask = new Float32Array(rows.length * T); // (B, T)
  rows.forEach((r, b) => {
    const n = Math.min(T, r.ids.length);
    for (let t = 0; t < n; t++) {
      ids[b * T + t] = r.ids[t]!;
      mask[b * T + t] = 1;
    }
  });
  return { ids: tensor(ids, [rows.length, T], 'i32'), mask: tensor(mask, [rows.length, T], 'f32') };
}

export interface FineTuneOptions {
  epochs: number;
  lr: number;
  batch: number;
  /** rows are truncated to this many tokens (≤ the model's maxSeqLen) */
  maxLen: number;
  /** shuffle seed */
  seed: number;
  /** AdamW weight decay; default 0.01 (BERT fine-tuning) */
  weightDecay?: number;
  /** add the MoE aux loss to the cross-entropy; default true */
  auxLoss?: boolean;
}

function checkRows(where: string, rows: readonly ClassifyRow[], head: ClassifierHead, model: MoELM): void {
  if (rows.length === 0) throw new RangeError(`${where}: no rows`);
  rows.forEach((r, i) => {
    if (!(Number.isInteger(r.label) && r.label >= 0 && r.label < head.classes)) throw new RangeError(`${where}: rows[${i}].label = ${r.label} is outside [0, ${head.classes})`);
    if (r.ids.length === 0) throw new RangeError(`${where}: rows[${i}] has no tokens`);
    for (const t of r.ids) if (!(Number.isInteger(t) && t >= 0 && t < model.cfg.vocabSize)) throw new RangeError(`${where}: rows[${i}] has id ${t} outside [0, ${model.cfg.vocabSize})`);
  });
}

/** Trains head and body together with AdamW on cross-entropy (+ aux); returns the mean loss of each epoch. */
export function fineTuneClassifier(model: MoELM, head: ClassifierHead, rows: readonly ClassifyRow[], opts: FineTuneOptions): number[] {
  const { epochs, lr, batch, maxLen, seed } = opts;
  checkRows('fineTuneClassifier', rows, head, model);
  if (!(Number.isInteger(epochs) && epochs >= 1)) throw new RangeError(`fineTuneClassifier: epochs must be a positive integer, got ${epochs}`);
  if (!(Number.isInteger(batch) && batch >= 1)) throw new RangeError(`fineTuneClassifier: batch must be a positive integer, got ${batch}`);
  if (!(lr > 0)) throw new RangeError(`fineTuneClassifier: lr must be positive, got ${lr}`);
  if (!(Number.isInteger(maxLen) && maxLen >= 1 && maxLen <= model.cfg.maxSeqLen)) throw new RangeError(`fineTuneClassifier: maxLen must be an integer in [1, maxSeqLen = ${model.cfg.maxSeqLen}], got ${maxLen}`);
  if (head.hidden !== model.cfg.hidden) throw new ShapeError(`fineTuneClassifier: head width ${head.hidden} != model hidden ${model.cfg.hidden}`);
  const params = [...model.parameters('body.'), ...head.parameters('head.')];
  const opt = new AdamW(params, { weightDecay: opts.weightDecay ?? 0.01 });
  const rng = new Rng(seed);
  const order = rows.map((_, i) => i);
  const losses: number[] = [];
  try {
    for (let e = 0; e < epochs; e++) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      let total = 0;
      let steps = 0;
      for (let s = 0; s < order.length; s += batch) {
        const chunk = order.slice(s, s + batch).map((i) => rows[i]!);
        const stats = tidy(() => {
          const { ids, mask } = padBatch(chunk, maxLen);
          const o = hiddenStates(model, ids);
          const logits = head.forward(o.h, mask); // (B, C)
          const ce = crossEntropy(logits, tensor(chunk.map((r) => r.label), [chunk.length], 'i32')); // ()
          const loss = o.aux && (opts.auxLoss ?? true) ? add(ce, o.aux) : ce; // ()
          backward(loss);
          total += ce.item();
          return o.stats;
        });
        steps++;
        opt.update(lr);
        zeroGrad(params.map(([, p]) => p));
        model.updateBiases(stats);
      }
      losses.push(total / steps);
    }
  } finally {
    zeroGrad(params.map(([, p]) => p));
    opt.dispose();
  }
  return losses;
}

/** Predicted classes (argmax of the head's logits), batched, under noGrad. */
export function predictClassifier(model: MoELM, head: ClassifierHead, rows: readonly ClassifyRow[], opts: { batch: number; maxLen: number }): number[] {
  const out: number[] = [];
  for (let s = 0; s < rows.length; s += opts.batch) {
    const chunk = rows.slice(s, s + opts.batch);
    out.push(...noGrad(() => tidy(() => {
      const { ids, mask } = padBatch(chunk, opts.maxLen);
      return argmax(head.forward(hiddenStates(model, ids).h, mask), -1).toArray(); // (B)
    })));
  }
  return out;
}

export interface ClassifyMetrics {
  accuracy: number;
  /** binary (C = 2): F1 of the positive class 1; otherwise macro-F1 */
  f1: number;
  /** unweighted mean of the per-class F1 */
  macroF1: number;
  f1PerClass: number[];
  /** confusion[gold][pred] counts (C, C) */
  confusion: number[][];
}

/** Accuracy, F1 and the confusion matrix of predictions against gold labels in [0, classes). F1 of a class with no gold and no predicted rows is 0. */
export function classificationMetrics(preds: readonly number[], labels: readonly number[], classes: number): ClassifyMetrics {
  if (preds.length !== labels.length) throw new RangeError(`classificationMetrics: ${preds.length} predictions for ${labels.length} labels`);
  if (preds.length === 0) throw new RangeError('classificationMetrics: no predictions');
  if (!(Number.isInteger(classes) && classes >= 2)) throw new RangeError(`classificationMetrics: classes must be an integer >= 2, got ${classes}`);
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let correct = 0;
  preds.forEach((p, i) => {
    const g = labels[i]!;
    for (const [name, v] of [['preds', p], ['labels', g]] as const) {
      if (!(Number.isInteger(v) && v >= 0 && v < classes)) throw new RangeError(`classificationMetrics: ${name}[${i}] = ${v} is outside [0, ${classes})`);
    }
    confusion[g]![p]!++;
    if (p === g) correct++;
  });
  const f1PerClass = confusion.map((row, c) => {
    const tp = row[c]!;
    const gold = row.reduce((a, b) => a + b, 0);
    const pred = confusion.reduce((a, r) => a + r[c]!, 0);
    return gold + pred === 0 ? 0 : (2 * tp) / (gold + pred);
  });
  const macroF1 = f1PerClass.reduce((a, b) => a + b, 0) / classes;
  return { accuracy: correct / preds.length, f1: classes === 2 ? f1PerClass[1]! : macroF1, macroF1, f1PerClass, confusion };
}

/** Predicts every row and scores it against its label. */
export function evaluateClassifier(model: MoELM, head: ClassifierHead, rows: readonly ClassifyRow[], opts: { batch: number; maxLen: number }): ClassifyMetrics {
  checkRows('evaluateClassifier', rows, head, model);
  return classificationMetrics(predictClassifier(model, head, rows, opts), rows.map((r) => r.label), head.classes);
}
