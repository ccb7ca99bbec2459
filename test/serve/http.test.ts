// The OpenAI-compatible server, in process on 127.0.0.1: the official `openai` client gets generate()'s greedy text,
// streamed and not, also with 8 requests at once; a model without a tokenizer answers token ids and refuses text; each
// fault case gets its status and OpenAI's error body naming the field; a client that leaves mid-stream frees its slot
// and KV cache; drain lets running requests finish and refuses new ones.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setBackend } from '../../src/backend/registry.js';
import { loadModelDir, type LoadedModel } from '../../src/models/dir.js';
import { getBackend } from '../../src/tensor/engine.js';
import { BatchEngine } from '../../src/serve/engine.js';
import { generate } from '../../src/serve/generate.js';
import { createServer, type MoekitServer } from '../../src/serve/http.js';
import { ServerMetrics } from '../../src/serve/metrics.js';

async function start(dir: string, o: { maxQueue?: number; apiKey?: string; maxBatch?: number } = {}): Promise<{ s: MoekitServer; url: string; loaded: LoadedModel; engine: BatchEngine }> {
  const loaded = await loadModelDir(dir);
  const metrics = new ServerMetrics();
  const engine = new BatchEngine(loaded.model, { maxBatch: o.maxBatch ?? 8, observer: metrics });
  const s = createServer({ loaded, engine, metrics, modelId: 'm', maxQueue: o.maxQueue ?? 64, timeoutMs: 60_000, ...(o.apiKey ? { apiKey: o.apiKey } : {}) });
  const url = await s.app.listen({ host: '127.0.0.1', port: 0 });
  return { s, url, loaded, engine };
}

const post = (url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

beforeAll(async () => {
  await setBackend('wasm');
});

describe('moekit serve with a trained run (text prompts)', () => {
  let srv: Awaited<ReturnType<typeof start>>;
  let client: OpenAI;
  const prompts = ['The jury said', 'It was', 'In the', 'He', 'The committee', 'She said that', 'A', 'When the'];
  const expected = (p: string, n: number): string => {
    const t = srv.loaded.tokenizer!;
    return t.decode(generate(srv.loaded.model, t.encode(p), { maxNewTokens: n, stopIds: srv.loaded.eosTokenIds }).newIds);
  };
  beforeAll(async () => {
    srv = await start('test/fixtures/legacy-run');
    client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused' });
  });
  afterAll(async () => srv.s.app.close());

  it('completions, plain and streamed, give generate()\'s greedy text with usage counts', async () => {
    const want = expected(prompts[0]!, 12);
    const r = await client.completions.create({ model: 'm', prompt: prompts[0]!, max_tokens: 12, temperature: 0 });
    expect(r.choices[0]!.text).toBe(want);
    expect(r.usage).toEqual({ prompt_tokens: srv.loaded.tokenizer!.encode(prompts[0]!).length, completion_tokens: 12, total_tokens: srv.loaded.tokenizer!.encode(prompts[0]!).length + 12 });
    const stream = await client.completions.create({ model: 'm', prompt: prompts[0]!, max_tokens: 12, temperature: 0, stream: true });
    let text = '', last: OpenAI.Completions.Completion | undefined;
    for await (const c of stream) { text += c.choices[0]?.text ?? ''; last = c; }
    expect(text).toBe(want);
    expect(last!.choices[0]!.finish_reason).toBe('length');
    expect(last!.usage!.completion_tokens).toBe(12);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['m']);
  });

  it('chat completions, plain and streamed', async () => {
    const r = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 6, temperature: 0 });
    expect(r.choices[0]!.message.role).toBe('assistant');
    expect(r.choices[0]!.message.content).toBe(expected('user: Hello\nassistant:', 6));
    const stream = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 6, temperature: 0, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    expect(text).toBe(r.choices[0]!.message.content);
  });

  it('8 requests at once are batched and each gets its own greedy text', async () => {
    const want = prompts.map((p) => expected(p, 10));
    const got = await Promise.all(prompts.map((p) => client.completions.create({ model: 'm', prompt: p, max_tokens: 10, temperature: 0 })));
    expect(got.map((r) => r.choices[0]!.text)).toEqual(want);
  });

  it('bad requests get a 4xx with OpenAI\'s error body naming the field, and the server keeps serving', async () => {
    const cases: [unknown, number, string, string | null][] = [
      ['{not json', 400, 'malformed request', null],
      [{ model: 'm', prompt: 'x', max_tokens: 0 }, 400, 'max_tokens', 'max_tokens'],
      [{ model: 'm', prompt: 'x', temperature: 'hot' }, 400, 'temperature: expected number', 'temperature'],
      [{ model: 'm', prompt: 'x', n: 2 }, 400, 'only n = 1 is served', 'n'],
      [{ model: 'm' }, 400, 'prompt', 'prompt'],
      [{ model: 'other', prompt: 'x' }, 404, 'model "other" is not served here', 'model'],
      [{ model: 'm', prompt: Array.from({ length: 500 }, () => 1) }, 400, 'leave no room to generate in the model\'s context', 'prompt'],
    ];
    for (const [body, status, msg, param] of cases) {
      const r = await post(srv.url, '/v1/completions', body);
      expect(r.status, JSON.stringify(body).slice(0, 60)).toBe(status);
      const e = (await r.json()) as { error: { message: string; param: string | null; type: string } };
      expect(e.error.message).toContain(msg);
      expect(e.error.param).toBe(param);
    }
    expect((await fetch(`${srv.url}/health`)).status).toBe(200);
    expect((await fetch(`${srv.url}/v1/nothing`)).status).toBe(404);
    const metrics = await (await fetch(`${srv.url}/metrics`)).text();
    expect(metrics).toMatch(/moekit_requests_total\{endpoint="\/v1\/completions",status="400"\} 6/);
    expect(metrics).toMatch(/moekit_activated_experts_count\{layer="0",kind="decode"\} \d+/);
  });

  it('a client that disconnects mid-stream frees its slot and KV cache at once', async () => {
    const before = getBackend().bytesInUse();
    const ac = new AbortController();
    const r = await fetch(`${srv.url}/v1/completions`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt: 'The', max_tokens: 100, temperature: 0, stream: true }) });
    const reader = r.body!.getReader();
    await reader.read(); // the first chunk has arrived: the request is running
    expect(srv.engine.running).toBe(1);
    ac.abort();
    for (let i = 0; i < 100 && srv.engine.running > 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(srv.engine.running).toBe(0);
    expect(getBackend().bytesInUse()).toBe(before);
  });
});

