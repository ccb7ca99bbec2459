// Mixture-of-Experts: the pipeline (route -> plan -> permute -> experts -> unpermute -> shared) and its routing
// observer, the stages, the standard and clustered blocks, and the clustered experts' forms.
export { runMoE, RoutingRecorder, type Routing, type RoutingAux, type LayerStats, type RoutingEvent, type RoutingObserver, type RecordedRouting, type MoEStages, type MoEResult, type PipelineOptions, type SharedWeights } from './pipeline.js';
export { route, twoStageRoute, imbalance, loadStats, type RouteOptions, type RouteResult, type RouterKind, type TwoStageRoute } from './route.js';
export { indicesAndBins, permute, unpermute, offsetsTensor, type Bins, type BinsOptions } from './dispatch.js';
export { countSlots, binSlots, groupPairs, type SlotBins, type GroupPairs } from '../tensor/moe-plan.js';
export { experts, type ExpertWeights } from './experts.js';
export { moe, moeInference, moeStages, MoEBlock, Experts, Router, type MoEConfig, type MoEWeights, type MoEOutput, type MoEInference } from './block.js';
export {
  clusteredExperts, composedExperts, runClusteredExperts, clusteredCounts, f32Matmuls,
  type ClusteredExpertWeights, type ClusteredExpertsResult, type ClusteredExpertsForm, type ExpertMatmuls, type ExpertMatrix, type HostExperts,
} from './clustered-ffn.js';
export { ClusteredExperts } from './clustered-experts.js';
export {
  quantizeClustered, quantizedMatmuls, fusedInferenceWeights, factorGroupSize, QuantizedClusteredExperts, FusedClusteredExperts,
  type QuantizedClustered, type QuantFactor, type FusedClustered, type QuantizeOptions,
} from './clustered-quant.js';
export {
  clusteredMoe, clusteredInference, clusteredStages, ClusteredMoEBlock, type ClusteredInference,
  type ClusteredConfig, type ClusteredWeights, type ClusteredOutput, type RegroupEvent, type RegroupOptions,
} from './clustered.js';
