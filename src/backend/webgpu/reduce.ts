// Reduction webgpu kernels: sum/mean/max over axes, softmax-style axis ops, argmax, top-k, take / scatter along.
import type { BackendInput } from '../backend.js';
import { Op } from '../../tensor/ops.js';
import { sizeOf, stridesOf } from '../../tensor/shape.js';
import type { Kernel, Out } from './context.js';
import { INDEX, MAIN, bindings, launch, wgsl } from './wgsl.js';

// ---- reductions ----

/** Splits x's shape into kept and reduced axes: meta = [nOut, nRed, kr, keptShape.., keptStrides.., rr, redShape.., redStrides..]. */
function reduceMeta(shape: readonly number[], axes: readonly number[]): { meta: number[]; nOut: number; kr: number; rr: number } {
  const r = shape.length;
  const norm = new Set((axes.length === 0 ? shape.map((_, i) => i) : axes).map((a) => (a < 0 ? a + r : a)));
  const strides = stridesOf(shape);
  const kept = shape.map((_, d) => d).filter((d) => !norm.has(d));
  const red = shape.map((_, d) => d).filter((d) => norm.has(d));
  const nOut = kept.reduce((a, d) => a * shape[d]!, 1);
  const nRed = red.reduce((a, d) => a * shape[d]!, 1);
  return {
    meta: [nOut, nRed, kept.length, ...kept.map((d) => shape[d]!), ...kept.map((d) => strides[d]!), red.length, ...red.map((d) => shape[d]!), ...red.map((d) => strides[d]!)],
    nOut, kr: kept.length, rr: red.length,
  };
}

/** WGSL that sets `base` from output index i and defines off(j) for reduced index j. */
function reduceIndex(kr: number, rr: number): string {
  const lines = ['var rem = i; var base = 0u;'];
  for (let d = kr - 1; d >= 0; d--) lines.push(`{ let c = rem % prm[${3 + d}u]; rem = rem / prm[${3 + d}u]; base = base + c * prm[${3 + kr + d}u]; }`);
  return lines.join('\n');
}
function reduceOffset(kr: number, rr: number): string {
  const at = 3 + 2 * kr + 1;
  const lines = ['var rj = j; var off = base;'];
  for (let d = rr - 1; d >= 0; d--) lines.push(`{ let c = rj % prm[${at + d}u]; rj = rj / prm[${at + d}u]; off = off + c * prm[${at + rr + d}u]; }`);
  return lines.join('\n');
}

function reduceKernel(kind: 'sum' | 'mean' | 'max'): Kernel<Op.Sum | Op.Mean | Op.Max> {
  return (b, ins, p, outs) => {
    const x = ins[0]!;
    const o = outs[0]!;
    const t = wgsl(x.dtype);
    if (t !== 'f32' && kind === 'mean') throw new Error('webgpu: mean needs f32');
    const { meta, nOut, kr, rr } = reduceMeta(x.shape, p.axes);
    const init = kind === 'max' ? (t === 'f32' ? '-3.4028234663852886e38' : '-2147483647 - 1') : t === 'f32' ? '0.0' : '0';
    const acc = kind === 'max' ? 'acc = max(acc, v);' : 'acc = acc + v;';
    const fin = kind === 'mean' ? 'acc / f32(prm[1])' : 'acc';
    const code = `${bindings([t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${reduceIndex(kr, rr)}
  var acc: ${t} = ${init};
  for (var j = 0u; j < prm[1]; j++) {
    ${reduceOffset(kr, rr)}
    let v = in0[off];
    ${acc}
  }
  out0[i] = ${kind === 'mean' && x.shape.length > 0 ? fin : fin};
}`;
    launch(b, code, [x], [o], meta, nOut);
  };
}

/** One thread per (outer, inner) line along `axis`: meta = [lines, len, inner]. */
function axisMeta(shape: readonly number[], axis: number): { meta: number[]; lines: number } {
  const a = axis < 0 ? axis + shape.length : axis;
  const inner = shape.slice(a + 1).reduce((x, y) => x * y, 1);
  const outer = shape.slice(0, a).reduce((x, y) => x * y, 1);
  return { meta: [outer * inner, shape[a]!, inner], lines: outer * inner };
}
const LINE = `if (i >= prm[0]) { return; }
  let len = prm[1]; let inner = prm[2];
  let start = (i / inner) * len * inner + i % inner;`;

