// Request-level views of a trace: each sequence id is one request (its first P tokens the prompt, the next ones the
// output). Prefill scheduling: expert-weight bytes loaded per prompt by chunked prefill (every chunk of C tokens loads,
// at each layer, each distinct expert its tokens use) vs layered prefill (the whole prompt passes each layer once, so
// each layer loads each distinct expert of the prompt once). Goodput: requests per second meeting every SLO (vLLM's
// definition) under a simple wave-batched serving model priced by the simulator.
import type { RoutingTrace } from '../trace/types.js';
import { StepCounter, topology, checkPlan } from './dispatch.js';
import { checkDims, expertWeightBytes, type Hardware, type ModelDims } from './hw.js';
import { positiveInt, simulateTokens, stepSeconds } from './simulate.js';
import type { Plan } from './types.js';

/** One request: trace tokens [start, start + prompt) are its prompt, the next `output` tokens its output. */
export interface Request {
  seq: number;
  start: number;
  prompt: number;
  output: number;
}

/**
 * The requests of a trace: one per run of equal sequence ids (the trace's order). Prompt = min(P, length − 1) tokens,
 * output = min(O, length − prompt) tokens; a sequence of one token makes no request.
 */
export function requests(trace: RoutingTrace, prompt: number, output: number): Request[] {
  if (!trace.seq) throw new Error('trace: no sequence ids (a moekit trace has them; .npy and Megatron traces do not), so there are no requests');
  positiveInt(prompt, 'prompt tokens');
  positiveInt(output, 'output tokens');
  const out: Request[] = [];
  const s = trace.seq;
  for (let a = 0; a < trace.N;) {
    let b = a + 1;
    while (b < trace.N && s[b] === s[a]) b++;
    const len = b - a;
    if (len >= 2) {
      const p = Math.min(prompt, len - 1);
      out.push({ seq: s[a]!, start: a, prompt: p, output: Math.min(output, len - p) });
    }
    a = b;
  }
  return out;
}

/** Distinct experts used by trace tokens [a, b) at layer l. */
function distinct(trace: RoutingTrace, l: number, a: number, b: number, mark: Int32Array, stamp: number): number {
  const { L, K } = trace;
  let d = 0;
  for (let n = a; n < b; n++) {
    for (let k = 0; k < K; k++) {
      const e = trace.experts[(n * L + l) * K + k]!;
      if (e >= 0 && mark[e] !== stamp) { mark[e] = stamp; d++; }
    }
  }
  return d;
}

export interface PrefillReport {
  requests: number;
  prompt_tokens: number;
  chunk: number;
  /** expert loads (one expert at one layer) summed over prompts */
  chunked_loads: number;
  layered_loads: number;
  /** the same in bytes (loads × 3·H·I·weightBytes) */
  chunked_bytes: number;
  layered_bytes: number;
  /** 1 − layered / chunked */
  reduction: number;
  /** per prompt: mean of 1 − layered / chunked over prompts */
  mean_reduction: number;
}

/** Expert-weight loads of chunked prefill (chunks of C tokens) vs layered prefill, over the prompts of `reqs`. */
export function prefillLoads(trace: RoutingTrace, reqs: Request[], chunk: number, dims: ModelDims): PrefillReport {
  positiveInt(chunk, 'chunk');
  const E = trace.E ?? 1 + trace.experts.reduce((m, e) => Math.max(m, e), -1);
  const mark = new Int32Array(Math.max(E, 1));
  let stamp = 0, chunked = 0, layered = 0, tokens = 0, sumRed = 0;
  for (const r of reqs) {
    let c = 0, y = 0;
    for (let l = 0; l < trace.L; l++) {
      y += distinct(trace, l, r.start, r.start + r.prompt, mark, ++stamp);
      for (let a = 0; a < r.prompt; a += chunk) c += distinct(trace, l, r.start + a, r.start + Math.min(a + chunk, r.prompt), mark, ++stamp);
    }
    chunked += c;
    layered += y;
    tokens += r.prompt;
    sumRed += c > 0 ? 1 - y / c : 0;
  }
  const wb = expertWeightBytes(dims);
  return {
    requests: reqs.length, prompt_tokens: tokens, chunk, chunked_loads: chunked, layered_loads: layered,
    chunked_bytes: chunked * wb, layered_bytes: layered * wb,
    reduction: chunked > 0 ? 1 - layered / chunked : 0, mean_reduction: reqs.length ? sumRed / reqs.length : 0,
  };
}

