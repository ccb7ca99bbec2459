// Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p), repetition penalty, stop ids,
// streaming. The logits processors follow transformers' order: repetition penalty, temperature, top-k, top-p.
import type { MoELM } from '../models/moe-lm.js';
import type { RoutingObserver } from '../moe/pipeline.js';
import { KVCache } from '../nn/attention.js';
import { slice, tensor } from '../tensor/api.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';

export interface GenerateOptions {
  /** tokens to generate at most; default 32 */
  maxNewTokens?: number;
  /** take the most likely token (ties to the lower id); default true unless temperature, topK or topP is given */
  greedy?: boolean;
  /** divides the logits before sampling; default 1 */
  temperature?: number;
  /** sample among the k most likely tokens; default 0 = all */
  topK?: number;
  /** sample among the most likely tokens whose probabilities sum to at least p; default 1 = all */
  topP?: number;
  /** > 1 discourages tokens already in the sequence (CTRL: positive logits divided, negative multiplied); default 1 */
  repetitionPenalty?: number;
  /** generation stops after emitting one of these ids (it is kept in the output) */
  stopIds?: readonly number[];
  /** seed of the sampler; default 0 */
  seed?: number;
  /** shown every MoE layer's routing of every forward (prefill, then one per decoded token) */
  observer?: RoutingObserver;
}

export type StopReason = 'stop' | 'length' | 'max-seq';

export interface GenerateResult {
  /** prompt followed by the generated tokens */
  ids: number[];
  /** the generated tokens only */
  newIds: number[];
  stoppedBy: StopReason;
  /** prompt processing and per-token decode times */
  prefillMs: number;
  decodeMs: number;
}

function check(o: GenerateOptions): Required<Omit<GenerateOptions, 'stopIds' | 'observer'>> & { stopIds: readonly number[] } {
  const maxNewTokens = o.maxNewTokens ?? 32;
  const temperature = o.temperature ?? 1;
  const topK = o.topK ?? 0;
  const topP = o.topP ?? 1;
  const repetitionPenalty = o.repetitionPenalty ?? 1;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new RangeError(`generate: maxNewTokens ${o.maxNewTokens} must be a non-negative integer`);
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new RangeError(`generate: temperature ${o.temperature} must be a finite number >= 0`);
  if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`generate: topK ${o.topK} must be a non-negative integer`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`generate: topP ${o.topP} must be in (0, 1]`);
  if (!(repetitionPenalty > 0) || !Number.isFinite(repetitionPenalty)) throw new RangeError(`generate: repetitionPenalty ${o.repetitionPenalty} must be a positive number`);
  const sampling = o.temperature !== undefined || o.topK !== undefined || o.topP !== undefined;
  const greedy = o.greedy ?? !sampling;
  return { maxNewTokens, temperature, topK, topP, repetitionPenalty, stopIds: o.stopIds ?? [], seed: o.seed ?? 0, greedy: greedy || temperature === 0 };
}

/** Picks the next token from one row of logits (modified in place). */
export function pickToken(logits: Float32Array, seen: ReadonlySet<number>, o: ReturnType<typeof check>, rng: Rng): number {
  if (o.repetitionPenalty !== 1) {
    for (const id of seen) {
      const v = logits[id]!;
      logits[id] = v < 0 ? v * o.repetitionPenalty : v / o.repetitionPenalty;
    }
  }
  if (o.greedy) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  const V = logits.length;
  let order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (o.topK > 0 && o.topK < V) order = order.slice(0, o.topK);
  const max = logits[order[0]!]!;
  const p = order.map((i) => Math.exp((logits[i]! - max) / o.temperature));
  let total = p.reduce((a, b) => a + b, 0);
  let n = p.length;
  if (o.topP < 1) {
    let acc = 0;
    for (let j = 0; j < p.length; j++) {
      acc += p[j]! / total;
      if (acc >= o.topP) {
        n = j + 1;
        break;
      }
    }
    total = p.slice(0, n).reduce((a, b) => a + b, 0);
  }
  let u = rng.uniform() * total;
  for (let j = 0; j < n; j++) {
    u -= p[j]!;
    if (u <= 0) return order[j]!;
  }
  return order[n - 1]!;
}

/**
 * Checks a prompt and options as generation will (non-empty, ids in [0, V), at most maxSeqLen tokens, valid
 * sampling options) and throws the same errors; callers that print the prompt call it first.
 */
export function checkGenerate(model: MoELM, prompt: readonly number[], opts: GenerateOptions = {}): void {
  start(model, prompt, opts); // KV caches start empty: nothing is allocated
}

/** Validated options and prompt, and the state every generation loop starts from. */
function start(model: MoELM, prompt: readonly number[], opts: GenerateOptions): { o: ReturnType<typeof check>; rng: Rng; cache: KVCache[]; ids: number[]; seen: Set<number>; newIds: number[] } {
  const o = check(opts);
  const V = model.cfg.vocabSize;
  if (prompt.length === 0) throw new RangeError('generate: the prompt is empty (give at least one token id)');
  const bad = prompt.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
  if (bad !== undefined) throw new RangeError(`generate: prompt token ${bad} is not an id in [0, ${V})`);
  if (prompt.length > model.cfg.maxSeqLen) throw new RangeError(`generate: the prompt has ${prompt.length} tokens, more than maxSeqLen ${model.cfg.maxSeqLen}`);
  return { o, rng: new Rng(o.seed), cache: Array.from({ length: model.cfg.layers }, () => new KVCache()), ids: [...prompt], seen: new Set(prompt), newIds: [] };
}

