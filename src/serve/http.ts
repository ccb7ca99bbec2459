// The OpenAI-compatible HTTP API over the continuous-batching engine (fastify): /v1/completions and
// /v1/chat/completions (plain and server-sent-event streams), /v1/models, /health, /metrics. Bad requests get a 4xx
// with OpenAI's error body naming the field; a client that leaves frees its slot at once; drain() finishes what runs.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { LoadedModel } from '../models/dir.js';
import { AbortedError, type BatchEngine } from './engine.js';
import type { GenerateOptions } from './generate.js';
import type { ServerMetrics } from './metrics.js';
import { chatTemplateOf } from './chat.js';
import { ApiError, ChatRequest, CompletionRequest, chatObject, completionObject, parseBody, usage, type FinishReason } from './openai.js';

export interface ServerOptions {
  loaded: LoadedModel;
  engine: BatchEngine;
  metrics: ServerMetrics;
  /** the served model's id (a request naming another gets 404) */
  modelId: string;
  apiKey?: string;
  /** Access-Control-Allow-Origin for browsers */
  cors?: string;
  /** requests waiting beyond this get 429 */
  maxQueue: number;
  /** a request running longer is stopped (finish_reason "length" when tokens were produced, else 408) */
  timeoutMs: number;
}

export interface MoekitServer {
  app: FastifyInstance;
  /** stops taking requests (503), lets the running ones finish, closes the server */
  drain(): Promise<void>;
}

interface Generation { text: string; ids: number[]; finish: FinishReason; promptTokens: number }

