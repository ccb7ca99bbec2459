// ModelConfig: the one flat, zod-validated config of the MoE language model, its presets and the dense baseline.
import { z } from 'zod';
import { sizeProblem } from './sizes.js';

const posInt = z.number().int().positive();
const nonNeg = z.number().nonnegative();

/** The schema; every default names its source. Unknown keys are rejected (a typo is an error, not a no-op). */
export const ModelConfigSchema = z
  .strictObject({
    /** V: vocabulary size (of the tokenizer); default 32000 (Llama / Mixtral) */
    vocabSize: posInt.default(32000),
    /** H: model width; default 512 */
    hidden: posInt.default(512),
    /** decoder layers; default 8 */
    layers: posInt.default(8),
    /** Hq: query heads; default 8 */
    heads: posInt.default(8),
    /** Hkv: key/value heads (GQA when < heads); default 8 = multi-head attention (Vaswani et al.) */
    kvHeads: posInt.default(8),
    /** D: head dim; default 64 (GPT-2, Llama: hidden / heads) */
    headDim: posInt.default(64),
    /** RoPE base θ; default 1e4 (Su et al. RoFormer; Llama 2, Mixtral use 1e4 / 1e6) */
    ropeTheta: z.number().positive().default(10000),
    /** R: dims of each q/k head that RoPE rotates (inverse frequencies θ^(−2i/R)), the rest pass through unrotated:
     *  attention 'gqa' rotates the first R (GLM-4.5 partial_rotary_factor 0.5: R = headDim / 2), attention 'mla' the
     *  last R (DeepSeek-V3 qk_rope_head_dim 64 of a 192-wide head); default headDim (all of it: Llama, Mixtral) */
    rotaryDim: posInt.optional(),
    /** RoPE pairs (2i, 2i+1) instead of rotate-half's (i, i + R/2); default false (Llama, HF rotate_half; DeepSeek-V3
     *  rope_interleave = true) */
    ropeInterleaved: z.boolean().default(false),
    /** 'gqa': q/k/v projections with kvHeads ≤ heads (Llama, Mixtral, Qwen, OLMoE, GLM-4.5); 'mla': DeepSeek-V2/V3
     *  multi-head latent attention (low-rank q and joint kv compression, kvLoraRank, qLoraRank, vHeadDim; the RoPE
     *  part of each head is rotaryDim and its key is shared by all heads); default 'gqa' */
    attention: z.enum(['gqa', 'mla']).default('gqa'),
    /** mla: rank of the query compression (q_lora_rank); default none = a full q_proj (DeepSeek-V2-Lite; V3 uses 1536) */
    qLoraRank: posInt.optional(),
    /** mla: rank of the joint key/value compression (kv_lora_rank); required for attention 'mla' (DeepSeek-V3: 512) */
    kvLoraRank: posInt.optional(),
    /** mla: value head dim (v_head_dim); default headDim (DeepSeek-V3: 128 with a 192-wide q/k head) */
    vHeadDim: posInt.optional(),
    /** RMSNorm eps; default 1e-6 (Qwen, OLMoE, DeepSeek rms_norm_eps) */
    normEps: z.number().positive().default(1e-6),
    /** longest sequence the model is meant for (positions are RoPE, so this only bounds inputs); default 2048 (Llama 1) */
    maxSeqLen: posInt.default(2048),
    /** 'moe' (routed experts), 'dense' (one SwiGLU of width denseWidth) or 'clustered' (dynamic expert clustering with
     *  shared bases + low-rank residuals and two-stage routing, docs/CLUSTERED.md); default 'moe' */
    ffn: z.enum(['moe', 'dense', 'clustered']).default('moe'),
    /** E: routed experts per MoE layer; default 8 (Mixtral 8x7B) */
    experts: posInt.default(8),
    /** K: experts per token; default 2 (Mixtral, GShard) */
    topK: posInt.default(2),
    /** I: width of each routed expert; default 1024 (hidden·2, a fine-ish grained expert) */
    expertWidth: posInt.default(1024),
    /** dense FFN width (ffn: 'dense' only); default topK·expertWidth + sharedWidth, the FLOP-matched baseline */
    denseWidth: posInt.optional(),
    /** default 'softmax-topk' (Mixtral, Qwen-MoE, OLMoE); 'sigmoid-group' is DeepSeek-V3 */
    router: z.enum(['softmax-topk', 'sigmoid-group']).default('softmax-topk'),
    /** renormalise the K weights to sum 1 (softmax-topk: of the probabilities; sigmoid-group: of the sigmoid scores,
     *  before routedScale); default true (Mixtral, Qwen3 and DeepSeek-V3 norm_topk_prob) */
    renormalize: z.boolean().default(true),
    /** sigmoid-group: G expert groups (n_group); default 1 (DeepSeek-V3 uses 8) */
    groups: posInt.default(1),
    /** sigmoid-group: groups kept per token (topk_group); default = groups (DeepSeek-V3 uses 4 of 8) */
    topGroups: posInt.optional(),
    /** sigmoid-group: routed_scaling_factor; default 1 (DeepSeek-V3 uses 2.5) */
    routedScale: z.number().positive().default(1),
    /** width of the always-on shared expert; default 0 = none (Qwen2-MoE, DeepSeek use one) */
    sharedWidth: z.number().int().nonnegative().default(0),
    /** gate the shared expert by sigmoid(x · w); default false (Qwen2-MoE shared_expert_gate = true) */
    sharedGate: z.boolean().default(false),
    /** a trained bias on the router logits (gpt-oss router.bias); default false (Mixtral, Qwen, OLMoE) */
    routerBias: z.boolean().default(false),
    /** biases on every routed expert's gate, up and down projections (gpt-oss); default false */
    expertBias: z.boolean().default(false),
    /** routed experts' activation: 'swiglu' silu(g)·u, or 'swiglu-oai' (gpt-oss) min(g, L)·σ(α·min(g, L))·(clamp(u, ±L) + 1);
     *  default 'swiglu' (Llama, Mixtral, Qwen, DeepSeek) */
    expertAct: z.enum(['swiglu', 'swiglu-oai']).default('swiglu'),
    /** swiglu-oai: the clamp L (swiglu_limit); default 7 (gpt-oss) */
    swigluLimit: z.number().positive().default(7),
    /** swiglu-oai: α of the gate's sigmoid; default 1.702 (gpt-oss, the GELU approximation x·σ(1.702x)) */
    swigluAlpha: z.number().positive().default(1.702),
    /** per-expert capacity factor; default undefined = dropless (MegaBlocks); Switch uses 1.25 */
    capacityFactor: z.number().positive().optional(),
    /** α of the Switch balance loss; default 1e-2 (Switch Transformer, Fedus et al.) */
    auxLossCoef: nonNeg.default(1e-2),
    /** router z-loss coefficient; default 1e-3 (ST-MoE, Zoph et al.) */
    zLossCoef: nonNeg.default(1e-3),
    /** γ of aux-loss-free balancing (bias update per step); default 1e-3 (DeepSeek-V3 bias update speed); 0 = off */
    biasUpdateRate: nonNeg.default(1e-3),
    /** clustered: G expert groups per layer (each of E/G experts shares one base); default E/4 (the paper: E = 32, G = 8) */
    clusterGroups: posInt.optional(),
    /** clustered: rank r of each expert's residual factors; default 16 (the paper) */
    clusterRank: posInt.default(16),
    /** clustered: groups chosen per token in stage 1 (k_g); default 1 (the paper's public code) */
    groupTopK: posInt.default(1),
    /** clustered: stage-1 group scores: 'lse' = log Σ exp of the member experts' router logits (p_group·p_expert equals
     *  the flat softmax, so regrouping never changes the router's probabilities; moekit's default) or 'linear' = a
     *  separate (G, H) group router (the paper's public code) */
    groupRouter: z.enum(['lse', 'linear']).default('lse'),
    /** clustered: weight of the group balance loss KL(mean group probability ‖ uniform); default 1e-2 (public code: 0.02 total) */
    groupAuxCoef: nonNeg.default(1e-2),
    /** clustered: α of S = α·S_param + (1−α)·S_task; default 0.7 (the paper: α > 0.5) */
    clusterAlpha: z.number().min(0).max(1).default(0.7),
    /** clustered: β of the activation-centroid EMA; default 0.05 (the paper) */
    clusterBeta: z.number().gt(0).max(1).default(0.05),
    /** clustered: similarities below τ are pruned before K-means; default 0.1 (the paper) */
    clusterTau: z.number().default(0.1),
    /** clustered: regroup every T training steps; 0 = never; default 200 (the paper's public code) */
    clusterEvery: z.number().int().nonnegative().default(200),
    /** clustered: steps before the first regrouping (centroids need data); default clusterEvery */
    clusterWarmup: z.number().int().nonnegative().optional(),
    /** clustered: train full experts (a standard MoE) until clusterWarmup, then compress them into the clustered form
     *  by the first clustering (so S_param compares trained experts); default false = clustered from step 0 */
    clusterDenseWarmup: z.boolean().default(false),
    /** clustered: recompute S_param only for experts whose weights moved by more than ε (relative); default 1e-3 */
    clusterEps: nonNeg.default(1e-3),
    /** q/k normalisation: 'head' = RMSNorm over each head's D (Qwen3-MoE), 'full' = over the whole q/k width (OLMoE);
     *  default 'none' (Mixtral, Qwen2-MoE) */
    qkNorm: z.enum(['none', 'head', 'full']).default('none'),
    /** bias on the q/k/v projections; default false (Qwen2-MoE: true) */
    qkvBias: z.boolean().default(false),
    /** bias on the attention output projection; default false (Qwen3-MoE / OLMoE attention_bias) */
    attnOutBias: z.boolean().default(false),
    /** clamp q, k and v to [−c, c] after their projections (OLMoE clip_qkv); default none */
    clipQkv: z.number().positive().optional(),
    /** sliding attention window in tokens (a query sees itself and the window − 1 keys before it); 0 = full causal */
    slidingWindow: z.number().int().nonnegative().default(0),
    /** layers that use slidingWindow; default all layers */
    slidingLayers: z.array(z.number().int().nonnegative()).optional(),
    /** a learnable logit per query head that joins every softmax denominator (gpt-oss attention sinks); default false */
    attnSinks: z.boolean().default(false),
    /** RoPE frequencies: 'default' θ^(−2i/R), or 'yarn' (YaRN, src/nn/yarn.ts: gpt-oss, DeepSeek-V3 rope_type); default 'default' */
    ropeType: z.enum(['default', 'yarn']).default('default'),
    /** yarn: context extension factor s (rope_parameters.factor); default 1 */
    ropeFactor: z.number().positive().default(1),
    /** yarn: pretraining context length (original_max_position_embeddings); default maxSeqLen */
    ropeOriginalMaxPos: posInt.optional(),
    /** yarn: ramp boundaries in rotations (beta_fast, beta_slow); default 32 and 1 (YaRN paper, transformers) */
    ropeBetaFast: z.number().positive().default(32),
    ropeBetaSlow: z.number().positive().default(1),
    /** yarn: round the ramp's correction range to whole dims (truncate); default true (transformers; gpt-oss sets false) */
    ropeTruncate: z.boolean().default(true),
    /** yarn: factor on cos/sin (attention_factor); default from ropeMscale/ropeMscaleAllDim, else 0.1·ln(s) + 1 */
    ropeAttentionFactor: z.number().positive().optional(),
    /** yarn: DeepSeek's mscale and mscale_all_dim (the default attention factor is their get_mscale ratio); default none */
    ropeMscale: z.number().optional(),
    ropeMscaleAllDim: z.number().optional(),
    /** layers whose FFN is one dense SwiGLU of width denseLayerWidth instead of MoE (Qwen mlp_only_layers,
     *  decoder_sparse_step); default none */
    denseLayers: z.array(z.number().int().nonnegative()).default([]),
    /** width of the dense FFN of denseLayers; default denseWidth (Qwen-MoE intermediate_size) */
    denseLayerWidth: posInt.optional(),
    /** balance loss: 'layer' = the sum over layers of each layer's Switch loss (1 per layer when balanced); 'global' =
     *  E·Σ f_e·P_e over the tokens of all layers pooled, f_e counting top-K slots (K when balanced: transformers'
     *  load_balancing_loss_func, used for Hugging Face checkpoints); default 'layer' */
    balanceLoss: z.enum(['layer', 'global']).default('layer'),
    /** the pad token: its embedding row gets no gradient (torch padding_idx, HF pad_token_id); default none */
    padTokenId: z.number().int().nonnegative().optional(),
    /** share the embedding matrix with lm_head; default true (GPT-2, Press & Wolf) */
    tieEmbeddings: z.boolean().default(true),
    /** std of the embedding (and untied lm_head) init; default 0.02 (GPT-2 initializer_range). Projections use 1/sqrt(fan_in) */
    initStd: z.number().positive().default(0.02),
    /** seed of the initialisation; default 0 */
    seed: z.number().int().nonnegative().default(0),
  })
  .superRefine((c, ctx) => {
    const bad = (path: string, message: string): void => void ctx.addIssue({ code: 'custom', path: [path], message });
    if (c.topK > c.experts) bad('topK', `at most experts = ${c.experts}`);
    if (c.heads % c.kvHeads !== 0) bad('kvHeads', `a divisor of heads = ${c.heads}`);
    const R = c.rotaryDim ?? c.headDim;
    if (R % 2 !== 0) bad(c.rotaryDim === undefined ? 'headDim' : 'rotaryDim', 'an even number (RoPE rotates pairs)');
    else if (R > c.headDim) bad('rotaryDim', `at most headDim = ${c.headDim}`);
    if (c.attention === 'mla') {
      if (c.kvLoraRank === undefined) bad('kvLoraRank', 'a positive integer for attention "mla" (kv_lora_rank)');
      if (c.kvHeads !== c.heads) bad('kvHeads', `heads = ${c.heads} for attention "mla" (every head has its own key and value)`);
      if (c.qkNorm !== 'none') bad('qkNorm', '"none" for attention "mla" (its q and kv compressions have their own norms)');
      if (c.clipQkv !== undefined) bad('clipQkv', 'unset for attention "mla"');
    } else {
      for (const k of ['qLoraRank', 'kvLoraRank', 'vHeadDim'] as const) if (c[k] !== undefined) bad(k, 'unset unless attention is "mla"');
    }
    if (c.router === 'sigmoid-group') {
      if (c.experts % c.groups !== 0) bad('groups', `a divisor of experts = ${c.experts}`);
      const tg = c.topGroups ?? c.groups;
      if (tg > c.groups) bad('topGroups', `at most groups = ${c.groups}`);
      else if (tg * (c.experts / c.groups) < c.topK) bad('topGroups', `large enough to keep topK = ${c.topK} experts (each group has ${c.experts / c.groups})`);
    }
    if (c.ffn === 'clustered') {
      const G = c.clusterGroups ?? Math.max(1, Math.floor(c.experts / 4));
      if (c.experts % G !== 0) bad('clusterGroups', `a divisor of experts = ${c.experts}`);
      else if (c.groupTopK > G) bad('groupTopK', `at most clusterGroups = ${G}`);
      else if (c.groupTopK * (c.experts / G) < c.topK) bad('groupTopK', `large enough to hold topK = ${c.topK} experts (each group has ${c.experts / G})`);
      if (c.router !== 'softmax-topk') bad('router', '"softmax-topk" for ffn "clustered" (two-stage softmax routing)');
    }
    if (c.sharedGate && c.sharedWidth === 0) bad('sharedGate', 'false when sharedWidth = 0 (there is no shared expert to gate)');
    for (const [key, list] of [['denseLayers', c.denseLayers], ['slidingLayers', c.slidingLayers ?? []]] as const) {
      const badLayer = list.find((l) => l >= c.layers);
      if (badLayer !== undefined) bad(key, `layer indices below layers = ${c.layers} (got ${badLayer})`);
    }
    if (c.padTokenId !== undefined && c.padTokenId >= c.vocabSize) bad('padTokenId', `a token id below vocabSize = ${c.vocabSize}`);
    if (c.balanceLoss === 'global' && c.ffn !== 'moe') bad('balanceLoss', '"layer" unless ffn is "moe"');
    if (c.attention === 'mla') {
      // the MLA module has no sinks: refuse rather than run plain attention (YaRN it reads: mlaConfigOf)
      if (c.attnSinks) bad('attnSinks', 'false for attention "mla"');
    }
    if (c.ffn !== 'moe') {
      if (c.expertAct !== 'swiglu') bad('expertAct', `"swiglu" unless ffn is "moe" (got ffn "${c.ffn}")`);
      if (c.expertBias) bad('expertBias', `false unless ffn is "moe" (got ffn "${c.ffn}")`);
      if (c.routerBias) bad('routerBias', `false unless ffn is "moe" (got ffn "${c.ffn}")`);
    }
  });

