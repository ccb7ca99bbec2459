// YaRN RoPE (Peng et al. 2023, transformers' _compute_yarn_parameters): inverse frequencies blended between
// interpolation and extrapolation by a linear ramp, and the attention factor that scales cos/sin.

/** YaRN's parameters as config.json's rope_parameters give them (transformers' names in comments). */
export interface YarnParams {
  /** RoPE base θ (rope_theta) */
  theta: number;
  /** R: rotated dims of each head (head_dim · partial_rotary_factor); R/2 frequencies */
  dim: number;
  /** s: context extension factor (factor) */
  factor: number;
  /** the context length the model was pretrained with (original_max_position_embeddings) */
  originalMaxPos: number;
  /** high-frequency boundary in rotations (beta_fast); default 32 */
  betaFast?: number;
  /** low-frequency boundary in rotations (beta_slow); default 1 */
  betaSlow?: number;
  /** round the correction range outwards to whole dims (truncate); default true */
  truncate?: boolean;
  /** the cos/sin scale (attention_factor); default from mscale / mscale_all_dim, else 0.1·ln(factor) + 1 */
  attentionFactor?: number;
  /** DeepSeek's mscale: with mscaleAllDim the default attention factor is mscaleOf(s, mscale) / mscaleOf(s, mscaleAllDim) */
  mscale?: number;
  mscaleAllDim?: number;
}

/** YaRN's magnitude scale: 0.1·m·ln(s) + 1, or 1 when s ≤ 1 (transformers' get_mscale; DeepSeek's yarn_get_mscale). */
export function mscaleOf(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/** What rope needs: inverse frequencies (R/2) and the factor multiplying cos and sin. */
export interface RopeFrequencies {
  invFreq: Float32Array; // (R/2)
  /** multiplies cos and sin, i.e. the rotated dims of q and k; 1 for plain RoPE */
  attentionFactor: number;
}

/** Plain RoPE: θ^(−2i/R). */
export function defaultRope(theta: number, dim: number): RopeFrequencies {
  return { invFreq: Float32Array.from({ length: dim / 2 }, (_, i) => theta ** (-(2 * i) / dim)), attentionFactor: 1 };
}

/**
 * YaRN's inverse frequencies: dims that rotate more than betaFast times over originalMaxPos positions keep θ^(−2i/R)
 * (extrapolation), dims that rotate fewer than betaSlow times are divided by the factor (interpolation), and a linear
 * ramp between the two correction dims blends them. The attention factor defaults as `YarnParams.attentionFactor` says.
 */
export function yarnRope(p: YarnParams): RopeFrequencies {
  const { theta, dim, factor, originalMaxPos } = p;
  for (const [k, v] of [['theta', theta], ['factor', factor], ['originalMaxPos', originalMaxPos]] as const) {
    if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`yarn: ${k} = ${v}: expected a positive number`);
  }
  if (!Number.isInteger(dim) || dim < 2 || dim % 2 !== 0) throw new RangeError(`yarn: dim = ${dim}: expected an even integer ≥ 2`);
  const betaFast = p.betaFast ?? 32;
  const betaSlow = p.betaSlow ?? 1;
  let attentionFactor = p.attentionFactor;
  if (attentionFactor === undefined) {
    attentionFactor = p.mscale && p.mscaleAllDim ? mscaleOf(factor, p.mscale) / mscaleOf(factor, p.mscaleAllDim) : mscaleOf(factor);
  }
  // the dim whose wavelength fits `rotations` times into originalMaxPos
  const correctionDim = (rotations: number): number => (dim * Math.log(originalMaxPos / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let lo = correctionDim(betaFast);
  let hi = correctionDim(betaSlow);
  if (p.truncate ?? true) {
    lo = Math.floor(lo);
    hi = Math.ceil(hi);
  }
  lo = Math.max(lo, 0);
  hi = Math.min(hi, dim - 1);
  if (lo === hi) hi += 0.001; // transformers' guard against a zero-width ramp
  const invFreq = new Float32Array(dim / 2); // (R/2)
  for (let i = 0; i < dim / 2; i++) {
    const posFreq = theta ** ((2 * i) / dim);
    const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
    const extrapolation = 1 - ramp; // weight of the unscaled frequency
    invFreq[i] = (1 / (factor * posFreq)) * (1 - extrapolation) + (1 / posFreq) * extrapolation;
  }
  return { invFreq, attentionFactor };
}
