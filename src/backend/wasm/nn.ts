// Typed wrappers for the SIMD nn kernels (assembly/nn*.ts): elementwise, softmax family, RMSNorm, cross-entropy,
// attention. Each cuts its work into chunks by the problem size and falls back to the js kernel for the cases the
// wasm kernels do not take (non-f32 dtypes, unusual broadcasts, reductions along a non-last axis).
import { JS_KERNELS } from '../js/kernels/index.js';
import { checkRaggedSeqs } from '../js/kernels/attention.js';
import type { View } from '../js/view.js';
import { Op, type OpParams } from '../../tensor/ops.js';
import { normAxis, splitAxis } from '../../tensor/shape.js';
import { chunksFor } from './chunks.js';
import type { WasmRuntime } from './runtime.js';
import type { WasmKernel, WasmView } from './kernel.js';

/** Runs a kernel export as `nchunks` chunks on the worker pool (1 = one call on the calling thread). */
function par(rt: WasmRuntime, name: string, args: number[], nchunks: number): void {
  rt.parallel(name, args, nchunks);
}

function js<O extends Op>(op: O, ins: readonly WasmView[], p: OpParams[O], outs: readonly WasmView[]): void {
  (JS_KERNELS[op] as (ins: readonly View[], p: OpParams[O], outs: readonly View[]) => void)(ins, p, outs);
}

const allF32 = (vs: readonly WasmView[]): boolean => vs.every((v) => v.dtype === 'f32');

// ---------------------------------------------------------------------------------------------------------------
// elementwise

const BINARY_CODE = { [Op.Add]: 0, [Op.Sub]: 1, [Op.Mul]: 2, [Op.Div]: 3, [Op.Maximum]: 4 } as const;
type BinaryOp = keyof typeof BINARY_CODE;

/** Whether `s` (leading 1s dropped) equals the trailing part of `out`: its data repeats once per row of out. */
function isTrailing(s: readonly number[], out: readonly number[]): boolean {
  let k = 0;
  while (k < s.length && s[k] === 1) k++;
  const n = s.length - k;
  if (n > out.length) return false;
  for (let i = 0; i < n; i++) if (s[k + i] !== out[out.length - n + i]) return false;
  return true;
}

/** b is (..., 1) against out (..., n): one value per row of the output (e.g. MoE routing weights). */
function isRowScalar(b: readonly number[], out: readonly number[]): boolean {
  const r = out.length;
  return r > 0 && b.length === r && b[r - 1] === 1 && b.every((d, i) => i === r - 1 || d === out[i]);
}

/** Add/Sub/Mul/Div/Maximum on f32: same shape, a scalar operand, or one operand repeated over rows of the other. */
export function binary<O extends BinaryOp>(op: O): WasmKernel<O> {
  const code = BINARY_CODE[op];
  return (rt, ins, p, outs) => {
    const [a, b] = ins as [WasmView, WasmView];
    const o = outs[0]!;
    if (!allF32([a, b, o])) return js(op, ins, p, outs);
    const n = o.size;
    if (n === 0) return;
    const la = a.size;
    const lb = b.size;
    const nt = chunksFor(n, 1 << 15);
    if (la === n && lb === n) par(rt, 'nn_binary', [code, a.ptr, b.ptr, o.ptr, n, 0], nt);
    else if (la === n && lb === 1) par(rt, 'nn_binary', [code, a.ptr, b.ptr, o.ptr, n, 1], nt);
    else if (lb === n && la === 1) par(rt, 'nn_binary', [code, a.ptr, b.ptr, o.ptr, n, 2], nt);
    else if (la === n && lb > 0 && isRowScalar(b.shape, o.shape)) par(rt, 'nn_binary_rowscalar', [code, a.ptr, b.ptr, o.ptr, lb, n / lb], chunksFor(n, 1 << 15));
    else if (la === n && lb > 0 && isTrailing(b.shape, o.shape)) par(rt, 'nn_binary_rows', [code, a.ptr, b.ptr, o.ptr, n / lb, lb, 0], chunksFor(n, 1 << 15));
    else if (lb === n && la > 0 && isTrailing(a.shape, o.shape)) par(rt, 'nn_binary_rows', [code, a.ptr, b.ptr, o.ptr, n / la, la, 1], chunksFor(n, 1 << 15));
    else js(op, ins, p, outs);
  };
}

