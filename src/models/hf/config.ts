// Hugging Face config.json (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, GLM-4.5, DeepSeek-V3 / Kimi-K2, ...; transformers v4 and v5 styles) <-> ModelConfig.
import { parseConfig, type ModelConfig, type ModelConfigInput } from '../config.js';
import { sizeProblem, type SizeFields, type SizeNames } from '../sizes.js';
import { HfQuantError, parseQuantization, type HfQuantization } from './quant.js';
import { deepseekFamilyFromHf, deepseekFamilyToHf, type DeepseekFamilyArch } from './deepseek.js';
import { GPT_OSS_DEFAULTS, gptOssFromHf, gptOssToHf } from './gpt-oss.js';
import { ropeFromHf, ropeScalingOf, ropeToHf } from './rope.js';

/** The Hugging Face architectures moekit loads, by `model_type`. */
export const HF_ARCHS = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'glm4_moe', 'deepseek_v3', 'gpt_oss'] as const;
export type HfArch = (typeof HF_ARCHS)[number];
/** Other `model_type`s read as one of HF_ARCHS (and written back under their own name): Kimi-K2 is DeepSeek-V3's layout. */
export const HF_ALIASES: Readonly<Record<string, HfArch>> = { kimi_k2: 'deepseek_v3' };
const isDeepseekFamily = (a: HfArch): a is DeepseekFamilyArch => a === 'glm4_moe' || a === 'deepseek_v3';

const CLASS_NAMES: Record<HfArch, string> = {
  mixtral: 'MixtralForCausalLM', qwen2_moe: 'Qwen2MoeForCausalLM', qwen3_moe: 'Qwen3MoeForCausalLM', olmoe: 'OlmoeForCausalLM',
  glm4_moe: 'Glm4MoeForCausalLM', deepseek_v3: 'DeepseekV3ForCausalLM', gpt_oss: 'GptOssForCausalLM',
};

export class HfConfigError extends Error {
  override name = 'HfConfigError';
}

/** A Hugging Face checkpoint's config, understood: moekit's ModelConfig plus what generation needs. */
export interface HfModelConfig {
  arch: HfArch;
  config: ModelConfig;
  /** the config.json object as read (kept for export) */
  raw: Record<string, unknown>;
  bosTokenId: number | null;
  /** end-of-sequence ids (config.json eos_token_id, a number or a list) */
  eosTokenIds: number[];
  /** quantization_config (MXFP4 or block FP8, dequantised at load time); null when the weights are not quantised */
  quantization: HfQuantization | null;
}

type Raw = Record<string, unknown>;

function get<T>(raw: Raw, key: string, check: (v: unknown) => v is T, expected: string, where: string): T | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (!check(v)) throw new HfConfigError(`${where}: "${key}" = ${JSON.stringify(v)}: expected ${expected}`);
  return v;
}
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isStr = (v: unknown): v is string => typeof v === 'string';
const isIntList = (v: unknown): v is number[] => Array.isArray(v) && v.every(isInt);
const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/** eos_token_id: a number, a list of numbers, or absent. */
export function tokenIdList(v: unknown): number[] {
  if (v === undefined || v === null) return [];
  if (isInt(v)) return [v];
  if (isIntList(v)) return v;
  throw new HfConfigError(`eos_token_id = ${JSON.stringify(v)}: expected a token id or a list of token ids`);
}

/**
 * Reads a config.json object. Accepts rope_theta (v4) and rope_parameters (v5) styles, head_dim, norm_topk_prob,
 * decoder_sparse_step / mlp_only_layers, q/k/v biases, shared experts, q/k norms, sliding windows and clip_qkv.
 * An unknown model_type, an unsupported activation or RoPE scaling is an error that names it.
 */
