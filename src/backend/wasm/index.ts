// The wasm backend: tensors live in one shared WebAssembly.Memory; hot ops run SIMD kernels on a worker pool.
import { bytesPerElement, matchesDType, viewTyped, type DType, type TypedArray } from '../../tensor/dtype.js';
import type { Op, OpParams, TensorInfo } from '../../tensor/ops.js';
import { sizeOf } from '../../tensor/shape.js';
import type { Backend, BackendInput, DataId } from '../backend.js';
import { WasmRuntime, type WasmRuntimeOptions } from './runtime.js';
import type { WasmView } from './kernel.js';
import { WASM_KERNELS } from './table.js';

interface Slot {
  ptr: number;
  size: number;
  dtype: DType;
}

/**
 * What a kernel sees of a tensor: its pointer, and a typed-array view made on the first read of `data` (most kernels
 * need only the pointer; the view is a new object, and reading a shared memory's buffer is not free).
 */
class LazyView implements WasmView {
  private view: TypedArray | null = null;
  constructor(private readonly memory: WebAssembly.Memory, private readonly memos: Map<DataId, Map<string, unknown>>, private readonly id: DataId,
    readonly ptr: number, readonly size: number, readonly shape: readonly number[], readonly dtype: DType) {}
  get data(): TypedArray {
    return (this.view ??= viewTyped(this.dtype, this.memory.buffer, this.ptr, this.size));
  }
  memo<T>(key: string, compute: () => T): T {
    let m = this.memos.get(this.id);
    if (!m) this.memos.set(this.id, (m = new Map()));
    if (m.has(key)) return m.get(key) as T;
    const v = compute();
    m.set(key, v);
    return v;
  }
}

export class WasmBackend implements Backend {
  readonly name = 'wasm';
  private readonly slots = new Map<DataId, Slot>();
  /** facts computed from stored values (WasmView.memo), dropped when the storage is written or freed */
  private readonly memos = new Map<DataId, Map<string, unknown>>();
  private nextId = 1;

  private constructor(readonly rt: WasmRuntime) {}

  /** Compiles the kernels (relaxed SIMD when the runtime validates it) and starts the worker pool. */
  static async create(opts: WasmRuntimeOptions = {}): Promise<WasmBackend> {
    return new WasmBackend(await WasmRuntime.create(opts));
  }

  get threads(): number {
    return this.rt.threads;
  }

  /** 'chunked' or 'static' (WasmRuntimeOptions.pool). */
  get pool(): 'chunked' | 'static' {
    return this.rt.pool;
  }

  get relaxedSimd(): boolean {
    return this.rt.relaxed;
  }

  allocate(dtype: DType, size: number): DataId {
    const bytes = size * bytesPerElement(dtype);
    const ptr = bytes === 0 ? 0 : this.rt.alloc(bytes);
    const id = this.nextId++;
    this.slots.set(id, { ptr, size, dtype });
    return id;
  }

  free(id: DataId): void {
    const s = this.slots.get(id);
    if (!s) throw new Error(`wasm backend: free of unknown or already freed data id ${id}`);
    if (s.ptr !== 0) this.rt.free(s.ptr);
    this.slots.delete(id);
    this.memos.delete(id);
  }

  private slot(id: DataId): Slot {
    const s = this.slots.get(id);
    if (!s) throw new Error(`wasm backend: data id ${id} is not allocated (was the tensor disposed?)`);
    return s;
  }

  /** A typed-array view of a tensor's storage inside wasm memory (valid until the next free of that id). */
  view(id: DataId): TypedArray {
    const s = this.slot(id);
    return viewTyped(s.dtype, this.rt.memory.buffer, s.ptr, s.size);
  }

  write(id: DataId, data: TypedArray): void {
    const s = this.slot(id);
    if (data.length !== s.size) throw new Error(`wasm backend: write of ${data.length} elements into storage of ${s.size}`);
    if (!matchesDType(data, s.dtype)) throw new Error(`wasm backend: write of ${data.constructor.name} into ${s.dtype} storage`);
    this.memos.delete(id);
    this.view(id).set(data);
  }

  copy(src: DataId, dst: DataId): void {
    const a = this.slot(src);
    const b = this.slot(dst);
    if (a.dtype !== b.dtype || a.size !== b.size) throw new Error(`wasm backend: copy of ${a.dtype}[${a.size}] into ${b.dtype}[${b.size}]`);
    this.memos.delete(dst);
    this.view(dst).set(this.view(src));
  }

  copyRange(src: DataId, dst: DataId, srcOffset: number, dstOffset: number, count: number): void {
    const a = this.slot(src);
    const b = this.slot(dst);
    if (a.dtype !== b.dtype) throw new Error(`wasm backend: copy of ${a.dtype} into ${b.dtype}`);
    this.memos.delete(dst);
    const bytes = bytesPerElement(a.dtype);
    new Uint8Array(this.rt.memory.buffer).copyWithin(b.ptr + dstOffset * bytes, a.ptr + srcOffset * bytes, a.ptr + (srcOffset + count) * bytes);
  }

  readSync(id: DataId): TypedArray {
    return this.view(id).slice();
  }

  read(id: DataId): Promise<TypedArray> {
    return Promise.resolve(this.readSync(id));
  }

  run<O extends Op>(op: O, inputs: readonly BackendInput[], params: OpParams[O], outputs: readonly TensorInfo[]): DataId[] {
    const ids = outputs.map((o) => this.allocate(o.dtype, sizeOf(o.shape)));
    // most kernels need only pointers: the typed-array view (a new object per call) is made on first use
    const mk = (id: DataId, info: TensorInfo): WasmView => {
      const s = this.slot(id);
      return new LazyView(this.rt.memory, this.memos, id, s.ptr, s.size, info.shape, info.dtype);
    };
    const ins = inputs.map((t) => mk(t.id, t));
    const outs = ids.map((id, i) => mk(id, outputs[i]!));
    try {
      WASM_KERNELS[op](this.rt, ins, params, outs);
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
    return this.rt.bytesInUse;
  }

  async dispose(): Promise<void> {
    this.slots.clear();
    this.memos.clear();
    await this.rt.dispose();
  }
}

