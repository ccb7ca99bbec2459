// Generation: the KV-cache loop against full forwards, and the logits processors (repetition penalty,
// temperature, top-k, top-p) against their definitions.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { NonFiniteLogitsError, checkGenerate, checkLogits, generate, generateAsync, generateStream, generateStreamAsync, pickToken } from '../../src/serve/generate.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const model = (): mk.MoELM => new mk.MoELM({ ...mk.PRESETS.tiny, seed: 3 });
const opts = (o: Partial<Parameters<typeof pickToken>[2]> = {}): Parameters<typeof pickToken>[2] => ({
  maxNewTokens: 1, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, stopIds: [], seed: 0, greedy: false, ...o,
});

describe('generate', () => {
  it('the asynchronous forms give the same tokens, stop reasons and streams as the synchronous ones', async () => {
    const m = model();
    for (const o of [{ maxNewTokens: 7 }, { maxNewTokens: 9, temperature: 0.8, topK: 40, topP: 0.9, seed: 11, repetitionPenalty: 1.3 }, { maxNewTokens: 20, stopIds: [] as number[] }]) {
      const sync = generate(m, [3, 1, 4, 1, 5], o);
      const streamed: number[] = [];
      const r = await generateAsync(m, [3, 1, 4, 1, 5], { ...o, onToken: (id) => streamed.push(id) });
      expect(r.ids).toEqual(sync.ids);
      expect(r.stoppedBy).toBe(sync.stoppedBy);
      expect(streamed).toEqual(sync.newIds);
    }
    // stopping a stream early frees its KV caches (nothing left allocated)
    const before = mk.getBackend().bytesInUse();
    for await (const id of generateStreamAsync(m, [2, 7], { maxNewTokens: 10 })) if (id >= 0) break;
    for (const id of generateStream(m, [2, 7], { maxNewTokens: 10 })) if (id >= 0) break;
    expect(mk.getBackend().bytesInUse()).toBe(before);
  });

  it('greedy with the KV cache equals argmax of full forwards, token by token', () => {
    const m = model();
    const prompt = [5, 9, 200, 17];
    const r = generate(m, prompt, { maxNewTokens: 6 });
    const ids = [...prompt];
    for (let i = 0; i < 6; i++) {
      const logits = mk.noGrad(() => m.forward(mk.tensor(Int32Array.from(ids), [1, ids.length], 'i32')).logits.dataSync());
      const last = logits.subarray((ids.length - 1) * 320);
      let best = 0;
      for (let j = 1; j < 320; j++) if (last[j]! > last[best]!) best = j;
      ids.push(best);
    }
    expect(r.ids).toEqual(ids);
    expect(r.newIds).toEqual(ids.slice(4));
    expect(r.stoppedBy).toBe('length');
  });

  it('stops after a stop id (kept), streams the same tokens, and is reproducible from its seed', () => {
    const m = model();
    const g = generate(m, [1, 2, 3], { maxNewTokens: 8 });
    const stop = g.newIds[2]!;
    const s = generate(m, [1, 2, 3], { maxNewTokens: 8, stopIds: [stop] });
    expect(s.stoppedBy).toBe('stop');
    expect(s.newIds.at(-1)).toBe(stop);
    expect(s.newIds.length).toBe(g.newIds.indexOf(stop) + 1);
    const streamed = [...generateStream(m, [1, 2, 3], { maxNewTokens: 8, temperature: 0.9, seed: 4 })];
    const again = generate(m, [1, 2, 3], { maxNewTokens: 8, temperature: 0.9, seed: 4 });
    expect(streamed).toEqual(again.newIds);
    const seen: number[] = [];
    generate(m, [1, 2, 3], { maxNewTokens: 3, onToken: (id) => seen.push(id) });
    expect(seen.length).toBe(3);
  });

  it('stops at maxSeqLen and rejects bad prompts and options naming the value', () => {
    const m = model();
    const r = generate(m, Array.from({ length: 60 }, (_, i) => i + 1), { maxNewTokens: 10 });
    expect(r.stoppedBy).toBe('max-seq');
    expect(r.ids.length).toBe(64);
    expect(() => generate(m, [])).toThrow(/prompt is empty/);
    expect(() => generate(m, [1, 320])).toThrow(/prompt token 320 is not an id in \[0, 320\)/);
    expect(() => generate(m, [1], { topP: 0 })).toThrow(/topP 0 must be in \(0, 1\]/);
    expect(() => generate(m, [1], { temperature: -1 })).toThrow(/temperature -1/);
    expect(() => generate(m, [1], { repetitionPenalty: 0 })).toThrow(/repetitionPenalty 0/);
  });
});

