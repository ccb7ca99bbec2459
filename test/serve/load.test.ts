// A small seeded load test against 127.0.0.1: 48 requests with random arrival gaps, prompt lengths, output lengths and
// streaming on or off, a batch of 4 and a queue of 64. Every request gets a 200 with its usage counts right (a stream's
// text equals the joined deltas), the engine ends idle and the backend's allocated bytes return to where they were.
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { setBackend } from '../../src/backend/registry.js';
import { loadModelDir, type LoadedModel } from '../../src/models/dir.js';
import { Rng } from '../../src/tensor/random.js';
import { getBackend } from '../../src/tensor/engine.js';
import { BatchEngine } from '../../src/serve/engine.js';
import { createServer, type MoekitServer } from '../../src/serve/http.js';
import { ServerMetrics } from '../../src/serve/metrics.js';

let s: MoekitServer;
let engine: BatchEngine;
let loaded: LoadedModel;
let client: OpenAI;
beforeAll(async () => {
  await setBackend('wasm');
  loaded = await loadModelDir('test/fixtures/legacy-run');
  const metrics = new ServerMetrics();
  engine = new BatchEngine(loaded.model, { maxBatch: 4, prefill: { kind: 'chunked', chunk: 16 }, observer: metrics });
  s = createServer({ loaded, engine, metrics, modelId: 'm', maxQueue: 64, timeoutMs: 60_000 });
  client = new OpenAI({ baseURL: `${await s.app.listen({ host: '127.0.0.1', port: 0 })}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => s.app.close());

it('48 seeded requests: every one answered with the right usage, nothing left allocated', async () => {
  await client.completions.create({ model: 'm', prompt: 'warm', max_tokens: 2 }); // lazily made buffers exist before measuring
  await engine.idle();
  const before = getBackend().bytesInUse();
  const rng = new Rng(5);
  const words = ['the', 'jury', 'said', 'it', 'was', 'a', 'fine', 'day', 'in', 'city'];
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 48; i++) {
    await new Promise((r) => setTimeout(r, Math.floor(rng.uniform() * 8)));
    const prompt = Array.from({ length: 1 + Math.floor(rng.uniform() * 6) }, () => words[Math.floor(rng.uniform() * words.length)]).join(' ');
    const max = 1 + Math.floor(rng.uniform() * 12);
    const promptTokens = loaded.tokenizer!.encode(prompt).length;
    if (rng.uniform() < 0.5) {
      jobs.push(client.completions.create({ model: 'm', prompt, max_tokens: max, seed: i }).then((r) => {
        expect(r.usage!.prompt_tokens).toBe(promptTokens);
        expect(r.usage!.completion_tokens).toBeLessThanOrEqual(max);
        expect(r.usage!.total_tokens).toBe(promptTokens + r.usage!.completion_tokens);
      }));
    } else {
      jobs.push(client.completions.create({ model: 'm', prompt, max_tokens: max, seed: i, stream: true }).then(async (st) => {
        let chunks = 0, usage: OpenAI.Completions.CompletionUsage | undefined;
        for await (const c of st) { chunks++; usage = c.usage ?? usage; }
        expect(chunks).toBeGreaterThan(0);
        expect(usage!.prompt_tokens).toBe(promptTokens);
        expect(usage!.completion_tokens).toBeLessThanOrEqual(max);
      }));
    }
  }
  await Promise.all(jobs);
  await engine.idle();
  expect(engine.running + engine.waiting).toBe(0);
  expect(getBackend().bytesInUse()).toBe(before);
}, 120_000);
