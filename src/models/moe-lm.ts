// MoELM: a decoder-only language model (Llama/Mixtral layout; GQA or latent attention) from a ModelConfig, with MoE or dense SwiGLU FFNs.
import { Attention, type AttentionConfig, type KVCache } from '../nn/attention.js';
import type { KVPool, PoolSegment } from '../nn/kv-pool.js';
import { MLAttention, type MlaConfig } from '../nn/mla.js';
import { mscaleOf } from '../nn/yarn.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { isKept, storedBytes, widenWeight } from '../nn/packed.js';
import { Module, ModuleList } from '../nn/module.js';
import { SwiGLU } from '../nn/swiglu.js';
import { MoEBlock, type MoEConfig } from '../moe/block.js';
import { ClusteredMoEBlock, type ClusteredConfig } from '../moe/clustered.js';
import type { LayerStats, RoutingObserver } from '../moe/pipeline.js';
import { SELECTION_BIAS } from '../moe/names.js';
import { add, concat, crossEntropy, div, matmul, mean, mul, ones, reshape, scatterAlong, softmax, sum, topk } from '../tensor/api.js';
import { noGrad } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { clusterGroupsOf, denseWidthOf, parseConfig, type ModelConfig, type ModelConfigInput } from './config.js';
import { ropeFrequenciesOf } from './rope.js';
import { allocationProblem } from './sizes.js';

/** Routing statistics of one forward pass, per layer (null for dense layers): the MoE pipeline's `LayerStats`. */
export type { LayerStats };
export type ModelStats = (LayerStats | null)[];

/** Reads the device-side expert offsets of GPU forwards into tokensPerExpert (and frees them); a no-op on CPU stats. */
export async function resolveStats(stats: ModelStats): Promise<void> {
  for (const s of stats) {
    if (!s?.offsets) continue;
    const o = await s.offsets.data();
    s.tokensPerExpert = Array.from({ length: o.length - 1 }, (_, e) => o[e + 1]! - o[e]!);
    s.offsets.dispose();
    delete s.offsets;
  }
}

export interface LMForwardOptions {
  /** one KV cache per layer; keys/values are appended and positions start at the cache length */
  cache?: readonly KVCache[];
  /** called by every MoE layer with what routing decided (expert ids, gate weights, router logits, optionally the
   *  hidden state); `RoutingRecorder` keeps them as host arrays */
  observer?: RoutingObserver;
  /** compute the balance losses (default true); false for inference, where MoE layers then run their fused kernels */
  aux?: boolean;
}

/** transformers' load_balancing_loss_func: E·Σ_e f_e·P_e over the tokens of all layers pooled (f_e: share of tokens
 *  with e among their top-K, summing to K; P_e: mean router probability). logits: per MoE layer (T, E). */
export function globalBalanceLoss(logits: readonly Tensor[], K: number): Tensor {
  const all = logits.length === 1 ? logits[0]! : concat(logits, 0); // (L·T, E)
  const [N, E] = all.shape as [number, number];
  const probs = softmax(all, -1); // (L·T, E)
  const f = noGrad(() => div(sum(scatterAlong(ones([N, K]), topk(probs, K).indices, E), 0), N)); // (E)
  return mul(sum(mul(f, mean(probs, 0))), E); // ()
}

export interface LMOutput {
  logits: Tensor; // (B·T, V)
  /** auxLossCoef · balance loss (per layer or global, `balanceLoss`) + zLossCoef · Σ z over MoE layers; null for a dense
   *  model or with `aux: false` */
  aux: Tensor | null; // ()
  stats: ModelStats;
  /** per layer: the raw router logits (B·T, E) of an MoE layer, null for a dense one */
  routerLogits: (Tensor | null)[];
}

export interface LMLoss {
  /** ce + aux: backpropagate this */
  loss: Tensor; // ()
  ce: Tensor; // () mean cross-entropy over non-ignored targets
  aux: Tensor | null; // ()
  stats: ModelStats;
}

export interface ParamCounts {
  /** every trainable parameter (tied embeddings counted once) */
  total: number;
  /** routed-expert parameters (all layers, all experts) */
  expert: number;
  /** parameters one token uses: total − expert + expert·K/E (shared experts, router, attention, embeddings included) */
  active: number;
}