export function fromHfConfig(raw: unknown, where = 'config.json'): HfModelConfig {
  if (!isObj(raw)) throw new HfConfigError(`${where}: expected a JSON object`);
  const type = raw.model_type;
  const alias = typeof type === 'string' && Object.hasOwn(HF_ALIASES, type) ? HF_ALIASES[type] : undefined;
  if (!HF_ARCHS.includes(type as HfArch) && alias === undefined) {
    throw new HfConfigError(`${where}: model_type ${JSON.stringify(type)} is not supported (expected one of ${[...HF_ARCHS, ...Object.keys(HF_ALIASES)].join(', ')})`);
  }
  const arch = alias ?? (type as HfArch);
  const family = isDeepseekFamily(arch);
  const num = (k: string): number | undefined => get(raw, k, isNum, 'a number', where);
  const int = (k: string): number | undefined => get(raw, k, isInt, 'a non-negative integer', where);
  const bool = (k: string): boolean | undefined => get(raw, k, isBool, 'true or false', where);
  const need = (k: string): number => {
    const v = int(k);
    if (v === undefined) throw new HfConfigError(`${where}: "${k}" is missing (expected a positive integer)`);
    return v;
  };
  const act = get(raw, 'hidden_act', isStr, 'a string', where) ?? 'silu';
  if (act !== 'silu') throw new HfConfigError(`${where}: hidden_act "${act}" is not supported (expected "silu": SwiGLU experts)`);

  // RoPE: v5 rope_parameters {rope_theta, rope_type}; v4 rope_theta + rope_scaling
  const rp = get(raw, 'rope_parameters', isObj, 'an object', where);
  get(raw, 'rope_scaling', isObj, 'an object', where); // v4 scaling parameters: read by ropeFromHf below
  const prf = (rp?.partial_rotary_factor ?? raw.partial_rotary_factor) as unknown;
  if (prf !== undefined && prf !== null && (family ? !isNum(prf) : prf !== 1)) throw new HfConfigError(`${where}: partial_rotary_factor ${JSON.stringify(prf)} is not supported (expected 1)`);
  const theta = rp?.rope_theta ?? raw.rope_theta ?? 10000;
  if (!isNum(theta) || theta <= 0) throw new HfConfigError(`${where}: rope_theta = ${JSON.stringify(theta)}: expected a positive number`);

  const hidden = need('hidden_size');
  const heads = need('num_attention_heads');
  const layers = need('num_hidden_layers');
  const headDim = int('head_dim') ?? hidden / heads;
  // deepseek_v3's head_dim is qk_rope_head_dim; its q/k head dim comes from qk_nope_head_dim + qk_rope_head_dim
  if (!Number.isInteger(headDim) && arch !== 'deepseek_v3') throw new HfConfigError(`${where}: hidden_size ${hidden} / num_attention_heads ${heads} is not an integer and head_dim is not given`);
  const experts = family ? int('n_routed_experts') : (int('num_experts') ?? int('num_local_experts'));
  if (experts === undefined) throw new HfConfigError(`${where}: ${family ? '"n_routed_experts"' : '"num_experts" (or "num_local_experts")'} is missing`);
  const c: ModelConfigInput = {
    vocabSize: need('vocab_size'), hidden, layers, heads, kvHeads: int('num_key_value_heads') ?? heads, headDim,
    ropeTheta: theta, normEps: num('rms_norm_eps') ?? 1e-6, maxSeqLen: int('max_position_embeddings') ?? 4096,
    ffn: 'moe', experts, topK: need('num_experts_per_tok'), router: 'softmax-topk',
    auxLossCoef: num('router_aux_loss_coef') ?? 0.001, zLossCoef: 0, biasUpdateRate: 0, balanceLoss: 'global',
    tieEmbeddings: bool('tie_word_embeddings') ?? false, initStd: num('initializer_range') ?? 0.02,
  };
  try {
    // scaled RoPE ("yarn"); any other type is an error naming it. gpt_oss defaults to YaRN when config.json has none
    Object.assign(c, ropeFromHf(ropeScalingOf(raw, arch === 'gpt_oss' ? { ...GPT_OSS_DEFAULTS.rope } : null), c.maxSeqLen as number, where));
  } catch (e) {
    throw new HfConfigError((e as Error).message);
  }
  const pad = int('pad_token_id');
  if (pad !== undefined && pad < (c.vocabSize as number)) c.padTokenId = pad;
  const sparseLayers = (): void => {
    const step = int('decoder_sparse_step') ?? 1;
    const only = get(raw, 'mlp_only_layers', isIntList, 'a list of layer indices', where) ?? [];
    const dense: number[] = [];
    for (let l = 0; l < layers; l++) if (only.includes(l) || step === 0 || (l + 1) % step !== 0) dense.push(l);
    if (dense.length > 0) {
      c.denseLayers = dense;
      c.denseLayerWidth = need('intermediate_size');
    }
  };
  const qwenWindow = (): void => {
    if (!(bool('use_sliding_window') ?? false)) return;
    const w = int('sliding_window') ?? 0;
    if (w === 0) return;
    const types = get(raw, 'layer_types', isStrList, 'a list of strings', where);
    const maxWindow = int('max_window_layers') ?? layers;
    c.slidingWindow = w;
    c.slidingLayers = Array.from({ length: layers }, (_, l) => l).filter((l) => (types ? types[l] === 'sliding_attention' : l >= maxWindow));
  };
  switch (arch) {
    case 'mixtral':
      c.expertWidth = need('intermediate_size');
      c.renormalize = true;
      c.slidingWindow = int('sliding_window') ?? 0;
      break;
    case 'qwen2_moe': {
      c.expertWidth = need('moe_intermediate_size');
      c.renormalize = bool('norm_topk_prob') ?? false;
      c.qkvBias = bool('qkv_bias') ?? true;
      const shared = int('shared_expert_intermediate_size') ?? 0;
      if (shared > 0) {
        c.sharedWidth = shared;
        c.sharedGate = true;
      }
      sparseLayers();
      qwenWindow();
      break;
    }
    case 'qwen3_moe':
      c.expertWidth = need('moe_intermediate_size');
      c.renormalize = bool('norm_topk_prob') ?? false;
      c.qkNorm = 'head';
      c.qkvBias = c.attnOutBias = bool('attention_bias') ?? false;
      sparseLayers();
      qwenWindow();
      break;
    case 'olmoe': {
      c.expertWidth = need('intermediate_size');
      c.renormalize = bool('norm_topk_prob') ?? false;
      c.qkNorm = 'full';
      c.qkvBias = c.attnOutBias = bool('attention_bias') ?? false;
      const clip = num('clip_qkv');
      if (clip !== undefined) c.clipQkv = clip;
      break;
    }
    case 'gpt_oss': {
      const fail = (message: string): never => {
        throw new HfConfigError(`${where}: ${message}`);
      };
      gptOssFromHf({ where, raw, int, num, bool, fail }, c, { ropeTheta: (rp?.rope_theta ?? raw.rope_theta) != null, normEps: raw.rms_norm_eps != null });
      break;
    }
    case 'glm4_moe':
    case 'deepseek_v3': {
      const str = (k: string): string | undefined => get(raw, k, isStr, 'a string', where);
      const fail = (message: string): never => {
        throw new HfConfigError(`${where}: ${message}`);
      };
      deepseekFamilyFromHf(arch, { where, raw, int, num, bool, str, fail }, c, prf === undefined || prf === null ? undefined : (prf as number));
      break;
    }
  }
  const size = sizeProblem(c as SizeFields, hfSizeNames(raw, arch));
  if (size) throw new HfConfigError(`${where}: ${size}`);
  let config: ModelConfig;
  try {
    config = parseConfig(c);
  } catch (e) {
    throw new HfConfigError(`${where}: ${(e as Error).message}`);
  }
  let quantization: HfQuantization | null;
  try {
    quantization = parseQuantization(raw.quantization_config, where);
  } catch (e) {
    throw e instanceof HfQuantError ? new HfConfigError(e.message) : e;
  }
  return { arch, config, raw, bosTokenId: int('bos_token_id') ?? null, eosTokenIds: tokenIdList(raw.eos_token_id), quantization };
}

