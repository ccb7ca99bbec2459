// Inference measurements: expert-load statistics on held-out text, the all-to-all proxy (tokens whose experts
// sit in different groups), and prefill / decode tokens per second with a KV cache.
import type { MoELM } from '../models/moe-lm.js';
import { RoutingRecorder } from '../moe/pipeline.js';
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
    const rec = new RoutingRecorder();
    const stats = noGrad(() => tidy(() => model.forward(tensor(ids.subarray(w * o.seqLen, (w + b) * o.seqLen), [b, o.seqLen], 'i32'), { observer: rec, aux: false }).stats));
    const moe = stats.filter((s): s is NonNullable<typeof s> => s !== null);
    const routed = rec.events();
    counts ??= moe.map(() => new Array<number>(E).fill(0));
    cross ??= moe.map(() => 0);
    moe.forEach((s, l) => {
      s.tokensPerExpert.forEach((c, e) => (counts![l]![e]! += c));
      const r = routed[l]!.experts;
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

/** Rounds at least, however short `seconds` is. */
const MIN_ROUNDS = 5;

function median(a: readonly number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/** A model to time, with what puts it in the form to time (called before each of its timings). */
export interface SpeedSubject {
  model: MoELM;
  activate?: () => void;
}

export interface SpeedOptions {
  prefillLen: number;
  promptLen: number;
  decodeTokens: number;
  /** timed seconds per model, for prefill and for decode each */
  seconds: number;
}

/**
 * Prefill: forward passes over (1, prefillLen) windows. Decode: greedy generation of `decodeTokens` tokens one at a
 * time with a KV cache after a `promptLen`-token prompt (the prompt is not timed). Several models are timed in
 * rounds, each round one prefill pass and one decode session per model, until every model has `seconds` of each
 * (and at least 5 rounds): a shared machine's slow and fast moments then fall on all of them alike. Each rate is
 * the median over rounds.
 * A subject may be one model in several forms: `activate` runs before each of its timings (e.g. to switch a
 * clustered model to its FP16/INT4 inference weights).
 */
export function inferenceSpeeds(subjects: readonly (MoELM | SpeedSubject)[], ids: Int32Array, o: SpeedOptions): SpeedResult[] {
  const subs: SpeedSubject[] = subjects.map((s) => ('cfg' in s ? { model: s } : s)); // a MoELM has a cfg, a subject does not
  const models = subs.map((s) => s.model);
  for (const m of models) {
    if (o.prefillLen > ids.length || o.promptLen + o.decodeTokens > m.cfg.maxSeqLen) throw new RangeError(`inferenceSpeed: prefill ${o.prefillLen} needs that many tokens (have ${ids.length}); prompt ${o.promptLen} + decode ${o.decodeTokens} must fit maxSeqLen ${m.cfg.maxSeqLen}`);
  }
  let off = 0;
  const prefill = (m: MoELM): number => {
    off = (off + 97) % Math.max(1, ids.length - o.prefillLen);
    const t0 = performance.now();
    noGrad(() => tidy(() => m.forward(tensor(ids.subarray(off, off + o.prefillLen), [1, o.prefillLen], 'i32'), { aux: false }).logits.dataSync()));
    return performance.now() - t0;
  };
  // decode: only the one-token steps are timed
  const decode = (m: MoELM): number => {
    const cache = Array.from({ length: m.cfg.layers }, () => new KVCache());
    let next = noGrad(() => tidy(() => argmax(m.forward(tensor(ids.subarray(0, o.promptLen), [1, o.promptLen], 'i32'), { cache, aux: false }).logits, -1).dataSync().at(-1)!));
    const t0 = performance.now();
    for (let i = 0; i < o.decodeTokens; i++) {
      next = noGrad(() => tidy(() => argmax(m.forward(tensor([next], [1, 1], 'i32'), { cache, aux: false }).logits, -1).dataSync()[0]!));
    }
    const ms = performance.now() - t0;
    for (const c of cache) c.dispose();
    return ms;
  };
  subs.forEach((s) => {
    s.activate?.();
    prefill(s.model); // warm-up
    decode(s.model);
  });
  // per subject and round: the prefill and decode times; the rate reported is the median over rounds, so a round
  // that a busy moment of the machine slowed does not move it
  const pre = models.map((): number[] => []);
  const dec = models.map((): number[] => []);
  const total = (a: number[]): number => a.reduce((x, y) => x + y, 0);
  const done = (): boolean => pre.every((p, i) => p.length >= MIN_ROUNDS && total(p) >= o.seconds * 1000 && total(dec[i]!) >= o.seconds * 1000);
  while (!done()) {
    subs.forEach((s, i) => {
      s.activate?.();
      pre[i]!.push(prefill(s.model));
      dec[i]!.push(decode(s.model));
    });
  }
  return models.map((_, i) => ({
    prefillTokensPerS: o.prefillLen / (median(pre[i]!) / 1000),
    decodeTokensPerS: o.decodeTokens / (median(dec[i]!) / 1000),
  }));
}

/** `inferenceSpeeds` of one model. */
export function inferenceSpeed(model: MoELM, ids: Int32Array, o: SpeedOptions): SpeedResult {
  return inferenceSpeeds([model], ids, o)[0]!;
}
