// Shape and dtype inference for every op: validates inputs and names the op and values on misuse.
import type { DType } from './dtype.js';
import { Op, type OpParams, type ScaledFormat, type TensorInfo, type WeightFormat } from './ops.js';
import { ShapeError, broadcastShapes, fmt, fmtInfo, normAxis, shapesEqual, sizeOf } from './shape.js';

type Infer<O extends Op> = (ins: readonly TensorInfo[], p: OpParams[O]) => TensorInfo[];

const info = (shape: readonly number[], dtype: DType): TensorInfo => ({ shape: [...shape], dtype });
const show = (t: TensorInfo): string => fmtInfo(t.shape, t.dtype);

function arity(op: Op, ins: readonly TensorInfo[], min: number, max = min): void {
  if (ins.length < min || ins.length > max) {
    const want = min === max ? `${min}` : `${min} to ${max}`;
    throw new ShapeError(`${op}: expects ${want} inputs, got ${ins.length}`);
  }
}

function dtypeIs(op: Op, name: string, t: TensorInfo, ...allowed: DType[]): void {
  if (!allowed.includes(t.dtype)) {
    throw new ShapeError(`${op}: ${name} must be ${allowed.join(' or ')}, got ${show(t)}`);
  }
}

function rankIs(op: Op, name: string, t: TensorInfo, ...ranks: number[]): void {
  if (!ranks.includes(t.shape.length)) {
    throw new ShapeError(`${op}: ${name} must have rank ${ranks.join(' or ')}, got ${show(t)}`);
  }
}

function binary(op: Op, ins: readonly TensorInfo[], outDType?: DType): TensorInfo[] {
  arity(op, ins, 2);
  const [a, b] = ins as [TensorInfo, TensorInfo];
  if (a.dtype !== b.dtype) throw new ShapeError(`${op}: dtypes differ: ${show(a)} vs ${show(b)}`);
  dtypeIs(op, 'input', a, 'f32', 'i32');
  const shape = broadcastShapes(a.shape, b.shape);
  if (!shape) throw new ShapeError(`${op}: shapes do not broadcast: ${show(a)} vs ${show(b)}`);
  return [info(shape, outDType ?? a.dtype)];
}

function unary(op: Op, ins: readonly TensorInfo[]): TensorInfo[] {
  arity(op, ins, 1);
  dtypeIs(op, 'input', ins[0]!, 'f32');
  return [info(ins[0]!.shape, 'f32')];
}