/** The logits of the last input position, (1, V), kept past the call's scope. */
function lastLogits(model: MoELM, cache: readonly KVCache[], input: readonly number[], observer?: RoutingObserver) {
  const V = model.cfg.vocabSize;
  return noGrad(() => tidy(() => {
    const logits = model.forward(tensor(Int32Array.from(input), [1, input.length], 'i32'), { cache, aux: false, ...(observer ? { observer } : {}) }).logits; // (T, V)
    return slice(logits, [input.length - 1, 0], [1, V]);
  }));
}

/** The model produced NaN or ±Infinity logits: generation stops instead of picking token 0 from garbage. */
export class NonFiniteLogitsError extends Error {
  override name = 'NonFiniteLogitsError';
}

/** How many values are NaN or ±Infinity, and the index of the first (-1 when none). */
export function countNonFinite(values: Float32Array): { count: number; first: number } {
  let count = 0;
  let first = -1;
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]!)) {
      if (count++ === 0) first = i;
    }
  }
  return { count, first };
}

/** Throws NonFiniteLogitsError naming the step and position when a row of logits holds NaN or ±Infinity. */
export function checkLogits(logits: Float32Array, step: number, position: number): void {
  const { count, first } = countNonFinite(logits);
  if (count === 0) return;
  throw new NonFiniteLogitsError(
    `generate: the model produced non-finite logits at step ${step} (position ${position}): ${count} of ${logits.length} are NaN or ±Infinity, the first for token id ${first} (${logits[first]}); ` +
      'expected finite logits (likely non-finite weights, or activations overflowing)',
  );
}

/** What the generation loop asks its driver for: the last logits after feeding `input`, or to emit a token. */
export type LoopRequest = { input: readonly number[]; cache: readonly KVCache[] } | { token: number };

/**
 * The generation loop, written once for every driver (synchronous, asynchronous, the continuous-batching engine): it
 * yields a request for the logits of each step (the driver answers through next()) and each chosen token.
 */
export function* loop(model: MoELM, prompt: readonly number[], opts: GenerateOptions): Generator<LoopRequest, GenerateResult, Float32Array | undefined> {
  const { o, rng, cache, ids, seen, newIds } = start(model, prompt, opts);
  let stoppedBy: StopReason = 'length';
  let prefillMs = 0;
  let decodeMs = 0;
  try {
    let t0 = performance.now();
    let logits = (yield { input: prompt, cache })!;
    prefillMs = performance.now() - t0;
    for (let i = 0; i < o.maxNewTokens; i++) {
      checkLogits(logits, i, ids.length - 1);
      const next = pickToken(logits, seen, o, rng);
      ids.push(next);
      newIds.push(next);
      seen.add(next);
      yield { token: next };
      if (o.stopIds.includes(next)) {
        stoppedBy = 'stop';
        break;
      }
      if (i + 1 === o.maxNewTokens) break;
      if (ids.length >= model.cfg.maxSeqLen) {
        stoppedBy = 'max-seq';
        break;
      }
      t0 = performance.now();
      logits = (yield { input: [next], cache })!;
      decodeMs += performance.now() - t0;
    }
  } finally {
    for (const c of cache) c.dispose();
  }
  return { ids, newIds, stoppedBy, prefillMs, decodeMs };
}

/**
 * Generates after `prompt`, one token at a time with a KV cache, yielding each new token as it is chosen. The
 * generator's return value is the full result. Reads the logits synchronously (js, wasm); `generateStreamAsync`
 * runs on every backend.
 */
export function* generateStream(model: MoELM, prompt: readonly number[], opts: GenerateOptions = {}): Generator<number, GenerateResult> {
  const it = loop(model, prompt, opts);
  try {
    let r = it.next();
    while (!r.done) {
      const q = r.value;
      if ('token' in q) {
        yield q.token;
        r = it.next();
      } else {
        const t = lastLogits(model, q.cache, q.input, opts.observer);
        let v: Float32Array;
        try {
          v = Float32Array.from(t.dataSync());
        } finally {
          t.dispose();
        }
        r = it.next(v);
      }
    }
    return r.value;
  } finally {
    it.return(undefined as never); // a consumer that stops early still frees the KV caches
  }
}

/** generateStream run to the end; `onToken` sees each new token as it is chosen. */
export function generate(model: MoELM, prompt: readonly number[], opts: GenerateOptions & { onToken?: (id: number) => void } = {}): GenerateResult {
  const it = generateStream(model, prompt, opts);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
    opts.onToken?.(r.value);
  }
}

/**
 * generateStream for every backend, GPU ones included: the logits of each step are read with `await data()`, so
 * the device queue is never stalled by a synchronous read. Same options, same tokens as the synchronous form.
 */
export async function* generateStreamAsync(model: MoELM, prompt: readonly number[], opts: GenerateOptions = {}): AsyncGenerator<number, GenerateResult> {
  const it = loop(model, prompt, opts);
  try {
    let r = it.next();
    while (!r.done) {
      const q = r.value;
      if ('token' in q) {
        yield q.token;
        r = it.next();
      } else {
        const t = lastLogits(model, q.cache, q.input, opts.observer);
        let v: Float32Array;
        try {
          v = Float32Array.from(await t.data());
        } finally {
          t.dispose();
        }
        r = it.next(v);
      }
    }
    return r.value;
  } finally {
    it.return(undefined as never);
  }
}

/** generateStreamAsync run to the end (works on every backend). */
export async function generateAsync(model: MoELM, prompt: readonly number[], opts: GenerateOptions & { onToken?: (id: number) => void } = {}): Promise<GenerateResult> {
  const it = generateStreamAsync(model, prompt, opts);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
    opts.onToken?.(r.value);
  }
}
