// The webgpu kernel table: one WGSL kernel per op, checked exhaustive by the compiler.
// Each kernel generates its shader from the dtypes it sees (the source is the pipeline-cache key) and passes sizes,
// shapes and strides in a u32 `meta` array.
import type { KernelTable } from './context.js';
import { elementwiseKernels } from './elementwise.js';
import { layoutKernels } from './layout.js';
import { matmulKernels } from './matmul.js';
import { moeKernels } from './moe.js';
import { nnKernels } from './nn.js';
import { reduceKernels } from './reduce.js';

export type { Kernel, KernelTable, Out } from './context.js';

export const KERNELS: KernelTable = {
  ...elementwiseKernels,
  ...reduceKernels,
  ...layoutKernels,
  ...matmulKernels,
  ...nnKernels,
  ...moeKernels,
};
