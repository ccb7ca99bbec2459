// The clustered MoE block (docs/CLUSTERED.md): E experts in G groups of M = E/G; inside a group each expert matrix
// is a shared base plus a rank-r residual A·B; tokens are routed in two stages (group, then expert); x·base is
// computed once per token and group and only the low-rank terms run per expert. No expert matrix is materialised.
// This file: the config, the block's pipeline stages (two-stage route; experts in any form), regrouping applied.
import { Linear } from '../nn/layers.js';
import { Module, initNormal } from '../nn/module.js';
import { SwiGLU } from '../nn/swiglu.js';
import { add, backendSupports, gather, matmul, mul, needsGrad, routeTopK, tensor } from '../tensor/api.js';
import { Op } from '../tensor/ops.js';
import { assign, noGrad, tidy } from '../tensor/engine.js';
import type { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { CentroidEma, ParamSimilarityCache, fusedSimilarity } from '../cluster/similarity.js';
import { planRegroup } from '../cluster/regroup.js';
import { Router } from './block.js';
import { runClusteredExperts, type ClusteredExpertsForm, type ClusteredExpertWeights, type ExpertMatmuls, type HostExperts } from './clustered-ffn.js';
import { ClusteredExperts } from './clustered-experts.js';
import { runMoE, type LayerStats, type MoEResult, type MoEStages, type PipelineOptions, type Routing, type RoutingObserver } from './pipeline.js';
import { twoStageRoute, type TwoStageRoute } from './route.js';

export interface ClusteredConfig {
  /** H: model width */
  hidden: number;
  /** E: routed experts */
  experts: number;
  /** K: experts per token */
  topK: number;
  /** I: width of each routed expert */
  expertWidth: number;
  /** G: expert groups (must divide E) */
  groups: number;
  /** r: rank of each expert's residual factors */
  rank: number;
  /** k_g: groups chosen per token in stage 1; default 1 */
  groupTopK?: number;
  /** stage-1 scores: 'lse' (log Σ exp of member logits; default) or 'linear' (a separate (G, H) group router) */
  groupRouter?: 'lse' | 'linear';
  /** renormalise the K weights p_group·p_expert; default true */
  renormalize?: boolean;
  sharedWidth?: number;
  sharedGate?: boolean;
  /** expert-level Switch balance loss weight; default 1e-2 */
  auxLossCoef?: number;
  /** group-level balance loss KL(mean p_group ‖ uniform) weight; default 1e-2 */
  groupAuxCoef?: number;
  /** router z-loss weight; default 1e-3 */
  zLossCoef?: number;
  /** keep a selection bias per expert (aux-loss-free balancing at both stages, `updateBias`); default false */
  selectionBias?: boolean;
}

export interface ClusteredWeights {
  router: Tensor; // (E, H)
  bias?: Tensor; // (E) selection-only score bias
  groupRouter?: Tensor; // (G, H) with groupRouter 'linear'
  experts: ClusteredExpertWeights;
  shared?: { gate: Tensor; up: Tensor; down: Tensor };
  sharedGate?: Tensor; // (1, H)
}

/** A clustered layer's stats always count (token, group) pairs. */
export type ClusteredStats = LayerStats & { tokensPerGroup: number[]; crossGroup: number };

export interface ClusteredOutput {
  y: Tensor;
  aux: { loss: Tensor; switch: Tensor; group: Tensor; z: Tensor };
  stats: ClusteredStats;
  routing: TwoStageRoute;
}

/** What an inference forward (no balance losses) returns. */
export interface ClusteredInference {
  y: Tensor;
  /** the counts are empty (crossGroup 0) on backends that read only asynchronously (webgpu) */
  stats: ClusteredStats;
  /** (T, K) i32 chosen experts */
  experts: Tensor;
  /** (T, E) router logits */
  logits: Tensor;
}

/**
 * The clustered pipeline stages. route: two-stage group -> expert routing with its losses; without losses and with
 * 'lse' group scores, the fused `routeTopK` over groups where the backend has it (the same choice). experts: the
 * experts module's `run`, in whatever form it is (f32, quantised, fused, offloaded).
 */
export function clusteredStages(w: Omit<ClusteredWeights, 'experts'>, ex: Pick<ClusteredExpertsForm, 'run'>, cfg: ClusteredConfig, opts: { inputSums?: boolean } = {}): MoEStages<Routing> {
  const st: MoEStages<Routing> = {
    hidden: cfg.hidden,
    route: (xt, withAux) => {
      const logits = matmul(xt, w.router, { transB: true }); // (T, E)
      const renormalize = cfg.renormalize ?? true;
      const kg = cfg.groupTopK ?? 1;
      if (!withAux && !w.groupRouter && xt.shape[0]! > 0 && backendSupports(Op.RouteTopK) && !needsGrad(xt, w.router)) {
        const r = routeTopK(logits, cfg.topK, { groups: cfg.groups, topGroups: kg, renormalize, ...(w.bias ? { bias: w.bias } : {}) });
        return { routing: { logits, experts: r.ids, weights: r.weights }, aux: null };
      }
      const groupLogits = w.groupRouter ? matmul(xt, w.groupRouter, { transB: true }) : null; // (T, G)
      const r = twoStageRoute(logits, groupLogits, { groups: cfg.groups, K: cfg.topK, groupTopK: kg, renormalize, ...(w.bias ? { bias: w.bias } : {}) });
      if (!withAux) return { routing: r, aux: null };
      const loss = add(add(mul(r.aux.switch, cfg.auxLossCoef ?? 1e-2), mul(r.aux.group, cfg.groupAuxCoef ?? 1e-2)), mul(r.aux.z, cfg.zLossCoef ?? 1e-3));
      return { routing: r, aux: { loss, ...r.aux } };
    },
    experts: (xt, r) => {
      const o = ex.run(xt, r.experts, r.weights, opts);
      const stats: LayerStats = { tokensPerExpert: o.tokensPerExpert, dropped: 0, tokensPerGroup: o.tokensPerGroup, crossGroup: o.crossGroup };
      if (o.inputSums) stats.inputSums = o.inputSums;
      return { y: o.y, stats };
    },
  };
  if (w.shared) st.shared = { ...w.shared, ...(w.sharedGate ? { sharedGate: w.sharedGate } : {}) };
  return st;
}

/** Experts stage on weights `w` (and a matmul form, when given). */
const weightsForm = (w: ClusteredExpertWeights, matmuls?: ExpertMatmuls): Pick<ClusteredExpertsForm, 'run'> => ({
  run: (xt, ids, weights, o = {}) => runClusteredExperts(xt, ids, weights, w, { ...o, ...(matmuls ? { matmuls } : {}) }),
});

/** The clustered block as a function of its weights, with its losses. */
export function clusteredMoe(x: Tensor, w: ClusteredWeights, cfg: ClusteredConfig, opts: { inputSums?: boolean; matmuls?: ExpertMatmuls; observer?: RoutingObserver; layer?: number } = {}): ClusteredOutput {
  const o = runMoE('clustered MoE', x, clusteredStages(w, weightsForm(w.experts, opts.matmuls), cfg, opts), { aux: true, ...observed(opts) });
  return { y: o.y, aux: o.aux as ClusteredOutput['aux'], stats: o.stats as ClusteredOutput['stats'], routing: o.routing as TwoStageRoute };
}

/**
 * The clustered block for inference: no balance losses, no gradient. With 'lse' group scores on a backend with the
 * fused kernels it is three ops (router matmul, `routeTopK` over groups, `clusteredFfn`) plus the shared expert.
 */
export function clusteredInference(x: Tensor, w: ClusteredWeights, cfg: ClusteredConfig, opts: { inputSums?: boolean; matmuls?: ExpertMatmuls; observer?: RoutingObserver; layer?: number } = {}): ClusteredInference {
  const o = runMoE('clustered MoE', x, clusteredStages(w, weightsForm(w.experts, opts.matmuls), cfg, opts), { aux: false, ...observed(opts) });
  return { y: o.y, stats: o.stats as ClusteredStats, experts: o.routing.experts, logits: o.routing.logits };
}

const observed = (o: { observer?: RoutingObserver; layer?: number }): { observer?: RoutingObserver; layer?: number } => ({
  ...(o.observer ? { observer: o.observer } : {}), ...(o.layer !== undefined ? { layer: o.layer } : {}),
});

/** One regrouping of one layer. */
export interface RegroupEvent {
  /** members of each new group, as original expert ids (the ids experts had when the block was built) */
  membership: number[][];
  /** mean fused similarity of expert pairs inside a group */
  intraSimilarity: number;
  /** groups whose members changed (their bases and factors were re-initialised) */
  changedGroups: number;
  /** relative Frobenius error of the re-initialised experts' new form against their previous effective weights */
  relError: number;
}

export interface RegroupOptions {
  alpha: number;
  tau: number;
  rng: Rng;
}

/** Clustered MoE block. Names: gate.weight (E, H), group_gate.weight (G, H) ('linear' only), experts.*, shared_expert.*. */
export class ClusteredMoEBlock extends Module {
  readonly cfg: ClusteredConfig;
  readonly gate: Router;
  readonly groupGate: Linear | null;
  readonly sharedExpert: SwiGLU | null;
  readonly sharedExpertGate: Linear | null;
  /** slot s holds original expert ids[s] (regrouping moves experts between slots) */
  ids: Int32Array;
  /** activation centroids (EMA of routed inputs), updated by forwards while `tracking` */
  readonly centroids: CentroidEma;
  readonly paramSimilarity: ParamSimilarityCache;
  tracking = false;
  #experts: ClusteredExpertsForm & Module;

  constructor(cfg: ClusteredConfig, rng: Rng, opts: { beta?: number; eps?: number } = {}) {
    super();
    const { hidden: H, experts: E, topK: K, expertWidth: I, groups: G, rank: r } = cfg;
    for (const [n, v] of [['hidden', H], ['experts', E], ['topK', K], ['expertWidth', I], ['groups', G], ['rank', r]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`ClusteredMoEBlock: ${n} = ${v} must be a positive integer`);
    }
    if (E % G !== 0) throw new Error(`ClusteredMoEBlock: groups ${G} must divide experts ${E}`);
    const kg = cfg.groupTopK ?? 1;
    if (kg > G || kg * (E / G) < K) throw new Error(`ClusteredMoEBlock: groupTopK ${kg} must be <= groups ${G} and hold topK ${K} experts (${E / G} per group)`);
    this.cfg = { ...cfg };
    this.gate = this.addModule('gate', new Router(E, H, rng, cfg.selectionBias ?? false));
    this.groupGate = cfg.groupRouter === 'linear' ? this.addModule('group_gate', new Linear(H, G, rng)) : null;
    const ex = this.addModule('experts', new ClusteredExperts(G, E, H, I, r));
    this.#experts = ex;
    const S = cfg.sharedWidth ?? 0;
    this.sharedExpert = S > 0 ? this.addModule('shared_expert', new SwiGLU(H, S, rng)) : null;
    this.sharedExpertGate = S > 0 && cfg.sharedGate ? this.addModule('shared_expert_gate', new Linear(H, 1, rng)) : null;
    this.ids = Int32Array.from({ length: E }, (_, i) => i);
    this.centroids = new CentroidEma(E, H, opts.beta ?? 0.05);
    this.paramSimilarity = new ParamSimilarityCache(opts.eps ?? 1e-3);
    // initialisation: random full experts (as a standard MoE), contiguous groups, then base = mean + rank-r SVD residuals
    const seed = rng.nextU32();
    const init = (din: number, dout: number): Float32Array => noGrad(() => tidy(() => Float32Array.from(initNormal([E, din, dout], rng, 1 / Math.sqrt(din)).dataSync())));
    ex.compressFrom({ E, H, I, gate: init(H, I), up: init(H, I), down: init(I, H) }, { seed });
  }

  /** The experts module in its current form: the trainable f32 `ClusteredExperts` unless another form was swapped in. */
  get experts(): ClusteredExpertsForm {
    return this.#experts;
  }

  /** The trainable f32 experts; `why` names the caller in the error when another form is swapped in. */
  f32Experts(why = 'f32Experts'): ClusteredExperts {
    const ex = this.#experts;
    if (!(ex instanceof ClusteredExperts)) throw new Error(`ClusteredMoEBlock.${why}: the experts are in their ${ex.form} form; swap the f32 experts back in (setExperts) first`);
    return ex;
  }

  /**
   * Swaps in another form of the same experts (e.g. `block.f32Experts().toQuantized({ format: 'int4' })`, its
   * `toFused()`, or an offload store's `experts(layer)`) and returns the previous one, which the caller owns: keep it
   * to swap back, or dispose it.
   */
  setExperts<X extends ClusteredExpertsForm & Module>(ex: X): ClusteredExpertsForm & Module {
    const { G, E, H, I, r } = this.#experts;
    if (ex.G !== G || ex.E !== E || ex.H !== H || ex.I !== I || ex.r !== r) throw new Error(`ClusteredMoEBlock.setExperts: experts (G ${ex.G}, E ${ex.E}, H ${ex.H}, I ${ex.I}, r ${ex.r}) do not match the block's (G ${G}, E ${E}, H ${H}, I ${I}, r ${r})`);
    const prev = this.#experts;
    this.replaceModule('experts', ex);
    this.#experts = ex;
    return prev;
  }

  /** Every weight but the experts': routers, selection bias, shared expert. */
  #outerWeights(): Omit<ClusteredWeights, 'experts'> {
    const w: Omit<ClusteredWeights, 'experts'> = { router: this.gate.weight };
    if (this.gate.bias) w.bias = this.gate.bias;
    if (this.groupGate) w.groupRouter = this.groupGate.weight;
    if (this.sharedExpert) w.shared = { gate: this.sharedExpert.gateProj.weight, up: this.sharedExpert.upProj.weight, down: this.sharedExpert.downProj.weight };
    if (this.sharedExpertGate) w.sharedGate = this.sharedExpertGate.weight;
    return w;
  }

  /** The weights with the f32 experts (`clusteredMoe` reads these). */
  get weights(): ClusteredWeights {
    return { ...this.#outerWeights(), experts: this.f32Experts('weights').weights };
  }

  /** The block through the MoE pipeline, with its experts in their current form; `aux` adds the losses (training).
   *  While `tracking`, the routed inputs update the activation centroids. */
  run(x: Tensor, opts: PipelineOptions): MoEResult<Routing> {
    const out = runMoE('clustered MoE', x, clusteredStages(this.#outerWeights(), this.#experts, this.cfg, { inputSums: this.tracking }), opts);
    const sums = out.stats.inputSums;
    if (sums) {
      this.centroids.update(sums, out.stats.tokensPerExpert);
      delete out.stats.inputSums;
    }
    return out;
  }

  /** The route stage alone (no losses): xt (T, H) -> logits, experts (T, K), weights. */
  route(xt: Tensor): Routing {
    return clusteredStages(this.#outerWeights(), this.#experts, this.cfg).route(xt, false).routing;
  }

  /** Training forward with the balance losses. */
  forward(x: Tensor, opts: { observer?: RoutingObserver; layer?: number } = {}): ClusteredOutput {
    const o = this.run(x, { aux: true, ...observed(opts) });
    return { y: o.y, aux: o.aux as ClusteredOutput['aux'], stats: o.stats as ClusteredOutput['stats'], routing: o.routing as TwoStageRoute };
  }

  /** Inference forward without balance losses (see `clusteredInference`); centroids are tracked as in forward(). */
  infer(x: Tensor, opts: { observer?: RoutingObserver; layer?: number } = {}): ClusteredInference {
    const o = this.run(x, { aux: false, ...observed(opts) });
    return { y: o.y, stats: o.stats as ClusteredStats, experts: o.routing.experts, logits: o.routing.logits };
  }

  /**
   * Auxiliary-loss-free balancing step (DeepSeek-V3) on the per-expert selection bias: −γ for experts above the mean
   * load, +γ below. Groups balance through it too, since a group is ranked by its members' scores.
   */
  updateBias(counts: readonly number[], gamma = 1e-3): void {
    this.gate.nudgeBias(counts, gamma, 'ClusteredMoEBlock');
  }

  /** Parameters a regrouping may re-initialise or permute (reset their optimizer moments after `regroup`). */
  regroupTensors(): Tensor[] {
    return [this.gate.weight, ...(this.groupGate ? [this.groupGate.weight] : []), ...this.f32Experts('regroupTensors').tensors()];
  }

  /** The fused similarity S = α·S_param + (1−α)·S_task (pruned below τ) of the current slots. */
  similarity(alpha: number, tau: number): Float64Array {
    const E = this.cfg.experts;
    const eff = this.f32Experts('similarity').effective();
    const sz = eff.H * eff.I;
    const vecs = Array.from({ length: E }, (_, e) => {
      const v = new Float32Array(3 * sz);
      v.set(eff.gate.subarray(e * sz, (e + 1) * sz), 0);
      v.set(eff.up.subarray(e * sz, (e + 1) * sz), sz);
      v.set(eff.down.subarray(e * sz, (e + 1) * sz), 2 * sz);
      return v;
    });
    this.paramSimilarity.update(vecs);
    const sp = this.paramSimilarity.matrix();
    let observed = 0;
    for (let e = 0; e < E; e++) if (this.centroids.observed(e)) observed++;
    const st = observed === E ? this.centroids.similarity() : sp; // no activation data yet: weights only
    return fusedSimilarity(sp, st, E, alpha, tau);
  }

  /**
   * Regroups the experts by fused similarity: plans the new groups (`planRegroup`: K-means++ on 1 − S, balanced
   * sizes), moves the experts so each group's slots are contiguous, and re-initialises the bases and factors of groups
   * whose membership changed from the current effective weights (base = mean, factors = rank-r SVD of the residuals).
   * The router rows move with their experts, so only the truncation changes the function.
   */
  regroup(o: RegroupOptions): RegroupEvent {
    const { experts: E, groups: G, hidden: H } = this.cfg;
    const M = E / G;
    const ex = this.f32Experts('regroup');
    const plan = planRegroup(this.similarity(o.alpha, o.tau), E, G, o.rng);
    const { perm, kept } = plan;
    const event: RegroupEvent = { membership: plan.groups.map((ms) => ms.map((m) => this.ids[m]!)), intraSimilarity: plan.intraSimilarity, changedGroups: G - kept.size, relError: 0 };
    if (kept.size === G) return event;
    const eff = ex.effective();
    const moved: HostExperts = { E, H, I: eff.I, gate: new Float32Array(eff.gate.length), up: new Float32Array(eff.up.length), down: new Float32Array(eff.down.length) };
    for (const k of ['gate', 'up', 'down'] as const) {
      const sz = eff[k].length / E;
      perm.forEach((old, s) => moved[k].set(eff[k].subarray(old * sz, (old + 1) * sz), s * sz));
    }
    // router rows and factors move with their experts; kept groups' bases move with their group
    noGrad(() => tidy(() => {
      const w = ex.weights;
      const idx = tensor(perm, [E], 'i32');
      for (const t of [w.gateA, w.gateB, w.upA, w.upB, w.downA, w.downB, this.gate.weight, ...(this.gate.bias ? [this.gate.bias] : [])]) assign(t, gather(t, idx));
      const gidx = tensor(Int32Array.from(plan.sourceGroup), [G], 'i32');
      for (const t of [w.baseGate, w.baseUp, w.baseDown]) assign(t, gather(t, gidx)); // changed groups are overwritten below
    }));
    event.relError = ex.compressFrom(moved, { keep: kept, seed: o.rng.nextU32() });
    if (this.groupGate) {
      const wr = this.gate.weight.dataSync() as Float32Array; // (E, H), already permuted
      const wg = Float32Array.from(this.groupGate.weight.dataSync() as Float32Array);
      const oldG = Float32Array.from(wg);
      plan.sourceGroup.forEach((src, g) => {
        if (kept.has(g)) wg.set(oldG.subarray(src * H, (src + 1) * H), g * H);
        else for (let h = 0; h < H; h++) {
          let s = 0;
          for (let j = 0; j < M; j++) s += wr[(g * M + j) * H + h]!;
          wg[g * H + h] = s / M;
        }
      });
      noGrad(() => tidy(() => assign(this.groupGate!.weight, tensor(wg, [G, H]))));
    }
    this.ids = Int32Array.from(perm, (old) => this.ids[old]!);
    this.centroids.permute(Array.from(perm));
    this.paramSimilarity.permute(Array.from(perm));
    return event;
  }

  /** Expert parameters one token uses: k_g bases and K experts' factors. */
  activeExpertParams(): number {
    const { H, I, r } = this.#experts;
    return (this.cfg.groupTopK ?? 1) * 3 * H * I + this.cfg.topK * 3 * r * (H + I);
  }
}
