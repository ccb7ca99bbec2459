// A seeded load against an OpenAI-compatible server: Poisson arrivals at a rate, streamed completions, and per request
// the time to first token, the time per output token after it, and the latency, measured at the client as vLLM's
// benchmark_serving does; goodput counts the requests that meet every SLO.
import { Rng } from '../tensor/random.js';

export interface LoadRequest {
  prompt: number[] | string;
  maxTokens: number;
}

export interface RequestResult {
  ok: boolean;
  /** seconds from sending to the first token, and per output token after it ((latency − ttft) / (tokens − 1)) */
  ttft: number;
  tpot: number;
  latency: number;
  promptTokens: number;
  tokens: number;
  error?: string;
}

/** n arrival times (seconds from the start) of a Poisson process of `rate` per second. */
export function poissonArrivals(rate: number, n: number, seed: number): number[] {
  if (!(rate > 0)) throw new RangeError(`rate must be positive, got ${rate}`);
  const rng = new Rng(seed);
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += -Math.log(1 - rng.uniform()) / rate;
    out.push(t);
  }
  return out;
}

/** The p-th percentile (0..100) of `xs` by linear interpolation, as numpy's default; NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const r = (p / 100) * (s.length - 1);
  const lo = Math.floor(r), hi = Math.ceil(r);
  return s[lo]! + (s[hi]! - s[lo]!) * (r - lo);
}

/** One streamed completion, timed at the client. */
export async function streamCompletion(url: string, model: string, r: LoadRequest): Promise<RequestResult> {
  const t0 = performance.now();
  let first = 0, tokens = 0, promptTokens = 0;
  try {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: r.prompt, max_tokens: r.maxTokens, temperature: 0, stream: true }),
    });
    if (!res.ok || !res.body) return { ok: false, ttft: NaN, tpot: NaN, latency: NaN, promptTokens: 0, tokens: 0, error: `HTTP ${res.status}` };
    const dec = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 2);
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const j = JSON.parse(line.slice(6)) as { choices?: { text?: string }[]; usage?: { prompt_tokens: number; completion_tokens: number }; error?: { message: string } };
        if (j.error) return { ok: false, ttft: NaN, tpot: NaN, latency: NaN, promptTokens: 0, tokens: 0, error: j.error.message };
        if (first === 0 && j.choices?.[0]?.text) first = performance.now();
        if (j.usage) { tokens = j.usage.completion_tokens; promptTokens = j.usage.prompt_tokens; }
      }
    }
  } catch (e) {
    return { ok: false, ttft: NaN, tpot: NaN, latency: NaN, promptTokens: 0, tokens: 0, error: e instanceof Error ? e.message : String(e) };
  }
  const end = performance.now();
  if (first === 0) first = end;
  const ttft = (first - t0) / 1000, latency = (end - t0) / 1000;
  return { ok: true, ttft, tpot: tokens > 1 ? (latency - ttft) / (tokens - 1) : 0, latency, promptTokens, tokens };
}

export interface LoadReport {
  rate: number;
  requests: number;
  completed: number;
  seconds: number;
  /** generated tokens per second over the run */
  throughput: number;
  ttft: { p50: number; p99: number };
  tpot: { p50: number; p99: number };
  /** requests per second meeting every SLO (vLLM's goodput) */
  goodput: number;
  results: RequestResult[];
}

/** Sends the requests at Poisson arrival times of `rate` per second and waits for all. */
export async function runLoad(url: string, model: string, reqs: readonly LoadRequest[], rate: number, seed: number, slo: { ttft?: number; tpot?: number } = {}): Promise<LoadReport> {
  const at = poissonArrivals(rate, reqs.length, seed);
  const t0 = performance.now();
  const results = await Promise.all(reqs.map(async (r, i) => {
    const wait = at[i]! * 1000 - (performance.now() - t0);
    if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    return streamCompletion(url, model, r);
  }));
  const seconds = (performance.now() - t0) / 1000;
  const ok = results.filter((r) => r.ok);
  const good = ok.filter((r) => (slo.ttft === undefined || r.ttft <= slo.ttft) && (slo.tpot === undefined || r.tpot <= slo.tpot));
  return {
    rate, requests: reqs.length, completed: ok.length, seconds,
    throughput: ok.reduce((a, r) => a + r.tokens, 0) / seconds,
    ttft: { p50: percentile(ok.map((r) => r.ttft), 50), p99: percentile(ok.map((r) => r.ttft), 99) },
    tpot: { p50: percentile(ok.map((r) => r.tpot), 50), p99: percentile(ok.map((r) => r.tpot), 99) },
    goodput: good.length / seconds,
    results,
  };
}
