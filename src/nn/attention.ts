// Multi-head attention: q/k/v/o projections, RoPE, GQA, optional q/k norms and bias, sliding window, KV cache.
import { arange, attention, concat, maximum, mul, neg, raggedAttention, reshape, rope, sigmoid, sub, tensor } from '../tensor/api.js';
import { keep } from '../tensor/engine.js';
import type { Rng } from '../tensor/random.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVPool, KVShape, PoolSegment } from './kv-pool.js';
import { Linear, RMSNorm } from './layers.js';
import { Module, initNormal } from './module.js';
import { sinkAttention } from './sinks.js';
import type { RopeFrequencies } from './yarn.js';

export interface AttentionConfig {
  /** H: model width */
  hidden: number;
  /** Hq: query heads */
  heads: number;
  /** Hkv: key/value heads (GQA when < heads); default heads */
  kvHeads?: number;
  /** D: head dim; default hidden / heads */
  headDim?: number;
  /** RoPE base; default 10000 (Llama; Qwen3 uses 1e6) */
  ropeTheta?: number;
  /** 'head': RMSNorm over D per head (Qwen3); 'full': over Hq·D / Hkv·D before the head split (OLMoE); default 'none' */
  qkNorm?: 'none' | 'head' | 'full';
  /** bias on q/k/v projections (Qwen2); default false */
  qkvBias?: boolean;
  /** bias on the output projection (Qwen3-MoE / OLMoE attention_bias); default false */
  oBias?: boolean;
  /** sliding window in tokens; 0 = full causal (default) */
  window?: number;
  /** RMSNorm eps of the q/k norms; default 1e-6 */
  eps?: number;
  /** clamp q, k, v to [−clip, clip] after the projections (and q/k norms) (OLMoE clip_qkv); default none */
  clip?: number;
  /** R: the first R dims of each head rotate, the rest pass through (GLM-4.5 partial_rotary_factor); default D */
  rotaryDim?: number;
  /** RoPE pairs (2i, 2i+1) instead of rotate-half's (i, i + R/2); default false */
  ropeInterleaved?: boolean;
  /** scaled RoPE (e.g. `yarnRope`): inverse frequencies (R/2) replacing ropeTheta's, and the factor on cos/sin; default plain RoPE */
  rope?: RopeFrequencies;
  /** a learnable logit per query head in every softmax denominator (gpt-oss `sinks`, `sinkAttention`); default false */
  sinks?: boolean;
}

/** x clamped to [−c, c] (gradient 1 inside, 0 outside). */
function clampAbs(x: Tensor, c: number): Tensor {
  return neg(maximum(neg(maximum(x, -c)), -c));
}

/** Keys and values of the tokens seen so far, per layer: k/v (B, S, Hkv, D), grown by `append`. */
export class KVCache {
  k: Tensor | null = null; // (B, S, Hkv, D)
  v: Tensor | null = null; // (B, S, Hkv, D)

  get length(): number {
    return this.k?.shape[1] ?? 0;
  }

  /** Appends k/v (B, T, Hkv, D) and returns the whole cache (B, S + T, Hkv, D); the cache keeps its tensors. */
  append(k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    if (this.k && this.v && (this.k.shape[0] !== k.shape[0] || this.k.shape[2] !== k.shape[2] || this.k.shape[3] !== k.shape[3])) {
      throw new ShapeError(`KVCache: new keys ${fmtInfo(k.shape, k.dtype)} do not fit the cached ${fmtInfo(this.k.shape, this.k.dtype)}`);
    }
    const nk = keep(this.k ? concat([this.k, k], 1) : concat([k], 1)); // (B, S + T, Hkv, D)
    const nv = keep(this.v ? concat([this.v, v], 1) : concat([v], 1)); // (B, S + T, Hkv, D)
    this.k?.dispose();
    this.v?.dispose();
    this.k = nk;
    this.v = nv;
    return { k: nk, v: nv };
  }

  dispose(): void {
    this.k?.dispose();
    this.v?.dispose();
    this.k = this.v = null;
  }
}

export interface AttentionForwardOptions {
  /** append this step's k/v and attend over everything cached */
  cache?: KVCache;
  /** position of the first token of x; default cache.length (or 0) */
  startPos?: number;
}

/** Causal self-attention over x (B, T, H) or (T, H). HF names: q_proj, k_proj, v_proj, o_proj, q_norm, k_norm. */
export class Attention extends Module {
  readonly H: number;
  readonly Hq: number;
  readonly Hkv: number;
  readonly D: number;
  readonly window: number;
  readonly clip: number;
  /** R: rotated dims of each head */
  readonly rotaryDim: number;
  readonly ropeInterleaved: boolean;
  /** multiplies cos/sin (YaRN's attention factor); 1 for plain RoPE */
  readonly ropeFactor: number;
  /** a sink logit per query head (gpt-oss) */
  readonly hasSinks: boolean;
  readonly qkNorm: 'none' | 'head' | 'full';
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;
  readonly qNorm: RMSNorm | null;
  readonly kNorm: RMSNorm | null;