/** The MoE block's config from the model's. */
export function moeConfigOf(cfg: ModelConfig): MoEConfig {
  const m: MoEConfig = {
    hidden: cfg.hidden, experts: cfg.experts, topK: cfg.topK, expertWidth: cfg.expertWidth,
    router: cfg.router, renormalize: cfg.renormalize, groups: cfg.groups, topGroups: cfg.topGroups ?? cfg.groups,
    routedScale: cfg.routedScale, sharedWidth: cfg.sharedWidth, sharedGate: cfg.sharedGate,
    auxLossCoef: cfg.auxLossCoef, zLossCoef: cfg.zLossCoef,
    selectionBias: cfg.biasUpdateRate > 0 || cfg.router === 'sigmoid-group',
    routerBias: cfg.routerBias, expertBias: cfg.expertBias,
    expertAct: cfg.expertAct === 'swiglu-oai' ? { kind: 'swiglu-oai', limit: cfg.swigluLimit, alpha: cfg.swigluAlpha } : { kind: 'swiglu' },
  };
  if (cfg.capacityFactor !== undefined) m.capacityFactor = cfg.capacityFactor;
  return m;
}

/** The multi-head latent attention config of a layer from the model's (attention: 'mla'). */
export function mlaConfigOf(cfg: ModelConfig, window = 0): MlaConfig {
  const m: MlaConfig = {
    hidden: cfg.hidden, heads: cfg.heads, headDim: cfg.headDim, ropeDim: cfg.rotaryDim ?? cfg.headDim, vHeadDim: cfg.vHeadDim ?? cfg.headDim,
    kvLoraRank: cfg.kvLoraRank ?? 0, ropeTheta: cfg.ropeTheta, ropeInterleaved: cfg.ropeInterleaved, qkvBias: cfg.qkvBias, oBias: cfg.attnOutBias, window,
  };
  if (cfg.qLoraRank !== undefined) m.qLoraRank = cfg.qLoraRank;
  if (cfg.ropeType !== 'default') {
    m.rope = ropeFrequenciesOf(cfg, m.ropeDim);
    // DeepSeek-V3 with YaRN: softmax scale D^−0.5 · mscale(s, mscale_all_dim)² (transformers DeepseekV3Attention, inference/model.py)
    if (cfg.ropeMscaleAllDim) m.scale = cfg.headDim ** -0.5 * mscaleOf(cfg.ropeFactor, cfg.ropeMscaleAllDim) ** 2;
  }
  return m;
}

/** The clustered block's config from the model's (ffn: 'clustered'). */
export function clusteredConfigOf(cfg: ModelConfig): ClusteredConfig {
  return {
    hidden: cfg.hidden, experts: cfg.experts, topK: cfg.topK, expertWidth: cfg.expertWidth, groups: clusterGroupsOf(cfg), rank: cfg.clusterRank,
    groupTopK: cfg.groupTopK, groupRouter: cfg.groupRouter, renormalize: cfg.renormalize, sharedWidth: cfg.sharedWidth, sharedGate: cfg.sharedGate,
    auxLossCoef: cfg.auxLossCoef, groupAuxCoef: cfg.groupAuxCoef, zLossCoef: cfg.zLossCoef,
    selectionBias: cfg.biasUpdateRate > 0,
  };
}

const makeFfn = (cfg: ModelConfig, rng: Rng): MoEBlock | ClusteredMoEBlock | SwiGLU => {
  if (cfg.ffn === 'moe') return new MoEBlock(moeConfigOf(cfg), rng);
  if (cfg.ffn === 'clustered') return new ClusteredMoEBlock(clusteredConfigOf(cfg), rng, { beta: cfg.clusterBeta, eps: cfg.clusterEps });
  return new SwiGLU(cfg.hidden, denseWidthOf(cfg), rng);
};

export interface LayerOptions { aux?: boolean; observer?: RoutingObserver; layer?: number }
export interface LayerOutput { y: Tensor; aux: Tensor | null; z?: Tensor; routerLogits?: Tensor; stats: LayerStats | null }

