// Perplexity: sliding windows against model.loss on disjoint chunks, one score per token, context helps, unigram baseline.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { perplexity, slidingWindows, unigramPerplexity } from '../../src/eval/index.js';
import { MoELM, tiny } from '../../src/models/index.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const randomIds = (n: number, V: number, seed = 3): number[] => {
  const rng = new mk.Rng(seed);
  return Array.from({ length: n }, () => rng.int(V));
};

describe('slidingWindows', () => {
  it('scores every token after the first once when stride < window; disjoint chunks skip each first token', () => {
    for (const [n, w, s] of [[50, 16, 4], [50, 16, 15], [7, 16, 4], [33, 8, 3]] as const) {
      const scored = slidingWindows(n, w, s).flatMap((win) => [...win.targets].filter((j) => j >= 0));
      expect(scored.sort((a, b) => a - b)).toEqual(Array.from({ length: n - 1 }, (_, i) => i + 1));
    }
    const wins = slidingWindows(40, 16, 16);
    expect(wins.map((w) => [w.begin, w.targets.length])).toEqual([[0, 16], [16, 16], [32, 8]]);
    expect(wins.flatMap((w) => [...w.targets].filter((j) => j >= 0)).length).toBe(40 - 3);
  });
});

describe('perplexity', () => {
  it('stride = window equals exp(mean CE) of disjoint chunks from model.loss (partial last chunk, batched or not)', () => {
    const m = new MoELM(tiny);
    const ids = randomIds(45, m.cfg.vocabSize);
    const W = 16;
    let nll = 0;
    let count = 0;
    mk.noGrad(() => mk.tidy(() => {
      for (let b = 0; b < ids.length; b += W) {
        const chunk = ids.slice(b, b + W);
        const tg = chunk.map((_, i) => (i === chunk.length - 1 ? -100 : chunk[i + 1]!));
        const ce = m.loss(mk.tensor(chunk, [1, chunk.length], 'i32'), mk.tensor(tg, [1, chunk.length], 'i32')).ce.item();
        nll += ce * (chunk.length - 1);
        count += chunk.length - 1;
      }
    }));
    for (const batch of [1, 3]) {
      const r = perplexity(m, Int32Array.from(ids), { window: W, stride: W, batch });
      expect(r.tokens).toBe(count);
      expect(r.nll).toBeCloseTo(nll / count, 4);
      expect(r.ppl).toBeCloseTo(Math.exp(nll / count), 2);
    }
    m.dispose();
  });

  it('stride < window scores N − 1 tokens and, after training on repetitive data, beats disjoint chunks', () => {
    const m = new MoELM({ ...tiny, seed: 2 });
    // a period-12 pattern: a token's successor is only determined with enough context
    const period = [10, 11, 12, 10, 13, 14, 10, 11, 15, 10, 16, 14];
    const seq = Array.from({ length: 96 }, (_, i) => period[i % period.length]!);
    const params = m.parameters();
    const opt = new mk.AdamW(params, { weightDecay: 0 });
    const T = 24;
    const inputs = [0, 5, 17, 30, 41, 60].map((b) => seq.slice(b, b + T));
    const ids = mk.keep(mk.tensor(inputs.flat(), [inputs.length, T], 'i32'));
    const tg = mk.keep(mk.tensor(inputs.flatMap((row, r) => row.map((_, i) => (i === T - 1 ? -100 : seq[[0, 5, 17, 30, 41, 60][r]! + i + 1]!))), [inputs.length, T], 'i32'));
    for (let s = 0; s < 40; s++) {
      mk.tidy(() => mk.backward(m.loss(ids, tg).loss));
      opt.update(1e-2);
      mk.zeroGrad(params.map(([, p]) => p));
    }
    ids.dispose();
    tg.dispose();
    opt.dispose();
    const evalIds = seq.slice(0, 80);
    const disjoint = perplexity(m, evalIds, { window: 16, stride: 16 });
    const sliding = perplexity(m, evalIds, { window: 16, stride: 4, batch: 4 });
    expect(sliding.tokens).toBe(evalIds.length - 1);
    expect(disjoint.tokens).toBe(evalIds.length - 5);
    expect(sliding.ppl).toBeLessThanOrEqual(disjoint.ppl);
    // the model learnt something: far below the uniform ppl = V
    expect(sliding.ppl).toBeLessThan(m.cfg.vocabSize / 10);
    m.dispose();
  });

  it('window longer than the sequence is one window; bad window / stride / ids are named', () => {
    const m = new MoELM(tiny);
    const ids = randomIds(10, m.cfg.vocabSize);
    const r = perplexity(m, ids, { window: 1000, stride: 1000 });
    expect(r.tokens).toBe(9);
    expect(r.ppl).toBeCloseTo(perplexity(m, ids, { window: 10, stride: 10 }).ppl, 4);
    expect(() => perplexity(m, ids, { window: 1, stride: 1 })).toThrow(/window must be an integer >= 2, got 1/);
    expect(() => perplexity(m, ids, { window: 8, stride: 9 })).toThrow(/stride must be an integer in \[1, window = 8\], got 9/);
    expect(() => perplexity(m, ids, { window: 8, stride: 0 })).toThrow(/got 0/);
    expect(() => perplexity(m, randomIds(100, 50), { window: 100, stride: 50 })).toThrow(/window 100 exceeds the model's maxSeqLen 64/);
    expect(() => perplexity(m, [1, 2, 999], { window: 8, stride: 4 })).toThrow(/ids\[2\] = 999 is outside the vocabulary \[0, 320\)/);
    m.dispose();
  });
});

describe('unigramPerplexity', () => {
  it('matches a hand computation with add-one smoothing', () => {
    // train counts over V = 4: c = [2, 1, 0, 1], N = 4 -> p = (c + 1) / 8 = [3/8, 2/8, 1/8, 2/8]
    const r = unigramPerplexity([0, 0, 1, 3], [0, 2, 1], 4);
    const nll = -(Math.log(3 / 8) + Math.log(1 / 8) + Math.log(2 / 8)) / 3;
    expect(r.tokens).toBe(3);
    expect(r.nll).toBeCloseTo(nll, 12);
    expect(r.ppl).toBeCloseTo(8 / Math.cbrt(6), 12);
    expect(() => unigramPerplexity([0, 5], [0], 4)).toThrow(/trainIds\[1\] = 5 is outside the vocabulary \[0, 4\)/);
  });
});