export type ModelConfig = z.output<typeof ModelConfigSchema>;
export type ModelConfigInput = z.input<typeof ModelConfigSchema>;

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));

function valueAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = obj;
  for (const k of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** Validates a config object (e.g. parsed JSON) and fills defaults; throws one message naming key, value and expectation. */
export function parseConfig(obj: unknown): ModelConfig {
  const r = ModelConfigSchema.safeParse(obj);
  if (r.success) {
    const size = sizeProblem(r.data);
    if (size) throw new Error(`ModelConfig: ${size}`);
    return r.data;
  }
  const lines = r.error.issues.map((i) => {
    if (i.code === 'unrecognized_keys') return `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')} (expected one of ${Object.keys(ModelConfigSchema.shape).join(', ')})`;
    const key = i.path.map(String).join('.');
    if (key === '') return `expected an object, got ${show(obj)}`;
    const expected = i.code === 'custom' ? i.message : i.message.replace(/^Invalid (input|option): /, '').replace(/^Too (small|big): /, '').replace(/^expected /, '');
    return `"${key}" = ${show(valueAt(obj, i.path))}: expected ${expected}`;
  });
  throw new Error(`ModelConfig: ${lines.join('; ')}`);
}

/** CI size: trains in seconds on the js/wasm backends (vocab 320 = 256 bytes + 1 special + 63 BPE merges). */
export const tiny: ModelConfig = parseConfig({
  vocabSize: 320, hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, maxSeqLen: 64,
  experts: 4, topK: 2, expertWidth: 32,
});

/** The main job: trains within ~5 minutes on 2 CPU cores. 2.0M parameters, 0.86M active per token. */
export const small: ModelConfig = parseConfig({
  vocabSize: 2048, hidden: 128, layers: 4, heads: 4, kvHeads: 2, headDim: 32, maxSeqLen: 128,
  experts: 8, topK: 2, expertWidth: 128,
});

/** Hours on CPU. 64M parameters, 20M active per token. */
export const base: ModelConfig = parseConfig({
  vocabSize: 8192, hidden: 512, layers: 8, heads: 8, kvHeads: 4, headDim: 64, maxSeqLen: 512,
  experts: 16, topK: 2, expertWidth: 256, sharedWidth: 256,
});

/** `small` with fine-grained experts: 64 experts of width 32, top-8 — the same active expert FLOPs per token
 *  (K·I = 256) spread over 8× as many experts (the DeepSeek/Qwen3 style), for routing studies. */
export const fine: ModelConfig = parseConfig({ ...small, experts: 64, topK: 8, expertWidth: 32 });

export const PRESETS = { tiny, small, fine, base } as const;
export type PresetName = keyof typeof PRESETS;

/** Why a config's routed experts are not plain bias-free SwiGLU behind a bias-free router (what expert compression,
 *  clustering and calibration assume), naming the keys; null when they are. */
export function plainExpertsProblem(cfg: ModelConfig): string | null {
  const bad = [cfg.expertAct !== 'swiglu' && `expertAct "${cfg.expertAct}"`, cfg.expertBias && 'expertBias true', cfg.routerBias && 'routerBias true'].filter((x): x is string => typeof x === 'string');
  return bad.length ? `the experts must be plain SwiGLU without biases (expertAct "swiglu", expertBias false, routerBias false), got ${bad.join(', ')}` : null;
}

/** Expert groups per clustered layer: clusterGroups, or E/4 (at least 1). */
export const clusterGroupsOf = (cfg: ModelConfig): number => cfg.clusterGroups ?? Math.max(1, Math.floor(cfg.experts / 4));

/** The FFN width a dense layer of this config has: denseWidth, or the FLOP-matched topK·expertWidth + sharedWidth. */
export const denseWidthOf = (cfg: ModelConfig): number => cfg.denseWidth ?? cfg.topK * cfg.expertWidth + cfg.sharedWidth;

/**
 * The FLOP-matched dense baseline of an MoE config: the same model with each MoE block replaced by one SwiGLU
 * of width topK·expertWidth + sharedWidth. Per token it does the same multiply-adds and has the same active
 * parameters as the MoE model, minus the router (E·H per layer) and shared-expert gate (H per layer).
 */
export function denseBaseline(cfg: ModelConfig): ModelConfig {
  return parseConfig({ ...cfg, ffn: 'dense', denseWidth: cfg.topK * cfg.expertWidth + cfg.sharedWidth });
}