/** One pre-norm decoder layer: x + attn(norm(x)), then h + mlp(norm(h)). */
export class DecoderLayer extends Module {
  readonly inputLayernorm: RMSNorm;
  readonly selfAttn: Attention | MLAttention;
  readonly postAttentionLayernorm: RMSNorm;
  readonly mlp: MoEBlock | ClusteredMoEBlock | SwiGLU;

  /** `index`: the layer's position (it decides dense layers and sliding-window layers) */
  constructor(cfg: ModelConfig, rng: Rng, index = 0) {
    super();
    const window = cfg.slidingWindow > 0 && (cfg.slidingLayers?.includes(index) ?? true) ? cfg.slidingWindow : 0;
    const attn: AttentionConfig = {
      hidden: cfg.hidden, heads: cfg.heads, kvHeads: cfg.kvHeads, headDim: cfg.headDim, ropeTheta: cfg.ropeTheta, eps: cfg.normEps,
      qkNorm: cfg.qkNorm, qkvBias: cfg.qkvBias, oBias: cfg.attnOutBias, window, rotaryDim: cfg.rotaryDim ?? cfg.headDim, ropeInterleaved: cfg.ropeInterleaved,
    };
    if (cfg.clipQkv !== undefined) attn.clip = cfg.clipQkv;
    if (cfg.ropeType !== 'default') attn.rope = ropeFrequenciesOf(cfg);
    if (cfg.attnSinks) attn.sinks = true;
    this.inputLayernorm = this.addModule('input_layernorm', new RMSNorm(cfg.hidden, cfg.normEps));
    this.selfAttn = this.addModule('self_attn', cfg.attention === 'mla' ? new MLAttention(mlaConfigOf(cfg, window), rng) : new Attention(attn, rng));
    this.postAttentionLayernorm = this.addModule('post_attention_layernorm', new RMSNorm(cfg.hidden, cfg.normEps));
    const dense = cfg.denseLayers.includes(index);
    this.mlp = this.addModule('mlp', dense ? new SwiGLU(cfg.hidden, cfg.denseLayerWidth ?? denseWidthOf(cfg), rng) : makeFfn(cfg, rng));
  }

  /** x (B, T, H) -> (B, T, H), with the block's aux loss, z-loss, router logits and stats when it is an MoE block */
  forward(x: Tensor, cache?: KVCache, opts: LayerOptions = {}): LayerOutput {
    return this.ffn(add(x, this.selfAttn.forward(this.inputLayernorm.forward(x), cache ? { cache } : {})), opts); // (B, T, H)
  }

  /**
   * Rows of several sequences in one pass (continuous batching): x (1, ΣT, H) holds `segments` of consecutive rows,
   * each attending over its slot of the KV pool from its own position; the MLP (the MoE block) runs over all rows at once.
   */
  forwardRagged(x: Tensor, segments: readonly PoolSegment[], pool: KVPool, layer: number, opts: LayerOptions = {}): LayerOutput {
    return this.ffn(add(x, this.selfAttn.forwardRagged(this.inputLayernorm.forward(x), segments, pool, layer)), opts); // (1, ΣT, H)
  }

  /** h + mlp(norm(h)) with the block's aux loss, z-loss, router logits and stats when it is an MoE block. */
  private ffn(h: Tensor, opts: LayerOptions): LayerOutput {
    const n = this.postAttentionLayernorm.forward(h); // (B, T, H)
    if (this.mlp instanceof SwiGLU) return { y: add(h, this.mlp.forward(n)), aux: null, stats: null };
    const o = this.mlp.run(n, { aux: opts.aux ?? true, ...(opts.observer ? { observer: opts.observer, layer: opts.layer ?? 0 } : {}) });
    const out: { y: Tensor; aux: Tensor | null; z?: Tensor; routerLogits: Tensor; stats: LayerStats } = { y: add(h, o.y), aux: o.aux?.loss ?? null, routerLogits: o.routing.logits, stats: o.stats };
    if (o.aux) out.z = o.aux.z;
    return out;
  }
}

/** The decoder stack (HF `model.*`): embed_tokens, layers, norm. */
export class DecoderModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: RMSNorm;

  constructor(cfg: ModelConfig, rng: Rng) {
    super();
    this.embedTokens = this.addModule('embed_tokens', new Embedding(cfg.vocabSize, cfg.hidden, rng, cfg.initStd, cfg.padTokenId ?? null)); // (V, H)
    this.layers = this.addModule('layers', new ModuleList(Array.from({ length: cfg.layers }, (_, l) => new DecoderLayer(cfg, rng, l))));
    this.norm = this.addModule('norm', new RMSNorm(cfg.hidden, cfg.normEps));
  }
}

