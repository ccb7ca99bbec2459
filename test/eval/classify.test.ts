// Classification: metrics against hand computations, the head's masked mean-pool, fine-tuning on a separable task.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { ClassifierHead, classificationMetrics, evaluateClassifier, fineTuneClassifier, hiddenStates, type ClassifyRow } from '../../src/eval/index.js';
import { MoELM, tiny } from '../../src/models/index.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

describe('classificationMetrics', () => {
  it('binary: accuracy, F1 of class 1, confusion', () => {
    // gold 1 1 1 0 0 0 1 0; pred 1 0 1 0 1 0 1 0 -> tp 3, fn 1, fp 1, tn 3
    const m = classificationMetrics([1, 0, 1, 0, 1, 0, 1, 0], [1, 1, 1, 0, 0, 0, 1, 0], 2);
    expect(m.confusion).toEqual([[3, 1], [1, 3]]);
    expect(m.accuracy).toBe(6 / 8);
    expect(m.f1).toBeCloseTo(0.75, 12); // P = 3/4, R = 3/4
    expect(m.f1PerClass[0]).toBeCloseTo(0.75, 12);
    expect(m.macroF1).toBeCloseTo(0.75, 12);
  });

  it('multi-class: macro-F1 over classes', () => {
    // gold 0 0 1 1 2 2; pred 0 1 1 1 0 2
    const m = classificationMetrics([0, 1, 1, 1, 0, 2], [0, 0, 1, 1, 2, 2], 3);
    expect(m.confusion).toEqual([[1, 1, 0], [0, 2, 0], [1, 0, 1]]);
    expect(m.accuracy).toBeCloseTo(4 / 6, 12);
    // class 0: P 1/2 R 1/2 F1 1/2; class 1: P 2/3 R 1 F1 4/5; class 2: P 1 R 1/2 F1 2/3
    expect(m.f1PerClass[0]).toBeCloseTo(0.5, 12);
    expect(m.f1PerClass[1]).toBeCloseTo(0.8, 12);
    expect(m.f1PerClass[2]).toBeCloseTo(2 / 3, 12);
    expect(m.macroF1).toBeCloseTo((0.5 + 0.8 + 2 / 3) / 3, 12);
    expect(m.f1).toBe(m.macroF1);
    expect(() => classificationMetrics([0, 3], [0, 1], 3)).toThrow(/preds\[1\] = 3 is outside \[0, 3\)/);
    expect(() => classificationMetrics([0], [0, 1], 3)).toThrow(/1 predictions for 2 labels/);
  });
});

describe('ClassifierHead', () => {
  it('hiddenStates reproduce the logits of forward; the head mean-pools only non-pad tokens', () => {
    const model = new MoELM(tiny);
    const head = new ClassifierHead(tiny.hidden, 3);
    mk.noGrad(() => mk.tidy(() => {
      const ids = mk.tensor([[5, 7, 9, 11], [6, 8, 0, 0]], [2, 4], 'i32');
      const { h } = hiddenStates(model, ids);
      const logits = mk.matmul(mk.reshape(h, [8, tiny.hidden]), model.model.embedTokens.weight, { transB: true });
      const ref = model.forward(ids).logits.toArray();
      logits.toArray().forEach((v, i) => expect(v).toBeCloseTo(ref[i]!, 4));
      const mask = mk.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], [2, 4], 'f32');
      const out = head.forward(h, mask).toArray(); // (2, 3)
      // row 1 only: the mean of its first two hidden states
      const pooled = mk.mean(mk.slice(h, [1, 0, 0], [1, 2, tiny.hidden]), 1); // (1, H)
      const want = head.proj.forward(pooled).toArray();
      want.forEach((v, i) => expect(out[3 + i]).toBeCloseTo(v, 5));
    }));
    model.dispose();
    head.dispose();
  });
});

describe('fineTuneClassifier', () => {
  it('reaches > 90% accuracy on "does token 5 appear?" (noise tokens 6..13)', () => {
    const rng = new mk.Rng(7);
    const makeRows = (n: number): ClassifyRow[] => Array.from({ length: n }, (_, i) => {
      const len = 6 + rng.int(5);
      const ids = Array.from({ length: len }, () => 6 + rng.int(8));
      const label = i % 2;
      if (label === 1) ids[rng.int(len)] = 5;
      return { ids, label };
    });
    const train = makeRows(192);
    const test = makeRows(64);
    const model = new MoELM(tiny);
    const head = new ClassifierHead(tiny.hidden, 2, 1);
    const losses = fineTuneClassifier(model, head, train, { epochs: 3, lr: 1e-2, batch: 16, maxLen: 16, seed: 0 });
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
    const m = evaluateClassifier(model, head, test, { batch: 32, maxLen: 16 });
    expect(m.accuracy).toBeGreaterThan(0.9);
    expect(m.confusion.flat().reduce((a, b) => a + b, 0)).toBe(64);
    expect(() => fineTuneClassifier(model, head, [{ ids: [1], label: 2 }], { epochs: 1, lr: 1e-3, batch: 1, maxLen: 8, seed: 0 })).toThrow(/rows\[0\]\.label = 2 is outside \[0, 2\)/);
    model.dispose();
    head.dispose();
  });
});
