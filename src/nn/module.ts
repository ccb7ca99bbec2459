// Module: a tree of named parameters (trainable leaves), buffers and child modules with dotted HF-style names.
import { empty, randn } from '../tensor/api.js';
import { variable } from '../tensor/autograd.js';
import { keep } from '../tensor/engine.js';
import type { Rng } from '../tensor/random.js';
import { ShapeError, fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { freeWeight, logicalShape, logicalSize } from './packed.js';

export class Module {
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  /** Registers a trainable leaf (made a `variable`: kept, requires grad). */
  protected addParameter(name: string, t: Tensor): Tensor {
    this.#checkName(name);
    this.#params.set(name, variable(t));
    return t;
  }

  /** Registers a non-trainable tensor (kept; listed by `buffers()`, not by `parameters()`). */
  protected addBuffer(name: string, t: Tensor): Tensor {
    this.#checkName(name);
    this.#buffers.set(name, keep(t));
    return t;
  }

  protected addModule<M extends Module>(name: string, m: M): M {
    this.#checkName(name);
    this.#children.set(name, m);
    return m;
  }

  /** Swaps the child module `name` for `m` (a module of the same role, e.g. experts in another form) and returns the
   *  previous one, which the caller now owns (it is not disposed). */
  protected replaceModule<M extends Module>(name: string, m: M): Module {
    const old = this.#children.get(name);
    if (!old) throw new Error(`${this.constructor.name}: no child module "${name}"; have ${[...this.#children.keys()].join(', ') || 'none'}`);
    this.#children.set(name, m);
    return old;
  }

  /** The current tensor of a parameter of this module (not a child). */
  protected param(name: string): Tensor {
    const t = this.#params.get(name);
    if (!t) throw new Error(`${this.constructor.name}: no parameter "${name}"; have ${[...this.#params.keys()].join(', ') || 'none'}`);
    return t;
  }

  protected buffer(name: string): Tensor {
    const t = this.#buffers.get(name);
    if (!t) throw new Error(`${this.constructor.name}: no buffer "${name}"; have ${[...this.#buffers.keys()].join(', ') || 'none'}`);
    return t;
  }

  /** Every trainable tensor with its dotted name, e.g. `layers.0.mlp.gate.weight`, in registration order. */
  parameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.#params) out.push([prefix + n, t]);
    for (const [n, m] of this.#children) out.push(...m.parameters(`${prefix}${n}.`));
    return out;
  }

  /** Every buffer with its dotted name. */
  buffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.#buffers) out.push([prefix + n, t]);
    for (const [n, m] of this.#children) out.push(...m.buffers(`${prefix}${n}.`));
    return out;
  }

  children(): [string, Module][] {
    return [...this.#children];
  }

  numParams(): number {
    let n = 0;
    for (const [, t] of this.parameters()) n += logicalSize(t); // a packed weight counts the values it stands for
    return n;
  }

  /**
   * Replaces a parameter or buffer by dotted name (loading weights, optimiser steps). The new tensor must
   * have the old one's (logical) shape — a packed weight (nn/packed) may replace an f32 one or the reverse; the old
   * tensor and its gradient are disposed.
   */
  setTensor(name: string, t: Tensor): void {
    const dot = name.indexOf('.');
    if (dot >= 0) {
      const child = this.#children.get(name.slice(0, dot));
      if (!child) throw new Error(`${this.constructor.name}: no child module "${name.slice(0, dot)}" (in "${name}")`);
      child.setTensor(name.slice(dot + 1), t);
      return;
    }
    const isParam = this.#params.has(name);
    const old = this.#params.get(name) ?? this.#buffers.get(name);
    if (!old) throw new Error(`${this.constructor.name}: no parameter or buffer "${name}"`);
    const [os, ns] = [logicalShape(old), logicalShape(t)];
    if (os.length !== ns.length || os.some((d, i) => d !== ns[i])) {
      throw new ShapeError(`${this.constructor.name}: "${name}" has shape ${fmt(os)}, got ${fmt(ns)}`);
    }
    if (old !== t) {
      old.grad?.dispose();
      old.grad = null;
      freeWeight(old);
    }
    if (isParam) this.#params.set(name, variable(t));
    else this.#buffers.set(name, keep(t));
  }

  /**
   * Replaces an own parameter by a tensor of another layout (a module that stores a weight in more than one form,
   * e.g. routed experts kept in bf16 in the (N, K) orientation). The module checks the shape; the old tensor is freed.
   */
  protected replaceParameter(name: string, t: Tensor): void {
    const old = this.#params.get(name);
    if (!old) throw new Error(`${this.constructor.name}: no parameter "${name}"`);
    if (old !== t) {
      old.grad?.dispose();
      freeWeight(old);
    }
    this.#params.set(name, variable(t));
  }

  /** Frees every parameter, gradient and buffer of this module and its children. */
  dispose(): void {
    for (const t of [...this.#params.values(), ...this.#buffers.values()]) {
      t.grad?.dispose();
      freeWeight(t);
    }
    for (const m of this.#children.values()) m.dispose();
  }

  #checkName(name: string): void {
    if (name.length === 0 || name.includes('.')) throw new Error(`${this.constructor.name}: name "${name}" must be non-empty and contain no "."`);
    if (this.#params.has(name) || this.#buffers.has(name) || this.#children.has(name)) throw new Error(`${this.constructor.name}: "${name}" is registered twice`);
  }
}

/** A list of modules named 0, 1, 2, … (HF `layers.0.…`). */
export class ModuleList<M extends Module> extends Module {
  readonly items: readonly M[];
  constructor(items: readonly M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.addModule(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
}

let skipInit = false;

/**
 * Builds modules whose weights are about to be overwritten (loading a checkpoint): inside `fn`, initNormal gives
 * unwritten placeholders instead of drawing random numbers, which for a large model saves most of the load time and,
 * on the js backend, all the memory of values that are replaced anyway.
 */
export function withoutInit<T>(fn: () => T): T {
  const prev = skipInit;
  skipInit = true;
  try {
    return fn();
  } finally {
    skipInit = prev;
  }
}

/** Normal(0, std) initialisation from a seeded generator (std defaults to 1/sqrt(fanIn) where used); inside withoutInit
 *  an unwritten placeholder (the loader overwrites every such parameter, and nothing is spent on values it replaces). */
export const initNormal = (shape: readonly number[], rng: Rng, std: number): Tensor => (skipInit ? empty(shape) : randn(shape, rng, std));
