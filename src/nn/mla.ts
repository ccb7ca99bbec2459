// Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): low-rank query, joint key/value compression, a RoPE key shared by all heads.
import { arange, attention, concat, mul, ones, raggedAttention, reshape, rope, slice, tensor } from '../tensor/api.js';
import type { Rng } from '../tensor/random.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { raggedPositions, type AttentionForwardOptions } from './attention.js';
import type { KVPool, KVShape, PoolSegment } from './kv-pool.js';
import type { RopeFrequencies } from './yarn.js';
import { Linear, RMSNorm } from './layers.js';
import { Module } from './module.js';

/** RMSNorm eps of q_a_layernorm and kv_a_layernorm: 1e-6 whatever rms_norm_eps is (transformers DeepseekV3RMSNorm
 *  default, DeepSeek-V3 inference/model.py RMSNorm default). */
export const MLA_LORA_NORM_EPS = 1e-6;

export interface MlaConfig {
  /** H: model width */
  hidden: number;
  /** Hq: heads (each has its own key and value: no grouping) */
  heads: number;
  /** D: q/k head dim = nope part (D − R) + RoPE part (R) (qk_head_dim) */
  headDim: number;
  /** R: the RoPE part at the end of each q/k head (qk_rope_head_dim); its key is one per token, shared by all heads */
  ropeDim: number;
  /** Dv: value head dim (v_head_dim); default D */
  vHeadDim?: number;
  /** C: rank of the joint key/value compression (kv_lora_rank) */
  kvLoraRank: number;
  /** rank of the query compression (q_lora_rank); default none = one q_proj (H -> Hq·D) */
  qLoraRank?: number;
  /** RoPE base; default 10000 */
  ropeTheta?: number;
  /** scaled RoPE (e.g. `yarnRope`): inverse frequencies (R/2) replacing ropeTheta's, and the factor on cos/sin; default plain RoPE */
  rope?: RopeFrequencies;
  /** RoPE pairs (2i, 2i+1) (rope_interleave, DeepSeek-V3's default) instead of rotate-half's (i, i + R/2); default false */
  ropeInterleaved?: boolean;
  /** bias on q_a_proj and kv_a_proj_with_mqa (transformers: attention_bias); default false */
  qkvBias?: boolean;
  /** bias on o_proj (transformers: attention_bias); default false */
  oBias?: boolean;
  /** softmax scale of q·k; default D^−0.5 */
  scale?: number;
  /** sliding window in tokens; 0 = full causal (default) */
  window?: number;
}

/**
 * x (B, T, H) or (T, H). HF names: q_proj or q_a_proj + q_a_layernorm + q_b_proj, kv_a_proj_with_mqa, kv_a_layernorm,
 * kv_b_proj, o_proj. Keys and values are expanded per head before attention, and cached expanded: k (B, S, Hq, D),
 * v (B, S, Hq, Dv).
 */
export class MLAttention extends Module {
  readonly H: number;
  readonly Hq: number;
  readonly D: number;
  readonly R: number;
  readonly Dv: number;
  readonly C: number;
  readonly window: number;
  readonly scale: number;
  readonly ropeInterleaved: boolean;
  /** multiplies cos/sin (YaRN's attention factor), i.e. the RoPE parts of q and k; 1 for plain RoPE */
  readonly ropeFactor: number;
  readonly qProj: Linear | null;
  readonly qAProj: Linear | null;
  readonly qALayernorm: RMSNorm | null;
  readonly qBProj: Linear | null;
  readonly kvAProj: Linear;
  readonly kvALayernorm: RMSNorm;
  readonly kvBProj: Linear;
  readonly oProj: Linear;

  constructor(cfg: MlaConfig, rng: Rng) {
    super();
    this.H = cfg.hidden;
    this.Hq = cfg.heads;
    this.D = cfg.headDim;
    this.R = cfg.ropeDim;
    this.Dv = cfg.vHeadDim ?? cfg.headDim;
    this.C = cfg.kvLoraRank;
    this.window = cfg.window ?? 0;
    this.scale = cfg.scale ?? this.D ** -0.5;
    this.ropeInterleaved = cfg.ropeInterleaved ?? false;
    for (const [n, v] of [['hidden', this.H], ['heads', this.Hq], ['headDim', this.D], ['ropeDim', this.R], ['vHeadDim', this.Dv], ['kvLoraRank', this.C]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`MLAttention: ${n} = ${v} must be a positive integer`);
    }
    if (this.R % 2 !== 0 || this.R > this.D) throw new Error(`MLAttention: ropeDim ${this.R} must be even and at most headDim ${this.D}`);
    const bias = cfg.qkvBias ?? false;
    const qr = cfg.qLoraRank;
    if (qr === undefined) {
      this.qProj = this.addModule('q_proj', new Linear(this.H, this.Hq * this.D, rng)); // W (Hq·D, H)
      this.qAProj = this.qALayernorm = this.qBProj = null;
    } else {
      this.qProj = null;
      this.qAProj = this.addModule('q_a_proj', new Linear(this.H, qr, rng, { bias })); // W (Cq, H)
      this.qALayernorm = this.addModule('q_a_layernorm', new RMSNorm(qr, MLA_LORA_NORM_EPS));
      this.qBProj = this.addModule('q_b_proj', new Linear(qr, this.Hq * this.D, rng)); // W (Hq·D, Cq)
    }
    this.kvAProj = this.addModule('kv_a_proj_with_mqa', new Linear(this.H, this.C + this.R, rng, { bias })); // W (C + R, H)
    this.kvALayernorm = this.addModule('kv_a_layernorm', new RMSNorm(this.C, MLA_LORA_NORM_EPS));
    this.kvBProj = this.addModule('kv_b_proj', new Linear(this.C, this.Hq * (this.D - this.R + this.Dv), rng)); // W (Hq·(D − R + Dv), C)
    this.oProj = this.addModule('o_proj', new Linear(this.Hq * this.Dv, this.H, rng, { bias: cfg.oBias ?? false })); // W (H, Hq·Dv)
    const theta = cfg.ropeTheta ?? 10000;
    const inv = cfg.rope?.invFreq ?? Float32Array.from({ length: this.R / 2 }, (_, i) => theta ** (-(2 * i) / this.R));
    if (inv.length !== this.R / 2) throw new Error(`MLAttention: ${inv.length} inverse frequencies for ropeDim ${this.R} (expected ${this.R / 2})`);
    this.addBuffer('inv_freq', tensor(inv)); // (R/2)
    this.ropeFactor = cfg.rope?.attentionFactor ?? 1;
  }