/**
 * The MoE language model. Parameter names follow Hugging Face (`model.embed_tokens.weight`,
 * `model.layers.0.self_attn.q_proj.weight`, `model.layers.0.mlp.experts.gate_proj`, `model.norm.weight`,
 * `lm_head.weight` when untied), so weights map onto Mixtral / Qwen-MoE / DeepSeek checkpoints.
 */
export class MoELM extends Module {
  readonly cfg: ModelConfig;
  readonly model: DecoderModel;
  readonly lmHead: Linear | null;

  /** Takes a parsed config, or any input that `parseConfig` accepts. */
  constructor(cfg: ModelConfig | ModelConfigInput) {
    super();
    this.cfg = parseConfig(cfg);
    const big = allocationProblem(this.cfg);
    if (big) throw new RangeError(`MoELM: ${big}`);
    const rng = new Rng(this.cfg.seed);
    this.model = this.addModule('model', new DecoderModel(this.cfg, rng));
    this.lmHead = this.cfg.tieEmbeddings ? null : this.addModule('lm_head', new Linear(this.cfg.hidden, this.cfg.vocabSize, rng, { std: this.cfg.initStd })); // W (V, H)
  }

  get layers(): readonly DecoderLayer[] {
    return this.model.layers.items;
  }

  /** ids (B, T) i32 -> logits (B·T, V), total aux loss, per-layer routing stats. */
  forward(ids: Tensor, opts: LMForwardOptions = {}): LMOutput {
    const { hidden: H, vocabSize: V } = this.cfg;
    if (ids.rank !== 2 || ids.dtype !== 'i32') throw new ShapeError(`MoELM: ids must be i32 (B, T), got ${fmtInfo(ids.shape, ids.dtype)}`);
    const [B, T] = ids.shape as [number, number];
    const cache = opts.cache;
    if (cache && cache.length !== this.cfg.layers) throw new Error(`MoELM: ${cache.length} KV caches for ${this.cfg.layers} layers`);
    const start = cache?.[0]?.length ?? 0;
    if (start + T > this.cfg.maxSeqLen) throw new Error(`MoELM: positions up to ${start + T} exceed maxSeqLen ${this.cfg.maxSeqLen}`);
    let x = this.model.embedTokens.forward(ids); // (B, T, H)
    let aux: Tensor | null = null; // ()
    const stats: ModelStats = [];
    const routerLogits: (Tensor | null)[] = [];
    const global = this.cfg.balanceLoss === 'global';
    this.layers.forEach((layer, l) => {
      const o = layer.forward(x, cache?.[l], { aux: opts.aux ?? true, ...(opts.observer ? { observer: opts.observer, layer: l } : {}) });
      x = o.y; // (B, T, H)
      const a = global ? (o.z && this.cfg.zLossCoef > 0 ? mul(o.z, this.cfg.zLossCoef) : null) : o.aux;
      if (a) aux = aux ? add(aux, a) : a;
      stats.push(o.stats);
      routerLogits.push(o.routerLogits ?? null);
    });
    const moeLogits = routerLogits.filter((t): t is Tensor => t !== null);
    if (global && opts.aux !== false && moeLogits.length > 0) {
      const b = mul(globalBalanceLoss(moeLogits, this.cfg.topK), this.cfg.auxLossCoef); // ()
      aux = aux ? add(aux, b) : b;
    }
    const logits = this.head(reshape(x, [B * T, H])); // (B·T, V)
    if (logits.shape[1] !== V) throw new Error(`MoELM: internal: logits ${fmtInfo(logits.shape, logits.dtype)} must end in V = ${V}`);
    return { logits, aux, stats, routerLogits };
  }

  /** Final norm and LM head: hidden rows (N, H) -> logits (N, V). */
  head(x: Tensor): Tensor {
    const h = this.model.norm.forward(x); // (N, H)
    return this.lmHead ? this.lmHead.forward(h) : matmul(h, this.model.embedTokens.weight, { transB: true }); // (N, V)
  }

