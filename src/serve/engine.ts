// Continuous batching: running sequences decode together, one batched forward per step; new requests join at step
// boundaries and finished ones leave. Each sequence is generate()'s own loop (sampling, stop ids, limits), driven by
// the engine instead of one forward per sequence. Prefill is whole (a new prompt in one step), chunked (a budget of
// prompt tokens per step) or layered (the layers in S groups; a prompt passes one group per step while every group
// decodes, so each prompt passes each layer once).
import type { MoELM } from '../models/moe-lm.js';
import type { RoutingObserver } from '../moe/pipeline.js';
import type { KVCache } from '../nn/attention.js';
import type { KVPool } from '../nn/kv-pool.js';
import type { Tensor } from '../tensor/tensor.js';
import { newKVPool, raggedStep, type StepSegment } from './batch.js';
import { loop, type GenerateOptions, type GenerateResult, type LoopRequest } from './generate.js';

export type PrefillPolicy = { kind: 'whole' } | { kind: 'chunked'; chunk: number } | { kind: 'layered'; stages: number };

export interface EngineOptions {
  /** sequences running at once (decoding or prefilling); more wait in the queue */
  maxBatch: number;
  prefill?: PrefillPolicy;
  /** sees every MoE layer's routing of every step */
  observer?: RoutingObserver;
}

/** What one step did. */
export interface StepInfo {
  step: number;
  /** decode rows (one per decoding sequence) and prompt rows in the step */
  decodeRows: number;
  prefillRows: number;
  kind: 'decode' | 'prefill' | 'mixed';
  running: number;
  waiting: number;
  ms: number;
}

export interface SubmitOptions extends GenerateOptions {
  onToken?: (id: number) => void;
  /** aborting it frees the sequence's slot and KV cache at the next step boundary and rejects the promise */
  signal?: AbortSignal;
}

interface Seq {
  it: Generator<LoopRequest, GenerateResult, Float32Array | undefined>;
  /** the current request for logits */
  want: { input: readonly number[]; cache: readonly KVCache[] };
  /** the sequence's slot in the engine's KV pool */
  slot: number;
  /** prompt rows already fed (chunked) */
  fed: number;
  /** layered prefill: the next layer group, and the hidden state it starts from */
  stage: number;
  hidden: Tensor | null;
  prefilling: boolean;
  opts: SubmitOptions;
  resolve: (r: GenerateResult) => void;
  reject: (e: unknown) => void;
}

/** Lets other work run (I/O, new requests): setImmediate in Node, a zero timeout in browsers. */
const yieldTurn = (): Promise<void> => new Promise<void>((r) => (typeof setImmediate === 'function' ? setImmediate(r) : setTimeout(r, 0)));

export class AbortedError extends Error {
  override name = 'AbortError';
}

export class BatchEngine {
  readonly model: MoELM;
  readonly maxBatch: number;
  readonly prefill: PrefillPolicy;
  readonly observer?: RoutingObserver;
  #waiting: { prompt: readonly number[]; opts: SubmitOptions; resolve: (r: GenerateResult) => void; reject: (e: unknown) => void }[] = [];
  #running: Seq[] = [];
  #steps = 0;
  /** KV storage of the running sequences, allocated on demand and freed whenever the engine goes idle */
  #pool: KVPool;
  #loop: Promise<void> | null = null;
  /** every step's summary, as it happens */
  onStep?: (s: StepInfo) => void;

