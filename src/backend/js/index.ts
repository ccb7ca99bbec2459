// The js backend: plain TypeScript kernels on typed arrays, the reference oracle for every other backend.
import { allocTyped, matchesDType, type DType, type TypedArray } from '../../tensor/dtype.js';
import type { Op, OpParams, TensorInfo } from '../../tensor/ops.js';
import { sizeOf } from '../../tensor/shape.js';
import type { Backend, BackendInput, DataId } from '../backend.js';
import type { View } from './view.js';
import { JS_KERNELS } from './kernels/index.js';

export interface JsBackendOptions {
  /** Store f32 tensors as float64 (for finite-difference gradient checks). Default false. */
  float64?: boolean;
}

export class JsBackend implements Backend {
  readonly name: string;
  readonly float64: boolean;
  private readonly store = new Map<DataId, { data: TypedArray; dtype: DType }>();
  private nextId = 1;
  private bytes = 0;

  constructor(opts: JsBackendOptions = {}) {
    this.float64 = opts.float64 ?? false;
    this.name = this.float64 ? 'js-f64' : 'js';
  }

  allocate(dtype: DType, size: number): DataId {
    const id = this.nextId++;
    const data = allocTyped(dtype, size, this.float64);
    this.store.set(id, { data, dtype });
    this.bytes += data.byteLength;
    return id;
  }

  free(id: DataId): void {
    const e = this.store.get(id);
    if (!e) throw new Error(`js backend: free of unknown or already freed data id ${id}`);
    this.bytes -= e.data.byteLength;
    this.store.delete(id);
  }

  private get(id: DataId): { data: TypedArray; dtype: DType } {
    const e = this.store.get(id);
    if (!e) throw new Error(`js backend: data id ${id} is not allocated (was the tensor disposed?)`);
    return e;
  }

  write(id: DataId, data: TypedArray): void {
    const e = this.get(id);
    if (data.length !== e.data.length) throw new Error(`js backend: write of ${data.length} elements into storage of ${e.data.length}`);
    if (!matchesDType(data, e.dtype)) throw new Error(`js backend: write of ${data.constructor.name} into ${e.dtype} storage`);
    e.data.set(data);
  }

  copy(src: DataId, dst: DataId): void {
    const a = this.get(src);
    const b = this.get(dst);
    if (a.dtype !== b.dtype || a.data.length !== b.data.length) throw new Error(`js backend: copy of ${a.dtype}[${a.data.length}] into ${b.dtype}[${b.data.length}]`);
    b.data.set(a.data);
  }

  copyRange(src: DataId, dst: DataId, srcOffset: number, dstOffset: number, count: number): void {
    const a = this.get(src);
    const b = this.get(dst);
    if (a.dtype !== b.dtype) throw new Error(`js backend: copy of ${a.dtype} into ${b.dtype}`);
    b.data.set(a.data.subarray(srcOffset, srcOffset + count), dstOffset);
  }

  readSync(id: DataId): TypedArray {
    return this.get(id).data.slice();
  }

  read(id: DataId): Promise<TypedArray> {
    return Promise.resolve(this.readSync(id));
  }

  run<O extends Op>(op: O, inputs: readonly BackendInput[], params: OpParams[O], outputs: readonly TensorInfo[]): DataId[] {
    const ins: View[] = inputs.map((t) => ({ data: this.get(t.id).data, shape: t.shape, dtype: t.dtype }));
    const ids = outputs.map((o) => this.allocate(o.dtype, sizeOf(o.shape)));
    const outs: View[] = outputs.map((o, i) => ({ data: this.get(ids[i]!).data, shape: o.shape, dtype: o.dtype }));
    try {
      JS_KERNELS[op](ins, params, outs);
    } catch (err) {
      for (const id of ids) this.free(id);
      throw err;
    }
    return ids;
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  bytesInUse(): number {
    return this.bytes;
  }

  dispose(): Promise<void> {
    this.store.clear();
    this.bytes = 0;
    return Promise.resolve();
  }
}
