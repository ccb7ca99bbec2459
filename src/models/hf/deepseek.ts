// Hugging Face config.json keys of the DeepSeek-style MoE family <-> ModelConfig: deepseek_v3 (and its alias kimi_k2,
// multi-head latent attention) and glm4_moe (GLM-4.5: partial rotary, per-head q/k norm). Both route with sigmoid scores,
// an e_score_correction_bias, group-limited top-k and routed_scaling_factor, add shared experts, and start dense.
import type { ModelConfig, ModelConfigInput } from '../config.js';

/** The architectures of this family (HfArch values). */
export type DeepseekFamilyArch = 'glm4_moe' | 'deepseek_v3';

/** What the config.json reader of hf/config.ts lends: typed key readers that throw naming the key, value and expectation. */
export interface KeyReader {
  where: string;
  raw: Record<string, unknown>;
  int(key: string): number | undefined;
  num(key: string): number | undefined;
  bool(key: string): boolean | undefined;
  str(key: string): string | undefined;
  fail(message: string): never;
}

/** transformers' defaults where config.json leaves a key out (DeepseekV3Config, Glm4MoeConfig). */
const DEFAULTS = {
  deepseek_v3: { routedScale: 2.5, groups: 8, topGroups: 4, firstDense: 3, shared: 1 },
  glm4_moe: { routedScale: 1, groups: 1, topGroups: 1, firstDense: 1, shared: 1 },
} as const;

/** Keys of the original DeepSeek releases that transformers reads no more but that must have the value it assumes. */
const FIXED: Record<string, unknown> = { scoring_func: 'sigmoid', topk_method: 'noaux_tc' };

/**
 * Fills `c` (already holding the common keys: sizes, heads, head_dim, RoPE θ, eps, token ids) with the family's keys.
 * `headDim` is c.headDim as head_dim or hidden_size / num_attention_heads gave it; `rotaryFactor` is
 * partial_rotary_factor (rope_parameters' or the top-level key), undefined when absent.
 */
export function deepseekFamilyFromHf(arch: DeepseekFamilyArch, r: KeyReader, c: ModelConfigInput, rotaryFactor: number | undefined): void {
  const d = DEFAULTS[arch];
  const need = (k: string, fallback?: number): number => {
    const v = r.int(k) ?? fallback;
    if (v === undefined || v < 1) r.fail(`"${k}" = ${JSON.stringify(r.raw[k])}: expected a positive integer`);
    return v;
  };
  for (const [k, want] of Object.entries(FIXED)) {
    const v = r.raw[k];
    if (v !== undefined && v !== null && v !== want) r.fail(`"${k}" = ${JSON.stringify(v)} is not supported (expected ${JSON.stringify(want)}, as transformers' ${arch} assumes)`);
  }
  const E = need('n_routed_experts');
  const I = need('moe_intermediate_size');
  Object.assign(c, {
    experts: E, expertWidth: I, router: 'sigmoid-group', renormalize: r.bool('norm_topk_prob') ?? true,
    groups: r.int('n_group') ?? d.groups, topGroups: r.int('topk_group') ?? d.topGroups, routedScale: r.num('routed_scaling_factor') ?? d.routedScale,
    // transformers computes no balance loss for these (aux_loss 0) and keeps e_score_correction_bias fixed
    auxLossCoef: 0, zLossCoef: 0, biasUpdateRate: 0,
  } satisfies ModelConfigInput);
  const shared = r.int('n_shared_experts') ?? d.shared;
  if (shared > 0) c.sharedWidth = shared * I;
  const layers = c.layers as number;
  const firstDense = Math.min(r.int('first_k_dense_replace') ?? d.firstDense, layers);
  if (firstDense > 0) {
    c.denseLayers = Array.from({ length: firstDense }, (_, l) => l);
    c.denseLayerWidth = need('intermediate_size');
  }
  const bias = r.bool('attention_bias') ?? false;
  if (arch === 'glm4_moe') {
    c.qkNorm = (r.bool('use_qk_norm') ?? false) ? 'head' : 'none';
    c.qkvBias = bias; // q/k/v only: o_proj has no bias
    const factor = rotaryFactor ?? 0.5;
    const D = c.headDim as number;
    const R = Math.trunc(D * factor); // transformers: int(head_dim * partial_rotary_factor)
    if (!(factor > 0 && factor <= 1) || R < 2 || R % 2 !== 0) r.fail(`partial_rotary_factor = ${JSON.stringify(factor)}: expected a factor in (0, 1] giving an even rotary dim (head_dim ${D} × ${factor} = ${D * factor})`);
    if (R !== D) c.rotaryDim = R;
    return;
  }
  // deepseek_v3: multi-head latent attention
  if (rotaryFactor !== undefined && rotaryFactor !== 1) r.fail(`partial_rotary_factor = ${JSON.stringify(rotaryFactor)} is not supported for ${arch} (expected 1: the RoPE part is qk_rope_head_dim)`);
  const nope = need('qk_nope_head_dim', 128);
  const rope = need('qk_rope_head_dim', 64);
  const qk = r.int('qk_head_dim');
  if (qk !== undefined && qk !== nope + rope) r.fail(`"qk_head_dim" = ${qk}: expected qk_nope_head_dim + qk_rope_head_dim = ${nope + rope}`);
  const heads = c.heads as number;
  const kv = r.int('num_key_value_heads');
  if (kv !== undefined && kv !== heads) r.fail(`"num_key_value_heads" = ${kv} is not supported for ${arch} (expected num_attention_heads = ${heads}: latent attention expands a key and value per head)`);
  const qLora = 'q_lora_rank' in r.raw ? r.int('q_lora_rank') : 1536; // null: a full q_proj (DeepSeek-V2-Lite)
  Object.assign(c, {
    attention: 'mla', kvHeads: heads, headDim: nope + rope, rotaryDim: rope, vHeadDim: need('v_head_dim', 128), kvLoraRank: need('kv_lora_rank', 512),
    ropeInterleaved: r.bool('rope_interleave') ?? true, qkvBias: bias, attnOutBias: bias,
  } satisfies ModelConfigInput);
  if (qLora !== undefined) {
    if (qLora < 1) r.fail(`"q_lora_rank" = ${qLora}: expected a positive integer or null`);
    c.qLoraRank = qLora;
  }
}

