// The MoE layer as one pipeline of named stages: route -> plan -> permute -> experts -> unpermute -> shared experts.
// MoEBlock and ClusteredMoEBlock differ only in the route and experts stages they plug in; a fused inference kernel
// (moeFfn, clusteredFfn) is one implementation of the experts stage (plan to unpermute in one op), chosen by the
// backend's capabilities. A routing observer sees what every layer decided, on every path (docs/ENGINE.md).
import { linear } from '../nn/layers.js';
import { swiglu } from '../nn/swiglu.js';
import { add, canReadSync, mul, reshape, sigmoid } from '../tensor/api.js';
import type { TypedArray } from '../tensor/dtype.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** What the route stage decided for T tokens. */
export interface Routing {
  /** (T, E) router logits */
  logits: Tensor;
  /** (T, K) i32 chosen experts */
  experts: Tensor;
  /** (T, K) gate weights of the chosen experts */
  weights: Tensor;
}

/** The balance losses of a routing (training forwards). */
export interface RoutingAux {
  /** the block's weighted sum of its losses: add it to the training loss */
  loss: Tensor; // ()
  /** unscaled Switch balance loss (1 when balanced) */
  switch: Tensor; // ()
  /** unscaled router z-loss */
  z: Tensor; // ()
  /** clustered: KL(mean group probability ‖ uniform) */
  group?: Tensor; // ()
}

/** Routing statistics of one MoE layer's forward. */
export interface LayerStats {
  /** routing slots per expert before any capacity drop (feed to `updateBias`); empty on backends that read only
   *  asynchronously (webgpu), which return `offsets` instead */
  tokensPerExpert: number[];
  dropped: number;
  /** clustered layers: (token, group) pairs per group */
  tokensPerGroup?: number[];
  /** clustered layers: tokens whose experts sit in more than one group */
  crossGroup?: number;
  /** webgpu: the (E+1) expert offsets of the device-side binning, for `resolveStats` to read when awaited */
  offsets?: Tensor;
  /** clustered layers while tracking centroids: (E·H) sum of the inputs routed to each expert */
  inputSums?: Float32Array;
}

/** What a routing observer is shown, per MoE layer and forward. The tensors live for the call only: read them there
 *  (`dataSync()` on CPU backends; on webgpu `data()` starts its copy at once, so its promise may be awaited later). */
export interface RoutingEvent {
  /** the layer's index in the model (0 for a block run on its own) */
  layer: number;
  /** (T, K) i32 chosen experts */
  experts: Tensor;
  /** (T, K) gate weights */
  weights: Tensor;
  /** (T, E) router logits */
  logits: Tensor;
  /** (T, H) the hidden state entering the MoE block (after the layer's norm), when the observer asks for it */
  hidden?: Tensor;
}

/** A hook the pipeline calls once per MoE layer and forward with what routing decided. */
export interface RoutingObserver {
  /** also pass the hidden state entering the block */
  hidden?: boolean;
  observe(e: RoutingEvent): void;
}

export interface SharedWeights {
  gate: Tensor; // (S, H)
  up: Tensor; // (S, H)
  down: Tensor; // (H, S)
  /** (1, H): multiply the shared expert by sigmoid(x · w) (Qwen2-MoE shared_expert_gate) */
  sharedGate?: Tensor;
}

/** The stages a block plugs into the pipeline. */
export interface MoEStages<R extends Routing> {
  hidden: number;
  /** route: router logits (T, E) -> top-K experts and weights; with `aux` the balance losses too */
  route(xt: Tensor, aux: boolean): { routing: R; aux: RoutingAux | null };
  /** plan -> permute -> experts -> unpermute: each token's K expert outputs combined with its weights, (T, H) */
  experts(xt: Tensor, routing: R): { y: Tensor; stats: LayerStats };
  shared?: SharedWeights;
}