function reduced(op: Op, x: TensorInfo, axes: readonly number[], keepDims: boolean): number[] {
  const r = x.shape.length;
  const set = new Set(axes.length === 0 ? x.shape.map((_, i) => i) : axes.map((a) => normAxis(op, a, r)));
  const out: number[] = [];
  x.shape.forEach((d, i) => {
    if (!set.has(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

function axisReduce(op: Op, ins: readonly TensorInfo[], p: OpParams[Op.Sum]): TensorInfo[] {
  arity(op, ins, 1);
  dtypeIs(op, 'input', ins[0]!, 'f32');
  return [info(reduced(op, ins[0]!, p.axes, p.keepDims), 'f32')];
}

function oneAxis(op: Op, ins: readonly TensorInfo[], axis: number, keepDims: boolean, dtype: DType): TensorInfo[] {
  arity(op, ins, 1);
  dtypeIs(op, 'input', ins[0]!, 'f32');
  if (ins[0]!.shape.length === 0) throw new ShapeError(`${op}: needs rank >= 1, got ${show(ins[0]!)}`);
  return [info(reduced(op, ins[0]!, [axis], keepDims), dtype)];
}

function lastDimSame(op: Op, a: TensorInfo, b: TensorInfo): void {
  if (!shapesEqual(a.shape.slice(0, -1), b.shape.slice(0, -1)) || a.shape.length === 0) {
    throw new ShapeError(`${op}: leading dims differ: ${show(a)} vs ${show(b)}`);
  }
}

/** The data and scales shapes of an (n, k) weight stored in a scaled format with `groupSize` values per scale. */
function quantShapes(op: Op, format: string, groupSize: number, n: number, k: number): { data: number[]; scales: number[] } {
  const packed = format === 'int4' || format === 'mxfp4';
  if (format === 'mxfp4' && groupSize !== 32) throw new ShapeError(`${op}: mxfp4 has one scale per 32 values, got group size ${groupSize}`);
  if (!Number.isInteger(groupSize) || groupSize <= 0 || k % groupSize !== 0 || (packed && groupSize % 2)) {
    throw new ShapeError(`${op}: group size ${groupSize} must be a positive${packed ? ' even' : ''} divisor of K = ${k}`);
  }
  return { data: packed ? [n, k / 2] : [n, k], scales: [n, k / groupSize] };
}

/** Storage dtypes of each scaled format: its data and its scales. */
const SCALED_DTYPES: Record<ScaledFormat, [DType, DType]> = { int8: ['i8', 'f16'], int4: ['u8', 'f16'], mxfp4: ['u8', 'u8'], fp8: ['u8', 'f32'] };

function checkQuant(op: Op, format: WeightFormat, groupSize: number, data: TensorInfo, scales: TensorInfo | undefined, n: number, k: number): void {
  if (format === 'f16' || format === 'bf16') {
    dtypeIs(op, 'weight', data, format);
    if (!shapesEqual(data.shape, [n, k])) throw new ShapeError(`${op}: weight must be ${fmt([n, k])}, got ${show(data)}`);
    return;
  }
  const dtypes = SCALED_DTYPES[format];
  if (!dtypes) throw new ShapeError(`${op}: unknown weight format ${JSON.stringify(format)} (expected int8, int4, mxfp4, fp8, f16 or bf16)`);
  const want = quantShapes(op, format, groupSize, n, k);
  dtypeIs(op, 'weight', data, dtypes[0]);
  if (!shapesEqual(data.shape, want.data)) throw new ShapeError(`${op}: ${format} weight must be ${fmt(want.data)}, got ${show(data)}`);
  if (!scales) throw new ShapeError(`${op}: ${format} weight needs a scales input`);
  dtypeIs(op, 'scales', scales, dtypes[1]);
  if (!shapesEqual(scales.shape, want.scales)) throw new ShapeError(`${op}: scales must be ${fmt(want.scales)}, got ${show(scales)}`);
}

function checkIdx(op: Op, name: string, t: TensorInfo): void {
  dtypeIs(op, name, t, 'i32');
}

function attentionShapes(op: Op, q: TensorInfo, k: TensorInfo, v: TensorInfo): [number, number, number, number, number, number, number] {
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    rankIs(op, n, t, 4);
    dtypeIs(op, n, t, 'f32');
  }
  const [B, T, Hq, D] = q.shape as [number, number, number, number];
  const [Bk, S, Hkv, Dk] = k.shape as [number, number, number, number];
  const [Bv, Sv, Hv, Dv] = v.shape as [number, number, number, number];
  if (Bk !== B || Bv !== B || Sv !== S || Hv !== Hkv || Dk !== D || Hkv === 0 || Hq % Hkv !== 0 || S < T) {
    throw new ShapeError(`${op}: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} do not fit (B, T, Hq, D), (B, S, Hkv, D), (B, S, Hkv, Dv) with Hq % Hkv = 0 and S >= T`);
  }
  return [B, T, Hq, D, S, Hkv, Dv];
}

/** The routing inputs of the fused FFN ops: x (T, H) f32, ids (T, K) i32, weights (T, K) f32 -> [T, K, H]. */
function ffnRouting(op: Op, x: TensorInfo, ids: TensorInfo, w: TensorInfo): [number, number, number] {
  rankIs(op, 'x', x, 2);
  dtypeIs(op, 'x', x, 'f32');
  checkIdx(op, 'ids', ids);
  dtypeIs(op, 'weights', w, 'f32');
  const [T, H] = x.shape as [number, number];
  if (ids.shape.length !== 2 || ids.shape[0] !== T || !shapesEqual(w.shape, ids.shape)) throw new ShapeError(`${op}: ids ${show(ids)} and weights ${show(w)} must both be (T = ${T}, K)`);
  return [T, ids.shape[1]!, H];
}

function matmulOut(op: Op, a: TensorInfo, b: TensorInfo, p: OpParams[Op.Matmul]): number[] {
  if (a.shape.length < 2 || b.shape.length < 2) throw new ShapeError(`${op}: needs rank >= 2, got ${show(a)} and ${show(b)}`);
  const M = a.shape.at(p.transA ? -1 : -2)!;
  const Ka = a.shape.at(p.transA ? -2 : -1)!;
  const Kb = b.shape.at(p.transB ? -1 : -2)!;
  const N = b.shape.at(p.transB ? -2 : -1)!;
  if (Ka !== Kb) throw new ShapeError(`${op}: inner sizes differ: a ${fmt(a.shape)} vs b ${fmt(b.shape)} (transA ${p.transA}, transB ${p.transB})`);
  const ba = a.shape.slice(0, -2);
  const bb = b.shape.slice(0, -2);
  if (bb.length > 0 && !shapesEqual(ba, bb)) throw new ShapeError(`${op}: batch dims differ: a ${fmt(a.shape)} vs b ${fmt(b.shape)}`);
  return [...ba, M, N];
}

export const INFER: { [O in Op]: Infer<O> } = {
  [Op.Add]: (ins) => binary(Op.Add, ins),
  [Op.Sub]: (ins) => binary(Op.Sub, ins),
  [Op.Mul]: (ins) => binary(Op.Mul, ins),
  [Op.Div]: (ins) => binary(Op.Div, ins),
  [Op.Pow]: (ins) => {
    dtypeIs(Op.Pow, 'base', ins[0]!, 'f32');
    return binary(Op.Pow, ins);
  },
  [Op.Maximum]: (ins) => binary(Op.Maximum, ins),
  [Op.Compare]: (ins) => binary(Op.Compare, ins, 'f32'),
  [Op.Where]: (ins) => {
    arity(Op.Where, ins, 3);
    const [c, a, b] = ins as [TensorInfo, TensorInfo, TensorInfo];
    dtypeIs(Op.Where, 'cond', c, 'f32', 'i32');
    if (a.dtype !== b.dtype) throw new ShapeError(`${Op.Where}: dtypes differ: ${show(a)} vs ${show(b)}`);
    const ab = broadcastShapes(a.shape, b.shape);
    const shape = ab && broadcastShapes(c.shape, ab);
    if (!shape) throw new ShapeError(`${Op.Where}: shapes do not broadcast: cond ${show(c)}, a ${show(a)}, b ${show(b)}`);
    return [info(shape, a.dtype)];
  },
  [Op.Neg]: (ins) => unary(Op.Neg, ins),
  [Op.Abs]: (ins) => unary(Op.Abs, ins),
  [Op.Exp]: (ins) => unary(Op.Exp, ins),
  [Op.Log]: (ins) => unary(Op.Log, ins),
  [Op.Sqrt]: (ins) => unary(Op.Sqrt, ins),
  [Op.Rsqrt]: (ins) => unary(Op.Rsqrt, ins),
  [Op.Sigmoid]: (ins) => unary(Op.Sigmoid, ins),
  [Op.Tanh]: (ins) => unary(Op.Tanh, ins),
  [Op.Silu]: (ins) => unary(Op.Silu, ins),
  [Op.Gelu]: (ins) => unary(Op.Gelu, ins),
  [Op.GeluGrad]: (ins) => {
    arity(Op.GeluGrad, ins, 2);
    if (!shapesEqual(ins[0]!.shape, ins[1]!.shape)) throw new ShapeError(`${Op.GeluGrad}: x ${show(ins[0]!)} and dy ${show(ins[1]!)} differ`);
    return [info(ins[0]!.shape, 'f32')];
  },
  [Op.Sum]: (ins, p) => axisReduce(Op.Sum, ins, p),
  [Op.Mean]: (ins, p) => axisReduce(Op.Mean, ins, p),
  [Op.Max]: (ins, p) => axisReduce(Op.Max, ins, p),
  [Op.LogSumExp]: (ins, p) => oneAxis(Op.LogSumExp, ins, p.axis, p.keepDims, 'f32'),
  [Op.Argmax]: (ins, p) => oneAxis(Op.Argmax, ins, p.axis, p.keepDims, 'i32'),
  [Op.Softmax]: (ins, p) => oneAxis(Op.Softmax, ins, p.axis, true, 'f32').map(() => info(ins[0]!.shape, 'f32')),
  [Op.LogSoftmax]: (ins, p) => oneAxis(Op.LogSoftmax, ins, p.axis, true, 'f32').map(() => info(ins[0]!.shape, 'f32')),
  [Op.TopK]: (ins, p) => {
    arity(Op.TopK, ins, 1);
    const x = ins[0]!;
    dtypeIs(Op.TopK, 'input', x, 'f32');
    const n = x.shape.at(-1);
    if (n === undefined || !Number.isInteger(p.k) || p.k < 1 || p.k > n) throw new ShapeError(`${Op.TopK}: k = ${p.k} must be in [1, ${n ?? 0}] for ${show(x)}`);
    const shape = [...x.shape.slice(0, -1), p.k];
    return [info(shape, 'f32'), info(shape, 'i32')];
  },
  [Op.TakeAlong]: (ins) => {
    arity(Op.TakeAlong, ins, 2);
    const [x, idx] = ins as [TensorInfo, TensorInfo];
    checkIdx(Op.TakeAlong, 'indices', idx);
    lastDimSame(Op.TakeAlong, x, idx);
    return [info(idx.shape, x.dtype)];
  },
  [Op.ScatterAlong]: (ins, p) => {
    arity(Op.ScatterAlong, ins, 2);
    const [src, idx] = ins as [TensorInfo, TensorInfo];
    dtypeIs(Op.ScatterAlong, 'src', src, 'f32');
    checkIdx(Op.ScatterAlong, 'indices', idx);
    if (!shapesEqual(src.shape, idx.shape) || src.shape.length === 0) throw new ShapeError(`${Op.ScatterAlong}: src ${show(src)} and indices ${show(idx)} must have one shape`);
    if (!Number.isInteger(p.width) || p.width < 0) throw new ShapeError(`${Op.ScatterAlong}: width ${p.width} must be a non-negative integer`);
    return [info([...src.shape.slice(0, -1), p.width], 'f32')];
  },
  [Op.Reshape]: (ins, p) => {
    arity(Op.Reshape, ins, 1);
    const x = ins[0]!;
    if (p.shape.some((d) => !Number.isInteger(d) || d < 0) || sizeOf(p.shape) !== sizeOf(x.shape)) {
      throw new ShapeError(`${Op.Reshape}: cannot reshape ${show(x)} (${sizeOf(x.shape)} elements) to ${fmt(p.shape)}`);
    }
    return [info(p.shape, x.dtype)];
  },
  [Op.Transpose]: (ins, p) => {
    arity(Op.Transpose, ins, 1);
    const x = ins[0]!;
    const r = x.shape.length;
    if (p.perm.length !== r || new Set(p.perm).size !== r || p.perm.some((a) => !Number.isInteger(a) || a < 0 || a >= r)) {
      throw new ShapeError(`${Op.Transpose}: perm [${p.perm.join(', ')}] is not a permutation of the ${r} axes of ${show(x)}`);
    }
    return [info(p.perm.map((a) => x.shape[a]!), x.dtype)];
  },
  [Op.Slice]: (ins, p) => {
    arity(Op.Slice, ins, 1);
    const x = ins[0]!;
    const ok = p.begin.length === x.shape.length && p.size.length === x.shape.length &&
      x.shape.every((d, i) => p.begin[i]! >= 0 && p.size[i]! >= 0 && p.begin[i]! + p.size[i]! <= d);
    if (!ok) throw new ShapeError(`${Op.Slice}: begin [${p.begin.join(', ')}] size [${p.size.join(', ')}] does not fit ${show(x)}`);
    return [info(p.size, x.dtype)];
  },
  [Op.Concat]: (ins, p) => {
    if (ins.length < 1) throw new ShapeError(`${Op.Concat}: needs at least one input`);
    const first = ins[0]!;
    const axis = normAxis(Op.Concat, p.axis, first.shape.length);
    let total = 0;
    for (const t of ins) {
      const same = t.dtype === first.dtype && t.shape.length === first.shape.length && t.shape.every((d, i) => i === axis || d === first.shape[i]);
      if (!same) throw new ShapeError(`${Op.Concat}: ${show(t)} does not match ${show(first)} outside axis ${axis}`);
      total += t.shape[axis]!;
    }
    const shape = [...first.shape];
    shape[axis] = total;
    return [info(shape, first.dtype)];
  },
  [Op.Pad]: (ins, p) => {
    arity(Op.Pad, ins, 1);
    const x = ins[0]!;
    if (p.pads.length !== x.shape.length || p.pads.some(([a, b]) => a < 0 || b < 0)) throw new ShapeError(`${Op.Pad}: pads ${JSON.stringify(p.pads)} must give [before, after] >= 0 for each axis of ${show(x)}`);
    return [info(x.shape.map((d, i) => d + p.pads[i]![0] + p.pads[i]![1]), x.dtype)];
  },
  [Op.Gather]: (ins) => {
    arity(Op.Gather, ins, 2);
    const [table, idx] = ins as [TensorInfo, TensorInfo];
    checkIdx(Op.Gather, 'indices', idx);
    if (table.shape.length < 1) throw new ShapeError(`${Op.Gather}: table must have rank >= 1, got ${show(table)}`);
    return [info([...idx.shape, ...table.shape.slice(1)], table.dtype)];
  },
  [Op.ScatterAdd]: (ins, p) => {
    arity(Op.ScatterAdd, ins, 2);
    const [src, idx] = ins as [TensorInfo, TensorInfo];
    dtypeIs(Op.ScatterAdd, 'src', src, 'f32');
    checkIdx(Op.ScatterAdd, 'indices', idx);
    if (idx.shape.length !== 1 || src.shape[0] !== idx.shape[0]) throw new ShapeError(`${Op.ScatterAdd}: indices must be (M) for src (M, ...), got src ${show(src)}, indices ${show(idx)}`);
    if (!Number.isInteger(p.rows) || p.rows < 0) throw new ShapeError(`${Op.ScatterAdd}: rows ${p.rows} must be a non-negative integer`);
    return [info([p.rows, ...src.shape.slice(1)], 'f32')];
  },
  [Op.Cast]: (ins, p) => {
    arity(Op.Cast, ins, 1);
    const x = ins[0]!;
    const ok = x.dtype === p.dtype || x.dtype === 'f32' || p.dtype === 'f32' || (x.dtype === 'i32' && p.dtype !== 'f16' && p.dtype !== 'bf16');
    if (!ok) throw new ShapeError(`${Op.Cast}: cannot cast ${show(x)} to ${p.dtype}`);
    return [info(x.shape, p.dtype)];
  },
  [Op.Dequantize]: (ins, p) => {
    arity(Op.Dequantize, ins, 2);
    const [data, scales] = ins as [TensorInfo, TensorInfo];
    rankIs(Op.Dequantize, 'data', data, 2);
    const N = data.shape[0]!;
    const K = p.format === 'int4' || p.format === 'mxfp4' ? data.shape[1]! * 2 : data.shape[1]!;
    checkQuant(Op.Dequantize, p.format, p.groupSize, data, scales, N, K);
    return [info([N, K], 'f32')];
  },
  [Op.Quantize]: (ins, p) => {
    arity(Op.Quantize, ins, 1);
    const w = ins[0]!;
    dtypeIs(Op.Quantize, 'weight', w, 'f32');
    rankIs(Op.Quantize, 'weight', w, 2);
    const s = quantShapes(Op.Quantize, p.format, p.groupSize, w.shape[0]!, w.shape[1]!);
    return [info(s.data, p.format === 'int4' ? 'u8' : 'i8'), info(s.scales, 'f16')];
  },
  [Op.Matmul]: (ins, p) => {
    arity(Op.Matmul, ins, 2, 3);
    const [a, b, bias] = ins as [TensorInfo, TensorInfo, TensorInfo | undefined];
    dtypeIs(Op.Matmul, 'a', a, 'f32');
    dtypeIs(Op.Matmul, 'b', b, 'f32');
    const out = matmulOut(Op.Matmul, a, b, p);
    if (bias && (bias.dtype !== 'f32' || !shapesEqual(bias.shape, [out.at(-1)!]))) throw new ShapeError(`${Op.Matmul}: bias must be f32(${out.at(-1)}), got ${show(bias)}`);
    return [info(out, 'f32')];
  },
  [Op.GroupedMatmul]: (ins, p) => {
    arity(Op.GroupedMatmul, ins, 3);
    const [x, w, off] = ins as [TensorInfo, TensorInfo, TensorInfo];
    rankIs(Op.GroupedMatmul, 'x', x, 2);
    rankIs(Op.GroupedMatmul, 'w', w, 3);
    dtypeIs(Op.GroupedMatmul, 'x', x, 'f32');
    dtypeIs(Op.GroupedMatmul, 'w', w, 'f32');
    checkIdx(Op.GroupedMatmul, 'offsets', off);
    const [E, K, N] = p.transW ? [w.shape[0]!, w.shape[2]!, w.shape[1]!] : (w.shape as [number, number, number]);
    if (x.shape[1] !== K || !shapesEqual(off.shape, [E + 1])) throw new ShapeError(`${Op.GroupedMatmul}: x ${show(x)}, w ${show(w)} (transW ${p.transW}), offsets ${show(off)} do not fit (T, K), (E, K, N), (E+1)`);
    return [info([x.shape[0]!, N], 'f32')];
  },
  [Op.GroupedMatmulWeightGrad]: (ins, p) => {
    arity(Op.GroupedMatmulWeightGrad, ins, 3);
    const [x, dy, off] = ins as [TensorInfo, TensorInfo, TensorInfo];
    rankIs(Op.GroupedMatmulWeightGrad, 'x', x, 2);
    rankIs(Op.GroupedMatmulWeightGrad, 'dy', dy, 2);
    checkIdx(Op.GroupedMatmulWeightGrad, 'offsets', off);
    if (x.shape[0] !== dy.shape[0] || off.shape.length !== 1 || off.shape[0]! < 1) throw new ShapeError(`${Op.GroupedMatmulWeightGrad}: x ${show(x)}, dy ${show(dy)}, offsets ${show(off)} do not fit (T, K), (T, N), (E+1)`);
    const E = off.shape[0]! - 1;
    return [info(p.transW ? [E, dy.shape[1]!, x.shape[1]!] : [E, x.shape[1]!, dy.shape[1]!], 'f32')];
  },
  [Op.QuantMatmul]: (ins, p) => {
    arity(Op.QuantMatmul, ins, 2, 3);
    const [x, w, scales] = ins as [TensorInfo, TensorInfo, TensorInfo | undefined];
    rankIs(Op.QuantMatmul, 'x', x, 2);
    rankIs(Op.QuantMatmul, 'weight', w, 2);
    dtypeIs(Op.QuantMatmul, 'x', x, 'f32');
    const K = x.shape[1]!;
    checkQuant(Op.QuantMatmul, p.format, p.groupSize, w, scales, w.shape[0]!, K);
    return [info([x.shape[0]!, w.shape[0]!], 'f32')];
  },
  [Op.ExpertBins]: (ins, p) => {
    arity(Op.ExpertBins, ins, 1);
    const ids = ins[0]!;
    rankIs(Op.ExpertBins, 'ids', ids, 2);
    checkIdx(Op.ExpertBins, 'ids', ids);
    if (!Number.isInteger(p.experts) || p.experts < 1) throw new ShapeError(`${Op.ExpertBins}: experts ${p.experts} must be a positive integer`);
    const N = sizeOf(ids.shape);
    return [info([N], 'i32'), info([N], 'i32'), info([p.experts + 1], 'i32')];
  },
  [Op.RouteTopK]: (ins, p) => {
    arity(Op.RouteTopK, ins, 1, 2);
    const x = ins[0]!;
    rankIs(Op.RouteTopK, 'logits', x, 2);
    dtypeIs(Op.RouteTopK, 'logits', x, 'f32');
    const [T, E] = x.shape as [number, number];
    const bias = ins[1];
    if (bias && (bias.shape.length !== 1 || bias.shape[0] !== E || bias.dtype !== 'f32')) throw new ShapeError(`${Op.RouteTopK}: bias ${fmtInfo(bias.shape, bias.dtype)} must be f32 (E = ${E})`);
    const { k, groups: G, topGroups: TG } = p;
    if (!Number.isInteger(G) || G < 1 || E % G !== 0) throw new ShapeError(`${Op.RouteTopK}: groups ${G} must divide E = ${E}`);
    if (!Number.isInteger(TG) || TG < 1 || TG > G) throw new ShapeError(`${Op.RouteTopK}: topGroups ${TG} must be in [1, groups ${G}]`);
    if (!Number.isInteger(k) || k < 1 || k > TG * (E / G)) throw new ShapeError(`${Op.RouteTopK}: k = ${k} must be in [1, ${TG * (E / G)}] (topGroups ${TG} × ${E / G} experts per group)`);
    return [info([T, k], 'f32'), info([T, k], 'i32')];
  },
  [Op.MoeFfn]: (ins) => {
    arity(Op.MoeFfn, ins, 6);
    const [x, ids, w, gate, up, down] = ins as [TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo];
    const [T, K, H] = ffnRouting(Op.MoeFfn, x, ids, w);
    for (const [n, t] of [['gate', gate], ['up', up], ['down', down]] as const) {
      rankIs(Op.MoeFfn, n, t, 3);
      dtypeIs(Op.MoeFfn, n, t, 'f32');
    }
    const [E, , I] = gate.shape as [number, number, number];
    if (gate.shape[1] !== H || !shapesEqual(up.shape, gate.shape) || !shapesEqual(down.shape, [E, I, H])) {
      throw new ShapeError(`${Op.MoeFfn}: gate ${show(gate)}, up ${show(up)}, down ${show(down)} must be (E, ${H}, I), (E, ${H}, I), (E, I, ${H})`);
    }
    void K;
    return [info([T, H], 'f32')];
  },
  [Op.ClusteredFfn]: (ins) => {
    arity(Op.ClusteredFfn, ins, 12);
    const [x, ids, w, ...mats] = ins as [TensorInfo, TensorInfo, TensorInfo, ...TensorInfo[]];
    const [T, , H] = ffnRouting(Op.ClusteredFfn, x, ids, w);
    const names = ['baseGate', 'baseUp', 'baseDown', 'gateA', 'gateB', 'upA', 'upB', 'downA', 'downB'];
    mats.forEach((t, i) => {
      rankIs(Op.ClusteredFfn, names[i]!, t, 3);
      if (i < 3) dtypeIs(Op.ClusteredFfn, names[i]!, t, 'f32', 'f16');
      else dtypeIs(Op.ClusteredFfn, names[i]!, t, 'f32');
    });
    if (mats[1]!.dtype !== mats[0]!.dtype || mats[2]!.dtype !== mats[0]!.dtype) throw new ShapeError(`${Op.ClusteredFfn}: the bases must share one dtype, got ${mats.slice(0, 3).map(show).join(', ')}`);
    const [bg, bu, bd, ga, gb, ua, ub, da, db] = mats as [TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo];
    const [G, , I] = bg.shape as [number, number, number];
    const [E, , R] = ga.shape as [number, number, number];
    const want: [TensorInfo, number[]][] = [[bg, [G, H, I]], [bu, [G, H, I]], [bd, [G, I, H]], [ga, [E, H, R]], [gb, [E, R, I]], [ua, [E, H, R]], [ub, [E, R, I]], [da, [E, I, R]], [db, [E, R, H]]];
    const bad = want.findIndex(([t, s]) => !shapesEqual(t.shape, s));
    if (bad >= 0) throw new ShapeError(`${Op.ClusteredFfn}: ${names[bad]} ${show(want[bad]![0])} must be (${want[bad]![1].join(', ')}) for x ${show(x)}, baseGate ${show(bg)}, gateA ${show(ga)}`);
    if (G < 1 || E % G !== 0) throw new ShapeError(`${Op.ClusteredFfn}: ${G} groups must divide ${E} experts`);
    return [info([T, H], 'f32')];
  },
  [Op.RMSNorm]: (ins) => {
    arity(Op.RMSNorm, ins, 2);
    const [x, w] = ins as [TensorInfo, TensorInfo];
    dtypeIs(Op.RMSNorm, 'x', x, 'f32');
    if (x.shape.length < 1 || !shapesEqual(w.shape, [x.shape.at(-1)!])) throw new ShapeError(`${Op.RMSNorm}: weight ${show(w)} must match the last dim of x ${show(x)}`);
    return [info(x.shape, 'f32')];
  },
  [Op.RMSNormGrad]: (ins) => {
    arity(Op.RMSNormGrad, ins, 3);
    const [x, w, dy] = ins as [TensorInfo, TensorInfo, TensorInfo];
    if (!shapesEqual(x.shape, dy.shape) || !shapesEqual(w.shape, [x.shape.at(-1) ?? -1])) throw new ShapeError(`${Op.RMSNormGrad}: x ${show(x)}, weight ${show(w)}, dy ${show(dy)} do not fit`);
    return [info(x.shape, 'f32'), info(w.shape, 'f32')];
  },
  [Op.RoPE]: (ins) => {
    arity(Op.RoPE, ins, 3);
    const [x, pos, inv] = ins as [TensorInfo, TensorInfo, TensorInfo];
    rankIs(Op.RoPE, 'x', x, 4);
    dtypeIs(Op.RoPE, 'x', x, 'f32');
    checkIdx(Op.RoPE, 'positions', pos);
    const [B, T, , D] = x.shape as [number, number, number, number];
    const posOk = shapesEqual(pos.shape, [T]) || shapesEqual(pos.shape, [B, T]);
    if (!posOk || inv.shape.length !== 1 || inv.shape[0]! * 2 > D) throw new ShapeError(`${Op.RoPE}: x ${show(x)} (B, T, nH, D), positions ${show(pos)} (T) or (B, T), invFreq ${show(inv)} (R/2 <= D/2) do not fit`);
    return [info(x.shape, 'f32')];
  },
  [Op.Attention]: (ins) => {
    arity(Op.Attention, ins, 3);
    const [B, T, Hq, , , , Dv] = attentionShapes(Op.Attention, ins[0]!, ins[1]!, ins[2]!);
    return [info([B, T, Hq, Dv], 'f32'), info([B, Hq, T], 'f32')];
  },
  [Op.AttentionGrad]: (ins) => {
    arity(Op.AttentionGrad, ins, 6);
    const [q, k, v, o, lse, dO] = ins as [TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo];
    const [B, T, Hq, , , , Dv] = attentionShapes(Op.AttentionGrad, q, k, v);
    if (!shapesEqual(o.shape, [B, T, Hq, Dv]) || !shapesEqual(dO.shape, o.shape) || !shapesEqual(lse.shape, [B, Hq, T])) throw new ShapeError(`${Op.AttentionGrad}: o ${show(o)}, lse ${show(lse)}, dO ${show(dO)} do not fit q ${show(q)}`);
    return [info(q.shape, 'f32'), info(k.shape, 'f32'), info(v.shape, 'f32')];
  },
  [Op.RaggedAttention]: (ins) => {
    arity(Op.RaggedAttention, ins, 4);
    const [q, k, v, seqs] = ins as [TensorInfo, TensorInfo, TensorInfo, TensorInfo];
    rankIs(Op.RaggedAttention, 'q', q, 3);
    for (const [n, t] of [['k', k], ['v', v]] as const) rankIs(Op.RaggedAttention, n, t, 4);
    for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) dtypeIs(Op.RaggedAttention, n, t, 'f32');
    dtypeIs(Op.RaggedAttention, 'seqs', seqs, 'i32');
    const [N, Hq, D] = q.shape as [number, number, number];
    const [P, C, Hkv, Dk] = k.shape as [number, number, number, number];
    if (!shapesEqual(v.shape.slice(0, 3), [P, C, Hkv]) || Dk !== D || Hkv === 0 || Hq % Hkv !== 0) {
      throw new ShapeError(`${Op.RaggedAttention}: q ${show(q)}, k ${show(k)}, v ${show(v)} do not fit (N, Hq, D), (P, C, Hkv, D), (P, C, Hkv, Dv) with Hq % Hkv = 0`);
    }
    if (seqs.shape.length !== 2 || seqs.shape[1] !== 4) throw new ShapeError(`${Op.RaggedAttention}: seqs ${show(seqs)} must be (B, 4): [qStart, rows, slot, length] per sequence`);
    return [info([N, Hq, v.shape[3]!], 'f32'), info([N, Hq], 'f32')];
  },
  [Op.CrossEntropy]: (ins) => {
    arity(Op.CrossEntropy, ins, 2);
    const [logits, tg] = ins as [TensorInfo, TensorInfo];
    rankIs(Op.CrossEntropy, 'logits', logits, 2);
    dtypeIs(Op.CrossEntropy, 'logits', logits, 'f32');
    checkIdx(Op.CrossEntropy, 'targets', tg);
    if (!shapesEqual(tg.shape, [logits.shape[0]!])) throw new ShapeError(`${Op.CrossEntropy}: targets ${show(tg)} must be (N) for logits ${show(logits)}`);
    return [info([logits.shape[0]!], 'f32'), info([logits.shape[0]!], 'f32')];
  },
  [Op.CrossEntropyGrad]: (ins) => {
    arity(Op.CrossEntropyGrad, ins, 4);
    const [logits, tg, lse, dl] = ins as [TensorInfo, TensorInfo, TensorInfo, TensorInfo];
    const N = logits.shape[0]!;
    if (logits.shape.length !== 2 || !shapesEqual(tg.shape, [N]) || !shapesEqual(lse.shape, [N]) || !shapesEqual(dl.shape, [N])) throw new ShapeError(`${Op.CrossEntropyGrad}: logits ${show(logits)}, targets ${show(tg)}, lse ${show(lse)}, dloss ${show(dl)} do not fit`);
    return [info(logits.shape, 'f32')];
  },
};
