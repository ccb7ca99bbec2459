// AdamW with decoupled weight decay, and global-norm gradient clipping; parameters are updated in place.
import * as T from '../tensor/api.js';
import { assign, keep, noGrad, tidy } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';

export interface AdamWOptions {
  /** default 0.9 (Loshchilov & Hutter; PyTorch default) */
  beta1?: number;
  /** default 0.95 (LLM pre-training practice: GPT-3, LLaMA) */
  beta2?: number;
  /** default 1e-8 (PyTorch default) */
  eps?: number;
  /** decoupled weight decay, default 0.1 (GPT-3, LLaMA) */
  weightDecay?: number;
  /** parameter names (or a predicate) that get no weight decay, e.g. norms and biases */
  noDecay?: (name: string, p: Tensor) => boolean;
}

/** Default: no decay for 1-d parameters (norm weights, biases) — the usual LLM convention. */
const defaultNoDecay = (_name: string, p: Tensor): boolean => p.rank < 2;

export class AdamW {
  readonly params: readonly [string, Tensor][];
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly decay: boolean[];
  private readonly m: Tensor[];
  private readonly v: Tensor[];
  /** per parameter: updates since its moments were last reset (bias correction restarts with `reset`) */
  private readonly t: number[];
  /** completed update steps */
  step = 0;

  constructor(params: readonly [string, Tensor][], opts: AdamWOptions = {}) {
    this.params = params;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.95;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.1;
    for (const [k, v] of [['beta1', this.beta1], ['beta2', this.beta2]] as const) {
      if (!(v >= 0 && v < 1)) throw new RangeError(`AdamW: ${k} must be in [0, 1), got ${v}`);
    }
    const noDecay = opts.noDecay ?? defaultNoDecay;
    this.decay = params.map(([n, p]) => !noDecay(n, p));
    this.m = params.map(([, p]) => keep(T.zeros(p.shape)));
    this.v = params.map(([, p]) => keep(T.zeros(p.shape)));
    this.t = params.map(() => 0);
  }

  /**
   * Zeroes the moments of the given parameters and restarts their bias correction, as for freshly created
   * parameters (used when a parameter's value is re-initialised, e.g. after expert regrouping).
   */
  reset(tensors: readonly Tensor[]): void {
    const want = new Set(tensors);
    noGrad(() => tidy(() => {
      this.params.forEach(([, p], i) => {
        if (!want.has(p)) return;
        assign(this.m[i]!, T.zeros(p.shape));
        assign(this.v[i]!, T.zeros(p.shape));
        this.t[i] = 0;
        want.delete(p);
      });
    }));
    if (want.size > 0) throw new Error(`AdamW.reset: ${want.size} tensor(s) are not parameters of this optimizer`);
  }

  /**
   * Copies the moments and step counts of `other`'s parameters into this optimizer's parameters of the same name
   * and shape that `which` accepts (a model rebuilt around some of its old parameters keeps their history).
   * Returns how many parameters were carried.
   */
  carryFrom(other: AdamW, which: (name: string) => boolean): number {
    const theirs = new Map(other.params.map(([n, p], i) => [n, { p, i }]));
    let carried = 0;
    noGrad(() => this.params.forEach(([n, p], i) => {
      const o = theirs.get(n);
      if (!o || !which(n) || o.p.shape.join() !== p.shape.join()) return;
      assign(this.m[i]!, other.m[o.i]!);
      assign(this.v[i]!, other.v[o.i]!);
      this.t[i] = other.t[o.i]!;
      carried++;
    }));
    this.step = Math.max(this.step, other.step);
    return carried;
  }

