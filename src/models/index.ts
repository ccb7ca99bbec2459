// Models: the flat ModelConfig (zod), presets, the dense baseline, and the MoE language model.
export { ModelConfigSchema, parseConfig, denseBaseline, denseWidthOf, tiny, small, base, PRESETS, type ModelConfig, type ModelConfigInput, type PresetName } from './config.js';
export { MoELM, DecoderLayer, DecoderModel, moeConfigOf, type LMForwardOptions, type LMOutput, type LMLoss, type LayerStats, type ModelStats, type ParamCounts } from './moe-lm.js';
