// Neural-network layers: Module tree, Linear, Embedding, RMSNorm, SwiGLU, Attention with KV cache, latent attention (MLA), the KV pool.
export { Module, ModuleList, initNormal, withoutInit } from './module.js';
export { Linear, Embedding, RMSNorm, type LinearOptions } from './layers.js';
export { SwiGLU, swiglu } from './swiglu.js';
export { Attention, KVCache, type AttentionConfig, type AttentionForwardOptions } from './attention.js';
export { MLAttention, type MlaConfig } from './mla.js';
export { KVPool, type KVShape, type KVPoolOptions, type PoolSegment } from './kv-pool.js';
