// Layout webgpu kernels: reshape, transpose, slice, cast (packed 16/8-bit dtypes), concat, pad, gather, scatter-add.
import type { BackendInput } from '../backend.js';
import { Op } from '../../tensor/ops.js';
import { sizeOf, stridesOf } from '../../tensor/shape.js';
import type { Kernel } from './context.js';
import { BITS, HALF, INDEX, MAIN, bindings, boundAs, broadcastIndex, isFloat, isPacked, launch, loadElem, wgsl } from './wgsl.js';

// ---- layout ----

const reshapeKernel: Kernel<Op.Reshape> = (b, ins, _p, outs) => b.copy(ins[0]!.id, outs[0]!.id);

const transposeKernel: Kernel<Op.Transpose> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const o = outs[0]!;
  const t = wgsl(x.dtype);
  const r = o.shape.length;
  // input strides, permuted: output axis d walks input axis perm[d]
  const inStrides = stridesOf(x.shape);
  const strides = p.perm.map((a) => inStrides[a]!);
  const code = `${bindings([t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${broadcastIndex(r, 1)}
  out0[i] = in0[o0];
}`;
  launch(b, code, [x], [o], [sizeOf(o.shape), ...o.shape, ...strides], sizeOf(o.shape));
};

const sliceKernel: Kernel<Op.Slice> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const o = outs[0]!;
  const t = wgsl(x.dtype);
  const r = o.shape.length;
  const inStrides = stridesOf(x.shape);
  const base = p.begin.reduce((a, v, d) => a + v * inStrides[d]!, 0);
  const code = `${bindings([t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${broadcastIndex(r, 1)}
  out0[i] = in0[o0 + prm[${1 + 2 * r}u]];
}`;
  launch(b, code, [x], [o], [sizeOf(o.shape), ...o.shape, ...inStrides, base], sizeOf(o.shape));
};

const castKernel: Kernel<Op.Cast> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const o = outs[0]!;
  const from = x.dtype;
  const to = p.dtype;
  const n = sizeOf(o.shape);
  const v = loadElem('in0', from, 'j');
  // the value in the target's arithmetic type, then its stored form
  let val: string;
  if (isFloat(to)) val = isFloat(from) ? v : `f32(${v})`;
  else if (isFloat(from)) val = `select(0, i32(trunc(${v})), abs(${v}) < 3.4e38)`; // trunc, non-finite -> 0 (like the reference for i32)
  else val = v;
  const store = to === 'f16' ? `f2h_(${val})` : to === 'bf16' ? `f2bf_(${val})` : to === 'i8' || to === 'u8' ? `(u32(${val}) & 0xffu)` : val;
  let code: string;
  if (!isPacked(to)) {
    code = `${bindings([boundAs(from)], [boundAs(to)])}
${HALF}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let j = i;
  out0[i] = ${store};
}`;
    launch(b, code, [x], [o], [n], n);
    return;
  }
  // packed target: one thread per output word
  const per = 32 / BITS[to];
  const words = Math.ceil(n / per);
  code = `${bindings([boundAs(from)], ['u32'])}
${HALF}
${MAIN} {
  ${INDEX}
  if (i >= prm[1]) { return; }
  var w = 0u;
  for (var l = 0u; l < ${per}u; l++) {
    let j = i * ${per}u + l;
    if (j >= prm[0]) { break; }
    w = w | ((${store}) << (l * ${BITS[to]}u));
  }
  out0[i] = w;
}`;
  launch(b, code, [x], [o], [n, words], words);
};

// ---- concat, pad, gather, scatter-add ----

const concatKernel: Kernel<Op.Concat> = (b, ins, p, outs) => {
  const o = outs[0]!;
  const r = o.shape.length;
  const axis = p.axis < 0 ? p.axis + r : p.axis;
  const inner = sizeOf(o.shape.slice(axis + 1));
  const total = o.shape[axis]!;
  const t = wgsl(o.dtype);
  // one dispatch per input: copy its (outer, n, inner) block into the output at its axis offset
  let at = 0;
  for (const x of ins) {
    const n = x.shape[axis]!;
    const size = sizeOf(x.shape);
    const code = `${bindings([t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let block = prm[1] * prm[3];
  let outer = i / block; let rest = i % block;
  out0[outer * prm[2] * prm[3] + prm[4] * prm[3] + rest] = in0[i];
}`;
    launch(b, code, [x], [o], [size, n, total, inner, at], size);
    at += n;
  }
};

