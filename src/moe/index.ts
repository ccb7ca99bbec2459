// Mixture-of-Experts stages (route, dispatch, experts) and the MoE block.
export { route, imbalance, type RouteOptions, type RouteResult, type RouterKind } from './route.js';
export { indicesAndBins, permute, unpermute, offsetsTensor, type Bins, type BinsOptions } from './dispatch.js';
export { experts, type ExpertWeights } from './experts.js';
export { moe, MoEBlock, Experts, Router, type MoEConfig, type MoEWeights, type MoEOutput } from './block.js';
