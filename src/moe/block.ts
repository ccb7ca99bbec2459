// MoEBlock: the standard MoE layer's stages for the pipeline (route -> plan -> permute -> experts -> unpermute, or
// the fused kernels), its modules (router, stacked experts, shared expert) and aux-loss-free balancing.
import { Linear } from '../nn/layers.js';
import { logicalShape, storedBytes, storedForm, widenWeight } from '../nn/packed.js';
import { Module, initNormal } from '../nn/module.js';
import { SwiGLU } from '../nn/swiglu.js';
import { add, backendSupports, canReadSync, expertBins, gather, matmul, moeFfn, mul, needsGrad, reshape, routeTopK, scatterAdd, tensor, transpose, zeros } from '../tensor/api.js';
import { Op, type WeightFormat } from '../tensor/ops.js';
import { getBackend, noGrad, tidy } from '../tensor/engine.js';
import type { Rng } from '../tensor/random.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import { countSlots } from '../tensor/moe-plan.js';
import type { Tensor } from '../tensor/tensor.js';
import { indicesAndBins, offsetsTensor, permute, unpermute } from './dispatch.js';
import { SELECTION_BIAS } from './names.js';
import { SWIGLU, experts, keptExperts, plainSwiglu, type ExpertActivation, type ExpertWeights } from './experts.js';
import { runMoE, type LayerStats, type MoEResult, type MoEStages, type PipelineOptions, type Routing, type RoutingObserver } from './pipeline.js';
import { route, type RouteResult, type RouterKind } from './route.js';

export interface MoEConfig {
  /** H: model width */
  hidden: number;
  /** E: routed experts */
  experts: number;
  /** K: experts per token */
  topK: number;
  /** I: width of each routed expert */
  expertWidth: number;
  /** default 'softmax-topk' (Mixtral, Qwen-MoE, OLMoE); 'sigmoid-group' is DeepSeek-V3 */
  router?: RouterKind;
  /** softmax-topk: renormalise the K weights; default true (Mixtral, Qwen3; OLMoE uses false) */
  renormalize?: boolean;
  /** sigmoid-group: n_group (default 1), topk_group (default groups), routed_scaling_factor (default 1) */
  groups?: number;
  topGroups?: number;
  routedScale?: number;
  /** width of the always-on shared expert (Qwen2-MoE, DeepSeek); default 0 = none */
  sharedWidth?: number;
  /** multiply the shared expert by sigmoid(x · w) (Qwen2-MoE shared_expert_gate); default false */
  sharedGate?: boolean;
  /** per-expert capacity factor; default undefined = dropless (MegaBlocks) */
  capacityFactor?: number;
  /** α of the Switch balance loss; default 1e-2 (Switch Transformer) */
  auxLossCoef?: number;
  /** router z-loss coefficient; default 1e-3 (ST-MoE) */
  zLossCoef?: number;
  /** keep a selection bias (aux-loss-free balancing, `updateBias`); default true for sigmoid-group */
  selectionBias?: boolean;
  /** a trained bias on the router logits (gpt-oss `router.bias`); default false */
  routerBias?: boolean;
  /** biases on the experts' gate, up and down projections (gpt-oss); default false */
  expertBias?: boolean;
  /** the experts' gated activation; default plain SwiGLU */
  expertAct?: ExpertActivation;
}

/** The weights the block function reads (tensors owned by the caller). */
export interface MoEWeights {
  router: Tensor; // (E, H) torch Linear layout
  routerBias?: Tensor; // (E) added to the router logits
  experts: ExpertWeights;
  shared?: { gate: Tensor; up: Tensor; down: Tensor }; // (S, H), (S, H), (H, S)
  sharedGate?: Tensor; // (1, H)
  bias?: Tensor; // (E) selection-only score bias
}

export interface MoEOutput {
  y: Tensor; // (T, H) or (B, T, H), as the input
  aux: {
    /** auxLossCoef · switch + zLossCoef · z: add it to the training loss */
    loss: Tensor; // ()
    switch: Tensor; // () unscaled Switch balance loss (1 when balanced)
    z: Tensor; // () unscaled router z-loss
  };
  stats: LayerStats;
  routing: RouteResult;
}