export function createServer(o: ServerOptions): MoekitServer {
  const { loaded, engine, metrics } = o;
  const V = loaded.config.vocabSize, ctx = loaded.config.maxSeqLen;
  const created = Math.floor(Date.now() / 1000);
  const chat = chatTemplateOf(loaded.assetsDir);
  let draining = false;
  let seq = 0;
  const app = Fastify({ logger: false, bodyLimit: 8 * 1024 * 1024 });
  engine.onStep = (s) => metrics.step(s);

  app.addHook('onRequest', async (req, reply) => {
    if (o.cors) {
      reply.header('access-control-allow-origin', o.cors);
      reply.header('access-control-allow-headers', 'authorization, content-type');
      reply.header('access-control-allow-methods', 'GET, POST, OPTIONS');
    }
    if (req.method === 'OPTIONS') return reply.code(204).send();
    if (o.apiKey && req.url.startsWith('/v1/') && req.headers.authorization !== `Bearer ${o.apiKey}`) throw new ApiError(401, 'missing or wrong API key (Authorization: Bearer KEY)');
    if (draining && req.method === 'POST') throw new ApiError(503, 'the server is shutting down');
  });
  app.setErrorHandler((err: unknown, req, reply) => {
    const e = err instanceof ApiError ? err
      : (err as { statusCode?: number }).statusCode === 400 || (err as { code?: string }).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? new ApiError(400, `malformed request: ${(err as Error).message}`)
        : new ApiError(500, (err as Error).message ?? String(err));
    metrics.requests.inc({ endpoint: req.routeOptions.url ?? req.url, status: String(e.status) });
    if (e.status === 429) reply.header('retry-after', '1');
    void reply.code(e.status).send(e.body());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new ApiError(404, `no route ${req.method} ${req.url}`).body());
  });

  app.get('/health', async (_req, reply) => (draining ? reply.code(503).send({ status: 'draining' }) : { status: 'ok' }));
  app.get('/v1/models', async () => ({ object: 'list', data: [{ id: o.modelId, object: 'model', created, owned_by: 'moekit', max_model_len: ctx }] }));
  app.get('/metrics', async (_req, reply) => reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics()));

  /** Prompt ids from text (the tokenizer, BOS as the model wants) or from ids, checked against the vocabulary and context. */
  const promptIds = (prompt: string | number[], field: string, bos = true): number[] => {
    let ids: number[];
    if (typeof prompt === 'string') {
      if (!loaded.tokenizer) throw new ApiError(400, `${field}: this model has no tokenizer, so text cannot be encoded; send token ids (an array of integers)`, field);
      ids = loaded.tokenizer.encode(prompt);
      if (bos && loaded.bosTokenId !== null && loaded.addBos) ids.unshift(loaded.bosTokenId);
    } else ids = prompt;
    if (ids.length === 0) throw new ApiError(400, `${field}: encodes to no tokens`, field);
    const bad = ids.findIndex((t) => t >= V);
    if (bad >= 0) throw new ApiError(400, `${field}[${bad}] = ${ids[bad]} is not a token id below the vocabulary size ${V}`, field);
    if (ids.length >= ctx) throw new ApiError(400, `${field}: ${ids.length} tokens leave no room to generate in the model's context of ${ctx}`, field);
    return ids;
  };

  /** The model named must be this one; the batch and the queue behind it must have room. */
  const admit = (b: CompletionRequest | ChatRequest): void => {
    if (b.model !== o.modelId) throw new ApiError(404, `model "${b.model}" is not served here; this server serves "${o.modelId}"`, 'model', 'model_not_found');
    if (engine.running + engine.waiting >= engine.maxBatch + o.maxQueue) throw new ApiError(429, `the batch (${engine.maxBatch}) and the queue (${o.maxQueue}) are full; retry later`);
  };

  /** Runs one request through the engine, streaming text deltas to `onDelta`. */
  const generate = async (req: FastifyRequest, reply: FastifyReply, b: CompletionRequest | ChatRequest, ids: number[], onDelta?: (d: string) => void): Promise<Generation> => {
    admit(b);
    const stops = b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
    const g: GenerateOptions = { maxNewTokens: b.max_completion_tokens ?? b.max_tokens ?? 16, stopIds: loaded.eosTokenIds, seed: b.seed ?? Math.floor(Math.random() * 2 ** 31) };
    const temperature = b.temperature ?? 1;
    if (temperature === 0) g.greedy = true;
    else Object.assign(g, { temperature, ...(b.top_p !== undefined ? { topP: b.top_p } : {}), ...(b.top_k ? { topK: b.top_k } : {}) });
    const ac = new AbortController();
    const onClose = (): void => { if (!reply.raw.writableFinished) ac.abort(); };
    reply.raw.on('close', onClose);
    const timer = setTimeout(() => ac.abort(), o.timeoutMs);
    const out: number[] = [];
    let sent = '', stopped = false;
    const t0 = performance.now();
    let tFirst = 0;
    const emit = (): void => {
      let text = loaded.tokenizer ? loaded.tokenizer.decode(out) : out.map((t) => ` ${t}`).join('');
      const hit = stops.map((s) => text.indexOf(s)).filter((i) => i >= 0);
      if (hit.length) { text = text.slice(0, Math.min(...hit)); stopped = true; ac.abort(); }
      else if (text.endsWith('\uFFFD')) return; // a character split over tokens: wait for the rest
      if (text.length > sent.length && text.startsWith(sent)) { onDelta?.(text.slice(sent.length)); sent = text; }
    };
    let finish: FinishReason = 'length';
    try {
      const r = await engine.submit(ids, { ...g, signal: ac.signal, onToken: (t) => { if (out.length === 0) tFirst = performance.now(); out.push(t); if (!stopped) emit(); } });
      finish = r.stoppedBy === 'stop' ? 'stop' : 'length';
      stopped = false;
      emit();
    } catch (e) {
      if (!(e instanceof AbortedError)) throw e instanceof RangeError ? new ApiError(400, e.message) : e;
      if (stopped) finish = 'stop';
      else if (reply.raw.destroyed) throw new ApiError(499, 'the client closed the request');
      else if (out.length === 0) throw new ApiError(408, `no token within the request timeout of ${o.timeoutMs} ms`);
    } finally {
      clearTimeout(timer);
      reply.raw.off('close', onClose);
    }
    metrics.promptTokens.inc(ids.length);
    metrics.generatedTokens.inc(out.length);
    if (out.length > 0) metrics.ttft.observe((tFirst - t0) / 1000);
    if (out.length > 1) metrics.tpot.observe((performance.now() - tFirst) / 1000 / (out.length - 1));
    return { text: sent, ids: out, finish, promptTokens: ids.length };
  };

  /** Non-streamed and streamed answers for both endpoints. */
  const answer = async (req: FastifyRequest, reply: FastifyReply, endpoint: string, b: CompletionRequest | ChatRequest, ids: number[], shape: (text: string, finish: FinishReason | null, u: ReturnType<typeof usage> | null, chunk: boolean, first?: boolean) => Record<string, unknown>): Promise<unknown> => {
    if (!b.stream) {
      const g = await generate(req, reply, b, ids);
      metrics.requests.inc({ endpoint, status: '200' });
      return shape(g.text, g.finish, usage(g.promptTokens, g.ids.length), false);
    }
    admit(b);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', ...(o.cors ? { 'access-control-allow-origin': o.cors } : {}) });
    const send = (obj: unknown): void => { if (!res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`); };
    let first = true;
    try {
      const g = await generate(req, reply, b, ids, (d) => { send(shape(d, null, null, true, first)); first = false; });
      send(shape('', g.finish, usage(g.promptTokens, g.ids.length), true, first));
      metrics.requests.inc({ endpoint, status: '200' });
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, (e as Error).message);
      metrics.requests.inc({ endpoint, status: String(err.status) });
      send(err.body());
    }
    if (!res.destroyed) res.end('data: [DONE]\n\n');
    return reply;
  };

  app.post('/v1/completions', async (req, reply) => {
    const b = parseBody(CompletionRequest, req.body);
    const ids = promptIds(b.prompt, 'prompt');
    const id = `cmpl-${++seq}`;
    return answer(req, reply, '/v1/completions', b, ids, (t, f, u, chunk) => completionObject(id, o.modelId, Math.floor(Date.now() / 1000), t, f, u, chunk));
  });
  app.post('/v1/chat/completions', async (req, reply) => {
    const b = parseBody(ChatRequest, req.body);
    let text: string;
    try {
      text = chat.render(b.messages);
    } catch (e) {
      throw new ApiError(400, `messages: the model's chat template fails on them (${e instanceof Error ? e.message : String(e)})`, 'messages');
    }
    const ids = promptIds(text, 'messages', !chat.fromModel); // a model's template writes its own BOS
    const id = `chatcmpl-${++seq}`;
    return answer(req, reply, '/v1/chat/completions', b, ids, (t, f, u, chunk, first) => chatObject(id, o.modelId, Math.floor(Date.now() / 1000), t, f, u, chunk, first));
  });

  return {
    app,
    async drain() {
      draining = true;
      await engine.idle();
      await app.close();
    },
  };
}
