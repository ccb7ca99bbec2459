// CPU tensor views: the data + shape pairs that js kernels read and write (also used by wasm on its memory).
import type { DType, FloatArray, TypedArray } from '../../tensor/dtype.js';
import type { Op, OpParams } from '../../tensor/ops.js';

export interface View {
  readonly data: TypedArray;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** A CPU kernel: reads `ins`, writes every element of `outs` (outputs may hold garbage on entry). */
export type CpuKernel<O extends Op> = (ins: readonly View[], p: OpParams[O], outs: readonly View[]) => void;
export type CpuKernelTable = { [O in Op]: CpuKernel<O> };

/** Float data of a view (f32 tensors are Float32Array, or Float64Array in float64 checking mode). */
export function fl(v: View | undefined): FloatArray {
  const d = v?.data;
  if (!(d instanceof Float32Array || d instanceof Float64Array)) throw new Error(`internal: expected float data, got ${v?.dtype}`);
  return d;
}

/** Int32 data of a view. */
export function ix(v: View | undefined): Int32Array {
  const d = v?.data;
  if (!(d instanceof Int32Array)) throw new Error(`internal: expected i32 data, got ${v?.dtype}`);
  return d;
}
