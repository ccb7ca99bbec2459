// js reference kernels: reductions, softmax family, top-k and the along-axis gather/scatter pair.
import { Op, type ReduceParams } from '../../../tensor/ops.js';
import { normAxis, sizeOf, splitAxis } from '../../../tensor/shape.js';
import { fl, ix, type CpuKernel, type View } from '../view.js';
import { forBroadcast } from './elementwise.js';

/** Input shape with reduced axes set to 1 (the keep-dims output shape). */
function keptShape(shape: readonly number[], axes: readonly number[]): number[] {
  const set = new Set(axes.length === 0 ? shape.map((_, i) => i) : axes.map((a) => normAxis('reduce', a, shape.length)));
  return shape.map((d, i) => (set.has(i) ? 1 : d));
}

function reduce(x: View, p: ReduceParams, out: View, init: number, step: (acc: number, v: number) => number, finish?: (acc: number, n: number) => number): void {
  const X = fl(x);
  const O = fl(out);
  const kept = keptShape(x.shape, p.axes);
  const acc = new Float64Array(O.length).fill(init);
  const r = x.shape.length;
  if (r > 0 && kept.every((d, i) => (i === r - 1 ? d === 1 : d === x.shape[i]))) {
    // reducing only the contiguous last axis: one row per output
    const n = x.shape[r - 1]!;
    for (let o = 0, i = 0; o < acc.length; o++) {
      let a = init;
      for (let j = 0; j < n; j++, i++) a = step(a, X[i]!);
      acc[o] = a;
    }
  } else {
    forBroadcast(x.shape, [kept], (i, o) => {
      acc[o] = step(acc[o]!, X[i]!);
    });
  }
  const n = O.length === 0 ? 0 : sizeOf(x.shape) / O.length;
  for (let i = 0; i < O.length; i++) O[i] = finish ? finish(acc[i]!, n) : acc[i]!;
}

/** Calls fn(base, stride) for every line along `axis` (outer × inner lines of length n). */
function forLines(shape: readonly number[], axis: number, fn: (base: number, stride: number, n: number, line: number) => void): void {
  const [outer, n, inner] = splitAxis(shape, normAxis('axis', axis, shape.length));
  for (let o = 0; o < outer; o++) for (let j = 0; j < inner; j++) fn(o * n * inner + j, inner, n, o * inner + j);
}

function lineMax(X: ArrayLike<number>, base: number, stride: number, n: number): number {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, X[base + i * stride]!);
  return m;
}

function lineLse(X: ArrayLike<number>, base: number, stride: number, n: number): number {
  const m = lineMax(X, base, stride, n);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(X[base + i * stride]! - m);
  return m + Math.log(s);
}

export const reduceKernels = {
  [Op.Sum]: (ins, p, outs) => reduce(ins[0]!, p, outs[0]!, 0, (a, v) => a + v),
  [Op.Mean]: (ins, p, outs) => reduce(ins[0]!, p, outs[0]!, 0, (a, v) => a + v, (a, n) => a / n),
  [Op.Max]: (ins, p, outs) => reduce(ins[0]!, p, outs[0]!, -Infinity, (a, v) => (v > a || Number.isNaN(v) ? v : a)),
  [Op.LogSumExp]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const O = fl(outs[0]);
    forLines(ins[0]!.shape, p.axis, (b, s, n, l) => (O[l] = lineLse(X, b, s, n)));
  },
  [Op.Argmax]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const O = ix(outs[0]);
    forLines(ins[0]!.shape, p.axis, (b, s, n, l) => {
      let best = 0;
      for (let i = 1; i < n; i++) if (X[b + i * s]! > X[b + best * s]!) best = i;
      O[l] = best;
    });
  },
  [Op.Softmax]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const O = fl(outs[0]);
    forLines(ins[0]!.shape, p.axis, (b, s, n) => {
      const m = lineMax(X, b, s, n);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += Math.exp(X[b + i * s]! - m);
      for (let i = 0; i < n; i++) O[b + i * s] = Math.exp(X[b + i * s]! - m) / sum;
    });
  },
  [Op.LogSoftmax]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const O = fl(outs[0]);
    forLines(ins[0]!.shape, p.axis, (b, s, n) => {
      const lse = lineLse(X, b, s, n);
      for (let i = 0; i < n; i++) O[b + i * s] = X[b + i * s]! - lse;
    });
  },
  [Op.TopK]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const V = fl(outs[0]);
    const I = ix(outs[1]);
    const n = ins[0]!.shape.at(-1)!;
    const k = p.k;
    const rows = n === 0 ? 0 : X.length / n;
    for (let r = 0; r < rows; r++) {
      const base = r * n;
      const ob = r * k;
      let filled = 0;
      for (let i = 0; i < n; i++) {
        const v = X[base + i]!;
        if (filled === k && !(v > V[ob + k - 1]!)) continue;
        let j = filled < k ? filled++ : k - 1;
        while (j > 0 && v > V[ob + j - 1]!) {
          V[ob + j] = V[ob + j - 1]!;
          I[ob + j] = I[ob + j - 1]!;
          j--;
        }
        V[ob + j] = v;
        I[ob + j] = i;
      }
    }
  },
  [Op.TakeAlong]: (ins, _p, outs) => {
    const X = ins[0]!.data;
    const idx = ix(ins[1]);
    const O = outs[0]!.data;
    const n = ins[0]!.shape.at(-1)!;
    const k = ins[1]!.shape.at(-1)!;
    for (let i = 0; i < idx.length; i++) {
      const j = idx[i]!;
      if (j < 0 || j >= n) throw new RangeError(`${Op.TakeAlong}: index ${j} is out of range [0, ${n})`);
      O[i] = X[Math.floor(i / k) * n + j]!;
    }
  },
  [Op.ScatterAlong]: (ins, p, outs) => {
    const S = fl(ins[0]);
    const idx = ix(ins[1]);
    const O = fl(outs[0]);
    const k = ins[0]!.shape.at(-1)!;
    O.fill(0);
    for (let i = 0; i < idx.length; i++) {
      const j = idx[i]!;
      if (j < 0 || j >= p.width) throw new RangeError(`${Op.ScatterAlong}: index ${j} is out of range [0, ${p.width})`);
      O[Math.floor(i / k) * p.width + j] += S[i]!;
    }
  },
} satisfies { [O in Op.Sum | Op.Mean | Op.Max | Op.LogSumExp | Op.Argmax | Op.Softmax | Op.LogSoftmax | Op.TopK | Op.TakeAlong | Op.ScatterAlong]: CpuKernel<O> };
