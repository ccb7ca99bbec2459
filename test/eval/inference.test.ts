// Inference measurements: routing statistics on held-out tokens, and speeds timed in alternation (each subject put in
// its form before each of its timings, medians over at least five rounds). The speeds are checked on a fake clock
// (performance.now advanced only inside the models' forwards, by known amounts), so every rate, round count and
// timed window is an exact expectation rather than a threshold on a shared machine's speed.
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import * as mk from '../../src/index.js';
import { inferenceSpeeds, routingSummary } from '../../src/eval/inference.js';
import { MoELM, tiny } from '../../src/models/index.js';
import { generate } from '../../src/serve/generate.js';

beforeAll(async () => {
  await mk.setBackend('js');
});
afterEach(() => {
  vi.restoreAllMocks();
});

const ids = (n: number, V: number): Int32Array => {
  const rng = new mk.Rng(5);
  return Int32Array.from({ length: n }, () => rng.int(V));
};

/** One forward a model ran: its input ids, their length and the milliseconds the fake clock advanced during it. */
interface Call {
  model: MoELM;
  T: number;
  ids: number[];
  ms: number;
}

/**
 * A fake clock: performance.now returns `clock`, which moves only inside the forwards of `models`: a prompt forward
 * (T = promptLen) by PROMPT_MS, which the speeds must not count (the prompt is not timed), every other forward by a
 * pseudo-random whole number of milliseconds in [1, 40] (whole numbers: the differences are exact).
 */
const PROMPT_MS = 100_000;
function fakeClock(models: MoELM[], promptLen: number): Call[] {
  let clock = 1000;
  vi.spyOn(performance, 'now').mockImplementation(() => clock);
  const rng = new mk.Rng(17);
  const calls: Call[] = [];
  for (const m of new Set(models)) {
    const forward = m.forward.bind(m);
    m.forward = (...args: Parameters<MoELM['forward']>) => {
      const x = args[0];
      const T = x.shape[1]!;
      const ms = T === promptLen ? PROMPT_MS : 1 + rng.int(40);
      const out = forward(...args);
      clock += ms;
      calls.push({ model: m, T, ids: Array.from(x.dataSync()), ms });
      return out;
    };
  }
  return calls;
}

const median = (a: readonly number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
};
const sum = (a: readonly number[]): number => a.reduce((x, y) => x + y, 0);

