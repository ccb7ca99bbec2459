// Models: the flat ModelConfig (zod), presets, the dense baseline, and the MoE language model.
export { ModelConfigSchema, parseConfig, denseBaseline, denseWidthOf, clusterGroupsOf, tiny, small, base, PRESETS, type ModelConfig, type ModelConfigInput, type PresetName } from './config.js';
export { MoELM, DecoderLayer, DecoderModel, moeConfigOf, clusteredConfigOf, type LMForwardOptions, type LMOutput, type LMLoss, type LayerStats, type ModelStats, type ParamCounts } from './moe-lm.js';