/** The route stage: router logits, then softmax top-k or sigmoid group-limited selection. Without balance losses, a
 *  softmax top-k router of plain SwiGLU experts runs as the fused `routeTopK` op where the backend has it. */
function routeStage(w: MoEWeights, cfg: MoEConfig): MoEStages<Routing>['route'] {
  return (xt, withAux) => {
    const logits = routerLogits(xt, w); // (T, E)
    const kind = cfg.router ?? 'softmax-topk';
    const fused = !withAux && kind === 'softmax-topk' && cfg.capacityFactor === undefined && plainSwiglu(w.experts, cfg.expertAct)
      && backendSupports(Op.RouteTopK) && !needsGrad(xt, w.router, w.experts.gate, w.experts.up, w.experts.down);
    if (fused) {
      const r = routeTopK(logits, cfg.topK, { renormalize: cfg.renormalize ?? true, ...(w.bias ? { bias: w.bias } : {}) });
      return { routing: { logits, experts: r.ids, weights: r.weights }, aux: null };
    }
    const r = route(logits, {
      kind, K: cfg.topK, renormalize: cfg.renormalize ?? true,
      groups: cfg.groups ?? 1, topGroups: cfg.topGroups ?? cfg.groups ?? 1, routedScale: cfg.routedScale ?? 1,
      ...(w.bias ? { bias: w.bias } : {}),
    });
    if (!withAux) return { routing: r, aux: null };
    const loss = add(mul(r.aux.switch, cfg.auxLossCoef ?? 1e-2), mul(r.aux.z, cfg.zLossCoef ?? 1e-3)); // ()
    return { routing: r, aux: { loss, switch: r.aux.switch, z: r.aux.z } };
  };
}

/**
 * The experts stage: plan (bins on the host, or on the device where the backend reads only asynchronously) ->
 * permute -> experts -> unpermute; or all of it as the fused `moeFfn` kernel (plain SwiGLU in f32, nothing to
 * differentiate, dropless, and the backend has it).
 */
function expertsStage(w: ExpertWeights, cfg: MoEConfig): MoEStages<Routing>['experts'] {
  const act = cfg.expertAct ?? SWIGLU;
  const E = cfg.experts;
  return (xt, r) => {
    const T = xt.shape[0]!;
    if (cfg.capacityFactor === undefined && T > 0 && plainSwiglu(w, act) && !keptExperts(w) && !needsGrad(xt, r.weights, w.gate, w.up, w.down) && backendSupports(Op.MoeFfn)) {
      const y = moeFfn(xt, r.experts, r.weights, w); // (T, H)
      return { y, stats: { tokensPerExpert: canReadSync() ? countSlots(r.experts.dataSync(), E, cfg.topK) : [], dropped: 0 } };
    }
    if (!canReadSync()) {
      // a backend that reads only asynchronously (webgpu): the same dropless dispatch, binned on the device
      if (cfg.capacityFactor !== undefined) throw new Error(`MoE: capacityFactor ${cfg.capacityFactor} needs the host binning; backend ${getBackend().name} reads asynchronously and runs dropless only`);
      const b = expertBins(r.experts, E);
      const ys = experts(gather(xt, b.tokens), b.offsets, w, act); // (N, H) rows sorted by expert
      const y = scatterAdd(mul(ys, gather(reshape(r.weights, [r.weights.size, 1]), b.order)), b.tokens, T); // (T, H)
      return { y, stats: { tokensPerExpert: [], dropped: 0, offsets: b.offsets } };
    }
    const bins = indicesAndBins(r.experts, E, cfg.capacityFactor === undefined ? {} : { capacityFactor: cfg.capacityFactor });
    const stats = { tokensPerExpert: bins.routed, dropped: bins.dropped };
    if (bins.order.length === 0) return { y: zeros([T, xt.shape[1]!]), stats };
    const ys = experts(permute(xt, bins), offsetsTensor(bins), w, act); // (N, H) rows sorted by expert
    return { y: unpermute(ys, bins, r.weights, T), stats }; // (T, H)
  };
}

