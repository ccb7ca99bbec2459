// Functional tensor API: creation helpers and one function per op (scalars broadcast as 0-d tensors).
import { allocTyped, type DType, type TypedArray } from './dtype.js';
import { ENGINE, fromTyped, reshapeView, runOp, typedFrom, wrap } from './engine.js';
import { Op, type AttentionParams, type CompareOp, type QuantFormat, type ScaledFormat, type WeightFormat } from './ops.js';
import { Rng } from './random.js';
import { ShapeError, normAxis, sizeOf } from './shape.js';
import { Tensor } from './tensor.js';

export type NestedArray = number | readonly NestedArray[];
type TensorLike = Tensor | number;

function flatten(x: NestedArray, shape: number[], out: number[], depth = 0): void {
  if (typeof x === 'number') {
    out.push(x);
    return;
  }
  if (shape.length <= depth) shape.push(x.length);
  else if (shape[depth] !== x.length) throw new ShapeError(`tensor: ragged nested array: length ${x.length} at depth ${depth}, expected ${shape[depth]}`);
  for (const v of x) flatten(v, shape, out, depth + 1);
}

/** A tensor from a typed array, flat numbers or nested arrays. Shape defaults to the data's nesting. */
export function tensor(values: TypedArray | NestedArray, shape?: readonly number[], dtype: DType = 'f32'): Tensor {
  if (ArrayBuffer.isView(values)) return fromTyped(values, shape ?? [values.length], dtype);
  const inferred: number[] = [];
  const flat: number[] = [];
  flatten(values, inferred, flat);
  return fromTyped(typedFrom(flat, dtype), shape ?? inferred, dtype);
}

export const scalar = (v: number, dtype: DType = 'f32'): Tensor => tensor(v, [], dtype);
export const full = (shape: readonly number[], v: number, dtype: DType = 'f32'): Tensor => fromTyped(allocTyped(dtype, sizeOf(shape)).fill(v), shape, dtype);
/** Storage that is about to be overwritten (a placeholder for loaded weights): nothing is written, so its contents are
 *  unspecified (zeros on the js backend, whose fresh pages then cost no memory until the weights arrive). */
export const empty = (shape: readonly number[], dtype: DType = 'f32'): Tensor => {
  const b = ENGINE.current();
  return wrap(b, b.allocate(dtype, sizeOf(shape)), shape, dtype);
};
export const zeros = (shape: readonly number[], dtype: DType = 'f32'): Tensor => full(shape, 0, dtype);
export const ones = (shape: readonly number[], dtype: DType = 'f32'): Tensor => full(shape, 1, dtype);

/** Normal(mean, std) values from a seeded generator. */
export function randn(shape: readonly number[], rng: Rng, std = 1, mean = 0): Tensor {
  const d = new Float32Array(sizeOf(shape));
  for (let i = 0; i < d.length; i++) d[i] = mean + std * rng.normal();
  return fromTyped(d, shape, 'f32');
}

/** Uniform [lo, hi) values from a seeded generator. */
export function rand(shape: readonly number[], rng: Rng, lo = 0, hi = 1): Tensor {
  const d = new Float32Array(sizeOf(shape));
  for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * rng.uniform();
  return fromTyped(d, shape, 'f32');
}

/** [start, start+1, ..., end) as i32 (or f32). */
export function arange(start: number, end: number, dtype: DType = 'i32'): Tensor {
  const n = Math.max(0, end - start);
  return fromTyped(typedFrom(Array.from({ length: n }, (_, i) => start + i), dtype), [n], dtype);
}

const lift = (x: TensorLike, like: Tensor): Tensor => (x instanceof Tensor ? x : scalar(x, like.dtype));
const one = (ts: Tensor[]): Tensor => ts[0]!;

function bin(op: Op.Add | Op.Sub | Op.Mul | Op.Div | Op.Pow | Op.Maximum, a: TensorLike, b: TensorLike): Tensor {
  if (!(a instanceof Tensor) && !(b instanceof Tensor)) throw new ShapeError(`${op}: needs at least one tensor`);
  const ta = a instanceof Tensor ? a : lift(a, b as Tensor);
  const tb = lift(b, ta);
  return one(runOp(op, [ta, tb], {}));
}