  constructor(cfg: AttentionConfig, rng: Rng) {
    super();
    this.H = cfg.hidden;
    this.Hq = cfg.heads;
    this.Hkv = cfg.kvHeads ?? cfg.heads;
    this.D = cfg.headDim ?? cfg.hidden / cfg.heads;
    this.window = cfg.window ?? 0;
    this.clip = cfg.clip ?? 0;
    if (!(this.clip >= 0)) throw new Error(`Attention: clip ${cfg.clip} must be positive`);
    this.qkNorm = cfg.qkNorm ?? 'none';
    this.rotaryDim = cfg.rotaryDim ?? this.D;
    this.ropeInterleaved = cfg.ropeInterleaved ?? false;
    if (!Number.isInteger(this.D)) throw new Error(`Attention: head dim ${this.D} (hidden ${this.H} / heads ${this.Hq}) must be an integer`);
    if (!Number.isInteger(this.rotaryDim) || this.rotaryDim % 2 !== 0 || this.rotaryDim < 2 || this.rotaryDim > this.D) throw new Error(`Attention: rotary dim ${this.rotaryDim} must be an even integer in [2, head dim ${this.D}]`);
    if (this.Hq % this.Hkv !== 0) throw new Error(`Attention: heads ${this.Hq} must be a multiple of kvHeads ${this.Hkv}`);
    const bias = cfg.qkvBias ?? false;
    this.qProj = this.addModule('q_proj', new Linear(this.H, this.Hq * this.D, rng, { bias })); // W (Hq·D, H)
    this.kProj = this.addModule('k_proj', new Linear(this.H, this.Hkv * this.D, rng, { bias })); // W (Hkv·D, H)
    this.vProj = this.addModule('v_proj', new Linear(this.H, this.Hkv * this.D, rng, { bias })); // W (Hkv·D, H)
    this.oProj = this.addModule('o_proj', new Linear(this.Hq * this.D, this.H, rng, { bias: cfg.oBias ?? false })); // W (H, Hq·D)
    const eps = cfg.eps ?? 1e-6;
    const [qn, kn] = this.qkNorm === 'head' ? [this.D, this.D] : this.qkNorm === 'full' ? [this.Hq * this.D, this.Hkv * this.D] : [0, 0];
    this.qNorm = qn ? this.addModule('q_norm', new RMSNorm(qn, eps)) : null;
    this.kNorm = kn ? this.addModule('k_norm', new RMSNorm(kn, eps)) : null;
    const theta = cfg.ropeTheta ?? 10000;
    const R = this.rotaryDim;
    if (cfg.rope && cfg.rope.invFreq.length !== R / 2) throw new Error(`Attention: rope has ${cfg.rope.invFreq.length} inverse frequencies, rotary dim ${R} needs ${R / 2}`);
    this.addBuffer('inv_freq', cfg.rope ? tensor(Float32Array.from(cfg.rope.invFreq)) : tensor(Array.from({ length: R / 2 }, (_, i) => theta ** (-(2 * i) / R)))); // (R/2)
    this.ropeFactor = cfg.rope?.attentionFactor ?? 1;
    this.hasSinks = cfg.sinks ?? false;
    if (this.hasSinks) this.addParameter('sinks', initNormal([this.Hq], rng, 0.02)); // (Hq)
  }

  /** The sink logits (Hq), or null without sinks. */
  get sinks(): Tensor | null {
    return this.hasSinks ? this.param('sinks') : null;
  }

  /** x (B, T, H) or (T, H) -> same shape */
  forward(x: Tensor, opts: AttentionForwardOptions = {}): Tensor {
    const flat = x.rank === 2;
    if ((x.rank !== 2 && x.rank !== 3) || x.shape.at(-1) !== this.H) throw new ShapeError(`Attention: input ${fmtInfo(x.shape, x.dtype)} must be (B, T, ${this.H}) or (T, ${this.H})`);
    const [B, T] = flat ? [1, x.shape[0]!] : [x.shape[0]!, x.shape[1]!];
    const start = opts.startPos ?? opts.cache?.length ?? 0;
    if (opts.cache && start !== opts.cache.length) throw new Error(`Attention: startPos ${start} must equal the cache length ${opts.cache.length}`);
    const { q, k, v } = this.project(reshape(x, [B, T, this.H]));
    const o = this.attend(q, k, v, start, opts.cache); // (B, T, Hq, D)
    const y = this.oProj.forward(reshape(o, [B, T, this.Hq * this.D])); // (B, T, H)
    return flat ? reshape(y, [T, this.H]) : y;
  }

  /** What the layer caches per position (for a KVPool). */
  get kvShape(): KVShape {
    return { heads: this.Hkv, dk: this.D, dv: this.D };
  }

