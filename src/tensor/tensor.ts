// Tensor: a shape, a dtype and a handle to backend storage, plus the autograd links that ops record.
import type { Backend, DataId } from '../backend/backend.js';
import type { DType, TypedArray } from './dtype.js';
import type { Op, OpParams } from './ops.js';
import { fmtInfo, sizeOf } from './shape.js';

/** One recorded op application: what backward needs to run its gradient rule. */
export interface TapeNode<O extends Op = Op> {
  readonly op: O;
  readonly inputs: readonly Tensor[];
  readonly params: OpParams[O];
  readonly outputs: readonly Tensor[];
  /** Monotonic creation order; backward visits nodes newest first. */
  readonly seq: number;
}

/**
 * Storage shared by more than one tensor (reshape views): per backend, data id -> holders beyond the first. A
 * tensor's dispose frees the storage only when it is the last holder.
 */
const SHARED = new WeakMap<Backend, Map<DataId, number>>();

/** Counts one more holder of `t`'s storage (the engine's zero-copy reshape). */
export function shareStorage(t: Tensor): void {
  let m = SHARED.get(t.backend);
  if (!m) SHARED.set(t.backend, (m = new Map()));
  m.set(t.dataId, (m.get(t.dataId) ?? 0) + 1);
}

/** Whether another live tensor holds `t`'s storage too (an in-place write to it would show through). */
export function storageShared(t: Tensor): boolean {
  return (SHARED.get(t.backend)?.get(t.dataId) ?? 0) > 0;
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly backend: Backend;
  readonly dataId: DataId;
  /** Gradients flow into (leaf) or through (recorded) this tensor. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf after `backward`. */
  grad: Tensor | null = null;
  /** The op that produced this tensor, when recorded for autograd. */
  node: TapeNode | null = null;
  /** Excluded from `tidy` clean-up (parameters, gradients, results the caller keeps). */
  kept = false;
  private freed = false;

  constructor(backend: Backend, dataId: DataId, shape: readonly number[], dtype: DType) {
    this.backend = backend;
    this.dataId = dataId;
    this.shape = Object.isFrozen(shape) ? shape : Object.freeze([...shape]); // another tensor's shape is shared as is
    this.dtype = dtype;
  }

  get size(): number {
    return sizeOf(this.shape);
  }

  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.freed;
  }

  /** Throws a clear error if this tensor was disposed. */
  assertAlive(context: string): void {
    if (this.freed) throw new Error(`${context}: tensor ${fmtInfo(this.shape, this.dtype)} was already disposed`);
  }

  /** A copy of the data (awaits the backend). */
  async data(): Promise<TypedArray> {
    this.assertAlive('data');
    return this.backend.read(this.dataId);
  }

  /** A copy of the data, synchronously (CPU backends only). */
  dataSync(): TypedArray {
    this.assertAlive('dataSync');
    if (!this.backend.readSync) throw new Error(`dataSync: backend ${this.backend.name} reads asynchronously; use await tensor.data()`);
    return this.backend.readSync(this.dataId);
  }

  /** The values as a plain number array (row-major), synchronously. */
  toArray(): number[] {
    return Array.from(this.dataSync());
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor ${fmtInfo(this.shape, this.dtype)} has ${this.size} elements, expected 1`);
    return this.dataSync()[0]!;
  }

  /** Frees the storage now. Safe to call twice. */
  dispose(): void {
    if (this.freed) return;
    this.freed = true;
    const m = SHARED.get(this.backend);
    const others = m?.get(this.dataId);
    if (others === undefined) this.backend.free(this.dataId);
    else if (others > 1) m!.set(this.dataId, others - 1);
    else m!.delete(this.dataId);
  }

  toString(): string {
    return `Tensor${fmtInfo(this.shape, this.dtype)}`;
  }
}
