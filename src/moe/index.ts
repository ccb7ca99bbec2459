// Mixture-of-Experts stages (route, dispatch, experts) and the MoE block.
export { route, imbalance, loadStats, type RouteOptions, type RouteResult, type RouterKind } from './route.js';
export { indicesAndBins, permute, unpermute, offsetsTensor, countSlots, type Bins, type BinsOptions } from './dispatch.js';
export { experts, type ExpertWeights } from './experts.js';
export { moe, moeInference, MoEBlock, Experts, Router, type MoEConfig, type MoEWeights, type MoEOutput, type MoEInference } from './block.js';
export {
  clusteredMoe, clusteredInference, clusteredExperts, twoStageRoute, type ClusteredInference, ClusteredMoEBlock, ClusteredExperts,
  type ClusteredConfig, type ClusteredWeights, type ClusteredExpertWeights, type ClusteredOutput, type ClusteredExpertsResult,
  f32Matmuls, type ExpertMatmuls, type ExpertMatrix, type TwoStageRoute, type HostExperts, type RegroupEvent, type RegroupOptions,
} from './clustered.js';
