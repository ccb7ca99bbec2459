// The engine: the current backend, op dispatch with shape checks, tidy scopes and autograd recording. It knows
// backends only by the Backend interface and the factories registered by name (src/backend/registry.ts).
import type { Backend } from '../backend/backend.js';
import { allocTyped, matchesDType, type DType, type TypedArray } from './dtype.js';
import { INFER } from './infer.js';
import { Op, type OpParams } from './ops.js';
import { ShapeError, fmtInfo, shapesEqual, sizeOf } from './shape.js';
import { Tensor, shareStorage, type TapeNode } from './tensor.js';

export type BackendName = 'js' | 'wasm' | 'webgpu';
export type BackendFactory = () => Promise<Backend>;
/** Creates a backend at once: the one MOEKIT_BACKEND names, made on first use when nothing awaited ready(). */
export type SyncBackendFactory = () => Backend;

/** Ops whose outputs carry no gradient: comparisons, indices, backward kernels, quantisation. */
export const NON_DIFFERENTIABLE: ReadonlySet<Op> = new Set<Op>([
  Op.Compare, Op.Argmax, Op.GeluGrad, Op.RMSNormGrad, Op.AttentionGrad, Op.CrossEntropyGrad,
  Op.GroupedMatmulWeightGrad, Op.Quantize, Op.Dequantize, Op.ExpertBins, Op.RouteTopK, Op.MoeFfn, Op.ClusteredFfn,
  Op.RaggedAttention,
]);

class Engine {
  backend: Backend | null = null;
  /** filled by registerBackend: src/backend/registry.ts registers js, wasm and webgpu */
  readonly factories = new Map<string, BackendFactory>();
  readonly syncFactories = new Map<string, SyncBackendFactory>();
  readonly scopes: Set<Tensor>[] = [];
  gradEnabled = true;
  seq = 0;

  current(): Backend {
    if (this.backend) return this.backend;
    const want = envBackend();
    const sync = this.syncFactories.get(want);
    if (sync) {
      this.backend = sync();
      return this.backend;
    }
    throw new Error(`no backend is ready: call "await setBackend('${want}')" (or "await ready()") before running ops, or set MOEKIT_BACKEND=js`);
  }

  track(t: Tensor): void {
    const top = this.scopes[this.scopes.length - 1];
    if (top) top.add(t);
  }
}

export const ENGINE = new Engine();

/** MOEKIT_THREADS, validated: the wasm worker pool size (default: available cores). */
export function envThreads(): { threads?: number } {
  const env = typeof process !== 'undefined' ? process.env?.MOEKIT_THREADS : undefined;
  if (!env) return {};
  const threads = Number(env);
  if (!(Number.isInteger(threads) && threads >= 1)) throw new Error(`MOEKIT_THREADS must be a positive integer, got "${env}"`);
  return { threads };
}

function envBackend(): string {
  const env = typeof process !== 'undefined' ? process.env?.MOEKIT_BACKEND : undefined;
  return env && env.length > 0 ? env : 'wasm';
}

/**
 * Registers a backend factory under a name, for setBackend(name) and MOEKIT_BACKEND; `sync`, where the backend can be
 * made synchronously, lets the first op make it without `await ready()`. src/backend/registry.ts registers the
 * built-in ones.
 */
export function registerBackend(name: string, factory: BackendFactory, sync?: SyncBackendFactory): void {
  ENGINE.factories.set(name, factory);
  if (sync) ENGINE.syncFactories.set(name, sync);
  else ENGINE.syncFactories.delete(name);
}

/** Creates (or takes) a backend and makes it current. */
export async function setBackend(which: string | Backend): Promise<Backend> {
  if (typeof which !== 'string') {
    ENGINE.backend = which;
    return which;
  }
  const factory = ENGINE.factories.get(which);
  if (!factory) {
    const known = [...ENGINE.factories.keys()];
    throw new Error(known.length > 0
      ? `setBackend: unknown backend "${which}"; known: ${known.join(', ')}`
      : `setBackend: unknown backend "${which}": no backend is registered; import 'moekit' (or src/backend/registry.js) first`);
  }
  ENGINE.backend = await factory();
  return ENGINE.backend;
}