  /** What the layer caches per position (for a KVPool): keys and values expanded per head. */
  get kvShape(): KVShape {
    return { heads: this.Hq, dk: this.D, dv: this.Dv };
  }

  /** x (B, T, H) or (T, H) -> same shape */
  forward(x: Tensor, opts: AttentionForwardOptions = {}): Tensor {
    const flat = x.rank === 2;
    if ((x.rank !== 2 && x.rank !== 3) || x.shape.at(-1) !== this.H) throw new ShapeError(`MLAttention: input ${fmtInfo(x.shape, x.dtype)} must be (B, T, ${this.H}) or (T, ${this.H})`);
    const [B, T] = flat ? [1, x.shape[0]!] : [x.shape[0]!, x.shape[1]!];
    const start = opts.startPos ?? opts.cache?.length ?? 0;
    if (opts.cache && start !== opts.cache.length) throw new Error(`MLAttention: startPos ${start} must equal the cache length ${opts.cache.length}`);
    const { q, k, v } = this.qkv(reshape(x, [B, T, this.H]), arange(start, start + T));
    const all = opts.cache ? opts.cache.append(k, v) : { k, v }; // (B, S, Hq, D), (B, S, Hq, Dv)
    const o = attention(q, all.k, all.v, { causal: true, window: this.window, scale: this.scale }); // (B, T, Hq, Dv)
    const y = this.oProj.forward(reshape(o, [B, T, this.Hq * this.Dv])); // (B, T, H)
    return flat ? reshape(y, [T, this.H]) : y;
  }

  /** Rows of several sequences over their slots of a KV pool, as Attention.forwardRagged: x (1, N, H) -> (1, N, H). */
  forwardRagged(x: Tensor, segments: readonly PoolSegment[], pool: KVPool, layer: number): Tensor {
    const N = x.shape[1]!;
    const { q, k, v } = this.qkv(x, raggedPositions(segments, pool, layer, N));
    const seqs = pool.append(layer, segments, k, v); // (B, 4)
    const { k: kp, v: vp } = pool.tensors(layer);
    const { o } = raggedAttention(reshape(q, [N, this.Hq, this.D]), kp, vp, seqs, { window: this.window, scale: this.scale }); // (N, Hq, Dv)
    return this.oProj.forward(reshape(o, [1, N, this.Hq * this.Dv])); // (1, N, H)
  }

  /** q and k (B, T, Hq, D) with RoPE at positions pos (T), v (B, T, Hq, Dv), from x (B, T, H). */
  private qkv(x3: Tensor, pos: Tensor): { q: Tensor; k: Tensor; v: Tensor } {
    const [B, T] = [x3.shape[0]!, x3.shape[1]!];
    const { Hq, D, R, Dv, C } = this;
    const N = D - R; // nope part of each q/k head
    const qf = this.qProj ? this.qProj.forward(x3) : this.qBProj!.forward(this.qALayernorm!.forward(this.qAProj!.forward(x3))); // (B, T, Hq·D)
    const q = reshape(qf, [B, T, Hq, D]); // (B, T, Hq, D)
    const ckv = this.kvAProj.forward(x3); // (B, T, C + R)
    const kv = reshape(this.kvBProj.forward(this.kvALayernorm.forward(slice(ckv, [0, 0, 0], [B, T, C]))), [B, T, Hq, N + Dv]); // (B, T, Hq, N + Dv)
    const invFreq = this.buffer('inv_freq'); // (R/2)
    let qRot = rope(slice(q, [0, 0, 0, N], [B, T, Hq, R]), pos, invFreq, this.ropeInterleaved); // (B, T, Hq, R)
    let kRot = rope(reshape(slice(ckv, [0, 0, C], [B, T, R]), [B, T, 1, R]), pos, invFreq, this.ropeInterleaved); // (B, T, 1, R)
    if (this.ropeFactor !== 1) {
      qRot = mul(qRot, this.ropeFactor);
      kRot = mul(kRot, this.ropeFactor);
    }
    const kRotAll = mul(kRot, ones([1, 1, Hq, 1])); // (B, T, Hq, R) the shared RoPE key, per head
    const qAll = N > 0 ? concat([slice(q, [0, 0, 0, 0], [B, T, Hq, N]), qRot], 3) : qRot; // (B, T, Hq, D)
    const k = N > 0 ? concat([slice(kv, [0, 0, 0, 0], [B, T, Hq, N]), kRotAll], 3) : kRotAll; // (B, T, Hq, D)
    const v = slice(kv, [0, 0, 0, N], [B, T, Hq, Dv]); // (B, T, Hq, Dv)
    return { q: qAll, k, v };
  }
}
