// The RoPE frequencies of a ModelConfig: plain θ^(−2i/R), or YaRN's (ropeType 'yarn') with its attention factor.
import { defaultRope, yarnRope, type RopeFrequencies, type YarnParams } from '../nn/yarn.js';
import type { ModelConfig } from './config.js';

/** YaRN's parameters of a config (ropeType 'yarn'), over R = `dim` rotated dims (default rotaryDim, else headDim). */
export function yarnParamsOf(cfg: ModelConfig, dim = cfg.rotaryDim ?? cfg.headDim): YarnParams {
  const p: YarnParams = {
    theta: cfg.ropeTheta, dim, factor: cfg.ropeFactor, originalMaxPos: cfg.ropeOriginalMaxPos ?? cfg.maxSeqLen,
    betaFast: cfg.ropeBetaFast, betaSlow: cfg.ropeBetaSlow, truncate: cfg.ropeTruncate,
  };
  if (cfg.ropeAttentionFactor !== undefined) p.attentionFactor = cfg.ropeAttentionFactor;
  if (cfg.ropeMscale !== undefined) p.mscale = cfg.ropeMscale;
  if (cfg.ropeMscaleAllDim !== undefined) p.mscaleAllDim = cfg.ropeMscaleAllDim;
  return p;
}

/** Inverse frequencies (R/2) and cos/sin factor of a config's RoPE, over R = `dim` rotated dims (default rotaryDim, else headDim). */
export function ropeFrequenciesOf(cfg: ModelConfig, dim = cfg.rotaryDim ?? cfg.headDim): RopeFrequencies {
  return cfg.ropeType === 'yarn' ? yarnRope(yarnParamsOf(cfg, dim)) : defaultRope(cfg.ropeTheta, dim);
}
