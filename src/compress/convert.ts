// Post-training conversion of a standard MoE (e.g. a loaded Hugging Face checkpoint) into the clustered form:
// experts grouped by fused weight/activation similarity, each group a shared base plus rank-r residuals.
import { cosineMatrix, fusedSimilarity } from '../cluster/similarity.js';
import { clusterExperts } from '../cluster/kmeans.js';
import { parseConfig, plainExpertsProblem, type ModelConfigInput } from '../models/config.js';
import { MoELM } from '../models/moe-lm.js';
import { MoEBlock } from '../moe/block.js';
import { ClusteredMoEBlock } from '../moe/clustered.js';
import type { HostExperts } from '../moe/clustered-ffn.js';
import { tensor } from '../tensor/api.js';
import { noGrad } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import { layerExperts, type Calibration } from './baselines.js';
import { SELECTION_BIAS } from '../moe/names.js';

export interface ToClusteredOptions {
  /** G groups per MoE layer (must divide E) */
  groups: number;
  /** r: rank of each expert's residual factors, 1 <= r <= min(H, I) (r = min(H, I) is lossless and larger than the input) */
  rank: number;
  /** groups a token may use; default G (routing stays exactly the original top-K: p_group·p_expert is the softmax) */
  groupTopK?: number;
  /** α of S = α·S_param + (1−α)·S_task; default 0.7 (1 when there is no calibration) */
  alpha?: number;
  /** fused similarities below τ are pruned; default 0.1 */
  tau?: number;
  seed?: number;
  /** ModelConfig keys of the output that differ from the derived clustered config (e.g. a training config's
   *  clusterEvery, groupRouter); its sizes must match the source model */
  config?: Partial<ModelConfigInput>;
}

export interface ToClusteredResult {
  model: MoELM;
  /** per MoE layer: index, groups (original expert ids), mean intra-group similarity, relative error of the form */
  layers: { layer: number; groups: number[][]; intraSimilarity: number; relError: number }[];
  /** routed-expert parameters before and after */
  expertParamsBefore: number;
  expertParamsAfter: number;
}

/**
 * Converts every MoE layer of `model` (a standard MoE with softmax top-K routing) into a clustered layer. Experts
 * are clustered by the fused similarity of their flattened weights and, when `calib` is given, of the mean inputs
 * routed to them; within a group the base is the mean and each expert keeps a rank-r SVD of its residual. Router
 * rows move with their experts; everything else is copied. The input model is left as it was.
 */
