// Perplexity: the sliding-window protocol for fixed-length models (Hugging Face) and an add-one unigram baseline.
import type { MoELM } from '../models/moe-lm.js';
import { crossEntropyRows, tensor } from '../tensor/api.js';
import { noGrad, tidy } from '../tensor/engine.js';

export interface PerplexityOptions {
  /** tokens per window (context + scored); at least 2 and at most the model's maxSeqLen */
  window: number;
  /** how far each window advances; 1 ≤ stride ≤ window. stride < window gives later tokens more context */
  stride: number;
  /** windows per forward pass; default 1 */
  batch?: number;
}

export interface PerplexityResult {
  /** exp(nll) */
  ppl: number;
  /** mean negative log-likelihood (nats) per scored token */
  nll: number;
  /** number of scored tokens */
  tokens: number;
}

/** One window: ids[begin, end) as input; targets (end − begin) with -100 where a token is not scored. */
interface Window {
  begin: number;
  targets: Int32Array;
}

/**
 * The windows of the protocol: begin = 0, stride, 2·stride, …; each scores the next-token targets ids[j] with
 * j in [max(prevEnd, begin + 1), end), i.e. the tokens the previous window did not score, and stops at the
 * window that reaches the end. With stride < window every token after the first is scored once (N − 1 tokens),
 * with up to window − 1 tokens of context; with stride = window the windows are disjoint chunks and, as in
 * the HF protocol, the first token of each chunk is not scored (N − #windows tokens).
 */
export function slidingWindows(n: number, window: number, stride: number): Window[] {
  const out: Window[] = [];
  let prevEnd = 0;
  for (let begin = 0; ; begin += stride) {
    const end = Math.min(begin + window, n);
    const targets = new Int32Array(end - begin).fill(-100);
    for (let j = Math.max(prevEnd, begin + 1); j < end; j++) targets[j - 1 - begin] = j; // holds the index; ids filled by the caller
    out.push({ begin, targets });
    prevEnd = end;
    if (end >= n) return out;
  }
}

/** Sliding-window perplexity of `model` on one token sequence; runs under noGrad and tidy, ignores the aux loss. */
export function perplexity(model: MoELM, ids: Int32Array | readonly number[], opts: PerplexityOptions): PerplexityResult {
  const { window, stride } = opts;
  const batch = opts.batch ?? 1;
  const N = ids.length;
  const V = model.cfg.vocabSize;
  if (!(Number.isInteger(window) && window >= 2)) throw new RangeError(`perplexity: window must be an integer >= 2, got ${window}`);
  if (window > model.cfg.maxSeqLen && N > model.cfg.maxSeqLen) throw new RangeError(`perplexity: window ${window} exceeds the model's maxSeqLen ${model.cfg.maxSeqLen}`);
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= window)) throw new RangeError(`perplexity: stride must be an integer in [1, window = ${window}], got ${stride}`);
  if (!(Number.isInteger(batch) && batch >= 1)) throw new RangeError(`perplexity: batch must be a positive integer, got ${batch}`);
  if (N < 2) throw new RangeError(`perplexity: need at least 2 tokens to score one, got ${N}`);
  for (let i = 0; i < N; i++) {
    const t = ids[i]!;
    if (!(Number.isInteger(t) && t >= 0 && t < V)) throw new RangeError(`perplexity: ids[${i}] = ${t} is outside the vocabulary [0, ${V})`);
  }
  const wins = slidingWindows(N, window, stride);
  let nllSum = 0;
  let count = 0;
  for (let w = 0; w < wins.length; ) {
    // a group of consecutive windows of one length (only the last window can be shorter)
    const L = wins[w]!.targets.length;
    let g = 1;
    while (g < batch && w + g < wins.length && wins[w + g]!.targets.length === L) g++;
    const inp = new Int32Array(g * L); // (g, L)
    const tgt = new Int32Array(g * L); // (g, L)
    for (let r = 0; r < g; r++) {
      const { begin, targets } = wins[w + r]!;
      for (let p = 0; p < L; p++) {
        inp[r * L + p] = ids[begin + p]!;
        const j = targets[p]!;
        tgt[r * L + p] = j < 0 ? -100 : ids[j]!;
        if (j >= 0) count++;
      }
    }
    const rows = noGrad(() =>
      tidy(() => {
        const logits = model.forward(tensor(inp, [g, L], 'i32'), { aux: false }).logits; // (g·L, V)
        return crossEntropyRows(logits, tensor(tgt, [g * L], 'i32'), -100).toArray(); // (g·L) 0 where ignored
      }),
    );
    for (const v of rows) nllSum += v;
    w += g;
  }
  const nll = nllSum / count;
  return { ppl: Math.exp(nll), nll, tokens: count };
}

/**
 * Add-one (Laplace) smoothed unigram perplexity: p(w) = (count_train(w) + 1) / (N_train + V), scored on every
 * token of evalIds (a unigram needs no context). The no-context baseline a language model must beat.
 */
export function unigramPerplexity(trainIds: Int32Array | readonly number[], evalIds: Int32Array | readonly number[], vocab: number): PerplexityResult {
  if (!(Number.isInteger(vocab) && vocab >= 1)) throw new RangeError(`unigramPerplexity: vocab must be a positive integer, got ${vocab}`);
  if (evalIds.length === 0) throw new RangeError('unigramPerplexity: evalIds is empty');
  const counts = new Float64Array(vocab);
  const check = (name: string, i: number, t: number): void => {
    if (!(Number.isInteger(t) && t >= 0 && t < vocab)) throw new RangeError(`unigramPerplexity: ${name}[${i}] = ${t} is outside the vocabulary [0, ${vocab})`);
  };
  for (let i = 0; i < trainIds.length; i++) {
    check('trainIds', i, trainIds[i]!);
    counts[trainIds[i]!]!++;
  }
  const denom = trainIds.length + vocab;
  let nllSum = 0;
  for (let i = 0; i < evalIds.length; i++) {
    check('evalIds', i, evalIds[i]!);
    nllSum -= Math.log((counts[evalIds[i]!]! + 1) / denom);
  }
  const nll = nllSum / evalIds.length;
  return { ppl: Math.exp(nll), nll, tokens: evalIds.length };
}