describe('logits processors', () => {
  const logits = (): Float32Array => Float32Array.from([2, 1, 0.5, -1, 3]);

  it('repetition penalty divides positive and multiplies negative logits of seen tokens (CTRL, as transformers)', () => {
    const l = logits();
    pickToken(l, new Set([0, 3]), opts({ repetitionPenalty: 2, greedy: true }), new mk.Rng(0));
    expect(Array.from(l)).toEqual([1, 1, 0.5, -2, 3]);
    // a large penalty moves the argmax away from a seen token
    expect(pickToken(logits(), new Set([4]), opts({ repetitionPenalty: 10, greedy: true }), new mk.Rng(0))).toBe(0);
  });

  it('top-k 1 and a tiny top-p are greedy; sampling frequencies follow softmax(logits / T) over the kept set', () => {
    const rng = new mk.Rng(1);
    for (let i = 0; i < 20; i++) {
      expect(pickToken(logits(), new Set(), opts({ topK: 1 }), rng)).toBe(4);
      expect(pickToken(logits(), new Set(), opts({ topP: 0.01 }), rng)).toBe(4);
    }
    const n = 20000;
    const T = 0.7;
    const count = (o: Parameters<typeof pickToken>[2]): number[] => {
      const c = [0, 0, 0, 0, 0];
      for (let i = 0; i < n; i++) c[pickToken(logits(), new Set(), o, rng)]!++;
      return c.map((x) => x / n);
    };
    const p = (kept: number[]): number[] => {
      const e = [2, 1, 0.5, -1, 3].map((v, i) => (kept.includes(i) ? Math.exp(v / T) : 0));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / z);
    };
    const close = (a: number[], b: number[]): void => a.forEach((v, i) => expect(Math.abs(v - b[i]!)).toBeLessThan(0.015));
    close(count(opts({ temperature: T })), p([0, 1, 2, 3, 4]));
    close(count(opts({ temperature: T, topK: 2 })), p([4, 0]));
    // top-p 0.9 at T = 0.7: probabilities 0.753, 0.180, 0.021, ... -> the two most likely cover 0.933 >= 0.9
    close(count(opts({ temperature: T, topP: 0.9 })), p([4, 0]));
  });
});

describe('non-finite logits', () => {
  /** tiny model whose final norm weight is `v`: NaN, or a finite value large enough that activations overflow. */
  const broken = (v: number): mk.MoELM => {
    const m = model();
    mk.noGrad(() => m.setTensor('model.norm.weight', mk.tensor(new Float32Array(32).fill(v), [32])));
    return m;
  };

  it('stop generation with an error naming the step and position, sync and async, streamed or not, freeing the KV caches', async () => {
    const msg = /^generate: the model produced non-finite logits at step 0 \(position 2\): 320 of 320 are NaN or ±Infinity, the first for token id 0 \(NaN\); expected finite logits \(likely non-finite weights, or activations overflowing\)$/;
    const m = broken(Number.NaN);
    const before = mk.getBackend().bytesInUse();
    expect(() => generate(m, [1, 2, 3], { maxNewTokens: 4 })).toThrow(msg);
    expect(() => generate(m, [1, 2, 3], { maxNewTokens: 4 })).toThrow(NonFiniteLogitsError);
    expect(() => [...generateStream(m, [1, 2, 3], { maxNewTokens: 4, temperature: 0.7 })]).toThrow(msg);
    await expect(generateAsync(m, [1, 2, 3], { maxNewTokens: 4 })).rejects.toThrow(msg);
    const streamed: number[] = [];
    await expect((async () => {
      for await (const id of generateStreamAsync(m, [1, 2, 3], { maxNewTokens: 4 })) streamed.push(id);
    })()).rejects.toThrow(msg);
    expect(streamed).toEqual([]); // no token 0 made up from NaN
    expect(mk.getBackend().bytesInUse()).toBe(before);
    // finite weights whose activations overflow (3e38 · |x| > float32 max) are caught the same way
    expect(() => generate(broken(3e38), [5, 6], { maxNewTokens: 2 })).toThrow(/non-finite logits at step 0 \(position 1\)/);
  });

  it('a step after the first is named by its step and position', () => {
    const row = new Float32Array(5);
    expect(() => checkLogits(row, 3, 9)).not.toThrow();
    row[4] = Number.POSITIVE_INFINITY;
    row[2] = Number.NaN;
    expect(() => checkLogits(row, 3, 9)).toThrow('at step 3 (position 9): 2 of 5 are NaN or ±Infinity, the first for token id 2 (NaN)');
  });

  it('checkGenerate validates prompt and options up front, with the errors generation gives', () => {
    const m = model();
    expect(() => checkGenerate(m, [1, 2, 3], { maxNewTokens: 3 })).not.toThrow();
    expect(() => checkGenerate(m, [])).toThrow(/prompt is empty/);
    expect(() => checkGenerate(m, [1, 320])).toThrow(/prompt token 320 is not an id in \[0, 320\)/);
    expect(() => checkGenerate(m, Array.from({ length: 65 }, () => 1))).toThrow(/65 tokens, more than maxSeqLen 64/);
    expect(() => checkGenerate(m, [1], { topP: 2 })).toThrow(/topP 2 must be in \(0, 1\]/);
  });
});
