// Inference measurements: expert-load statistics on held-out text, the all-to-all proxy (tokens whose experts
// sit in different groups), and prefill / decode tokens per second with a KV cache.
import type { MoELM } from '../models/moe-lm.js';
import { loadStats } from '../moe/route.js';
import { KVCache } from '../nn/attention.js';
import { argmax, tensor } from '../tensor/api.js';
import { noGrad, tidy } from '../tensor/engine.js';

export interface RoutingSummary {
  /** per MoE layer: routed slots per expert */
  tokensPerExpert: number[][];
  /** per MoE layer: variance of the expert load fractions */
  loadVariance: number[];
  /** per MoE layer: max / mean expert load */
  imbalance: number[];
  /** per MoE layer: share of tokens whose K experts sit in more than one group (experts e in group ⌊e / (E/G)⌋) */
  crossGroup: number[];
  tokens: number;
}

/**
 * Routes held-out tokens (disjoint windows of `seqLen`, up to `maxTokens`) and summarises expert load per MoE
 * layer. `groups` fixes the expert placement for the cross-group share: experts are placed in G contiguous groups
 * of E/G (the clustered model keeps each group's experts contiguous, so this is its real grouping).
 */
export function routingSummary(model: MoELM, ids: Int32Array, o: { seqLen: number; groups: number; maxTokens?: number; batch?: number }): RoutingSummary {
  const { experts: E, topK: K } = model.cfg;
  if (!Number.isInteger(o.groups) || o.groups < 1 || E % o.groups !== 0) throw new RangeError(`routingSummary: groups ${o.groups} must divide E = ${E}`);
  const M = E / o.groups;
  const n = Math.min(ids.length, o.maxTokens ?? ids.length);
  const windows = Math.floor(n / o.seqLen);
  if (windows < 1) throw new RangeError(`routingSummary: ${n} tokens are fewer than one window of ${o.seqLen}`);
  const batch = o.batch ?? 8;
  let counts: number[][] | null = null;
  let cross: number[] | null = null;
  for (let w = 0; w < windows; w += batch) {
    const b = Math.min(batch, windows - w);
    const stats = noGrad(() => tidy(() => model.forward(tensor(ids.subarray(w * o.seqLen, (w + b) * o.seqLen), [b, o.seqLen], 'i32'), { routing: true, aux: false }).stats));
    const moe = stats.filter((s): s is NonNullable<typeof s> => s !== null);
    counts ??= moe.map(() => new Array<number>(E).fill(0));
    cross ??= moe.map(() => 0);
    moe.forEach((s, l) => {
      s.tokensPerExpert.forEach((c, e) => (counts![l]![e]! += c));
      const r = s.routedIds!;
      for (let t = 0; t < r.length / K; t++) {
        const g = Math.floor(r[t * K]! / M);
        for (let k = 1; k < K; k++) if (Math.floor(r[t * K + k]! / M) !== g) { cross![l]!++; break; }
      }
    });
  }
  const tokens = windows * o.seqLen;
  const c = counts ?? [];
  return {
    tokensPerExpert: c, loadVariance: c.map((x) => loadStats(x).variance), imbalance: c.map((x) => loadStats(x).imbalance),
    crossGroup: (cross ?? []).map((x) => x / tokens), tokens,
  };
}

export interface SpeedResult {
  prefillTokensPerS: number;
  decodeTokensPerS: number;
}

/**
 * Prefill: forward passes over (1, prefillLen) windows, repeated for at least `seconds`. Decode: greedy generation
 * of `decodeTokens` tokens one at a time with a KV cache after a `promptLen`-token prompt (the prompt is not timed).
 */
export function inferenceSpeed(model: MoELM, ids: Int32Array, o: { prefillLen: number; promptLen: number; decodeTokens: number; seconds: number }): SpeedResult {
  const L = model.cfg.layers;
  if (o.prefillLen > ids.length || o.promptLen + o.decodeTokens > model.cfg.maxSeqLen) throw new RangeError(`inferenceSpeed: prefill ${o.prefillLen} needs that many tokens (have ${ids.length}); prompt ${o.promptLen} + decode ${o.decodeTokens} must fit maxSeqLen ${model.cfg.maxSeqLen}`);
  const run = (f: () => number): number => {
    f(); // warm-up
    let tokens = 0;
    const t0 = performance.now();
    let el = 0;
    let i = 0;
    while (el < o.seconds * 1000 || i < 2) {
      tokens += f();
      i++;
      el = performance.now() - t0;
    }
    return tokens / (el / 1000);
  };
  let off = 0;
  const prefill = run(() => {
    off = (off + 97) % Math.max(1, ids.length - o.prefillLen);
    noGrad(() => tidy(() => model.forward(tensor(ids.subarray(off, off + o.prefillLen), [1, o.prefillLen], 'i32'), { aux: false }).logits.dataSync()));
    return o.prefillLen;
  });
  // decode: only the one-token steps are timed, over as many generations as fill `seconds`
  const session = (): { ms: number; tokens: number } => {
    const cache = Array.from({ length: L }, () => new KVCache());
    let next = noGrad(() => tidy(() => argmax(model.forward(tensor(ids.subarray(0, o.promptLen), [1, o.promptLen], 'i32'), { cache, aux: false }).logits, -1).dataSync().at(-1)!));
    const t0 = performance.now();
    for (let i = 0; i < o.decodeTokens; i++) {
      next = noGrad(() => tidy(() => argmax(model.forward(tensor([next], [1, 1], 'i32'), { cache, aux: false }).logits, -1).dataSync()[0]!));
    }
    const ms = performance.now() - t0;
    for (const c of cache) c.dispose();
    return { ms, tokens: o.decodeTokens };
  };
  session(); // warm-up
  let ms = 0;
  let tokens = 0;
  for (let i = 0; ms < o.seconds * 1000 || i < 2; i++) {
    const r = session();
    ms += r.ms;
    tokens += r.tokens;
  }
  const decode = tokens / (ms / 1000);
  return { prefillTokensPerS: prefill, decodeTokensPerS: decode };
}