  /** Next-token loss: ids (B, T) i32, targets (B, T) i32 with -100 for ignored positions. loss = ce + aux. */
  loss(ids: Tensor, targets: Tensor): LMLoss {
    if (targets.dtype !== 'i32' || targets.rank !== 2 || targets.shape[0] !== ids.shape[0] || targets.shape[1] !== ids.shape[1]) {
      throw new ShapeError(`MoELM.loss: targets ${fmtInfo(targets.shape, targets.dtype)} must be i32 with the shape of ids ${fmtInfo(ids.shape, ids.dtype)}`);
    }
    const out = this.forward(ids);
    const ce = crossEntropy(out.logits, reshape(targets, [targets.size]), -100); // ()
    return { loss: out.aux ? add(ce, out.aux) : ce, ce, aux: out.aux, stats: out.stats };
  }

  /** Total, routed-expert and per-token active parameter counts (clustered: k_g bases and K experts' factors are active). */
  paramCounts(): ParamCounts {
    const total = this.numParams();
    let expert = 0;
    let active = total;
    for (const layer of this.layers) {
      if (layer.mlp instanceof MoEBlock) {
        const e = layer.mlp.experts.numParams();
        expert += e;
        active -= e - (e * this.cfg.topK) / this.cfg.experts;
      } else if (layer.mlp instanceof ClusteredMoEBlock) {
        const e = layer.mlp.f32Experts('paramCounts').numParams();
        expert += e;
        active -= e - layer.mlp.activeExpertParams();
      }
    }
    return { total, expert, active };
  }

  /** Bytes of parameter storage: f32 4 per element, weights kept from a checkpoint as stored (bf16/f16 2, FP8 1 plus
   *  its scales, MXFP4 ½ plus its scales). */
  paramBytes(): number {
    return this.parameters().reduce((n, [, p]) => n + storedBytes(p), 0);
  }

  /**
   * Widens every weight kept as stored (bf16/f16, MXFP4, FP8: a checkpoint loaded with loadDtype 'auto') to f32 in
   * place, routed experts back to the (E, in, out) layout: training and compression need f32 weights. Returns how many
   * tensors and how many stored bytes were upcast (0 and 0 for an f32 model); callers say so.
   */
  upcast(): { tensors: number; bytes: number } {
    let tensors = 0;
    let bytes = 0;
    for (const layer of this.layers) {
      if (!(layer.mlp instanceof MoEBlock)) continue;
      const b = layer.mlp.experts.upcast();
      if (b > 0) tensors += 3;
      bytes += b;
    }
    for (const [name, p] of this.parameters()) {
      if (!isKept(p)) continue;
      tensors++;
      bytes += storedBytes(p);
      this.setTensor(name, widenWeight(p));
    }
    return { tensors, bytes };
  }

  /** The routers' selection-bias buffers (E) by name (aux-loss-free balancing; saved with checkpoints). */
  selectionBiasBuffers(): [string, Tensor][] {
    return this.buffers().filter(([n]) => n.endsWith(`.${SELECTION_BIAS}`));
  }

  /** The clustered blocks, by layer index (empty unless ffn is 'clustered'). */
  clusteredBlocks(): [number, ClusteredMoEBlock][] {
    return this.layers.flatMap((l, i): [number, ClusteredMoEBlock][] => (l.mlp instanceof ClusteredMoEBlock ? [[i, l.mlp]] : []));
  }

  /**
   * Aux-loss-free balancing step (DeepSeek-V3): nudges each MoE layer's selection bias by biasUpdateRate
   * from the stats of a forward pass. A no-op when biasUpdateRate is 0 or the model is dense.
   */
  updateBiases(stats: ModelStats): void {
    if (this.cfg.biasUpdateRate <= 0) return;
    if (stats.length !== this.cfg.layers) throw new Error(`MoELM.updateBiases: stats for ${stats.length} layers, the model has ${this.cfg.layers}`);
    this.layers.forEach((layer, l) => {
      const s = stats[l];
      if ((layer.mlp instanceof MoEBlock || layer.mlp instanceof ClusteredMoEBlock) && s) layer.mlp.updateBias(s.tokensPerExpert, this.cfg.biasUpdateRate);
    });
  }
}