/** Writes the family's keys for `cfg` into `out` (a config.json object); throws naming what the layout cannot hold. */
export function deepseekFamilyToHf(arch: DeepseekFamilyArch, cfg: ModelConfig, out: Record<string, unknown>, fail: (message: string) => never): void {
  const where = `toHfConfig: ${arch}`;
  if (cfg.ffn !== 'moe' || cfg.router !== 'sigmoid-group') fail(`${where} needs ffn "moe" with router "sigmoid-group" (got ${cfg.ffn} / ${cfg.router})`);
  const k = cfg.denseLayers.length;
  if (cfg.denseLayers.some((l, i) => l !== i)) fail(`${where} has dense layers only as the first k (first_k_dense_replace); got denseLayers ${JSON.stringify(cfg.denseLayers)}`);
  if (cfg.sharedWidth % cfg.expertWidth !== 0) fail(`${where} shared experts are n_shared_experts × moe_intermediate_size wide; sharedWidth ${cfg.sharedWidth} is not a multiple of expertWidth ${cfg.expertWidth}`);
  if (cfg.sharedGate) fail(`${where} has no shared expert gate (sharedGate must be false)`);
  if (cfg.slidingWindow > 0 || cfg.clipQkv !== undefined || cfg.qkNorm === 'full') fail(`${where} has no sliding window, clip_qkv or full-width q/k norm`);
  Object.assign(out, {
    n_routed_experts: cfg.experts, moe_intermediate_size: cfg.expertWidth, n_shared_experts: cfg.sharedWidth / cfg.expertWidth,
    first_k_dense_replace: k, intermediate_size: cfg.denseLayerWidth ?? out.intermediate_size ?? cfg.expertWidth,
    n_group: cfg.groups, topk_group: cfg.topGroups ?? cfg.groups, routed_scaling_factor: cfg.routedScale, norm_topk_prob: cfg.renormalize,
  });
  for (const key of ['num_experts', 'num_local_experts', 'router_aux_loss_coef']) delete out[key];
  const rp = out.rope_parameters as Record<string, unknown>;
  if (arch === 'glm4_moe') {
    if (cfg.attention !== 'gqa' || cfg.ropeInterleaved || cfg.attnOutBias) fail(`${where} has attention "gqa" with rotate-half RoPE and no o_proj bias`);
    const factor = (cfg.rotaryDim ?? cfg.headDim) / cfg.headDim;
    Object.assign(out, { use_qk_norm: cfg.qkNorm === 'head', attention_bias: cfg.qkvBias, partial_rotary_factor: factor });
    rp.partial_rotary_factor = factor;
    return;
  }
  if (cfg.attention !== 'mla' || cfg.kvLoraRank === undefined) fail(`${where} needs attention "mla" with kvLoraRank`);
  if (cfg.qkNorm !== 'none' || cfg.qkvBias !== cfg.attnOutBias) fail(`${where} has no q/k norm, and one attention_bias for q_a/kv_a/o projections (qkvBias = attnOutBias)`);
  const rope = cfg.rotaryDim ?? cfg.headDim;
  Object.assign(out, {
    num_key_value_heads: cfg.heads, head_dim: rope, qk_rope_head_dim: rope, qk_nope_head_dim: cfg.headDim - rope, qk_head_dim: cfg.headDim,
    v_head_dim: cfg.vHeadDim ?? cfg.headDim, kv_lora_rank: cfg.kvLoraRank, q_lora_rank: cfg.qLoraRank ?? null,
    rope_interleave: cfg.ropeInterleaved, attention_bias: cfg.attnOutBias,
  });
  delete out.partial_rotary_factor;
}
