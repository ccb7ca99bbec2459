/// <reference types="@webgpu/types" />
// WGSL kernels of the webgpu backend. Each kernel generates its shader from the dtypes it sees (the source is
// the pipeline-cache key) and passes sizes, shapes and strides in a u32 `meta` array.
import type { BackendInput } from '../backend.js';
import { Op, type OpParams, type TensorInfo } from '../../tensor/ops.js';
import { broadcastStrides, sizeOf } from '../../tensor/shape.js';
import type { DType } from '../../tensor/dtype.js';
import type { WebGpuBackend } from './index.js';

export type Out = TensorInfo & { readonly id: number };
export type Kernel<O extends Op> = (b: WebGpuBackend, ins: readonly BackendInput[], p: OpParams[O], outs: readonly Out[]) => void;

const WG = 256;

function wgsl(dtype: DType): 'f32' | 'i32' {
  if (dtype === 'f32' || dtype === 'i32') return dtype;
  throw new Error(`webgpu: dtype ${dtype} is not supported by this kernel yet (f32 and i32 are)`);
}

/** Workgroup counts for n threads of WG each (2-D when n exceeds 65535 groups). */
function grid(n: number): [number, number] {
  const g = Math.max(1, Math.ceil(n / WG));
  return g <= 65535 ? [g, 1] : [65535, Math.ceil(g / 65535)];
}

/** The flat thread index in a grid() dispatch. */
const INDEX = `let i = gid.x + gid.y * nwg.x * ${WG}u;`;
const MAIN = `@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u)`;

function bindings(types: readonly string[], outTypes: readonly string[]): string {
  const lines = types.map((t, k) => `@group(0) @binding(${k}) var<storage, read> in${k}: array<${t}>;`);
  outTypes.forEach((t, k) => lines.push(`@group(0) @binding(${types.length + k}) var<storage, read_write> out${k}: array<${t}>;`));
  lines.push(`@group(0) @binding(${types.length + outTypes.length}) var<storage, read> prm: array<u32>;`);
  return lines.join('\n');
}

function launch(b: WebGpuBackend, code: string, ins: readonly { id: number }[], outs: readonly { id: number }[], meta: number[], threads: number): void {
  if (threads === 0) return;
  b.dispatch(code, [...ins.map((x) => b.stored(x.id).buffer), ...outs.map((x) => b.stored(x.id).buffer)], meta, grid(threads));
}

// ---- elementwise ----

const BINARY: Partial<Record<Op, (a: string, b: string, t: string) => string>> = {
  [Op.Add]: (a, b) => `${a} + ${b}`,
  [Op.Sub]: (a, b) => `${a} - ${b}`,
  [Op.Mul]: (a, b) => `${a} * ${b}`,
  [Op.Div]: (a, b) => `${a} / ${b}`,
  [Op.Pow]: (a, b) => `pow(${a}, ${b})`,
  [Op.Maximum]: (a, b) => `max(${a}, ${b})`,
};

/** Index arithmetic of a broadcast over rank r: prm[1..r] the output shape, then r strides per input. */
function broadcastIndex(r: number, nIn: number): string {
  const lines = [`var rem = i; var o0 = 0u; var o1 = 0u; var o2 = 0u;`];
  for (let d = r - 1; d >= 0; d--) {
    lines.push(`{ let c = rem % prm[${1 + d}u]; rem = rem / prm[${1 + d}u];`);
    for (let k = 0; k < nIn; k++) lines.push(`  o${k} = o${k} + c * prm[${1 + r + k * r + d}u];`);
    lines.push('}');
  }
  return lines.join('\n');
}

function broadcastMeta(out: readonly number[], ins: readonly (readonly number[])[]): number[] {
  return [sizeOf(out), ...out, ...ins.flatMap((s) => broadcastStrides(s, out))];
}

function binaryKernel(op: Op): Kernel<Op.Add> {
  return (b, ins, _p, outs) => {
    const [x, y] = ins as [BackendInput, BackendInput];
    const o = outs[0]!;
    const t = wgsl(x.dtype);
    const r = o.shape.length;
    const code = `${bindings([t, t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${broadcastIndex(r, 2)}
  let a = in0[o0]; let b = in1[o1];
  out0[i] = ${BINARY[op]!('a', 'b', t)};
}`;
    launch(b, code, [x, y], [o], broadcastMeta(o.shape, [x.shape, y.shape]), sizeOf(o.shape));
  };
}

const CMP: Record<OpParams[Op.Compare]['cmp'], string> = { eq: '==', ne: '!=', lt: '<', le: '<=', gt: '>', ge: '>=' };

const compareKernel: Kernel<Op.Compare> = (b, ins, p, outs) => {
  const [x, y] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  const t = wgsl(x.dtype);
  const code = `${bindings([t, t], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${broadcastIndex(o.shape.length, 2)}
  out0[i] = select(0.0, 1.0, in0[o0] ${CMP[p.cmp]} in1[o1]);
}`;
  launch(b, code, [x, y], [o], broadcastMeta(o.shape, [x.shape, y.shape]), sizeOf(o.shape));
};

