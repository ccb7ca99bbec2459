// The small backend interface: allocate, free, write, read, run(op), flush. Backends never see modules or autograd.
import type { DType, TypedArray } from '../tensor/dtype.js';
import type { Op, OpParams, TensorInfo } from '../tensor/ops.js';

/** Opaque handle to a backend's storage for one tensor. */
export type DataId = number;

/** An input as a backend sees it: its storage and its shape. */
export interface BackendInput extends TensorInfo {
  readonly id: DataId;
}

export interface Backend {
  readonly name: string;
  /** Storage for `size` elements of `dtype` (contents unspecified until written or computed). */
  allocate(dtype: DType, size: number): DataId;
  free(id: DataId): void;
  write(id: DataId, data: TypedArray): void;
  /** A copy of the data, resolved when the backend has finished the work that produces it. */
  read(id: DataId): Promise<TypedArray>;
  /** Synchronous read, for backends whose memory the host can see (js, wasm); undefined on GPU backends. */
  readSync?(id: DataId): TypedArray;
  /** Copies the contents of `src` into `dst` (same dtype and size), on the device. */
  copy(src: DataId, dst: DataId): void;
  /** Copies `count` elements of `src` from element `srcOffset` into `dst` at element `dstOffset` (same dtype), on the device. */
  copyRange(src: DataId, dst: DataId, srcOffset: number, dstOffset: number, count: number): void;
  /** Runs one op; outputs are freshly allocated with the shapes and dtypes shape inference gave. */
  /** Whether the backend implements `op` (absent: every op). Models use it to pick fused kernels when present. */
  supports?(op: Op): boolean;
  run<O extends Op>(op: O, inputs: readonly BackendInput[], params: OpParams[O], outputs: readonly TensorInfo[]): DataId[];
  /** Waits for queued work. */
  flush(): Promise<void>;
  /** Bytes currently allocated, for memory accounting and leak tests. */
  bytesInUse(): number;
  dispose(): Promise<void>;
}