export interface MoEResult<R extends Routing> {
  y: Tensor; // as the input
  aux: RoutingAux | null;
  stats: LayerStats;
  routing: R;
}

export interface PipelineOptions {
  /** compute the balance losses (training); false for inference */
  aux: boolean;
  observer?: RoutingObserver;
  /** the layer index reported to the observer */
  layer?: number;
}

/** Runs an MoE layer: x (T, H) or (B, T, H) through the stages. */
export function runMoE<R extends Routing>(name: string, x: Tensor, stages: MoEStages<R>, opts: PipelineOptions): MoEResult<R> {
  const H = stages.hidden;
  if ((x.rank !== 2 && x.rank !== 3) || x.shape.at(-1) !== H) throw new ShapeError(`${name}: input ${fmtInfo(x.shape, x.dtype)} must be (T, ${H}) or (B, T, ${H})`);
  const xt = reshape(x, [x.size / H, H]); // (T, H)
  const { routing, aux } = stages.route(xt, opts.aux);
  const obs = opts.observer;
  if (obs) obs.observe({ layer: opts.layer ?? 0, experts: routing.experts, weights: routing.weights, logits: routing.logits, ...(obs.hidden ? { hidden: xt } : {}) });
  const { y, stats } = stages.experts(xt, routing); // (T, H)
  return { y: reshape(stages.shared ? addShared(y, xt, stages.shared) : y, x.shape), aux, stats, routing };
}

/** y + the (gated) shared expert of xt. */
function addShared(y: Tensor, xt: Tensor, w: SharedWeights): Tensor {
  let s = swiglu(xt, w.gate, w.up, w.down); // (T, H)
  if (w.sharedGate) s = mul(sigmoid(linear(xt, w.sharedGate)), s); // (T, 1) gate times (T, H)
  return add(y, s);
}

/** One layer's routing as host arrays. */
export interface RecordedRouting {
  layer: number;
  /** (T·K) chosen experts, row-major */
  experts: Int32Array;
  /** (T·K) gate weights */
  weights: Float32Array;
  /** (T·E) router logits */
  logits: Float32Array;
  /** (T·H) the hidden state entering the block, when recorded */
  hidden?: Float32Array;
  T: number;
  K: number;
  E: number;
}

/**
 * An observer that keeps what it sees as host arrays, on any backend. On CPU backends `events()` gives them at once;
 * on webgpu the copies start during the forward and `read()` awaits them. `clear()` forgets them.
 */
export class RoutingRecorder implements RoutingObserver {
  readonly hidden: boolean;
  #events: (RecordedRouting | Promise<RecordedRouting>)[] = [];

  constructor(opts: { hidden?: boolean } = {}) {
    this.hidden = opts.hidden ?? false;
  }

  observe(e: RoutingEvent): void {
    const [T, K] = e.experts.shape as [number, number];
    const E = e.logits.shape[1]!;
    const ts = [e.experts, e.weights, e.logits, ...(e.hidden ? [e.hidden] : [])];
    const make = ([ids, w, l, h]: TypedArray[]): RecordedRouting => ({
      layer: e.layer, experts: Int32Array.from(ids!), weights: Float32Array.from(w!), logits: Float32Array.from(l!), ...(h ? { hidden: Float32Array.from(h) } : {}), T, K, E,
    });
    this.#events.push(canReadSync() ? make(ts.map((t) => t.dataSync())) : Promise.all(ts.map((t) => t.data())).then(make));
  }

  /** Everything observed so far, in order (CPU backends; on webgpu use `read()`). */
  events(): RecordedRouting[] {
    return this.#events.map((e) => {
      if (e instanceof Promise) throw new Error('RoutingRecorder.events: this backend reads asynchronously; use await recorder.read()');
      return e;
    });
  }

  /** Everything observed so far, in order, on any backend. */
  read(): Promise<RecordedRouting[]> {
    return Promise.all(this.#events);
  }

  clear(): void {
    this.#events = [];
  }
}
