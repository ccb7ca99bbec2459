// config.json's RoPE scaling (v5 rope_parameters, v4 rope_scaling) <-> ModelConfig's rope* keys: "default" and "yarn".
import type { ModelConfig, ModelConfigInput } from '../config.js';

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The RoPE types moekit runs (transformers' ROPE_INIT_FUNCTIONS keys, plus "default"). */
export const HF_ROPE_TYPES = ['default', 'yarn'] as const;

/** The scaling parameters of a config.json: v5 rope_parameters, else v4 rope_scaling, else `fallback`; null when none. */
export function ropeScalingOf(raw: Raw, fallback: Raw | null = null): Raw | null {
  if (isObj(raw.rope_parameters)) return raw.rope_parameters;
  if (isObj(raw.rope_scaling)) return raw.rope_scaling;
  return fallback;
}

/**
 * ModelConfig's rope* keys from a config.json's scaling parameters (`scaling`, see ropeScalingOf); `maxPos` is
 * max_position_embeddings. A RoPE type other than HF_ROPE_TYPES is an error naming it. YaRN as transformers'
 * _compute_yarn_parameters reads it: factor (absent: max_position_embeddings / original_max_position_embeddings),
 * original_max_position_embeddings (absent: max_position_embeddings), beta_fast / beta_slow (absent or 0: 32 / 1),
 * truncate (default true), attention_factor, mscale, mscale_all_dim.
 */
export function ropeFromHf(scaling: Raw | null, maxPos: number, where: string): Partial<ModelConfigInput> {
  const type = scaling?.rope_type ?? scaling?.type ?? 'default';
  if (type === 'default') return { ropeType: 'default' };
  if (type !== 'yarn') throw new Error(`${where}: rope type ${JSON.stringify(type)} is not supported (expected ${HF_ROPE_TYPES.map((t) => `"${t}"`).join(' or ')})`);
  const s = scaling!;
  const num = (key: string, positive = true): number | undefined => {
    const v = s[key];
    if (v === undefined || v === null) return undefined;
    if (!isNum(v) || (positive && v <= 0)) throw new Error(`${where}: rope parameter "${key}" = ${JSON.stringify(v)}: expected a ${positive ? 'positive ' : ''}number`);
    return v;
  };
  const orig = num('original_max_position_embeddings') ?? maxPos;
  if (!Number.isSafeInteger(orig)) throw new Error(`${where}: rope parameter "original_max_position_embeddings" = ${JSON.stringify(orig)}: expected a positive integer`);
  const truncate = s.truncate ?? true;
  if (typeof truncate !== 'boolean') throw new Error(`${where}: rope parameter "truncate" = ${JSON.stringify(truncate)}: expected true or false`);
  const out: Partial<ModelConfigInput> = {
    ropeType: 'yarn', ropeFactor: num('factor') ?? maxPos / orig, ropeOriginalMaxPos: orig,
    ropeBetaFast: num('beta_fast') || 32, ropeBetaSlow: num('beta_slow') || 1, ropeTruncate: truncate,
  };
  const af = num('attention_factor');
  if (af !== undefined) out.ropeAttentionFactor = af;
  const m = num('mscale', false);
  if (m !== undefined) out.ropeMscale = m;
  const mad = num('mscale_all_dim', false);
  if (mad !== undefined) out.ropeMscaleAllDim = mad;
  return out;
}

/** config.json's v5 rope_parameters for a config (keys in transformers' sorted order). */
export function ropeToHf(cfg: ModelConfig): Raw {
  if (cfg.ropeType === 'default') return { rope_theta: cfg.ropeTheta, rope_type: 'default' };
  const out: Raw = {};
  if (cfg.ropeAttentionFactor !== undefined) out.attention_factor = cfg.ropeAttentionFactor;
  Object.assign(out, { beta_fast: cfg.ropeBetaFast, beta_slow: cfg.ropeBetaSlow, factor: cfg.ropeFactor });
  if (cfg.ropeMscale !== undefined) out.mscale = cfg.ropeMscale;
  if (cfg.ropeMscaleAllDim !== undefined) out.mscale_all_dim = cfg.ropeMscaleAllDim;
  Object.assign(out, { original_max_position_embeddings: cfg.ropeOriginalMaxPos ?? cfg.maxSeqLen, rope_theta: cfg.ropeTheta, rope_type: 'yarn', truncate: cfg.ropeTruncate });
  return out;
}
