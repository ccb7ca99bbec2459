// The js kernel table: one reference kernel per op, checked exhaustive by the compiler.
import type { CpuKernelTable } from '../view.js';
import { attentionKernels } from './attention.js';
import { elementwiseKernels } from './elementwise.js';
import { layoutKernels } from './layout.js';
import { linalgKernels } from './linalg.js';
import { moeKernels } from './moe.js';
import { nnKernels } from './nn.js';
import { quantKernels } from './quant.js';
import { reduceKernels } from './reduce.js';

export const JS_KERNELS: CpuKernelTable = {
  ...elementwiseKernels,
  ...reduceKernels,
  ...layoutKernels,
  ...quantKernels,
  ...linalgKernels,
  ...nnKernels,
  ...attentionKernels,
  ...moeKernels,
};