describe('moekit serve: token ids, keys, queue, drain', () => {
  it('a Hugging Face model without a tokenizer answers token-id prompts and refuses text with a 400', async () => {
    const srv = await start('../shared/fixtures/hf/qwen3_moe');
    try {
      const want = generate(srv.loaded.model, [1, 2, 3], { maxNewTokens: 5, stopIds: srv.loaded.eosTokenIds }).newIds;
      const r = (await (await post(srv.url, '/v1/completions', { model: 'm', prompt: [1, 2, 3], max_tokens: 5, temperature: 0 })).json()) as { choices: { text: string }[]; usage: { completion_tokens: number } };
      expect(r.choices[0]!.text).toBe(want.map((t) => ` ${t}`).join('').slice(0, r.choices[0]!.text.length));
      expect(r.usage.completion_tokens).toBe(want.length);
      const bad = await post(srv.url, '/v1/completions', { model: 'm', prompt: 'text' });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { message: string } }).error.message).toContain('this model has no tokenizer');
    } finally {
      await srv.s.app.close();
    }
  });

  it('an API key is required when set; a full queue gets 429 with a retry hint', async () => {
    const srv = await start('test/fixtures/legacy-run', { apiKey: 'k', maxQueue: 0, maxBatch: 1 });
    try {
      expect((await post(srv.url, '/v1/completions', { model: 'm', prompt: 'x' })).status).toBe(401);
      const auth = { authorization: 'Bearer k' };
      // one sequence in the batch of 1 and one in the queue of… 0: no room
      const busy = [srv.engine.submit([1, 2], { maxNewTokens: 3 }), srv.engine.submit([1, 2], { maxNewTokens: 3 })];
      const full = await srv.s.app.inject({ method: 'POST', url: '/v1/completions', headers: auth, payload: { model: 'm', prompt: 'x' } });
      expect(full.statusCode).toBe(429);
      expect(full.headers['retry-after']).toBe('1');
      expect((JSON.parse(full.body) as { error: { type: string } }).error.type).toBe('rate_limit_error');
      await Promise.all(busy);
      expect((await post(srv.url, '/v1/completions', { model: 'm', prompt: 'The', max_tokens: 3 }, auth)).status).toBe(200);
    } finally {
      await srv.engine.idle();
      await srv.s.app.close();
    }
  });

  it('drain: running requests finish, new ones get 503 and /health says 503', async () => {
    const srv = await start('test/fixtures/legacy-run');
    const running = post(srv.url, '/v1/completions', { model: 'm', prompt: 'The', max_tokens: 30, temperature: 0 });
    while (srv.engine.running === 0) await new Promise((res) => setTimeout(res, 5));
    const drained = srv.s.drain();
    const late = await srv.s.app.inject({ method: 'POST', url: '/v1/completions', payload: { model: 'm', prompt: 'x' } });
    expect(late.statusCode).toBe(503);
    expect((await srv.s.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(503);
    const r = await running;
    expect(r.status).toBe(200);
    expect(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(30);
    await drained;
    expect(srv.engine.running).toBe(0);
  });
});