/** The pipeline stages of a standard block with these weights. */
export function moeStages(w: MoEWeights, cfg: MoEConfig): MoEStages<Routing> {
  const st: MoEStages<Routing> = { hidden: cfg.hidden, route: routeStage(w, cfg), experts: expertsStage(w.experts, cfg) };
  if (w.shared) st.shared = { ...w.shared, ...(w.sharedGate ? { sharedGate: w.sharedGate } : {}) };
  return st;
}

/**
 * The MoE block as a function of its weights, with its balance losses (used by MoEBlock and by gradchecks). The dense
 * FLOP-matched baseline of this block is `new SwiGLU(H, K·I + sharedWidth, rng)`: same active multiply-adds per token.
 */
export function moe(x: Tensor, w: MoEWeights, cfg: MoEConfig, opts: { observer?: RoutingObserver; layer?: number } = {}): MoEOutput {
  const o = runMoE('MoE', x, moeStages(w, cfg), { ...opts, aux: true });
  return { y: o.y, aux: o.aux!, stats: o.stats, routing: o.routing as RouteResult };
}

/** xt (T, H) -> router logits (T, E), with the router's bias when it has one. */
function routerLogits(xt: Tensor, w: MoEWeights): Tensor {
  return matmul(xt, w.router, w.routerBias ? { transB: true, bias: w.routerBias } : { transB: true });
}

/** What an inference forward (no balance losses) returns. */
export interface MoEInference {
  y: Tensor; // as the input
  /** tokensPerExpert is empty on backends that read only asynchronously (webgpu): counting would stall the queue */
  stats: LayerStats;
  /** (T, K) i32 chosen experts */
  experts: Tensor;
  /** (T, E) router logits */
  logits: Tensor;
}

/**
 * The block for inference: no balance losses, no gradient. With softmax top-k routing (with or without a selection
 * bias, no capacity) on a backend with the fused kernels it is three ops: the router matmul, `routeTopK`, `moeFfn`
 * (plus the shared expert).
 */
export function moeInference(x: Tensor, w: MoEWeights, cfg: MoEConfig, opts: { observer?: RoutingObserver; layer?: number } = {}): MoEInference {
  const o = runMoE('MoE', x, moeStages(w, cfg), { ...opts, aux: false });
  return { y: o.y, stats: o.stats, experts: o.routing.experts, logits: o.routing.logits };
}

/** Stacked routed experts; parameters gate_proj/up_proj (E, H, I) and down_proj (E, I, H), and with `bias`
 *  gate_proj_bias/up_proj_bias (E, I) and down_proj_bias (E, H) (zero at init, as gpt-oss initialises them). */
export class Experts extends Module {
  readonly hasBias: boolean;
  constructor(E: number, H: number, I: number, rng: Rng, bias = false) {
    super();
    this.hasBias = bias;
    this.addParameter('gate_proj', initNormal([E, H, I], rng, 1 / Math.sqrt(H))); // (E, H, I)
    this.addParameter('up_proj', initNormal([E, H, I], rng, 1 / Math.sqrt(H))); // (E, H, I)
    this.addParameter('down_proj', initNormal([E, I, H], rng, 1 / Math.sqrt(I))); // (E, I, H)
    if (bias) {
      this.addParameter('gate_proj_bias', zeros([E, I])); // (E, I)
      this.addParameter('up_proj_bias', zeros([E, I])); // (E, I)
      this.addParameter('down_proj_bias', zeros([E, H])); // (E, H)
    }
  }
  /** The storage format when the weights are kept as stored (bf16/f16, MXFP4, FP8; gate/up (E, I, H), down
   *  (E, H, I)), else null. */
  get kept(): WeightFormat | null {
    return storedForm(this.param('gate_proj'))?.format ?? null;
  }