  constructor(model: MoELM, o: EngineOptions) {
    if (!Number.isInteger(o.maxBatch) || o.maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${o.maxBatch}`);
    const p = o.prefill ?? { kind: 'whole' };
    if (p.kind === 'chunked' && !(Number.isInteger(p.chunk) && p.chunk >= 1)) throw new RangeError(`chunk must be a positive integer, got ${p.chunk}`);
    if (p.kind === 'layered' && !(Number.isInteger(p.stages) && p.stages >= 1 && p.stages <= model.cfg.layers)) {
      throw new RangeError(`stages must be an integer from 1 to the ${model.cfg.layers} layers, got ${p.stages}`);
    }
    this.model = model;
    this.maxBatch = o.maxBatch;
    this.prefill = p;
    if (o.observer) this.observer = o.observer;
    this.#pool = newKVPool(model, o.maxBatch);
  }

  /** Bytes the KV pool holds now (0 while idle), and slots in use. */
  get kv(): { bytes: number; slots: number } {
    return { bytes: this.#pool.bytes, slots: this.#pool.inUse };
  }

  get running(): number {
    return this.#running.length;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** Queues a generation; it runs with the others from the next step on. Options are checked as generate() does. */
  submit(prompt: readonly number[], opts: SubmitOptions = {}): Promise<GenerateResult> {
    return new Promise<GenerateResult>((resolve, reject) => {
      if (opts.signal?.aborted) return reject(new AbortedError('the request was aborted before it started'));
      this.#waiting.push({ prompt, opts, resolve, reject });
      this.#kick();
    });
  }

  /** Resolves when nothing is running or waiting. */
  async idle(): Promise<void> {
    while (this.#loop) await this.#loop;
  }

  #kick(): void {
    if (this.#loop) return;
    this.#loop = (async () => {
      try {
        while (this.#waiting.length > 0 || this.#running.length > 0) {
          await yieldTurn(); // requests that arrive together start together; clients leave between steps
          this.step();
        }
      } finally {
        this.#pool.dispose();
        this.#loop = null;
      }
    })();
  }

  /** Layer group g of S: [⌊g·L/S⌋, ⌊(g+1)·L/S⌋). */
  #group(g: number, S: number): [number, number] {
    const L = this.model.cfg.layers;
    return [Math.floor((g * L) / S), Math.floor(((g + 1) * L) / S)];
  }

  /** Advances a sequence's loop past tokens to its next request; false when it has finished. */
  #advance(s: Seq, logits?: Float32Array): boolean {
    let r = this.#next(s, logits);
    while (r && !r.done && 'token' in r.value) {
      s.opts.onToken?.(r.value.token);
      r = this.#next(s);
    }
    if (!r) return this.#free(s);
    if (r.done) {
      this.#free(s);
      s.resolve(r.value);
      return false;
    }
    s.want = r.value as { input: readonly number[]; cache: readonly KVCache[] };
    s.fed = 0;
    return true;
  }

  /** it.next with errors turned into a rejection (the loop's finally frees the caches). */
  #next(s: Seq, logits?: Float32Array): IteratorResult<LoopRequest, GenerateResult> | null {
    try {
      return s.it.next(logits);
    } catch (e) {
      s.reject(e);
      return null;
    }
  }

  /** Gives the sequence's KV slot back (once); false, for #advance. */
  #free(s: Seq): false {
    if (s.slot >= 0) this.#pool.release(s.slot);
    s.slot = -1;
    return false;
  }

  #drop(s: Seq, why: unknown): void {
    this.#free(s);
    s.hidden?.dispose();
    s.hidden = null;
    try {
      s.it.return(undefined as never);
    } catch { /* the loop's own clean-up failed: nothing more to free */ }
    s.reject(why);
  }

  /** One step: admit, build the segments, run them together, hand out logits. Synchronous. */
  step(): StepInfo | null {
    const t0 = performance.now();
    this.#running = this.#running.filter((s) => {
      if (!s.opts.signal?.aborted) return true;
      this.#drop(s, new AbortedError('the request was aborted'));
      return false;
    });
    while (this.#running.length < this.maxBatch && this.#waiting.length > 0) {
      const w = this.#waiting.shift()!;
      if (w.opts.signal?.aborted) { w.reject(new AbortedError('the request was aborted before it started')); continue; }
      let it: Generator<LoopRequest, GenerateResult, Float32Array | undefined>;
      try {
        it = loop(this.model, w.prompt, w.opts);
      } catch (e) {
        w.reject(e);
        continue;
      }
      const s = { it, fed: 0, stage: 0, hidden: null, prefilling: true, opts: w.opts, resolve: w.resolve, reject: w.reject, slot: this.#pool.acquire() } as unknown as Seq;
      if (this.#advance(s)) this.#running.push(s); // its first request is the whole prompt
    }
    if (this.#running.length === 0) return null;
    const segs: StepSegment[] = [];
    const owners: { s: Seq; rows: number; completes: boolean }[] = [];
    let decodeRows = 0, prefillRows = 0;
    let budget = this.prefill.kind === 'chunked' ? this.prefill.chunk : Infinity;
    for (const s of this.#running) {
      const input = s.want.input;
      if (!s.prefilling) {
        segs.push({ ids: input, slot: s.slot });
        owners.push({ s, rows: input.length, completes: true });
        decodeRows += input.length;
        continue;
      }
      if (this.prefill.kind === 'layered') {
        const [from, to] = this.#group(s.stage, this.prefill.stages);
        segs.push({ ...(s.hidden ? { hidden: s.hidden } : { ids: input }), slot: s.slot, from, to });
        owners.push({ s, rows: input.length, completes: to === this.model.cfg.layers });
        prefillRows += input.length;
        continue;
      }
      const n = Math.min(input.length - s.fed, budget);
      if (n <= 0) continue;
      budget -= n;
      segs.push({ ids: input.slice(s.fed, s.fed + n), slot: s.slot });
      owners.push({ s, rows: n, completes: s.fed + n === input.length });
      prefillRows += n;
    }
    let out;
    try {
      out = raggedStep(this.model, segs, this.#pool, this.observer);
    } catch (e) {
      for (const o of owners) this.#drop(o.s, e);
      const failed = new Set(owners.map((o) => o.s));
      this.#running = this.#running.filter((s) => !failed.has(s));
      return null;
    }
    const done = new Set<Seq>();
    owners.forEach((o, i) => {
      const s = o.s;
      if (s.prefilling && this.prefill.kind === 'layered') {
        s.hidden?.dispose();
        s.hidden = out.hidden[i] ?? null;
        s.stage++;
      } else if (s.prefilling) s.fed += o.rows;
      if (!o.completes) return;
      s.hidden = null;
      s.stage = 0;
      s.prefilling = false;
      if (!this.#advance(s, out.logits[i]!)) done.add(s);
    });
    this.#running = this.#running.filter((s) => !done.has(s));
    const info: StepInfo = {
      step: this.#steps++, decodeRows, prefillRows,
      kind: prefillRows === 0 ? 'decode' : decodeRows === 0 ? 'prefill' : 'mixed',
      running: this.#running.length, waiting: this.#waiting.length, ms: performance.now() - t0,
    };
    this.onStep?.(info);
    return info;
  }
}