export interface GoodputOptions {
  dims: ModelDims;
  hw: Hardware;
  /** requests served together (a wave) */
  concurrency: number;
  /** SLOs in milliseconds; a missing one is not checked */
  ttftMs?: number;
  tpotMs?: number;
  /** fixed seconds added to every step (attention, dense layers, launches), default 0 */
  stepOverhead?: number;
}

export interface GoodputReport {
  requests: number;
  good: number;
  duration_s: number;
  /** requests / duration */
  request_throughput: number;
  /** good requests / duration (vLLM's request_goodput) */
  goodput: number;
  ttft_ms: { mean: number; median: number; p99: number };
  tpot_ms: { mean: number; median: number; p99: number };
  slo: { ttft_ms: number | null; tpot_ms: number | null };
}

const percentile = (xs: number[], p: number): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const i = (p / 100) * (s.length - 1), lo = Math.floor(i), hi = Math.ceil(i);
  return s[lo]! + (s[hi]! - s[lo]!) * (i - lo);
};
const summary = (xs: number[]): { mean: number; median: number; p99: number } => ({
  mean: xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0, median: percentile(xs, 50), p99: percentile(xs, 99),
});

/**
 * The serving model: every request arrives at time 0 (vLLM's request rate inf). Requests are served in waves of
 * `concurrency`, in trace order. In a wave the prefills run one after another, each one step over the request's prompt
 * tokens; the first output token comes with the prefill (TTFT = its end). Then decode step j batches the j-th next
 * token of every request of the wave with more than j output tokens (routing: the trace's token at prompt + j − 1).
 * TPOT = (finish − TTFT) / (output − 1), 0 for one output token (as vLLM). A request is good when it meets every SLO.
 */
export function goodput(trace: RoutingTrace, plan: Plan, reqs: Request[], o: GoodputOptions): GoodputReport {
  checkPlan(plan, trace);
  checkDims(o.dims);
  positiveInt(o.concurrency, 'concurrency');
  for (const [k, v] of [['TTFT SLO', o.ttftMs], ['TPOT SLO', o.tpotMs], ['step overhead', o.stepOverhead]] as const) {
    if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new Error(`${k} must be a number ≥ 0, got ${v}`);
  }
  if (reqs.length === 0) throw new Error('goodput: no requests (every sequence has fewer than 2 tokens)');
  const counter = new StepCounter(topology(plan, o.hw.gpus_per_node));
  const over = o.stepOverhead ?? 0;
  const step = (tokens: ArrayLike<number>): number => stepSeconds(simulateTokens(trace, plan, counter, tokens, o.dims, o.hw)) + over;
  const ttft: number[] = [], tpot: number[] = [];
  let now = 0, good = 0;
  for (let w = 0; w < reqs.length; w += o.concurrency) {
    const wave = reqs.slice(w, w + o.concurrency);
    const first = wave.map((r) => {
      now += step(Array.from({ length: r.prompt }, (_, i) => r.start + i));
      return now;
    });
    const finish = [...first];
    const longest = Math.max(...wave.map((r) => r.output));
    for (let j = 1; j < longest; j++) {
      const live = wave.flatMap((r, i) => (r.output > j ? [i] : []));
      now += step(live.map((i) => wave[i]!.start + wave[i]!.prompt + j - 1));
      for (const i of live) finish[i] = now;
    }
    wave.forEach((r, i) => {
      const a = first[i]! * 1e3, b = r.output > 1 ? ((finish[i]! - first[i]!) * 1e3) / (r.output - 1) : 0;
      ttft.push(a);
      if (r.output > 1) tpot.push(b);
      if ((o.ttftMs === undefined || a <= o.ttftMs) && (o.tpotMs === undefined || b <= o.tpotMs)) good++;
    });
  }
  return {
    requests: reqs.length, good, duration_s: now,
    request_throughput: now > 0 ? reqs.length / now : Infinity, goodput: now > 0 ? good / now : Infinity,
    ttft_ms: summary(ttft), tpot_ms: summary(tpot), slo: { ttft_ms: o.ttftMs ?? null, tpot_ms: o.tpotMs ?? null },
  };
}
