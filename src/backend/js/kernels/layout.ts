// js reference kernels: reshape, transpose, slice, concat, pad, gather/scatter rows and casts.
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../../tensor/dtype.js';
import { Op } from '../../../tensor/ops.js';
import { normAxis, sizeOf, splitAxis, stridesOf } from '../../../tensor/shape.js';
import { fl, ix, type CpuKernel } from '../view.js';

/** Copies a strided block: out[i] = x[offset + sum_ax idx_ax * strides_ax] over `shape` in row-major order. */
function gatherStrided(X: ArrayLike<number>, O: { [i: number]: number }, shape: readonly number[], strides: readonly number[], offset: number, outOffset = 0, outStrides?: readonly number[]): void {
  const total = sizeOf(shape);
  if (total === 0) return;
  const r = shape.length;
  const os = outStrides ?? stridesOf(shape);
  const idx = new Array<number>(r).fill(0);
  let src = offset;
  let dst = outOffset;
  const inner = r === 0 ? 1 : shape[r - 1]!;
  const si = r === 0 ? 0 : strides[r - 1]!;
  const di = r === 0 ? 0 : os[r - 1]!;
  for (let n = 0; n < total; n += inner) {
    for (let j = 0; j < inner; j++) O[dst + j * di] = X[src + j * si]!;
    for (let ax = r - 2; ax >= 0; ax--) {
      idx[ax]!++;
      src += strides[ax]!;
      dst += os[ax]!;
      if (idx[ax]! < shape[ax]!) break;
      src -= strides[ax]! * shape[ax]!;
      dst -= os[ax]! * shape[ax]!;
      idx[ax] = 0;
    }
  }
}

function castValue(from: string, to: string): (v: number) => number {
  const read = from === 'f16' ? f16ToF32 : from === 'bf16' ? bf16ToF32 : (v: number) => v;
  if (to === 'f16') return (v) => f32ToF16(read(v));
  if (to === 'bf16') return (v) => f32ToBf16(read(v));
  if (to === 'i32' && from === 'f32') return (v) => (Number.isFinite(v) ? Math.trunc(v) : 0);
  if (to === 'f32' && (from === 'f16' || from === 'bf16')) return read;
  if (to === 'f32') return (v) => v;
  // integer targets wrap like C casts (typed-array assignment does it)
  return (v) => v;
}

export const layoutKernels = {
  [Op.Reshape]: (ins, _p, outs) => outs[0]!.data.set(ins[0]!.data),
  [Op.Transpose]: (ins, p, outs) => {
    const x = ins[0]!;
    const st = stridesOf(x.shape);
    gatherStrided(x.data, outs[0]!.data, outs[0]!.shape, p.perm.map((a) => st[a]!), 0);
  },
  [Op.Slice]: (ins, p, outs) => {
    const x = ins[0]!;
    const st = stridesOf(x.shape);
    const offset = p.begin.reduce((acc, b, i) => acc + b * st[i]!, 0);
    gatherStrided(x.data, outs[0]!.data, p.size, st, offset);
  },
  [Op.Concat]: (ins, p, outs) => {
    const out = outs[0]!;
    const axis = normAxis(Op.Concat, p.axis, out.shape.length);
    const [outer, total, inner] = splitAxis(out.shape, axis);
    let at = 0;
    for (const t of ins) {
      const n = t.shape[axis]!;
      const block = n * inner;
      for (let o = 0; o < outer; o++) out.data.set(t.data.subarray(o * block, (o + 1) * block), o * total * inner + at * inner);
      at += n;
    }
  },
  [Op.Pad]: (ins, p, outs) => {
    const x = ins[0]!;
    const out = outs[0]!;
    out.data.fill(p.value);
    const os = stridesOf(out.shape);
    const offset = p.pads.reduce((acc, [b], i) => acc + b * os[i]!, 0);
    gatherStrided(x.data, out.data, x.shape, stridesOf(x.shape), 0, offset, os);
  },
  [Op.Gather]: (ins, _p, outs) => {
    const table = ins[0]!;
    const idx = ix(ins[1]);
    const rows = table.shape[0]!;
    const width = sizeOf(table.shape.slice(1));
    const O = outs[0]!.data;
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i]!;
      if (r < 0 || r >= rows) throw new RangeError(`${Op.Gather}: index ${r} at position ${i} is out of range [0, ${rows})`);
      O.set(table.data.subarray(r * width, (r + 1) * width), i * width);
    }
  },
  [Op.ScatterAdd]: (ins, p, outs) => {
    const S = fl(ins[0]);
    const idx = ix(ins[1]);
    const O = fl(outs[0]);
    const width = sizeOf(ins[0]!.shape.slice(1));
    O.fill(0);
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i]!;
      if (r < 0 || r >= p.rows) throw new RangeError(`${Op.ScatterAdd}: index ${r} at position ${i} is out of range [0, ${p.rows})`);
      const d = r * width;
      const s = i * width;
      for (let j = 0; j < width; j++) O[d + j] += S[s + j]!;
    }
  },
  [Op.Cast]: (ins, p, outs) => {
    const X = ins[0]!.data;
    const O = outs[0]!.data;
    const f = castValue(ins[0]!.dtype, p.dtype);
    for (let i = 0; i < X.length; i++) O[i] = f(X[i]!);
  },
} satisfies { [O in Op.Reshape | Op.Transpose | Op.Slice | Op.Concat | Op.Pad | Op.Gather | Op.ScatterAdd | Op.Cast]: CpuKernel<O> };
