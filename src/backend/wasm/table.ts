// The wasm kernel table: SIMD kernels for the hot ops, js kernels on views of wasm memory for the cold ones.
import { JS_KERNELS } from '../js/kernels/index.js';
import { checkOffsets } from '../js/kernels/linalg.js';
import { ix, type View } from '../js/view.js';
import { Op, type OpParams } from '../../tensor/ops.js';
import { sizeOf } from '../../tensor/shape.js';
import type { WasmKernel, WasmView } from './kernel.js';
import * as K from './kernels.js';
import * as NN from './nn.js';
import * as MOE from './moe.js';

/** Runs the js reference kernel directly on the wasm memory views (cold ops). */
function viaJs<O extends Op>(op: O): WasmKernel<O> {
  const k = JS_KERNELS[op] as (ins: readonly View[], p: OpParams[O], outs: readonly View[]) => void;
  return (_rt, ins, p, outs) => k(ins, p, outs);
}

const matmul: WasmKernel<Op.Matmul> = (rt, ins, p, outs) => {
  const [a, b, bias] = ins as [WasmView, WasmView, WasmView | undefined];
  const out = outs[0]!;
  const M = out.shape.at(-2)!;
  const N = out.shape.at(-1)!;
  const Kd = a.shape.at(p.transA ? -2 : -1)!;
  const batch = sizeOf(out.shape.slice(0, -2));
  if (batch === 0 || M === 0 || N === 0) return;
  if (Kd === 0) {
    // an empty inner dimension: the product is zero (plus the bias)
    const b0 = bias?.data;
    for (let i = 0; i < out.data.length; i++) out.data[i] = b0 ? b0[i % N]! : 0;
    return;
  }
  K.matmul(rt, {
    a: a.ptr, b: b.ptr, c: out.ptr, bias: bias ? bias.ptr : 0, M, N, K: Kd,
    transA: p.transA, transB: p.transB, accumulate: false, batch,
    strideA: M * Kd, strideB: b.shape.length > 2 ? Kd * N : 0, strideC: M * N,
  });
};

const groupedMatmul: WasmKernel<Op.GroupedMatmul> = (rt, ins, p, outs) => {
  const [x, w, off] = ins as [WasmView, WasmView, WasmView];
  const [T, Kd] = x.shape as [number, number];
  const N = outs[0]!.shape[1]!;
  checkOffsets(ix(off), off.shape[0]! - 1, T);
  if (T === 0 || N === 0) return;
  if (Kd === 0) {
    outs[0]!.data.fill(0);
    return;
  }
  K.groupedMatmul(rt, { x: x.ptr, w: w.ptr, y: outs[0]!.ptr, offsets: off.ptr, E: off.shape[0]! - 1, K: Kd, N, transW: p.transW });
};

const groupedMatmulWeightGrad: WasmKernel<Op.GroupedMatmulWeightGrad> = (rt, ins, p, outs) => {
  const [x, dy, off] = ins as [WasmView, WasmView, WasmView];
  checkOffsets(ix(off), off.shape[0]! - 1, x.shape[0]!);
  const E = off.shape[0]! - 1;
  const dw = outs[0]!;
  if (dw.data.length === 0) return;
  // (E, K, N) = x_eᵀ·dy_e; the transposed layout (E, N, K) = dy_eᵀ·x_e is the same kernel with operands swapped
  const [a, b] = p.transW ? [dy, x] : [x, dy];
  K.groupedMatmulWeightGrad(rt, { x: a.ptr, dy: b.ptr, dw: dw.ptr, offsets: off.ptr, E, K: a.shape[1]!, N: b.shape[1]! });
};

const quantMatmul: WasmKernel<Op.QuantMatmul> = (rt, ins, p, outs) => {
  const [x, w, scales] = ins as [WasmView, WasmView, WasmView | undefined];
  const [M, Kd] = x.shape as [number, number];
  const N = w.shape[0]!;
  if (M === 0 || N === 0) return;
  if (Kd === 0) {
    outs[0]!.data.fill(0);
    return;
  }
  K.qmatmul(rt, { x: x.ptr, w: w.ptr, scales: scales ? scales.ptr : 0, y: outs[0]!.ptr, M, N, K: Kd, format: p.format, groupSize: p.groupSize });
};

export const WASM_KERNELS: { [O in Op]: WasmKernel<O> } = {
  [Op.Add]: NN.binary(Op.Add),
  [Op.Sub]: NN.binary(Op.Sub),
  [Op.Mul]: NN.binary(Op.Mul),
  [Op.Div]: NN.binary(Op.Div),
  [Op.Pow]: viaJs(Op.Pow),
  [Op.Maximum]: NN.binary(Op.Maximum),
  [Op.Compare]: viaJs(Op.Compare),
  [Op.Where]: viaJs(Op.Where),
  [Op.Neg]: NN.unary(Op.Neg),
  [Op.Abs]: NN.unary(Op.Abs),
  [Op.Exp]: NN.unary(Op.Exp),
  [Op.Log]: NN.unary(Op.Log),
  [Op.Sqrt]: NN.unary(Op.Sqrt),
  [Op.Rsqrt]: NN.unary(Op.Rsqrt),
  [Op.Sigmoid]: NN.unary(Op.Sigmoid),
  [Op.Tanh]: NN.unary(Op.Tanh),
  [Op.Silu]: NN.unary(Op.Silu),
  [Op.Gelu]: NN.gelu,
  [Op.GeluGrad]: NN.geluGrad,
  [Op.Sum]: viaJs(Op.Sum),
  [Op.Mean]: viaJs(Op.Mean),
  [Op.Max]: viaJs(Op.Max),
  [Op.LogSumExp]: NN.logSumExp,
  [Op.Argmax]: viaJs(Op.Argmax),
  [Op.Softmax]: NN.softmax,
  [Op.LogSoftmax]: NN.logSoftmax,
  [Op.TopK]: viaJs(Op.TopK),
  [Op.TakeAlong]: viaJs(Op.TakeAlong),
  [Op.ScatterAlong]: viaJs(Op.ScatterAlong),
  [Op.Reshape]: viaJs(Op.Reshape),
  [Op.Transpose]: viaJs(Op.Transpose),
  [Op.Slice]: viaJs(Op.Slice),
  [Op.Concat]: viaJs(Op.Concat),
  [Op.Pad]: viaJs(Op.Pad),
  [Op.Gather]: NN.gather,
  [Op.ScatterAdd]: NN.scatterAdd,
  [Op.Cast]: viaJs(Op.Cast),
  [Op.Dequantize]: viaJs(Op.Dequantize),
  [Op.Quantize]: viaJs(Op.Quantize),
  [Op.Matmul]: matmul,
  [Op.GroupedMatmul]: groupedMatmul,
  [Op.GroupedMatmulWeightGrad]: groupedMatmulWeightGrad,
  [Op.QuantMatmul]: quantMatmul,
  [Op.ExpertBins]: viaJs(Op.ExpertBins),
  [Op.RouteTopK]: MOE.routeTopK,
  [Op.MoeFfn]: MOE.moeFfn,
  [Op.ClusteredFfn]: MOE.clusteredFfn,
  [Op.RMSNorm]: NN.rmsNorm,
  [Op.RMSNormGrad]: NN.rmsNormGrad,
  [Op.RoPE]: viaJs(Op.RoPE),
  [Op.Attention]: NN.attention,
  [Op.AttentionGrad]: NN.attentionGrad,
  [Op.RaggedAttention]: NN.raggedAttention,
  [Op.CrossEntropy]: NN.crossEntropy,
  [Op.CrossEntropyGrad]: NN.crossEntropyGrad,
};