const whereKernel: Kernel<Op.Where> = (b, ins, _p, outs) => {
  const [c, x, y] = ins as [BackendInput, BackendInput, BackendInput];
  const o = outs[0]!;
  const tc = wgsl(c.dtype);
  const t = wgsl(x.dtype);
  const zero = tc === 'f32' ? '0.0' : '0';
  const code = `${bindings([tc, t, t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${broadcastIndex(o.shape.length, 3)}
  out0[i] = select(in2[o2], in1[o1], in0[o0] != ${zero});
}`;
  launch(b, code, [c, x, y], [o], broadcastMeta(o.shape, [c.shape, x.shape, y.shape]), sizeOf(o.shape));
};

const ERF = `fn erf_(x: f32) -> f32 {
  // Abramowitz & Stegun 7.1.26 is too coarse for 1e-5; use the complementary-error series of W. J. Cody's rational form
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}`;

const UNARY: Partial<Record<Op, string>> = {
  [Op.Neg]: '-x',
  [Op.Abs]: 'abs(x)',
  [Op.Exp]: 'exp(x)',
  [Op.Log]: 'log(x)',
  [Op.Sqrt]: 'sqrt(x)',
  [Op.Rsqrt]: 'inverseSqrt(x)',
  [Op.Sigmoid]: '1.0 / (1.0 + exp(-x))',
  [Op.Tanh]: 'tanh(x)',
  [Op.Silu]: 'x / (1.0 + exp(-x))',
};

function unaryKernel(op: Op): Kernel<Op.Neg> {
  return (b, ins, _p, outs) => {
    const x = ins[0]!;
    const o = outs[0]!;
    const t = wgsl(x.dtype);
    if (t !== 'f32' && op !== Op.Neg && op !== Op.Abs) throw new Error(`webgpu: ${op} needs f32, got ${x.dtype}`);
    const code = `${bindings([t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let x = in0[i];
  out0[i] = ${UNARY[op]!};
}`;
    launch(b, code, [x], [o], [sizeOf(o.shape)], sizeOf(o.shape));
  };
}

const geluKernel: Kernel<Op.Gelu> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const o = outs[0]!;
  wgsl(x.dtype);
  const body = p.approximate === 'tanh'
    ? 'let y = 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));'
    : 'let y = 0.5 * x * (1.0 + erf_(x * 0.7071067811865476));';
  const code = `${bindings(['f32'], ['f32'])}
${ERF}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let x = in0[i];
  ${body}
  out0[i] = y;
}`;
  launch(b, code, [x], [o], [sizeOf(o.shape)], sizeOf(o.shape));
};

// ---- layout ----

const reshapeKernel: Kernel<Op.Reshape> = (b, ins, _p, outs) => b.copy(ins[0]!.id, outs[0]!.id);

const transposeKernel: Kernel<Op.Transpose> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const o = outs[0]!;
  const t = wgsl(x.dtype);
  const r = o.shape.length;
  // input strides, permuted: output axis d walks input axis perm[d]
  const inStrides = new Array<number>(r);
  for (let d = r - 1, s = 1; d >= 0; d--) {
    inStrides[d] = s;
    s *= x.shape[d]!;
  }
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
  const inStrides = new Array<number>(r);
  for (let d = r - 1, s = 1; d >= 0; d--) {
    inStrides[d] = s;
    s *= x.shape[d]!;
  }
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
  const from = wgsl(x.dtype);
  const to = wgsl(p.dtype);
  const expr = from === to ? 'in0[i]' : to === 'i32' ? 'i32(trunc(in0[i]))' : 'f32(in0[i])';
  const code = `${bindings([from], [to])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  out0[i] = ${expr};
}`;
  launch(b, code, [x], [o], [sizeOf(o.shape)], sizeOf(o.shape));
};

// ---- reductions ----

