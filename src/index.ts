// moekit public API: tensors, ops, autograd, backends, layers, the MoE block, the MoE language model, evaluation, training utilities, safetensors.

export { Op, ALL_OPS, type OpParams, type TensorInfo, type QuantFormat, type BlockFormat, type ScaledFormat, type WeightFormat, type CompareOp, type AttentionParams } from './tensor/ops.js';
export { type DType, DTYPES, f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from './tensor/dtype.js';
export { ShapeError } from './tensor/shape.js';
export { Tensor } from './tensor/tensor.js';
export { Rng } from './tensor/random.js';
export { useBackend, assign, assignRange, getBackend, registerBackend, tidy, keep, dispose, noGrad, fromTyped } from './tensor/engine.js';
// setBackend and ready from the backend registry, which registers js, wasm and webgpu when loaded
export { setBackend, ready } from './backend/registry.js';
export * from './tensor/api.js';
export { backward, zeroGrad, variable, unbroadcast, GRAD } from './tensor/autograd.js';
export { gradcheck, type GradcheckInput, type GradcheckOptions, type GradcheckResult } from './backend/gradcheck.js';
export type { Backend, DataId } from './backend/backend.js';
export { JsBackend } from './backend/js/index.js';
export { JS_KERNELS } from './backend/js/kernels/index.js';
export { WasmBackend } from './backend/wasm/index.js';
export { WebGpuBackend, type WebGpuOptions, type GpuDevice, type GpuBuffer, type GpuComputePipeline } from './backend/webgpu/index.js';
export * from './nn/index.js';
export * from './moe/index.js';
export * from './cluster/index.js';
export { calibrate, compressBaseline, clusteredExpertParams, layerExperts, setLayerExperts, BASELINE_METHODS, type BaselineMethod, type BaselineResult, type Calibration, type LayerExperts } from './compress/baselines.js';
export { toClustered, type ToClusteredOptions, type ToClusteredResult } from './compress/convert.js';
export { HF_ARCHS, HfConfigError, fromHfConfig, toHfConfig, type HfArch, type HfModelConfig } from './models/hf/config.js';
export { loadHfWeights, hfTensors, HfWeightsError, type TensorSource, type ExpertLayout, type HfTensor } from './models/hf/weights.js';
export { DequantSource, dequantSource, parseQuantization, HfQuantError, QUANT_METHODS, type HfQuantization, type DequantOptions, type RawTensorSource } from './models/hf/quant.js';
export { e4m3ToF32, e5m2ToF32, e8m0ToF32, FP4_E2M1_VALUES } from './tensor/minifloat.js';
export { dequantMxfp4, dequantFp8Blocks } from './tensor/blockquant.js';
export { BatchEngine, AbortedError, type EngineOptions, type PrefillPolicy, type StepInfo, type SubmitOptions } from './serve/engine.js';
export { raggedStep, newKVPool, type StepSegment, type StepResult } from './serve/batch.js';
export { generate, generateStream, generateAsync, generateStreamAsync, checkGenerate, checkLogits, NonFiniteLogitsError, type GenerateOptions, type GenerateResult, type StopReason } from './serve/generate.js';
export { sizeProblem, allocationProblem, MAX_TENSOR_ELEMENTS, MAX_MODEL_PARAMS } from './models/sizes.js';
export { globalBalanceLoss } from './models/moe-lm.js';
export { ModelConfigSchema, parseConfig, denseBaseline, denseWidthOf, clusterGroupsOf, PRESETS, type ModelConfig, type ModelConfigInput, type PresetName } from './models/config.js';
export { MoELM, DecoderLayer, DecoderModel, moeConfigOf, clusteredConfigOf, type LMForwardOptions, type LMOutput, type LMLoss, type LayerStats, type ModelStats, type ParamCounts } from './models/moe-lm.js';
export * from './eval/index.js';
export { AdamW, clipGradNorm, clipGradNormAsync, type AdamWOptions } from './train/optim.js';
export { cosineLr, type CosineSchedule } from './train/schedule.js';
export { saveCheckpoint, loadCheckpoint, latestCheckpoint, type CheckpointState } from './train/checkpoint.js';
export { SafetensorsFile, SafetensorsError, encodeSafetensors, writeSafetensors, parseHeader, decodeF32, nonFinite, checkFinite, type StDType, type StTensorInfo, type StTensorIn } from './io/safetensors.js';
// routing traces in memory: statistics, analysis, lookahead prediction (docs/ROUTING.md; file formats in 'moekit/node')
export type { RoutingTrace } from './trace/types.js';
export { loadStats, expertsOf, layerCounts, activatedExperts, coactivation, transitions, sequenceStats, type LoadStats, type Activated, type SequenceStats } from './trace/stats.js';
export { analyse, reportJson, topPairs, DEFAULT_BATCHES, DEFAULT_HOT, type AnalyseOptions, type AnalyseReport, type LayerReport as AnalyseLayerReport } from './trace/analyse.js';
export { predictExperts, fitAdapter, type LayerRouter, type PredictScore, type PredictOptions } from './trace/predict.js';
// expert placement and replication, the expert-parallel simulator (docs/PLANNING.md; plan files in 'moekit/node')
export type { Plan } from './plan/types.js';
export { eplb, balancedPacking, replicateExperts, checkLoads, checkEplbOptions, type EplbOptions } from './plan/eplb.js';
export { gpuLoads, balance, identityPlacement, type Balance } from './plan/metrics.js';
export { craft, craftPlan, layerOptions, knapsackMin, planFromPhy2log, baseSlots, type CraftOptions, type CraftPlan, type LayerOption, type KnapsackItem } from './plan/craft.js';
export { preserveSlots, migrationCost, budgetedRebalance, type Migration } from './plan/migrate.js';
export { dynamicReplication, libraStep, windowLoads, scorePlacement, type DynamicResult } from './plan/dynamic.js';
export { simulate, layerTime, type SimulateOptions, type SimulateReport, type LayerReport as SimulateLayerReport, type LayerTime } from './plan/simulate.js';
export { dispatchLayout, topology, physicalIds, StepCounter, type DispatchLayout, type Topology, type StepCounts } from './plan/dispatch.js';
export { requests, prefillLoads, goodput, type Request, type PrefillReport, type GoodputOptions, type GoodputReport } from './plan/prefill.js';
export { parseHardware, H200, type Hardware, type ModelDims, type DispatchFormat } from './plan/hw.js';
export { sglangExpertLocation, sglangFlags, sglangLaunchArgs, sglangLoads, checkSglangExpertLocation, firstKDenseLayout, type SglangExpertLocation, type SglangLayout, type SglangFlags } from './plan/engines.js';
