// The device context webgpu kernels record into, and the kernel types (one signature per op, the exhaustive table).
import type { BackendInput, DataId } from '../backend.js';
import type { DType } from '../../tensor/dtype.js';
import type { Op, OpParams, TensorInfo } from '../../tensor/ops.js';
import type { GpuBuffer } from './gpu-types.js';

/** A buffer of the backend's storage. */
export interface Stored {
  buffer: GpuBuffer;
  dtype: DType;
  size: number;
  /** the pool bucket (buffer size in bytes) */
  bytes: number;
}

/** What a kernel needs of the backend: storage, device-side copies and dispatches into the open command encoder. */
export interface DeviceContext {
  allocate(dtype: DType, size: number): DataId;
  free(id: DataId): void;
  stored(id: DataId): Stored;
  copy(src: DataId, dst: DataId): void;
  /** Records one dispatch: buffers bound in order at group 0, bindings 0.., the u32 meta array last. */
  dispatch(code: string, buffers: readonly GpuBuffer[], meta: readonly number[], groups: [number, number?, number?]): void;
}

export type Out = TensorInfo & { readonly id: number };
export type Kernel<O extends Op> = (b: DeviceContext, ins: readonly BackendInput[], p: OpParams[O], outs: readonly Out[]) => void;
/** One kernel per op: an op without one fails to compile. */
export type KernelTable = { [O in Op]: Kernel<O> };