/** config.json's key for each size of moekit's config (so size errors name the key the user wrote). */
export function hfSizeNames(raw: Raw, arch: HfArch): SizeNames {
  const qwen = arch === 'qwen2_moe' || arch === 'qwen3_moe';
  if (isDeepseekFamily(arch)) {
    return {
      vocabSize: 'vocab_size', hidden: 'hidden_size', layers: 'num_hidden_layers', heads: 'num_attention_heads', kvHeads: arch === 'deepseek_v3' || raw.num_key_value_heads == null ? 'num_attention_heads' : 'num_key_value_heads',
      headDim: arch === 'deepseek_v3' ? 'qk_nope_head_dim + qk_rope_head_dim' : raw.head_dim != null ? 'head_dim' : 'hidden_size / num_attention_heads', maxSeqLen: 'max_position_embeddings',
      experts: 'n_routed_experts', expertWidth: 'moe_intermediate_size', sharedWidth: 'n_shared_experts × moe_intermediate_size', denseWidth: 'intermediate_size', denseLayerWidth: 'intermediate_size',
    };
  }
  return {
    vocabSize: 'vocab_size', hidden: 'hidden_size', layers: 'num_hidden_layers', heads: 'num_attention_heads', kvHeads: raw.num_key_value_heads != null ? 'num_key_value_heads' : 'num_attention_heads',
    headDim: raw.head_dim != null ? 'head_dim' : 'hidden_size / num_attention_heads', maxSeqLen: 'max_position_embeddings',
    experts: raw.num_experts != null ? 'num_experts' : 'num_local_experts', expertWidth: qwen ? 'moe_intermediate_size' : 'intermediate_size',
    sharedWidth: 'shared_expert_intermediate_size', denseWidth: 'intermediate_size', denseLayerWidth: 'intermediate_size',
  };
}

/**
 * A config.json object for a ModelConfig in an architecture's layout (v5 style: rope_parameters). `base` (the
 * original config.json) keeps keys moekit does not model (token ids, version, ...).
 */