/** Unary op codes of nn_unary, with the elements one thread should get at least (cheap ops are memory bound). */
const UNARY = {
  [Op.Neg]: [0, 1 << 15], [Op.Abs]: [1, 1 << 15], [Op.Sqrt]: [2, 1 << 14], [Op.Rsqrt]: [3, 1 << 14],
  [Op.Exp]: [4, 1 << 13], [Op.Log]: [5, 1 << 13], [Op.Sigmoid]: [6, 1 << 13], [Op.Tanh]: [7, 1 << 13], [Op.Silu]: [8, 1 << 13],
} as const;
type UnaryOp = keyof typeof UNARY;

export function unary<O extends UnaryOp>(op: O): WasmKernel<O> {
  const [code, minPer] = UNARY[op];
  return (rt, ins, p, outs) => {
    const x = ins[0]!;
    const o = outs[0]!;
    if (!allF32([x, o])) return js(op, ins, p, outs);
    const n = o.size;
    if (n === 0) return;
    par(rt, 'nn_unary', [code, x.ptr, o.ptr, n], chunksFor(n, minPer));
  };
}

export const gelu: WasmKernel<Op.Gelu> = (rt, ins, p, outs) => {
  const x = ins[0]!;
  const o = outs[0]!;
  if (!allF32([x, o])) return js(Op.Gelu, ins, p, outs);
  const n = o.size;
  if (n === 0) return;
  par(rt, 'nn_unary', [p.approximate === 'tanh' ? 10 : 9, x.ptr, o.ptr, n], chunksFor(n, 1 << 12));
};

export const geluGrad: WasmKernel<Op.GeluGrad> = (rt, ins, p, outs) => {
  const [x, dy] = ins as [WasmView, WasmView];
  const o = outs[0]!;
  const n = o.size;
  if (!allF32([x, dy, o]) || x.size !== n || dy.size !== n) return js(Op.GeluGrad, ins, p, outs);
  if (n === 0) return;
  par(rt, 'nn_gelu_grad', [x.ptr, dy.ptr, o.ptr, n, p.approximate === 'tanh' ? 1 : 0], chunksFor(n, 1 << 12));
};

// ---------------------------------------------------------------------------------------------------------------
// rows: softmax family, RMSNorm, cross-entropy

/** (rows, n) when the reduction axis is the last one (or everything after it has size 1), else null. */
function lastAxisRows(shape: readonly number[], axis: number): [number, number] | null {
  const [outer, n, inner] = splitAxis(shape, normAxis('axis', axis, shape.length));
  return inner === 1 ? [outer, n] : null;
}

function rowKernel<O extends Op.Softmax | Op.LogSoftmax | Op.LogSumExp>(op: O, name: string): WasmKernel<O> {
  return (rt, ins, p, outs) => {
    const x = ins[0]!;
    const o = outs[0]!;
    const rn = allF32([x, o]) ? lastAxisRows(x.shape, p.axis) : null;
    if (!rn) return js(op, ins, p, outs);
    const [rows, n] = rn;
    if (rows === 0 || o.size === 0) return;
    par(rt, name, [x.ptr, o.ptr, rows, n], Math.min(chunksFor(rows * n, 1 << 13), rows));
  };
}

export const softmax = rowKernel(Op.Softmax, 'nn_softmax');
export const logSoftmax = rowKernel(Op.LogSoftmax, 'nn_log_softmax');
export const logSumExp = rowKernel(Op.LogSumExp, 'nn_logsumexp');

export const rmsNorm: WasmKernel<Op.RMSNorm> = (rt, ins, p, outs) => {
  const [x, w] = ins as [WasmView, WasmView];
  const o = outs[0]!;
  if (!allF32([x, w, o])) return js(Op.RMSNorm, ins, p, outs);
  const H = w.size;
  if (H === 0 || o.size === 0) return;
  const rows = x.size / H;
  par(rt, 'nn_rmsnorm', [x.ptr, w.ptr, o.ptr, rows, H, p.eps], Math.min(chunksFor(rows * H, 1 << 14), rows));
};

