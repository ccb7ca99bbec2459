// What a wasm kernel is: a function of the runtime, views of its inputs in wasm memory, its params and its outputs.
import type { View } from '../js/view.js';
import type { Op, OpParams } from '../../tensor/ops.js';
import type { WasmRuntime } from './runtime.js';

/** A view that also knows its byte address in wasm memory. */
export interface WasmView extends View {
  readonly ptr: number;
  /** elements (data.length, without making the view) */
  readonly size: number;
  /**
   * A fact about the stored values, computed once per storage and kept until the storage is written in place
   * (write, copy) or freed: e.g. "these f16 weights are all finite".
   */
  memo<T>(key: string, compute: () => T): T;
}
export type WasmKernel<O extends Op> = (rt: WasmRuntime, ins: readonly WasmView[], p: OpParams[O], outs: readonly WasmView[]) => void;
