// Continuous batching against generate(): 8 requests of different prompt lengths batched together give generate()'s
// greedy tokens one for one under every prefill policy (whole, chunked, layered), on js and wasm; a step batches the
// decode rows of every running sequence; an aborted request frees its slot and KV cache; bad options are refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { getBackend } from '../../src/tensor/engine.js';
import { BatchEngine, type PrefillPolicy, type StepInfo } from '../../src/serve/engine.js';
import { generate } from '../../src/serve/generate.js';

const model = (): mk.MoELM => new mk.MoELM({ ...mk.PRESETS.tiny, experts: 8, topK: 2, layers: 4, maxSeqLen: 64, seed: 11 });
const prompts = Array.from({ length: 8 }, (_, i) => Array.from({ length: 3 + 2 * i }, (_, j) => (7 * i + 13 * j + 1) % 250));
const MAX_NEW = 10;

afterAll(async () => {
  await mk.setBackend('js');
});

for (const backend of ['js', 'wasm'] as const) {
  describe(`BatchEngine on ${backend}`, () => {
    let m: mk.MoELM;
    let want: number[][];
    beforeAll(async () => {
      await mk.setBackend(backend);
      m = model();
      want = prompts.map((p) => generate(m, p, { maxNewTokens: MAX_NEW }).newIds);
    });

    const policies: PrefillPolicy[] = [{ kind: 'whole' }, { kind: 'chunked', chunk: 8 }, { kind: 'layered', stages: 2 }, { kind: 'layered', stages: 4 }];
    for (const prefill of policies) {
      it(`8 requests batched, prefill ${JSON.stringify(prefill)}: generate()'s greedy tokens, one for one`, async () => {
        const engine = new BatchEngine(m, { maxBatch: 8, prefill });
        const steps: StepInfo[] = [];
        engine.onStep = (s) => steps.push(s);
        const streamed: number[][] = prompts.map(() => []);
        const got = await Promise.all(prompts.map((p, i) => engine.submit(p, { maxNewTokens: MAX_NEW, onToken: (t) => streamed[i]!.push(t) })));
        expect(got.map((r) => r.newIds)).toEqual(want);
        expect(streamed).toEqual(want);
        expect(got.map((r) => r.ids)).toEqual(prompts.map((p, i) => [...p, ...want[i]!]));
        // a decode step carries one row per decoding sequence
        if (prefill.kind !== 'chunked') expect(Math.max(...steps.map((s) => s.decodeRows))).toBe(8);
        if (prefill.kind === 'whole') expect(steps[0]!.prefillRows).toBe(prompts.flat().length);
        if (prefill.kind === 'chunked') {
          // 80 prompt tokens at 8 per step: 10 prefill steps, decode joining as prompts complete
          expect(steps.map((s) => s.prefillRows).filter((n) => n > 0)).toEqual(new Array(10).fill(8));
          expect(steps.filter((s) => s.kind === 'mixed').length).toBeGreaterThan(0);
        }
        if (prefill.kind === 'layered') expect(steps.filter((s) => s.kind !== 'decode').length).toBe(prefill.stages);
        expect(engine.running).toBe(0);
      });
    }

    it('fewer slots than requests: the rest wait and join as others finish; same tokens', async () => {
      const engine = new BatchEngine(m, { maxBatch: 3 });
      let most = 0;
      engine.onStep = (s) => { most = Math.max(most, s.decodeRows + s.prefillRows > 0 ? s.running : 0); };
      const got = await Promise.all(prompts.map((p) => engine.submit(p, { maxNewTokens: MAX_NEW })));
      expect(got.map((r) => r.newIds)).toEqual(want);
      expect(most).toBeLessThanOrEqual(3);
    });
  });
}

describe('BatchEngine over other attention forms (wasm)', () => {
  beforeAll(async () => {
    await mk.setBackend('wasm');
  });
  const variants: [string, Partial<mk.ModelConfig>][] = [
    ['sliding window 4 on layer 1, attention sinks (gpt-oss)', { slidingWindow: 4, slidingLayers: [1], attnSinks: true }],
    ['per-head q/k norms, partial RoPE (Qwen3, GLM-4.5)', { qkNorm: 'head', rotaryDim: 4 }],
    ['multi-head latent attention (DeepSeek-V3)', { attention: 'mla', kvHeads: 4, kvLoraRank: 8, qLoraRank: 8, vHeadDim: 6 }],
  ];
  for (const [name, cfg] of variants) {
    it(`${name}: 8 batched requests give generate()'s greedy tokens`, async () => {
      const m = new mk.MoELM({ ...mk.PRESETS.tiny, experts: 8, topK: 2, layers: 2, maxSeqLen: 64, seed: 5, ...cfg });
      const want = prompts.map((p) => generate(m, p, { maxNewTokens: MAX_NEW }).newIds);
      for (const prefill of [{ kind: 'whole' }, { kind: 'chunked', chunk: 5 }, { kind: 'layered', stages: 2 }] as PrefillPolicy[]) {
        const engine = new BatchEngine(m, { maxBatch: 8, prefill });
        const got = await Promise.all(prompts.map((p) => engine.submit(p, { maxNewTokens: MAX_NEW })));
        expect(got.map((r) => r.newIds), JSON.stringify(prefill)).toEqual(want);
      }
    });
  }
});

describe('BatchEngine: aborts and bad input', () => {
  beforeAll(async () => {
    await mk.setBackend('js');
  });
  it('an aborted request frees its slot and KV cache; the others finish with their tokens', async () => {
    const m = model();
    const want = generate(m, prompts[1]!, { maxNewTokens: MAX_NEW }).newIds;
    const engine = new BatchEngine(m, { maxBatch: 4 });
    await engine.submit(prompts[0]!, { maxNewTokens: 2 }); // warm: lazily created buffers exist before measuring
    const before = getBackend().bytesInUse();
    const ac = new AbortController();
    let seen = 0;
    const a = engine.submit(prompts[2]!, { maxNewTokens: 50, signal: ac.signal, onToken: () => { if (++seen === 3) ac.abort(); } });
    const b = engine.submit(prompts[1]!, { maxNewTokens: MAX_NEW });
    await expect(a).rejects.toThrow('the request was aborted');
    expect(engine.kv.slots).toBe(1); // the aborted sequence's slot is back while the other still runs
    expect((await b).newIds).toEqual(want);
    await engine.idle();
    expect(engine.kv).toEqual({ bytes: 0, slots: 0 }); // an idle engine holds no KV memory
    expect(seen).toBe(3);
    expect(engine.running).toBe(0);
    expect(getBackend().bytesInUse()).toBe(before);
  });
  it('refuses bad options and prompts as generate() does, without stopping the others', async () => {
    const m = model();
    expect(() => new BatchEngine(m, { maxBatch: 0 })).toThrow('maxBatch must be a positive integer, got 0');
    expect(() => new BatchEngine(m, { maxBatch: 2, prefill: { kind: 'layered', stages: 9 } })).toThrow('stages must be an integer from 1 to the 4 layers, got 9');
    const engine = new BatchEngine(m, { maxBatch: 2 });
    const bad = engine.submit([], {});
    const ok = engine.submit(prompts[0]!, { maxNewTokens: 3 });
    await expect(bad).rejects.toThrow('the prompt is empty');
    await expect(engine.submit([999999], {})).rejects.toThrow('generate: prompt token 999999 is not an id in [0, 320)');
    expect((await ok).newIds).toHaveLength(3);
  });
});
