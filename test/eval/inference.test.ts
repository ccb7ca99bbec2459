// Inference measurements: routing statistics on held-out tokens, and speeds timed in alternation (each subject put in
// its form before each of its timings, medians over at least five rounds).
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { inferenceSpeeds, routingSummary } from '../../src/eval/inference.js';
import { MoELM, tiny } from '../../src/models/index.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const ids = (n: number, V: number): Int32Array => {
  const rng = new mk.Rng(5);
  return Int32Array.from({ length: n }, () => rng.int(V));
};

describe('inferenceSpeeds', () => {
  it('times every subject in alternation, activating each form before each of its timings', () => {
    const a = new MoELM(tiny);
    const b = new MoELM({ ...tiny, seed: 4 });
    const tokens = ids(64, a.cfg.vocabSize);
    const log: string[] = [];
    const r = inferenceSpeeds([a, { model: b, activate: () => log.push('b') }, { model: a, activate: () => log.push('a2') }], tokens, { prefillLen: 8, promptLen: 4, decodeTokens: 3, seconds: 0 });
    expect(r.length).toBe(3);
    for (const s of r) {
      expect(s.prefillTokensPerS).toBeGreaterThan(0);
      expect(s.decodeTokensPerS).toBeGreaterThan(0);
    }
    // one warm-up, then at least 5 rounds; the activations alternate
    expect(log.length).toBeGreaterThanOrEqual(12);
    expect(log.slice(0, 6)).toEqual(['b', 'a2', 'b', 'a2', 'b', 'a2']);
    expect(() => inferenceSpeeds([a], tokens, { prefillLen: 8, promptLen: 60, decodeTokens: 10, seconds: 0 })).toThrow(/prompt 60 \+ decode 10 must fit maxSeqLen/);
    a.dispose();
    b.dispose();
  });
});

describe('routingSummary', () => {
  it('counts K routed slots per token and layer; variance 0 only for an even load', () => {
    const m = new MoELM(tiny);
    const t = ids(64, m.cfg.vocabSize);
    const r = mk.noGrad(() => routingSummary(m, t, { seqLen: 16, groups: 1 }));
    expect(r.tokens).toBe(64);
    expect(r.tokensPerExpert.length).toBe(m.cfg.layers - m.cfg.denseLayers.length);
    expect(r.tokensPerExpert.length).toBeGreaterThan(0);
    for (const counts of r.tokensPerExpert) expect(counts.reduce((x, y) => x + y, 0)).toBe(64 * m.cfg.topK);
    r.loadVariance.forEach((v, l) => {
      const c = r.tokensPerExpert[l]!;
      const even = c.every((x) => x === c[0]);
      expect(v === 0).toBe(even);
    });
    expect(r.crossGroup.every((x) => x === 0)).toBe(true); // one group: nothing crosses
    m.dispose();
  });
});