/** Splits x's shape into kept and reduced axes: meta = [nOut, nRed, kr, keptShape.., keptStrides.., rr, redShape.., redStrides..]. */
function reduceMeta(shape: readonly number[], axes: readonly number[]): { meta: number[]; nOut: number; kr: number; rr: number } {
  const r = shape.length;
  const norm = new Set((axes.length === 0 ? shape.map((_, i) => i) : axes).map((a) => (a < 0 ? a + r : a)));
  const strides = new Array<number>(r);
  for (let d = r - 1, s = 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
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

function reduceKernel(kind: 'sum' | 'mean' | 'max'): Kernel<Op.Sum> {
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

function axisKernel(kind: 'softmax' | 'logsoftmax' | 'logsumexp' | 'argmax'): Kernel<Op.Softmax> {
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

// ---- linear algebra ----

const TILE = 16;

/** C (batch, M, N) = op(A) · op(B) [+ bias]; 16×16 tiles through workgroup memory, one output per thread. */
const matmulKernel: Kernel<Op.Matmul> = (b, ins, p, outs) => {
  const [a, w, bias] = ins as [BackendInput, BackendInput, BackendInput | undefined];
  const o = outs[0]!;
  wgsl(a.dtype);
  const M = o.shape.at(-2)!;
  const N = o.shape.at(-1)!;
  const K = a.shape.at(p.transA ? -2 : -1)!;
  const batch = M * N === 0 ? 0 : sizeOf(o.shape) / (M * N);
  if (batch === 0) return;
  const bBatched = w.shape.length > 2;
  const aAt = p.transA ? 'in0[aBase + k * M + row]' : 'in0[aBase + row * K + k]';
  const bAt = p.transB ? 'in1[bBase + col * K + k]' : 'in1[bBase + k * N + col]';
  const types = bias ? ['f32', 'f32', 'f32'] : ['f32', 'f32'];
  const code = `${bindings(types, ['f32'])}
var<workgroup> ta: array<f32, ${TILE * TILE}>;
var<workgroup> tb: array<f32, ${TILE * TILE}>;
@compute @workgroup_size(${TILE}, ${TILE}) fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let M = prm[0]; let N = prm[1]; let K = prm[2]; let bBatched = prm[3];
  let z = wg.z;
  let aBase = z * M * K;
  let bBase = select(0u, z * K * N, bBatched == 1u);
  let r = wg.y * ${TILE}u + lid.y;
  let c = wg.x * ${TILE}u + lid.x;
  var acc = 0.0;
  for (var k0 = 0u; k0 < K; k0 += ${TILE}u) {
    {
      let row = r; let k = k0 + lid.x;
      ta[lid.y * ${TILE}u + lid.x] = select(0.0, ${aAt}, row < M && k < K);
    }
    {
      let col = c; let k = k0 + lid.y;
      tb[lid.y * ${TILE}u + lid.x] = select(0.0, ${bAt}, col < N && k < K);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE}u; kk++) { acc = acc + ta[lid.y * ${TILE}u + kk] * tb[kk * ${TILE}u + lid.x]; }
    workgroupBarrier();
  }
  if (r < M && c < N) {
    out${bias ? '0' : '0'}[z * M * N + r * N + c] = acc${bias ? ' + in2[c]' : ''};
  }
}`;
  // select() evaluates both operands: clamp the indices so the untaken one stays in bounds
  const safe = code
    .replace(aAt, p.transA ? 'in0[aBase + min(k, K - 1u) * M + min(row, M - 1u)]' : 'in0[aBase + min(row, M - 1u) * K + min(k, K - 1u)]')
    .replace(bAt, p.transB ? 'in1[bBase + min(col, N - 1u) * K + min(k, K - 1u)]' : 'in1[bBase + min(k, K - 1u) * N + min(col, N - 1u)]');
  if (K === 0) throw new Error('webgpu: matmul with K = 0 is not supported yet');
  b.dispatch(safe, [...ins.map((x) => b.stored(x.id).buffer), b.stored(o.id).buffer], [M, N, K, bBatched ? 1 : 0], [Math.ceil(N / TILE), Math.ceil(M / TILE), batch]);
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyKernel = (b: WebGpuBackend, ins: readonly BackendInput[], p: any, outs: readonly Out[]) => void;

export const KERNELS: Partial<Record<Op, AnyKernel>> = {
  [Op.Add]: binaryKernel(Op.Add),
  [Op.Sub]: binaryKernel(Op.Sub),
  [Op.Mul]: binaryKernel(Op.Mul),
  [Op.Div]: binaryKernel(Op.Div),
  [Op.Pow]: binaryKernel(Op.Pow),
  [Op.Maximum]: binaryKernel(Op.Maximum),
  [Op.Compare]: compareKernel,
  [Op.Where]: whereKernel,
  [Op.Neg]: unaryKernel(Op.Neg),
  [Op.Abs]: unaryKernel(Op.Abs),
  [Op.Exp]: unaryKernel(Op.Exp),
  [Op.Log]: unaryKernel(Op.Log),
  [Op.Sqrt]: unaryKernel(Op.Sqrt),
  [Op.Rsqrt]: unaryKernel(Op.Rsqrt),
  [Op.Sigmoid]: unaryKernel(Op.Sigmoid),
  [Op.Tanh]: unaryKernel(Op.Tanh),
  [Op.Silu]: unaryKernel(Op.Silu),
  [Op.Gelu]: geluKernel,
  [Op.Sum]: reduceKernel('sum'),
  [Op.Mean]: reduceKernel('mean'),
  [Op.Max]: reduceKernel('max'),
  [Op.LogSumExp]: axisKernel('logsumexp'),
  [Op.Argmax]: axisKernel('argmax'),
  [Op.Softmax]: axisKernel('softmax'),
  [Op.LogSoftmax]: axisKernel('logsoftmax'),
  [Op.Reshape]: reshapeKernel,
  [Op.Transpose]: transposeKernel,
  [Op.Slice]: sliceKernel,
  [Op.Cast]: castKernel,
  [Op.Matmul]: matmulKernel,
};