  /** One update with learning rate `lr` from the parameters' `.grad` (parameters without a gradient are skipped). */
  update(lr: number): void {
    this.step++;
    const { beta1: b1, beta2: b2, eps } = this;
    noGrad(() => {
      this.params.forEach(([, p], i) => {
        const g = p.grad;
        if (!g) return;
        const t = ++this.t[i]!;
        const c1 = 1 - b1 ** t;
        const c2 = 1 - b2 ** t;
        tidy(() => {
          const m = T.add(T.mul(this.m[i]!, b1), T.mul(g, 1 - b1)); // first moment
          const v = T.add(T.mul(this.v[i]!, b2), T.mul(T.mul(g, g), 1 - b2)); // second moment
          assign(this.m[i]!, m);
          assign(this.v[i]!, v);
          const stepDir = T.div(T.div(m, c1), T.add(T.sqrt(T.div(v, c2)), eps));
          const decayed = this.decay[i] && this.weightDecay > 0 ? T.mul(p, 1 - lr * this.weightDecay) : p;
          assign(p, T.sub(decayed, T.mul(stepDir, lr)));
        });
      });
    });
  }

  /** Moments in parameter order and each parameter's bias-correction step, for checkpoints. */
  state(): { step: number; m: readonly Tensor[]; v: readonly Tensor[]; t: readonly number[] } {
    return { step: this.step, m: this.m, v: this.v, t: [...this.t] };
  }

  /**
   * Restores moments and step counts saved by `state()` (values are copied). `t`: each parameter's steps since its
   * moments were last reset; without it (older checkpoints) every parameter counts `step`.
   */
  load(state: { step: number; m: readonly Tensor[]; v: readonly Tensor[]; t?: readonly number[] }): void {
    if (state.m.length !== this.m.length || state.v.length !== this.v.length) {
      throw new Error(`AdamW.load: state has ${state.m.length} moments, optimizer has ${this.m.length} parameters`);
    }
    if (state.t && (state.t.length !== this.t.length || state.t.some((x) => !Number.isInteger(x) || x < 0 || x > state.step))) {
      throw new Error(`AdamW.load: per-parameter steps must be ${this.t.length} integers in [0, ${state.step}]`);
    }
    state.m.forEach((t, i) => assign(this.m[i]!, t));
    state.v.forEach((t, i) => assign(this.v[i]!, t));
    this.step = state.step;
    if (state.t) state.t.forEach((x, i) => (this.t[i] = x));
    else this.t.fill(state.step);
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}

/** The gradients of `params` (those that have one), after checking maxNorm. */
function gradsOf(params: readonly Tensor[], maxNorm: number, name: string): Tensor[] {
  if (!(maxNorm > 0)) throw new RangeError(`${name}: maxNorm must be positive, got ${maxNorm}`);
  return params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
}

/** (n) the sum of squares of each gradient, one device tensor (kept: the caller disposes it). */
const squareSums = (grads: readonly Tensor[]): Tensor => noGrad(() => tidy(() => T.concat(grads.map((g) => T.reshape(T.sum(T.mul(g, g)), [1])), 0)));

/** Scales the gradients by maxNorm / (norm + 1e-6) when norm exceeds maxNorm; returns norm. */
function clipTo(grads: readonly Tensor[], sums: ArrayLike<number>, maxNorm: number): number {
  let total = 0;
  for (let i = 0; i < sums.length; i++) total += sums[i]!;
  const norm = Math.sqrt(total);
  if (norm > maxNorm && Number.isFinite(norm)) {
    const s = maxNorm / (norm + 1e-6);
    noGrad(() => tidy(() => grads.forEach((g) => assign(g, T.mul(g, s)))));
  }
  return norm;
}

/**
 * Scales all gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping.
 * (Pascanu et al. 2013; the usual LLM setting is maxNorm = 1.) Reads synchronously (js, wasm).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const grads = gradsOf(params, maxNorm, 'clipGradNorm');
  if (grads.length === 0) return 0;
  const sums = squareSums(grads);
  try {
    return clipTo(grads, sums.dataSync(), maxNorm);
  } finally {
    sums.dispose();
  }
}

/** clipGradNorm for every backend (GPU ones read only when awaited); the same arithmetic, the same result. */
export async function clipGradNormAsync(params: readonly Tensor[], maxNorm: number): Promise<number> {
  const grads = gradsOf(params, maxNorm, 'clipGradNorm');
  if (grads.length === 0) return 0;
  const sums = squareSums(grads);
  try {
    return clipTo(grads, await sums.data(), maxNorm);
  } finally {
    sums.dispose();
  }
}