/** Makes an existing backend current (synchronous). */
export function useBackend(backend: Backend): void {
  ENGINE.backend = backend;
}

/** Makes the backend named by MOEKIT_BACKEND (default wasm) current, unless one already is. */
export async function ready(): Promise<Backend> {
  return ENGINE.backend ?? setBackend(envBackend());
}

export function getBackend(): Backend {
  return ENGINE.current();
}

/** Wraps existing storage as a tensor (tracked by the current tidy scope). */
export function wrap(backend: Backend, id: number, shape: readonly number[], dtype: DType): Tensor {
  const t = new Tensor(backend, id, shape, dtype);
  ENGINE.track(t);
  return t;
}

/** A tensor holding a copy of `data` on the current (or given) backend. */
export function fromTyped(data: TypedArray, shape: readonly number[], dtype: DType, backend: Backend = ENGINE.current()): Tensor {
  if (sizeOf(shape) !== data.length) throw new ShapeError(`tensor: ${data.length} values do not fill shape (${shape.join(', ')})`);
  if (!matchesDType(data, dtype)) throw new ShapeError(`tensor: ${data.constructor.name} cannot hold dtype ${dtype}`);
  const id = backend.allocate(dtype, data.length);
  backend.write(id, data);
  return wrap(backend, id, shape, dtype);
}

/** Typed array of `dtype` holding `values` (numbers, converted). */
export function typedFrom(values: ArrayLike<number>, dtype: DType): TypedArray {
  const out = allocTyped(dtype, values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]!;
  return out;
}

/** Runs one op: checks shapes and dtypes, dispatches to the backend, records it for autograd. */
export function runOp<O extends Op>(op: O, inputs: readonly Tensor[], params: OpParams[O]): Tensor[] {
  const backend = ENGINE.current();
  for (const t of inputs) {
    t.assertAlive(op);
    if (t.backend !== backend) throw new Error(`${op}: input ${fmtInfo(t.shape, t.dtype)} lives on backend ${t.backend.name}, but the current backend is ${backend.name}`);
  }
  const infos = INFER[op](inputs, params);
  const ids = backend.run(op, inputs.map((t) => ({ id: t.dataId, shape: t.shape, dtype: t.dtype })), params, infos);
  const outs = ids.map((id, i) => wrap(backend, id, infos[i]!.shape, infos[i]!.dtype));
  if (ENGINE.gradEnabled && !NON_DIFFERENTIABLE.has(op) && inputs.some((t) => t.requiresGrad)) {
    const node: TapeNode<O> = { op, inputs: [...inputs], params, outputs: outs, seq: ENGINE.seq++ };
    for (const o of outs) {
      if (o.dtype !== 'f32') continue;
      o.requiresGrad = true;
      o.node = node as unknown as TapeNode;
    }
  }
  return outs;
}

/**
 * Reshape without a copy: the result shares x's storage (freed when the last holder is disposed). Recorded for
 * autograd as the Reshape op, so its gradient rule applies. Storage is written in place only by `assign`, which
 * then shows through every view of the target.
 */
export function reshapeView(x: Tensor, shape: readonly number[]): Tensor {
  const backend = ENGINE.current();
  x.assertAlive(Op.Reshape);
  if (x.backend !== backend) throw new Error(`${Op.Reshape}: input ${fmtInfo(x.shape, x.dtype)} lives on backend ${x.backend.name}, but the current backend is ${backend.name}`);
  const params = { shape: [...shape] };
  const info = INFER[Op.Reshape]([x], params)[0]!;
  shareStorage(x);
  const out = wrap(backend, x.dataId, info.shape, info.dtype);
  if (ENGINE.gradEnabled && x.requiresGrad && x.dtype === 'f32') {
    const node: TapeNode<Op.Reshape> = { op: Op.Reshape, inputs: [x], params, outputs: [out], seq: ENGINE.seq++ };
    out.requiresGrad = true;
    out.node = node as unknown as TapeNode;
  }
  return out;
}