  /**
   * Keeps the routed weights as a checkpoint stores them — bf16/f16, or packed MXFP4 / FP8 (nn/packWeight) — in the
   * (N, K) orientation quantMatmul reads: gate/up (E, I, H), down (E, H, I) (HF's per-expert Linear layout; logical
   * shapes). All three in one format. Used by the checkpoint loader.
   */
  setKept(gate: Tensor, up: Tensor, down: Tensor): void {
    const s = logicalShape(this.param('gate_proj')); // f32 (E, H, I) or kept (E, I, H)
    const [E, H, I] = this.kept ? [s[0]!, s[2]!, s[1]!] : [s[0]!, s[1]!, s[2]!];
    const format = storedForm(gate)?.format;
    const want: [string, Tensor, number[]][] = [['gate', gate, [E, I, H]], ['up', up, [E, I, H]], ['down', down, [E, H, I]]];
    for (const [n, t, shape] of want) {
      const ls = logicalShape(t);
      if (!format || storedForm(t)?.format !== format || ls.join() !== shape.join()) throw new ShapeError(`Experts.setKept: ${n} ${fmtInfo(ls, t.dtype)} must be kept as stored (bf16, f16 or packed) with shape (${shape.join(', ')}), in the format of gate (${format ?? 'f32'})`);
    }
    this.replaceParameter('gate_proj', gate);
    this.replaceParameter('up_proj', up);
    this.replaceParameter('down_proj', down);
  }

  /** Widens weights kept as stored back to f32 in the (E, in, out) layout (to train or compress); returns the stored
   *  bytes replaced (0 when already f32). */
  upcast(): number {
    if (!this.kept) return 0;
    let bytes = 0;
    for (const n of ['gate_proj', 'up_proj', 'down_proj']) {
      const t = this.param(n);
      bytes += storedBytes(t);
      const wide = widenWeight(t); // (E, N, K) f32
      this.replaceParameter(n, noGrad(() => tidy(() => transpose(wide, [0, 2, 1])))); // (E, N, K) -> (E, K, N)
      wide.dispose();
    }
    return bytes;
  }

  get weights(): ExpertWeights {
    const w: ExpertWeights = { gate: this.param('gate_proj'), up: this.param('up_proj'), down: this.param('down_proj') };
    if (this.hasBias) Object.assign(w, { gateBias: this.param('gate_proj_bias'), upBias: this.param('up_proj_bias'), downBias: this.param('down_proj_bias') });
    return w;
  }
}

/** Router weight (E, H), when used the selection bias buffer (E) (HF DeepSeek-V3 names), and with `logitBias` a
 *  trained bias (E) on the logits (gpt-oss router.bias). */
export class Router extends Module {
  readonly hasBias: boolean;
  readonly hasLogitBias: boolean;
  constructor(E: number, H: number, rng: Rng, withBias: boolean, logitBias = false) {
    super();
    this.hasBias = withBias;
    this.hasLogitBias = logitBias;
    this.addParameter('weight', initNormal([E, H], rng, 1 / Math.sqrt(H))); // (E, H)
    if (logitBias) this.addParameter('bias', zeros([E])); // (E)
    if (withBias) this.addBuffer(SELECTION_BIAS, zeros([E])); // (E)
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  /** the trained bias (E) on the logits, when the router has one */
  get logitBias(): Tensor | undefined {
    return this.hasLogitBias ? this.param('bias') : undefined;
  }
  get bias(): Tensor | undefined {
    return this.hasBias ? this.buffer(SELECTION_BIAS) : undefined;
  }

  /**
   * Auxiliary-loss-free balancing step (DeepSeek-V3): b_i -= γ when expert i got more than the mean load, += γ when
   * less. `counts` are the routed slots per expert of a forward pass.
   */
  nudgeBias(counts: readonly number[], gamma: number, owner: string): void {
    const b = this.bias;
    if (!b) throw new Error(`${owner}.updateBias: this block has no selection bias (set selectionBias: true)`);
    if (counts.length !== b.size) throw new Error(`${owner}.updateBias: ${counts.length} counts for ${b.size} experts`);
    const meanLoad = counts.reduce((a, c) => a + c, 0) / counts.length;
    const step = Float32Array.from(counts, (c) => (c > meanLoad ? -gamma : c < meanLoad ? gamma : 0));
    // on the device: no read of the bias, so GPU backends update it too
    this.setTensor(SELECTION_BIAS, noGrad(() => tidy(() => add(b, tensor(step, [step.length])))));
  }
}

/** MoE block module. Names: gate.weight, gate.e_score_correction_bias (buffer), experts.*, shared_expert.*, shared_expert_gate.weight. */
export class MoEBlock extends Module {
  readonly cfg: MoEConfig;
  readonly gate: Router;
  readonly experts: Experts;
  readonly sharedExpert: SwiGLU | null;
  readonly sharedExpertGate: Linear | null;