export const rmsNormGrad: WasmKernel<Op.RMSNormGrad> = (rt, ins, p, outs) => {
  const [x, w, dy] = ins as [WasmView, WasmView, WasmView];
  const [dx, dw] = outs as [WasmView, WasmView];
  if (!allF32([x, w, dy, dx, dw])) return js(Op.RMSNormGrad, ins, p, outs);
  const H = w.size;
  if (H === 0) return;
  const rows = x.size / H;
  const nt = chunksFor(rows * H, 1 << 14, rows);
  if (nt === 1) {
    par(rt, 'nn_rmsnorm_grad', [x.ptr, w.ptr, dy.ptr, dx.ptr, dw.ptr, rows, H, p.eps], 1);
    return;
  }
  // per-chunk partial dw rows, summed afterwards in chunk order
  const parts = rt.alloc(nt * H * 4);
  try {
    par(rt, 'nn_rmsnorm_grad', [x.ptr, w.ptr, dy.ptr, dx.ptr, parts, rows, H, p.eps], nt);
    par(rt, 'nn_sum_rows', [parts, dw.ptr, nt, H], 1);
  } finally {
    rt.free(parts);
  }
};

/** Whether every target is in [0, V) or the ignore index. */
function targetsValid(t: WasmView, V: number, ignoreIndex: number): boolean {
  const d = t.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    if (v !== ignoreIndex && (v < 0 || v >= V)) return false;
  }
  return true;
}

export const crossEntropy: WasmKernel<Op.CrossEntropy> = (rt, ins, p, outs) => {
  const [logits, tg] = ins as [WasmView, WasmView];
  const [loss, lse] = outs as [WasmView, WasmView];
  const [N, V] = logits.shape as [number, number];
  // the js kernel throws the range error for a bad target
  if (!allF32([logits, loss, lse]) || tg.dtype !== 'i32' || !targetsValid(tg, V, p.ignoreIndex)) return js(Op.CrossEntropy, ins, p, outs);
  if (N === 0) return;
  par(rt, 'nn_cross_entropy', [logits.ptr, tg.ptr, loss.ptr, lse.ptr, N, V, p.ignoreIndex], Math.min(chunksFor(N * V, 1 << 13), N));
};

export const crossEntropyGrad: WasmKernel<Op.CrossEntropyGrad> = (rt, ins, p, outs) => {
  const [logits, tg, lse, dl] = ins as [WasmView, WasmView, WasmView, WasmView];
  const g = outs[0]!;
  const [N, V] = logits.shape as [number, number];
  if (!allF32([logits, lse, dl, g]) || tg.dtype !== 'i32' || !targetsValid(tg, V, p.ignoreIndex)) return js(Op.CrossEntropyGrad, ins, p, outs);
  if (N === 0 || V === 0) return;
  par(rt, 'nn_cross_entropy_grad', [logits.ptr, tg.ptr, lse.ptr, dl.ptr, g.ptr, N, V, p.ignoreIndex], Math.min(chunksFor(N * V, 1 << 13), N));
};

// ---------------------------------------------------------------------------------------------------------------
// attention

function attnDims(q: WasmView, k: WasmView, v: WasmView): [number, number, number, number, number, number, number] {
  const [B, T, Hq, D] = q.shape as [number, number, number, number];
  const [, S, Hkv] = k.shape as [number, number, number];
  return [B, T, S, Hq, Hkv, D, v.shape[3]!];
}

/** Multiply-adds of a (causal or not) attention pass, to size the chunk count. */
function attnWork(B: number, T: number, S: number, Hq: number, D: number, Dv: number, causal: boolean): number {
  return B * Hq * T * (causal ? Math.min(S, S - T + (T + 1) / 2) : S) * (D + Dv);
}

export const attention: WasmKernel<Op.Attention> = (rt, ins, p, outs) => {
  const [q, k, v] = ins as [WasmView, WasmView, WasmView];
  const [o, lse] = outs as [WasmView, WasmView];
  if (!allF32([q, k, v, o, lse])) return js(Op.Attention, ins, p, outs);
  const [B, T, S, Hq, Hkv, D, Dv] = attnDims(q, k, v);
  if (B * T * Hq === 0) return;
  const nt = Math.min(chunksFor(attnWork(B, T, S, Hq, D, Dv, p.causal), 1 << 16), B * Hq * T);
  par(rt, 'nn_attention', [q.ptr, k.ptr, v.ptr, o.ptr, lse.ptr, B, T, S, Hq, Hkv, D, Dv, p.scale, p.causal ? 1 : 0, p.window], nt);
};