const padKernel: Kernel<Op.Pad> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const o = outs[0]!;
  const t = wgsl(x.dtype);
  const r = o.shape.length;
  const xs = stridesOf(x.shape);
  const lines: string[] = ['var rem = i; var src = 0u; var inside = true;'];
  for (let d = r - 1; d >= 0; d--) {
    lines.push(`{ let c = i32(rem % prm[${1 + d}u]); rem = rem / prm[${1 + d}u]; let ci = c - i32(prm[${1 + r + d}u]);
    if (ci < 0 || ci >= i32(prm[${1 + 2 * r + d}u])) { inside = false; } else { src = src + u32(ci) * prm[${1 + 3 * r + d}u]; } }`);
  }
  const value = t === 'f32' ? `bitcast<f32>(prm[${1 + 4 * r}u])` : `bitcast<i32>(prm[${1 + 4 * r}u])`;
  const code = `${bindings([t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${lines.join('\n  ')}
  if (inside) { out0[i] = in0[src]; } else { out0[i] = ${value}; }
}`;
  const bits = new DataView(new ArrayBuffer(4));
  if (t === 'f32') bits.setFloat32(0, p.value, true);
  else bits.setInt32(0, p.value, true);
  launch(b, code, [x], [o], [sizeOf(o.shape), ...o.shape, ...p.pads.map(([a]) => a), ...x.shape, ...xs, bits.getUint32(0, true)], sizeOf(o.shape));
};

/** Rows of the table; an index outside [0, rows) gives a zero row (a GPU kernel cannot throw). */
const gatherKernel: Kernel<Op.Gather> = (b, ins, _p, outs) => {
  const [table, idx] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  const t = wgsl(table.dtype);
  const width = sizeOf(table.shape.slice(1));
  const code = `${bindings([t, 'i32'], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let r = in1[i / prm[1]];
  let ok = r >= 0 && r < i32(prm[2]);
  out0[i] = select(${t === 'f32' ? '0.0' : '0'}, in0[u32(clamp(r, 0, i32(prm[2]) - 1)) * prm[1] + i % prm[1]], ok);
}`;
  launch(b, code, [table, idx], [o], [sizeOf(o.shape), width, table.shape[0]!], sizeOf(o.shape));
};

/** One thread per output element, summing the source rows whose index names its row (no float atomics in WGSL). */
const scatterAddKernel: Kernel<Op.ScatterAdd> = (b, ins, _p, outs) => {
  const [src, idx] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  const width = sizeOf(src.shape.slice(1));
  const code = `${bindings(['f32', 'i32'], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let width = prm[1]; let m = prm[2];
  let row = i32(i / width); let col = i % width;
  var acc = 0.0;
  for (var j = 0u; j < m; j++) { if (in1[j] == row) { acc = acc + in0[j * width + col]; } }
  out0[i] = acc;
}`;
  launch(b, code, [src, idx], [o], [sizeOf(o.shape), width, idx.shape[0] ?? 0], sizeOf(o.shape));
};

export const layoutKernels = {
  [Op.Reshape]: reshapeKernel,
  [Op.Transpose]: transposeKernel,
  [Op.Slice]: sliceKernel,
  [Op.Cast]: castKernel,
  [Op.Concat]: concatKernel,
  [Op.Pad]: padKernel,
  [Op.Gather]: gatherKernel,
  [Op.ScatterAdd]: scatterAddKernel,
} satisfies { [O in Op.Reshape | Op.Transpose | Op.Slice | Op.Cast | Op.Concat | Op.Pad | Op.Gather | Op.ScatterAdd]: Kernel<O> };