  constructor(cfg: MoEConfig, rng: Rng) {
    super();
    const { hidden: H, experts: E, topK: K, expertWidth: I } = cfg;
    for (const [n, v] of [['hidden', H], ['experts', E], ['topK', K], ['expertWidth', I]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`MoEBlock: ${n} = ${v} must be a positive integer`);
    }
    if (K > E) throw new Error(`MoEBlock: topK ${K} exceeds experts ${E}`);
    this.cfg = { ...cfg };
    this.gate = this.addModule('gate', new Router(E, H, rng, cfg.selectionBias ?? cfg.router === 'sigmoid-group', cfg.routerBias ?? false));
    this.experts = this.addModule('experts', new Experts(E, H, I, rng, cfg.expertBias ?? false));
    const S = cfg.sharedWidth ?? 0;
    this.sharedExpert = S > 0 ? this.addModule('shared_expert', new SwiGLU(H, S, rng)) : null;
    this.sharedExpertGate = S > 0 && cfg.sharedGate ? this.addModule('shared_expert_gate', new Linear(H, 1, rng)) : null;
  }

  /** The selection bias (E), or null when the block has none. */
  get bias(): Float32Array | null {
    const b = this.gate.bias;
    return b ? Float32Array.from(b.dataSync()) : null;
  }

  get weights(): MoEWeights {
    const w: MoEWeights = { router: this.gate.weight, experts: this.experts.weights };
    const rb = this.gate.logitBias;
    if (rb) w.routerBias = rb;
    if (this.sharedExpert) w.shared = { gate: this.sharedExpert.gateProj.weight, up: this.sharedExpert.upProj.weight, down: this.sharedExpert.downProj.weight };
    if (this.sharedExpertGate) w.sharedGate = this.sharedExpertGate.weight;
    const b = this.gate.bias;
    if (b) w.bias = b;
    return w;
  }

  /** The block through the MoE pipeline: x (T, H) or (B, T, H); `aux` adds the balance losses (training). */
  run(x: Tensor, opts: PipelineOptions): MoEResult<Routing> {
    return runMoE('MoEBlock', x, moeStages(this.weights, this.cfg), opts);
  }

  /** The route stage alone (no losses): xt (T, H) -> logits, experts (T, K), weights. */
  route(xt: Tensor): Routing {
    return moeStages(this.weights, this.cfg).route(xt, false).routing;
  }

  /** Training forward, with the balance losses: x (T, H) or (B, T, H). */
  forward(x: Tensor, opts: { observer?: RoutingObserver; layer?: number } = {}): MoEOutput {
    return moe(x, this.weights, this.cfg, opts);
  }

  /** Inference forward without balance losses (see `moeInference`). */
  infer(x: Tensor, opts: { observer?: RoutingObserver; layer?: number } = {}): MoEInference {
    return moeInference(x, this.weights, this.cfg, opts);
  }

  /**
   * Auxiliary-loss-free balancing (DeepSeek-V3): b_i -= γ when expert i got more than the mean load,
   * += γ when less. Pass `stats.tokensPerExpert`; γ defaults to 1e-3. The bias only changes selection.
   */
  updateBias(counts: readonly number[], gamma = 1e-3): void {
    this.gate.nudgeBias(counts, gamma, 'MoEBlock');
  }
}