export const raggedAttention: WasmKernel<Op.RaggedAttention> = (rt, ins, p, outs) => {
  const [q, k, v, seqs] = ins as [WasmView, WasmView, WasmView, WasmView];
  const [o, lse] = outs as [WasmView, WasmView];
  const [N, Hq, D] = q.shape as [number, number, number];
  const [P, C, Hkv] = k.shape as [number, number, number];
  const Dv = v.shape[3]!;
  const table = seqs.data as Int32Array;
  checkRaggedSeqs(table, N, P, C);
  (o.data as Float32Array).fill(0);
  (lse.data as Float32Array).fill(-Infinity);
  const B = table.length / 4;
  let work = 0, items = 0;
  for (let b = 0; b < B; b++) {
    const rows = table[4 * b + 1]!, S = table[4 * b + 3]!;
    work += attnWork(1, rows, S, Hq, D, Dv, true);
    items += rows * Hq;
  }
  if (items === 0) return;
  const nt = Math.min(chunksFor(work, 1 << 16), Math.ceil(items / 4));
  par(rt, 'nn_ragged_attention', [q.ptr, k.ptr, v.ptr, o.ptr, lse.ptr, seqs.ptr, B, Hq, Hkv, C, D, Dv, p.scale, p.window], nt);
};

export const attentionGrad: WasmKernel<Op.AttentionGrad> = (rt, ins, p, outs) => {
  const [q, k, v, o, lse, dO] = ins as [WasmView, WasmView, WasmView, WasmView, WasmView, WasmView];
  const [dq, dk, dv] = outs as [WasmView, WasmView, WasmView];
  if (!allF32([q, k, v, o, lse, dO, dq, dk, dv])) return js(Op.AttentionGrad, ins, p, outs);
  const [B, T, S, Hq, Hkv, D, Dv] = attnDims(q, k, v);
  if (B * Hkv === 0) return;
  // chunks own (batch, kv head) pairs: their dk/dv rows and the dq rows of the heads in the group
  const nt = Math.min(chunksFor(attnWork(B, T, S, Hq, D, Dv, p.causal), 1 << 16), B * Hkv);
  par(rt, 'nn_attention_grad', [q.ptr, k.ptr, v.ptr, o.ptr, lse.ptr, dO.ptr, dq.ptr, dk.ptr, dv.ptr, B, T, S, Hq, Hkv, D, Dv, p.scale, p.causal ? 1 : 0, p.window], nt);
};

// ---------------------------------------------------------------------------------------------------------------
// row gather / scatter-add (MoE dispatch): SIMD row copies and adds; indices are checked here with the js messages

export const gather: WasmKernel<Op.Gather> = (rt, ins, p, outs) => {
  const [table, idx] = ins as [WasmView, WasmView];
  const o = outs[0]!;
  const four = table.dtype === 'f32' || table.dtype === 'i32';
  if (!four || idx.dtype !== 'i32') return js(Op.Gather, ins, p, outs);
  const rows = table.shape[0]!;
  const n = idx.size;
  const width = n === 0 ? 0 : o.size / n;
  if (n === 0 || width === 0) return;
  const ix = idx.data as Int32Array;
  for (let i = 0; i < n; i++) {
    const r = ix[i]!;
    if (r < 0 || r >= rows) throw new RangeError(`${Op.Gather}: index ${r} at position ${i} is out of range [0, ${rows})`);
  }
  par(rt, 'nn_gather_rows', [table.ptr, idx.ptr, o.ptr, n, width], chunksFor(n * width, 1 << 14));
};

export const scatterAdd: WasmKernel<Op.ScatterAdd> = (rt, ins, p, outs) => {
  const [src, idx] = ins as [WasmView, WasmView];
  const o = outs[0]!;
  if (!allF32([src, o]) || idx.dtype !== 'i32') return js(Op.ScatterAdd, ins, p, outs);
  const n = idx.size;
  const width = p.rows === 0 ? 0 : o.size / p.rows;
  if (o.size === 0) return;
  const ix = idx.data as Int32Array;
  for (let i = 0; i < n; i++) {
    const r = ix[i]!;
    if (r < 0 || r >= p.rows) throw new RangeError(`${Op.ScatterAdd}: index ${r} at position ${i} is out of range [0, ${p.rows})`);
  }
  par(rt, 'nn_scatter_add_rows', [src.ptr, idx.ptr, o.ptr, n, p.rows, width], Math.min(chunksFor(n * width, 1 << 14), Math.max(1, width >> 2)));
};