export const add = (a: TensorLike, b: TensorLike): Tensor => bin(Op.Add, a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => bin(Op.Sub, a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => bin(Op.Mul, a, b);
export const div = (a: TensorLike, b: TensorLike): Tensor => bin(Op.Div, a, b);
export const pow = (a: TensorLike, b: TensorLike): Tensor => bin(Op.Pow, a, b);
export const maximum = (a: TensorLike, b: TensorLike): Tensor => bin(Op.Maximum, a, b);
export const compare = (a: Tensor, b: TensorLike, cmp: CompareOp): Tensor => one(runOp(Op.Compare, [a, lift(b, a)], { cmp }));
export const where = (cond: Tensor, a: TensorLike, b: TensorLike): Tensor => {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : cond;
  return one(runOp(Op.Where, [cond, lift(a, like), lift(b, like)], {}));
};

export const neg = (x: Tensor): Tensor => one(runOp(Op.Neg, [x], {}));
export const abs = (x: Tensor): Tensor => one(runOp(Op.Abs, [x], {}));
export const exp = (x: Tensor): Tensor => one(runOp(Op.Exp, [x], {}));
export const log = (x: Tensor): Tensor => one(runOp(Op.Log, [x], {}));
export const sqrt = (x: Tensor): Tensor => one(runOp(Op.Sqrt, [x], {}));
export const rsqrt = (x: Tensor): Tensor => one(runOp(Op.Rsqrt, [x], {}));
export const sigmoid = (x: Tensor): Tensor => one(runOp(Op.Sigmoid, [x], {}));
export const tanh = (x: Tensor): Tensor => one(runOp(Op.Tanh, [x], {}));
export const silu = (x: Tensor): Tensor => one(runOp(Op.Silu, [x], {}));
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => one(runOp(Op.Gelu, [x], { approximate }));
export const square = (x: Tensor): Tensor => mul(x, x);

const axesOf = (axes: number | readonly number[] | undefined): number[] => (axes === undefined ? [] : typeof axes === 'number' ? [axes] : [...axes]);
export const sum = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor => one(runOp(Op.Sum, [x], { axes: axesOf(axes), keepDims }));
export const mean = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor => one(runOp(Op.Mean, [x], { axes: axesOf(axes), keepDims }));
export const max = (x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor => one(runOp(Op.Max, [x], { axes: axesOf(axes), keepDims }));
export const logSumExp = (x: Tensor, axis = -1, keepDims = false): Tensor => one(runOp(Op.LogSumExp, [x], { axis, keepDims }));
export const argmax = (x: Tensor, axis = -1, keepDims = false): Tensor => one(runOp(Op.Argmax, [x], { axis, keepDims }));
export const softmax = (x: Tensor, axis = -1): Tensor => one(runOp(Op.Softmax, [x], { axis }));
export const logSoftmax = (x: Tensor, axis = -1): Tensor => one(runOp(Op.LogSoftmax, [x], { axis }));
/** Largest k along the last axis: values (descending) and i32 indices. */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const [values, indices] = runOp(Op.TopK, [x], { k }) as [Tensor, Tensor];
  return { values, indices };
}
export const takeAlong = (x: Tensor, idx: Tensor): Tensor => one(runOp(Op.TakeAlong, [x, idx], {}));
export const scatterAlong = (src: Tensor, idx: Tensor, width: number): Tensor => one(runOp(Op.ScatterAlong, [src, idx], { width }));

/** Reshape; one dimension may be -1 (inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const holes = shape.length - known.length;
  let target = [...shape];
  if (holes === 1) {
    const rest = sizeOf(known);
    if (rest === 0 || x.size % rest !== 0) throw new ShapeError(`reshape: cannot reshape (${x.shape.join(', ')}) to (${shape.join(', ')})`);
    target = shape.map((d) => (d === -1 ? x.size / rest : d));
  } else if (holes > 1) throw new ShapeError(`reshape: at most one -1 in (${shape.join(', ')})`);
  if (target.length === x.rank && target.every((d, i) => d === x.shape[i])) return x;
  return reshapeView(x, target); // shares x's storage: no copy, no backend op
}
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ? perm.map((a) => normAxis('transpose', a, x.rank)) : x.shape.map((_, i) => x.rank - 1 - i);
  return one(runOp(Op.Transpose, [x], { perm: p }));
}
/** Slice with begin and size per axis; size -1 means to the end. */
export function slice(x: Tensor, begin: readonly number[], size?: readonly number[]): Tensor {
  const b = x.shape.map((_, i) => begin[i] ?? 0);
  const s = x.shape.map((d, i) => (size?.[i] === undefined || size[i] === -1 ? d - b[i]! : size[i]!));
  return one(runOp(Op.Slice, [x], { begin: b, size: s }));
}
export const concat = (xs: readonly Tensor[], axis = 0): Tensor => one(runOp(Op.Concat, xs, { axis }));
export const pad = (x: Tensor, pads: readonly (readonly [number, number])[], value = 0): Tensor => one(runOp(Op.Pad, [x], { pads: pads.map(([a, b]) => [a, b] as [number, number]), value }));
export const gather = (table: Tensor, idx: Tensor): Tensor => one(runOp(Op.Gather, [table, idx], {}));
export const scatterAdd = (src: Tensor, idx: Tensor, rows: number): Tensor => one(runOp(Op.ScatterAdd, [src, idx], { rows }));
export const cast = (x: Tensor, dtype: DType): Tensor => (x.dtype === dtype ? x : one(runOp(Op.Cast, [x], { dtype })));

export function quantize(w: Tensor, format: QuantFormat, groupSize = 32): { data: Tensor; scales: Tensor } {
  const [data, scales] = runOp(Op.Quantize, [w], { format, groupSize }) as [Tensor, Tensor];
  return { data, scales };
}
export const dequantize = (data: Tensor, scales: Tensor, format: ScaledFormat, groupSize = 32): Tensor => one(runOp(Op.Dequantize, [data, scales], { format, groupSize }));

export interface MatmulOptions { transA?: boolean; transB?: boolean; bias?: Tensor }
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const ins = opts.bias ? [a, b, opts.bias] : [a, b];
  return one(runOp(Op.Matmul, ins, { transA: opts.transA ?? false, transB: opts.transB ?? false }));
}
/** y (T, N): rows offsets[e]..offsets[e+1] of x (T, K) times W_e; w (E, K, N), or (E, N, K) with transW. */
export const groupedMatmul = (x: Tensor, w: Tensor, offsets: Tensor, transW = false): Tensor => one(runOp(Op.GroupedMatmul, [x, w, offsets], { transW }));
/** Whether an op on these inputs would be recorded for autograd (the fused inference ops refuse that). */
export const needsGrad = (...ts: readonly (Tensor | null | undefined)[]): boolean => ENGINE.gradEnabled && ts.some((t) => t?.requiresGrad);

/** Whether the current backend implements `op` (fused kernels are optional on GPU backends). */
export const backendSupports = (op: Op): boolean => ENGINE.current().supports?.(op) ?? true;

/** Whether the current backend reads synchronously (js, wasm); GPU backends read only when awaited. */
export const canReadSync = (): boolean => ENGINE.current().readSync !== undefined;

function inferenceOnly(name: string, ts: readonly Tensor[]): void {
  if (needsGrad(...ts)) throw new Error(`${name} is an inference kernel without a gradient: call it under noGrad(), or use the composed form to train`);
}

/**
 * The routing slots of ids (T, K) sorted by expert on the device: order (N) and tokens (N) of the sorted slots and
 * offsets (E+1) for the grouped matmul. The dropless binning without a host read (GPU backends).
 */
export function expertBins(ids: Tensor, experts: number): { order: Tensor; tokens: Tensor; offsets: Tensor } {
  const [order, tokens, offsets] = runOp(Op.ExpertBins, [ids], { experts }) as [Tensor, Tensor, Tensor];
  return { order, tokens, offsets };
}

/**
 * Softmax top-k routing in one op: logits (T, E) -> weights (T, K) and i32 ids (T, K). With `groups` > 1 only the
 * experts of the top `topGroups` groups (by summed probability) are candidates. A `bias` (E) changes selection only
 * (the score is probability + bias, as DeepSeek-V3's e_score_correction_bias); the weights are the unbiased
 * probabilities. Inference only.
 */
export function routeTopK(logits: Tensor, k: number, o: { groups?: number; topGroups?: number; renormalize?: boolean; bias?: Tensor } = {}): { weights: Tensor; ids: Tensor } {
  inferenceOnly('routeTopK', o.bias ? [logits, o.bias] : [logits]);
  const groups = o.groups ?? 1;
  const [weights, ids] = runOp(Op.RouteTopK, o.bias ? [logits, o.bias] : [logits], { k, groups, topGroups: o.topGroups ?? groups, renormalize: o.renormalize ?? true }) as [Tensor, Tensor];
  return { weights, ids };
}
/** The routed SwiGLU experts of a token batch in one op: y (T, H) = Σ_k w·SwiGLU_{ids}(x). Inference only. */
export function moeFfn(x: Tensor, ids: Tensor, weights: Tensor, e: { gate: Tensor; up: Tensor; down: Tensor }): Tensor {
  const ins = [x, ids, weights, e.gate, e.up, e.down];
  inferenceOnly('moeFfn', ins);
  return one(runOp(Op.MoeFfn, ins, {}));
}
/** The clustered experts (group bases + per-expert low-rank factors) in one op. Inference only. */
export function clusteredFfn(x: Tensor, ids: Tensor, weights: Tensor, e: {
  baseGate: Tensor; baseUp: Tensor; baseDown: Tensor; gateA: Tensor; gateB: Tensor; upA: Tensor; upB: Tensor; downA: Tensor; downB: Tensor;
}): Tensor {
  const ins = [x, ids, weights, e.baseGate, e.baseUp, e.baseDown, e.gateA, e.gateB, e.upA, e.upB, e.downA, e.downB];
  inferenceOnly('clusteredFfn', ins);
  return one(runOp(Op.ClusteredFfn, ins, {}));
}
/** y (M, N) = x (M, K) · Wᵀ with W (N, K) stored as int8/int4 (+ f16 scales) or f16/bf16. */
export function quantMatmul(x: Tensor, w: Tensor, scales: Tensor | null, format: WeightFormat, groupSize = 32): Tensor {
  return one(runOp(Op.QuantMatmul, scales ? [x, w, scales] : [x, w], { format, groupSize }));
}

export const rmsNorm = (x: Tensor, weight: Tensor, eps = 1e-6): Tensor => one(runOp(Op.RMSNorm, [x, weight], { eps }));
/** Rotary embedding of x (B, T, nH, D) at i32 positions (T) or (B, T) with inverse frequencies (R/2). */
export const rope = (x: Tensor, positions: Tensor, invFreq: Tensor, interleaved = false): Tensor => one(runOp(Op.RoPE, [x, positions, invFreq], { interleaved, inverse: false }));
/** Fused attention: q (B, T, Hq, D), k/v (B, S, Hkv, D|Dv) -> (B, T, Hq, Dv). */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: Partial<AttentionParams> = {}): Tensor {
  return attentionLse(q, k, v, opts).o;
}
/** Fused attention with each query's log-sum-exp of its scores: o (B, T, Hq, Dv), lse (B, Hq, T); both differentiable. */
export function attentionLse(q: Tensor, k: Tensor, v: Tensor, opts: Partial<AttentionParams> = {}): { o: Tensor; lse: Tensor } {
  const p: AttentionParams = { causal: opts.causal ?? true, window: opts.window ?? 0, scale: opts.scale ?? 1 / Math.sqrt(q.shape[3] ?? 1) };
  const [o, lse] = runOp(Op.Attention, [q, k, v], p) as [Tensor, Tensor];
  return { o, lse };
}
/**
 * Attention of several sequences in one call, each over its own slot of a KV pool (see Op.RaggedAttention): q (N, Hq,
 * D), k (P, C, Hkv, D), v (P, C, Hkv, Dv), seqs i32 (B, 4) of [qStart, rows, slot, length] -> o (N, Hq, Dv), lse (N, Hq).
 */
export function raggedAttention(q: Tensor, k: Tensor, v: Tensor, seqs: Tensor, opts: { window?: number; scale?: number } = {}): { o: Tensor; lse: Tensor } {
  const [o, lse] = runOp(Op.RaggedAttention, [q, k, v, seqs], { window: opts.window ?? 0, scale: opts.scale ?? 1 / Math.sqrt(q.shape[2] ?? 1) }) as [Tensor, Tensor];
  return { o, lse };
}
/** Per-row cross-entropy of logits (N, V) against i32 targets (N); rows with ignoreIndex give 0. */
export const crossEntropyRows = (logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor => one(runOp(Op.CrossEntropy, [logits, targets], { ignoreIndex }));
/** Mean cross-entropy over the rows whose target is not ignoreIndex. */
export function crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  const rows = crossEntropyRows(logits, targets, ignoreIndex); // (N)
  const counted = sum(compare(targets, ignoreIndex, 'ne')); // () rows that count
  return div(sum(rows), maximum(counted, 1));
}

/** Current backend name (for messages and benchmarks). */
export const backendName = (): string => ENGINE.current().name;

/** Runs any op of the closed set directly (advanced use: backward kernels, benchmarks). */
export const run = runOp;