describe('inferenceSpeeds', () => {
  const o = { prefillLen: 8, promptLen: 4, decodeTokens: 3 };
  /** forwards per subject and round: one prefill pass, the prompt, then one per decoded token */
  const perSession = 2 + o.decodeTokens;

  /**
   * Splits the forwards into sessions (subject by subject, round by round; round 0 the warm-up) and checks each
   * session's shape: the right model, a prefill window of prefillLen ids cut from `tokens`, the prompt (tokens'
   * first promptLen), then decodeTokens one-token steps.
   */
  function sessions(calls: Call[], models: MoELM[], tokens: Int32Array) {
    const S = models.length;
    expect(calls.length % (S * perSession)).toBe(0);
    const rounds = calls.length / (S * perSession);
    const out = models.map(() => [] as { prefillMs: number; decodeMs: number; window: number[]; fed: number[] }[]);
    for (let r = 0; r < rounds; r++) {
      for (let s = 0; s < S; s++) {
        const c = calls.slice((r * S + s) * perSession, (r * S + s + 1) * perSession);
        for (const x of c) expect(x.model).toBe(models[s]);
        expect(c.map((x) => x.T)).toEqual([o.prefillLen, o.promptLen, ...new Array<number>(o.decodeTokens).fill(1)]);
        const window = c[0]!.ids;
        const at = tokens.findIndex((_, i) => window.every((v, k) => tokens[i + k] === v));
        expect(at, `prefill window ${window} is a slice of the tokens`).toBeGreaterThanOrEqual(0);
        expect(at + o.prefillLen).toBeLessThanOrEqual(tokens.length);
        expect(c[1]!.ids).toEqual(Array.from(tokens.subarray(0, o.promptLen)));
        out[s]!.push({ prefillMs: c[0]!.ms, decodeMs: sum(c.slice(2).map((x) => x.ms)), window, fed: c.slice(2).map((x) => x.ids[0]!) });
      }
    }
    return { rounds, perSubject: out };
  }

  it('each rate is tokens / the median measured seconds of the timed rounds (warm-up and prompt not counted); five rounds at seconds 0', () => {
    const a = new MoELM(tiny);
    const b = new MoELM({ ...tiny, seed: 4 });
    const tokens = ids(64, a.cfg.vocabSize);
    // the greedy continuation of the prompt, by the generation loop: what every decode session must feed back
    const greedy = (m: MoELM): number[] => generate(m, Array.from(tokens.subarray(0, o.promptLen)), { maxNewTokens: o.decodeTokens, greedy: true }).newIds;
    const wantFed = new Map([a, b].map((m) => [m, greedy(m)]));
    const log: string[] = [];
    const models = [a, b, a];
    const calls = fakeClock(models, o.promptLen);
    const r = inferenceSpeeds([a, { model: b, activate: () => log.push('b') }, { model: a, activate: () => log.push('a2') }], tokens, { ...o, seconds: 0 });
    expect(r.length).toBe(3);
    const { rounds, perSubject } = sessions(calls, models, tokens);
    expect(rounds).toBe(1 + 5); // the warm-up, then MIN_ROUNDS = 5 timed rounds
    // activate runs before each timing of its subject, warm-up included, in subject order
    expect(log).toEqual(new Array<string[]>(rounds).fill(['b', 'a2']).flat());
    perSubject.forEach((ss, s) => {
      const timed = ss.slice(1);
      const prefill = o.prefillLen / (median(timed.map((x) => x.prefillMs)) / 1000);
      const decode = o.decodeTokens / (median(timed.map((x) => x.decodeMs)) / 1000);
      console.log(`subject ${s}: prefill ${timed.map((x) => x.prefillMs).join(',')} ms -> ${r[s]!.prefillTokensPerS.toFixed(3)} tok/s (want ${prefill.toFixed(3)}); decode ${timed.map((x) => x.decodeMs).join(',')} ms -> ${r[s]!.decodeTokensPerS.toFixed(3)} tok/s (want ${decode.toFixed(3)})`);
      expect(Math.abs(r[s]!.prefillTokensPerS / prefill - 1)).toBeLessThan(1e-12);
      expect(Math.abs(r[s]!.decodeTokensPerS / decode - 1)).toBeLessThan(1e-12);
      // decode is deterministic greedy: every session feeds back the tokens the generation loop produces
      for (const x of ss) expect(x.fed).toEqual(wantFed.get(models[s]!));
    });
    expect(() => inferenceSpeeds([a], tokens, { prefillLen: 8, promptLen: 60, decodeTokens: 10, seconds: 0 })).toThrow(/prompt 60 \+ decode 10 must fit maxSeqLen/);
    a.dispose();
    b.dispose();
  });

  it('runs rounds until every subject has `seconds` of prefill and of decode (and at least five), no more', () => {
    const a = new MoELM(tiny);
    const b = new MoELM({ ...tiny, seed: 9 });
    const tokens = ids(64, a.cfg.vocabSize);
    const models = [a, b];
    const calls = fakeClock(models, o.promptLen);
    const seconds = 0.4;
    const r = inferenceSpeeds(models, tokens, { ...o, seconds });
    const { rounds, perSubject } = sessions(calls, models, tokens);
    // the first round count at which every subject's timed prefill and decode milliseconds each reach seconds · 1000
    const enough = (n: number): boolean => n >= 5 && perSubject.every((ss) => {
      const t = ss.slice(1, 1 + n);
      return sum(t.map((x) => x.prefillMs)) >= seconds * 1000 && sum(t.map((x) => x.decodeMs)) >= seconds * 1000;
    });
    let want = 1;
    while (!enough(want)) want++;
    console.log(`seconds ${seconds}: ${rounds - 1} timed rounds (want ${want}); prefill ms per subject ${perSubject.map((ss) => sum(ss.slice(1).map((x) => x.prefillMs))).join(', ')}`);
    expect(want).toBeGreaterThan(5); // the seconds, not the minimum, decide here
    expect(rounds - 1).toBe(want);
    perSubject.forEach((ss, s) => {
      const timed = ss.slice(1);
      expect(Math.abs(r[s]!.prefillTokensPerS / (o.prefillLen / (median(timed.map((x) => x.prefillMs)) / 1000)) - 1)).toBeLessThan(1e-12);
      expect(Math.abs(r[s]!.decodeTokensPerS / (o.decodeTokens / (median(timed.map((x) => x.decodeMs)) / 1000)) - 1)).toBeLessThan(1e-12);
    });
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

  it('counts, load statistics and cross-group shares equal the top-K of the router logits', () => {
    const m = new MoELM(tiny);
    const { experts: E, topK: K } = m.cfg;
    const G = 2;
    const M = E / G;
    // 70 tokens: four windows of 16, the last 6 tokens left out
    const t = ids(70, m.cfg.vocabSize);
    const r = mk.noGrad(() => routingSummary(m, t, { seqLen: 16, groups: G, batch: 3 }));
    expect(r.tokens).toBe(64);
    // reference: the inference forward's router logits over the same four windows in one batch, top-K per token
    const logits = mk.noGrad(() => mk.tidy(() => m.forward(mk.tensor(t.subarray(0, 64), [4, 16], 'i32'), { aux: false }).routerLogits
      .filter((x): x is mk.Tensor => x !== null).map((x) => Array.from(x.dataSync()))));
    expect(logits.length).toBe(r.tokensPerExpert.length);
    logits.forEach((z, l) => {
      expect(z.length).toBe(64 * E);
      const counts = new Array<number>(E).fill(0);
      let cross = 0;
      for (let tok = 0; tok < 64; tok++) {
        const row = z.slice(tok * E, (tok + 1) * E);
        const top = row.map((v, e) => [v, e] as const).sort((x, y) => y[0] - x[0]).slice(0, K).map(([, e]) => e);
        for (const e of top) counts[e]!++;
        if (new Set(top.map((e) => Math.floor(e / M))).size > 1) cross++;
      }
      const f = counts.map((c) => c / (64 * K));
      const variance = f.reduce((a, x) => a + (x - 1 / E) ** 2, 0) / E;
      const imbalance = Math.max(...f) * E;
      console.log(`layer ${l}: tokens per expert ${r.tokensPerExpert[l]} (router top-${K}: ${counts}), variance ${r.loadVariance[l]!.toExponential(3)}, imbalance ${r.imbalance[l]!.toFixed(3)}, cross-group ${r.crossGroup[l]}`);
      expect(r.tokensPerExpert[l]).toEqual(counts);
      expect(r.loadVariance[l]).toBeCloseTo(variance, 12);
      expect(r.imbalance[l]).toBeCloseTo(imbalance, 12);
      expect(r.crossGroup[l]).toBe(cross / 64);
    });
    m.dispose();
  });
});