  /**
   * Rows of several sequences (continuous batching): x (1, N, H) holds the segments' rows back to back, each sequence
   * attending over its slot of the pool from its own position. Projections, RoPE, the KV write and attention each run
   * once over all rows (RaggedAttention), so a step costs the same number of ops for 1 or 64 sequences.
   */
  forwardRagged(x: Tensor, segments: readonly PoolSegment[], pool: KVPool, layer: number): Tensor {
    const N = x.shape[1]!;
    const p = this.project(x); // (1, N, Hq|Hkv, D)
    const pos = raggedPositions(segments, pool, layer, N); // (N) each row's position in its own sequence
    const { q, k, scale } = this.rotate(p.q, p.k, pos);
    const seqs = pool.append(layer, segments, k, p.v); // (B, 4)
    const { k: kp, v: vp } = pool.tensors(layer);
    const r = raggedAttention(reshape(q, [N, this.Hq, this.D]), kp, vp, seqs, { window: this.window, scale }); // (N, Hq, D), (N, Hq)
    const sinks = this.sinks; // (Hq)
    const o = sinks ? mul(r.o, reshape(sigmoid(sub(r.lse, sinks)), [N, this.Hq, 1])) : r.o; // (N, Hq, D)
    return this.oProj.forward(reshape(o, [1, N, this.Hq * this.D])); // (1, N, H)
  }

  /** q (B, T, Hq, D), k and v (B, T, Hkv, D) from x (B, T, H): projections, q/k norms and clipping, before RoPE. */
  private project(x3: Tensor): { q: Tensor; k: Tensor; v: Tensor } {
    const [B, T] = [x3.shape[0]!, x3.shape[1]!];
    let q = this.qProj.forward(x3); // (B, T, Hq·D)
    let k = this.kProj.forward(x3); // (B, T, Hkv·D)
    let vf = this.vProj.forward(x3); // (B, T, Hkv·D)
    if (this.qkNorm === 'full') {
      q = this.qNorm!.forward(q);
      k = this.kNorm!.forward(k);
    }
    if (this.clip > 0) {
      q = clampAbs(q, this.clip);
      k = clampAbs(k, this.clip);
      vf = clampAbs(vf, this.clip);
    }
    const v = reshape(vf, [B, T, this.Hkv, this.D]); // (B, T, Hkv, D)
    q = reshape(q, [B, T, this.Hq, this.D]); // (B, T, Hq, D)
    k = reshape(k, [B, T, this.Hkv, this.D]); // (B, T, Hkv, D)
    if (this.qkNorm === 'head') {
      q = this.qNorm!.forward(q);
      k = this.kNorm!.forward(k);
    }
    return { q, k, v };
  }

  /** RoPE from position `start`, the cache, and attention: o (B, T, Hq, D). */
  private attend(q: Tensor, k: Tensor, v: Tensor, start: number, cache?: KVCache): Tensor {
    const r = this.rotate(q, k, arange(start, start + q.shape[1]!)); // (T) i32 positions
    return this.core(r.q, r.k, v, r.scale, cache);
  }

  /** RoPE at positions `pos` (T) along dim 1 of q and k, and YaRN's attention factor; the score scale. */
  private rotate(q: Tensor, k: Tensor, pos: Tensor): { q: Tensor; k: Tensor; scale: number } {
    const invFreq = this.buffer('inv_freq'); // (R/2): dims [R, D) of each head pass through
    q = rope(q, pos, invFreq, this.ropeInterleaved);
    k = rope(k, pos, invFreq, this.ropeInterleaved);
    let scale = 1 / Math.sqrt(this.D);
    const R = this.rotaryDim;
    if (this.ropeFactor !== 1) {
      // cos/sin times a: the rotated dims of q and k times a (all of them: the scores times a²)
      if (R === this.D) scale *= this.ropeFactor ** 2;
      else {
        const f = tensor(Float32Array.from({ length: this.D }, (_, d) => (d < R ? this.ropeFactor : 1))); // (D)
        q = mul(q, f);
        k = mul(k, f);
      }
    }
    return { q, k, scale };
  }

  /** Appends k/v to the cache and attends: o (B, T, Hq, D). */
  private core(q: Tensor, k: Tensor, v: Tensor, scale: number, cache?: KVCache): Tensor {
    const kv = cache ? cache.append(k, v) : { k, v }; // (B, S, Hkv, D)
    const sinks = this.sinks; // (Hq)
    const attnOpts = { causal: true, window: this.window, scale };
    return sinks ? sinkAttention(q, kv.k, kv.v, sinks, attnOpts) : attention(q, kv.k, kv.v, attnOpts); // (B, T, Hq, D)
  }
}

/** Each row's position in its own sequence, (N) i32: segment rows follow the positions its slot already holds. */
export function raggedPositions(segments: readonly PoolSegment[], pool: KVPool, layer: number, N: number): Tensor {
  const pos = new Int32Array(N);
  let at = 0;
  for (const s of segments) for (let i = 0; i < s.rows; i++) pos[at++] = pool.length(layer, s.slot) + i;
  if (at !== N) throw new ShapeError(`forwardRagged: segments cover ${at} rows of ${N}`);
  return tensor(pos, [N], 'i32');
}