/**
 * Overwrites `target`'s storage with `value`'s (same shape and dtype, same backend): the in-place update
 * optimizers use, so modules keep their parameter tensors. Not recorded for autograd.
 */
export function assign(target: Tensor, value: Tensor): void {
  target.assertAlive('assign');
  value.assertAlive('assign');
  if (target.dtype !== value.dtype || !shapesEqual(target.shape, value.shape)) {
    throw new ShapeError(`assign: value ${fmtInfo(value.shape, value.dtype)} does not match target ${fmtInfo(target.shape, target.dtype)}`);
  }
  if (target.backend !== value.backend) throw new Error(`assign: value lives on backend ${value.backend.name}, target on ${target.backend.name}`);
  if (target.dataId !== value.dataId) target.backend.copy(value.dataId, target.dataId);
}

/**
 * Overwrites `count` elements of `target`'s storage from element `at` with `value`'s elements from `from` (same dtype,
 * same backend): an in-place write, as `assign`, for storage that grows in place (a KV pool). Not recorded for autograd;
 * shows through every view of the target.
 */
export function assignRange(target: Tensor, at: number, value: Tensor, from = 0, count = value.size - from): void {
  target.assertAlive('assignRange');
  value.assertAlive('assignRange');
  if (target.dtype !== value.dtype) throw new ShapeError(`assignRange: value ${fmtInfo(value.shape, value.dtype)} does not match the dtype of target ${fmtInfo(target.shape, target.dtype)}`);
  if (target.backend !== value.backend) throw new Error(`assignRange: value lives on backend ${value.backend.name}, target on ${target.backend.name}`);
  for (const [name, n] of [['at', at], ['from', from], ['count', count]] as const) {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`assignRange: ${name} must be a non-negative integer, got ${n}`);
  }
  if (from + count > value.size) throw new RangeError(`assignRange: elements [${from}, ${from + count}) are not within value ${fmtInfo(value.shape, value.dtype)} (${value.size} elements)`);
  if (at + count > target.size) throw new RangeError(`assignRange: elements [${at}, ${at + count}) are not within target ${fmtInfo(target.shape, target.dtype)} (${target.size} elements)`);
  if (count > 0) target.backend.copyRange(value.dataId, target.dataId, from, at, count);
}

/** Runs fn without recording ops for autograd. */
export function noGrad<T>(fn: () => T): T {
  const prev = ENGINE.gradEnabled;
  ENGINE.gradEnabled = false;
  try {
    return fn();
  } finally {
    ENGINE.gradEnabled = prev;
  }
}

export type TensorContainer = Tensor | number | string | boolean | null | undefined | void | readonly TensorContainer[] | { readonly [k: string]: TensorContainer };

function collect(x: unknown, into: Set<Tensor>): void {
  if (x instanceof Tensor) into.add(x);
  else if (ArrayBuffer.isView(x)) return;
  else if (Array.isArray(x)) for (const v of x) collect(v, into);
  else if (x && typeof x === 'object') for (const v of Object.values(x)) collect(v, into);
}

/**
 * Runs fn in a scope: every tensor created inside is disposed on exit, except the tensors in the
 * result and tensors marked with `keep`. Returned tensors move to the enclosing scope. If fn throws,
 * every tensor it created (and did not keep) is disposed before the error propagates.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  ENGINE.scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    for (const t of scope) if (!t.kept) t.dispose();
    throw err;
  } finally {
    ENGINE.scopes.pop();
  }
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  for (const t of scope) {
    if (survivors.has(t)) ENGINE.track(t);
    else if (!t.kept) t.dispose();
  }
  return result;
}

/** Excludes a tensor from tidy clean-up; the caller disposes it. */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  return t;
}

/** Disposes every tensor in a container. */
export function dispose(x: TensorContainer): void {
  const all = new Set<Tensor>();
  collect(x, all);
  for (const t of all) t.dispose();
}