export function toHfConfig(cfg: ModelConfig, arch: HfArch, base: Raw = {}): Raw {
  const out: Raw = { ...base };
  const family = isDeepseekFamily(arch);
  if (!family && (cfg.ffn !== 'moe' || cfg.router !== 'softmax-topk')) throw new HfConfigError(`toHfConfig: ${arch} needs ffn "moe" with router "softmax-topk" (got ${cfg.ffn} / ${cfg.router})`);
  if (!family && (cfg.attention !== 'gqa' || (cfg.rotaryDim ?? cfg.headDim) !== cfg.headDim || cfg.ropeInterleaved)) throw new HfConfigError(`toHfConfig: ${arch} needs attention "gqa" rotating whole heads with rotate-half RoPE (got ${cfg.attention}, rotaryDim ${cfg.rotaryDim ?? cfg.headDim} of ${cfg.headDim}, ropeInterleaved ${cfg.ropeInterleaved})`);
  // an alias (kimi_k2) is written back under the name it was read with
  const modelType = typeof base.model_type === 'string' && HF_ALIASES[base.model_type] === arch ? base.model_type : arch;
  Object.assign(out, {
    architectures: [CLASS_NAMES[arch]], model_type: modelType, hidden_act: 'silu', dtype: 'float32',
    vocab_size: cfg.vocabSize, hidden_size: cfg.hidden, num_hidden_layers: cfg.layers, num_attention_heads: cfg.heads,
    num_key_value_heads: cfg.kvHeads, head_dim: cfg.headDim, max_position_embeddings: cfg.maxSeqLen, rms_norm_eps: cfg.normEps,
    rope_parameters: ropeToHf(cfg), tie_word_embeddings: cfg.tieEmbeddings,
    num_experts_per_tok: cfg.topK, router_aux_loss_coef: cfg.auxLossCoef, initializer_range: cfg.initStd,
    pad_token_id: cfg.padTokenId ?? null,
  });
  delete out.rope_theta;
  delete out.rope_scaling;
  delete out.quantization_config; // moekit writes dequantised weights
  const dense = cfg.denseLayers;
  const requireRenorm = (want: boolean): void => {
    if (cfg.renormalize !== want) throw new HfConfigError(`toHfConfig: ${arch} always has renormalize = ${want}`);
  };
  switch (arch) {
    case 'mixtral':
      requireRenorm(true);
      if (dense.length > 0 || cfg.sharedWidth > 0 || cfg.qkNorm !== 'none' || cfg.qkvBias) throw new HfConfigError('toHfConfig: mixtral has no dense layers, shared experts, q/k norms or q/k/v biases');
      Object.assign(out, { num_local_experts: cfg.experts, intermediate_size: cfg.expertWidth, sliding_window: cfg.slidingWindow || null });
      break;
    case 'qwen2_moe':
    case 'qwen3_moe': {
      Object.assign(out, {
        num_experts: cfg.experts, moe_intermediate_size: cfg.expertWidth, norm_topk_prob: cfg.renormalize,
        decoder_sparse_step: 1, mlp_only_layers: [...dense], intermediate_size: cfg.denseLayerWidth ?? out.intermediate_size ?? cfg.expertWidth,
      });
      delete out.num_local_experts;
      if (arch === 'qwen2_moe') Object.assign(out, { qkv_bias: cfg.qkvBias, shared_expert_intermediate_size: cfg.sharedWidth });
      else out.attention_bias = cfg.qkvBias;
      if (cfg.slidingWindow > 0) {
        const sl = cfg.slidingLayers ?? Array.from({ length: cfg.layers }, (_, l) => l);
        Object.assign(out, { use_sliding_window: true, sliding_window: cfg.slidingWindow, layer_types: Array.from({ length: cfg.layers }, (_, l) => (sl.includes(l) ? 'sliding_attention' : 'full_attention')) });
      } else if (out.use_sliding_window) out.use_sliding_window = false;
      break;
    }
    case 'olmoe':
      Object.assign(out, { num_experts: cfg.experts, intermediate_size: cfg.expertWidth, norm_topk_prob: cfg.renormalize, attention_bias: cfg.qkvBias, clip_qkv: cfg.clipQkv ?? null });
      break;
    case 'gpt_oss':
      gptOssToHf(cfg, out, (message) => {
        throw new HfConfigError(message);
      });
      break;
    case 'glm4_moe':
    case 'deepseek_v3':
      deepseekFamilyToHf(arch, cfg, out, (message) => {
        throw new HfConfigError(message);
      });
      break;
  }
  return out;
}