function axisKernel(kind: 'softmax' | 'logsoftmax' | 'logsumexp' | 'argmax'): Kernel<Op.Softmax | Op.LogSoftmax | Op.LogSumExp | Op.Argmax> {
  return (b, ins, p, outs) => {
    const x = ins[0]!;
    const o = outs[0]!;
    wgsl(x.dtype);
    const { meta, lines } = axisMeta(x.shape, p.axis);
    const outType = kind === 'argmax' ? 'i32' : 'f32';
    let body: string;
    if (kind === 'argmax') {
      body = `var best = in0[start]; var bi = 0u;
  for (var j = 1u; j < len; j++) { let v = in0[start + j * inner]; if (v > best) { best = v; bi = j; } }
  out0[i] = i32(bi);`;
    } else {
      body = `var m = -3.4028234663852886e38;
  for (var j = 0u; j < len; j++) { m = max(m, in0[start + j * inner]); }
  var s = 0.0;
  for (var j = 0u; j < len; j++) { s = s + exp(in0[start + j * inner] - m); }
  ${kind === 'logsumexp' ? 'out0[i] = m + log(s);'
    : kind === 'softmax' ? 'for (var j = 0u; j < len; j++) { out0[start + j * inner] = exp(in0[start + j * inner] - m) / s; }'
      : 'let l = m + log(s); for (var j = 0u; j < len; j++) { out0[start + j * inner] = in0[start + j * inner] - l; }'}`;
    }
    const code = `${bindings(['f32'], [outType])}
${MAIN} {
  ${INDEX}
  ${LINE}
  ${body}
}`;
    launch(b, code, [x], [o], meta, lines);
  };
}

// ---- top-k, take / scatter along the last axis ----

/** One thread per row; the j-th pick is the largest value below the previous pick in (value desc, index asc) order. */
const topkKernel: Kernel<Op.TopK> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const [vals, idx] = outs as [Out, Out];
  wgsl(x.dtype);
  const n = x.shape.at(-1)!;
  const rows = n === 0 ? 0 : sizeOf(x.shape) / n;
  const code = `${bindings(['f32'], ['f32', 'i32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let n = prm[1]; let k = prm[2];
  let base = i * n;
  var pv = 0.0; var pi = -1;
  for (var j = 0u; j < k; j++) {
    var bv = 0.0; var bi = -1;
    for (var c = 0u; c < n; c++) {
      let v = in0[base + c];
      let ci = i32(c);
      let below = pi < 0 || v < pv || (v == pv && ci > pi);
      if (below && (bi < 0 || v > bv)) { bv = v; bi = ci; }
    }
    out0[i * k + j] = bv; out1[i * k + j] = bi;
    pv = bv; pi = bi;
  }
}`;
  launch(b, code, [x], [vals, idx], [rows, n, p.k], rows);
};

const takeAlongKernel: Kernel<Op.TakeAlong> = (b, ins, _p, outs) => {
  const [x, idx] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  const t = wgsl(x.dtype);
  const code = `${bindings([t, 'i32'], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let j = in1[i];
  out0[i] = select(${t === 'f32' ? '0.0' : '0'}, in0[(i / prm[2]) * prm[1] + u32(clamp(j, 0, i32(prm[1]) - 1))], j >= 0 && j < i32(prm[1]));
}`;
  launch(b, code, [x, idx], [o], [sizeOf(o.shape), x.shape.at(-1)!, idx.shape.at(-1)!], sizeOf(o.shape));
};

/** One thread per output element: the sum of the row's sources whose index names it. */
const scatterAlongKernel: Kernel<Op.ScatterAlong> = (b, ins, p, outs) => {
  const [src, idx] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  const code = `${bindings(['f32', 'i32'], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let width = prm[1]; let k = prm[2];
  let row = i / width; let col = i32(i % width);
  var acc = 0.0;
  for (var j = 0u; j < k; j++) { if (in1[row * k + j] == col) { acc = acc + in0[row * k + j]; } }
  out0[i] = acc;
}`;
  launch(b, code, [src, idx], [o], [sizeOf(o.shape), p.width, src.shape.at(-1)!], sizeOf(o.shape));
};

export const reduceKernels = {
  [Op.Sum]: reduceKernel('sum'),
  [Op.Mean]: reduceKernel('mean'),
  [Op.Max]: reduceKernel('max'),
  [Op.LogSumExp]: axisKernel('logsumexp'),
  [Op.Argmax]: axisKernel('argmax'),
  [Op.Softmax]: axisKernel('softmax'),
  [Op.LogSoftmax]: axisKernel('logsoftmax'),
  [Op.TopK]: topkKernel,
  [Op.TakeAlong]: takeAlongKernel,
  [Op.ScatterAlong]: scatterAlongKernel,
} satisfies { [O in Op.Sum | Op.Mean | Op.Max | Op.LogSumExp | Op.Argmax | Op.Softmax | Op.LogSoftmax | Op.TopK | Op.TakeAlong | Op.ScatterAlong]: Kernel<O> };