export function toClustered(model: MoELM, calib: Calibration | null, o: ToClusteredOptions): ToClusteredResult {
  const cfg = model.cfg;
  if (cfg.ffn !== 'moe' || cfg.router !== 'softmax-topk') throw new Error(`toClustered: the model must be a softmax-topk MoE (ffn "moe"), got ffn "${cfg.ffn}", router "${cfg.router}"`);
  if (calib && calib.length !== cfg.layers) throw new Error(`toClustered: calibration for ${calib.length} layers, the model has ${cfg.layers}`);
  const gated = plainExpertsProblem(cfg);
  if (gated) throw new Error(`toClustered: ${gated}`);
  const G = o.groups;
  if (!Number.isInteger(G) || G < 1 || G > cfg.experts || cfg.experts % G !== 0) throw new RangeError(`toClustered: groups ${G} must divide the ${cfg.experts} experts (1 <= G <= ${cfg.experts})`);
  const maxRank = Math.min(cfg.hidden, cfg.expertWidth);
  if (!Number.isInteger(o.rank) || o.rank < 1 || o.rank > maxRank) {
    throw new RangeError(`toClustered: rank ${o.rank} must be an integer in [1, ${maxRank}]: an expert matrix is H x I = ${cfg.hidden} x ${cfg.expertWidth}, so its residual has rank at most min(H, I) = ${maxRank}`);
  }
  const kg = o.groupTopK ?? G;
  if (!Number.isInteger(kg) || kg < 1 || kg > G) throw new RangeError(`toClustered: groupTopK ${kg} must be an integer in [1, ${G}] (the groups per layer)`);
  const alpha = calib ? (o.alpha ?? 0.7) : 1;
  const out = new MoELM(parseConfig({
    ...cfg, ffn: 'clustered', clusterGroups: G, clusterRank: o.rank, groupTopK: kg, groupRouter: 'lse', balanceLoss: 'layer', clusterEvery: 0, ...o.config,
  }));
  for (const k of ['hidden', 'experts', 'expertWidth', 'layers', 'topK', 'vocabSize'] as const) {
    if (out.cfg[k] !== cfg[k]) throw new Error(`toClustered: config ${k} = ${out.cfg[k]} differs from the source model's ${cfg[k]}`);
  }
  const rng = new Rng(o.seed ?? 0);
  const blocks = new Map(out.clusteredBlocks());
  const layers: ToClusteredResult['layers'] = [];
  const src = new Map(model.parameters());
  let before = 0;
  for (const [name, p] of out.parameters()) {
    const m = /^model\.layers\.(\d+)\.mlp\.(gate\.weight|group_gate\.weight|experts\..*)$/.exec(name);
    if (m && blocks.has(Number(m[1]))) continue; // set per layer below
    const s = src.get(name);
    if (!s) throw new Error(`toClustered: internal: the source model has no parameter "${name}"`);
    noGrad(() => out.setTensor(name, tensor(Float32Array.from(s.dataSync()), p.shape)));
  }
  model.layers.forEach((layer, l) => {
    if (!(layer.mlp instanceof MoEBlock)) return;
    const b = blocks.get(l) as ClusteredMoEBlock;
    const ex = layerExperts(layer.mlp);
    const { E, H, I } = ex;
    before += 3 * E * H * I;
    const rows = Array.from({ length: E }, (_, e) => {
      const v = new Float32Array(3 * H * I);
      v.set(ex.gate.subarray(e * H * I, (e + 1) * H * I), 0);
      v.set(ex.up.subarray(e * H * I, (e + 1) * H * I), H * I);
      v.set(ex.down.subarray(e * H * I, (e + 1) * H * I), 2 * H * I);
      return v;
    });
    const sp = cosineMatrix(rows);
    const c = calib?.[l];
    const st = c ? cosineMatrix(Array.from({ length: E }, (_, e) => c.meanInputs.subarray(e * H, (e + 1) * H))) : sp;
    const S = fusedSimilarity(sp, st, E, alpha, o.tau ?? 0.1);
    const cl = clusterExperts(S, E, G, rng);
    const perm = cl.groups.flat(); // slot s holds original expert perm[s]
    const moved: HostExperts = { E, H, I, gate: new Float32Array(ex.gate.length), up: new Float32Array(ex.up.length), down: new Float32Array(ex.down.length) };
    for (const k of ['gate', 'up', 'down'] as const) perm.forEach((e, s) => moved[k].set(ex[k].subarray(e * H * I, (e + 1) * H * I), s * H * I));
    const relError = b.f32Experts('toClustered').compressFrom(moved, { seed: rng.nextU32() });
    const router = layer.mlp.gate.weight.dataSync(); // (E, H)
    const permuted = new Float32Array(E * H);
    perm.forEach((e, s) => permuted.set(router.subarray(e * H, (e + 1) * H), s * H));
    noGrad(() => out.setTensor(`model.layers.${l}.mlp.gate.weight`, tensor(permuted, [E, H])));
    const srcBias = layer.mlp.bias;
    if (srcBias && b.gate.bias) {
      // the selection bias moves with its expert
      noGrad(() => out.setTensor(`model.layers.${l}.mlp.gate.${SELECTION_BIAS}`, tensor(Float32Array.from(perm, (e) => srcBias[e]!), [E])));
    }
    if (b.groupGate) {
      // a separate group router starts as the mean of its members' router rows
      const M = E / G;
      const wg = new Float32Array(G * H);
      for (let g = 0; g < G; g++) for (let j = 0; j < M; j++) for (let h = 0; h < H; h++) wg[g * H + h]! += permuted[(g * M + j) * H + h]! / M;
      noGrad(() => out.setTensor(`model.layers.${l}.mlp.group_gate.weight`, tensor(wg, [G, H])));
    }
    b.ids = Int32Array.from(perm);
    layers.push({ layer: l, groups: cl.groups, intraSimilarity: cl.intraSimilarity, relError });
  });
  const after = [...blocks.values()].reduce((a, b) => a + b.f32Experts('toClustered').numParams(), 0);
  return { model: out, layers, expertParamsBefore: before, expertParamsAfter: after };
}
