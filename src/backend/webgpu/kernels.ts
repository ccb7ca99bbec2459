/// <reference types="@webgpu/types" />
// WGSL kernels of the webgpu backend. Each kernel generates its shader from the dtypes it sees (the source is
// the pipeline-cache key) and passes sizes, shapes and strides in a u32 `meta` array.
import type { BackendInput } from '../backend.js';
import { Op, type OpParams, type TensorInfo, type WeightFormat } from '../../tensor/ops.js';
import { broadcastStrides, sizeOf, stridesOf } from '../../tensor/shape.js';
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

/** Runs `f` with temporary f32 buffers of the given sizes (freed after recording; later work reuses them). */
function withTemps(b: WebGpuBackend, sizes: number[], f: (ids: Out[]) => void): void {
  const ids = sizes.map((n) => ({ id: b.allocate('f32', Math.max(1, n)), shape: [n], dtype: 'f32' as const }));
  try {
    f(ids);
  } finally {
    for (const t of ids) b.free(t.id);
  }
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

// ---- 16- and 8-bit storage: buffers of those dtypes are bound as array<u32> and unpacked here ----

/** Bits per element of a packed dtype, or 32. */
const BITS: Record<DType, number> = { f32: 32, i32: 32, f16: 16, bf16: 16, i8: 8, u8: 8 };
const isPacked = (d: DType): boolean => BITS[d] < 32;
/** The WGSL array element type a dtype is bound as. */
const boundAs = (d: DType): string => (isPacked(d) ? 'u32' : d === 'f32' ? 'f32' : 'i32');

/** Exact f16 <-> f32 and bf16 -> f32 conversions (round to nearest even), matching src/tensor/dtype.ts bit for bit. */
const HALF = `fn h2f_(h: u32) -> f32 {
  let e = (h >> 10u) & 31u; let m = h & 1023u;
  var v: f32;
  if (e == 0u) { v = f32(m) * 5.960464477539063e-8; }
  else if (e == 31u) { v = bitcast<f32>(0x7f800000u | (m << 13u)); }
  else { v = bitcast<f32>(((e + 112u) << 23u) | (m << 13u)); }
  return select(v, -v, (h & 0x8000u) != 0u);
}
fn f2h_(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let sign = (x >> 16u) & 0x8000u;
  let ex = (x >> 23u) & 0xffu;
  var mant = x & 0x7fffffu;
  if (ex == 0xffu) { return sign | 0x7c00u | select(0u, 0x200u, mant != 0u); }
  let e = i32(ex) - 127 + 15;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    mant = mant | 0x800000u;
    let shift = u32(14 - e);
    var half = mant >> shift;
    let rem = mant & ((1u << shift) - 1u);
    let mid = 1u << (shift - 1u);
    if (rem > mid || (rem == mid && (half & 1u) == 1u)) { half = half + 1u; }
    return sign | half;
  }
  var half = (u32(e) << 10u) | (mant >> 13u);
  let rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u) == 1u)) { half = half + 1u; }
  return sign | half;
}
fn f2bf_(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffffu) != 0u) { return ((x >> 16u) | 0x40u) & 0xffffu; }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}`;

/** Raw bits of element j of a packed binding (u32 words, little-endian lanes). */
function packedBits(buf: string, d: DType, j: string): string {
  const bits = BITS[d];
  const per = 32 / bits;
  return `((${buf}[(${j}) / ${per}u] >> (((${j}) % ${per}u) * ${bits}u)) & ${bits === 16 ? '0xffffu' : '0xffu'})`;
}

/** Element j of a binding as f32 (float dtypes) or i32 (integer dtypes). */
function loadElem(buf: string, d: DType, j: string): string {
  switch (d) {
    case 'f32': case 'i32': return `${buf}[${j}]`;
    case 'f16': return `h2f_(${packedBits(buf, d, j)})`;
    case 'bf16': return `bitcast<f32>(${packedBits(buf, d, j)} << 16u)`;
    case 'i8': return `((i32(${packedBits(buf, d, j)}) << 24u) >> 24u)`;
    case 'u8': return `i32(${packedBits(buf, d, j)})`;
  }
}
const isFloat = (d: DType): boolean => d === 'f32' || d === 'f16' || d === 'bf16';

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

/**
 * Weight element (n, k) of a stored (N, K) matrix in `w` as f32: int8/int4 with f16 group scales in `sc`, f16/bf16
 * bits, MXFP4 (E2M1 nibbles with E8M0 byte scales) or FP8 E4M3 (with f32 scales). The minifloats are decoded
 * arithmetically with ldexp, exactly.
 */
function weightElem(format: WeightFormat, w: string, sc: string): string {
  const scale = `h2f_(${packedBits(sc, 'f16', 'n * (K / gs) + k / gs')})`;
  switch (format) {
    case 'f16': return `h2f_(${packedBits(w, 'f16', 'n * K + k')})`;
    case 'bf16': return `bitcast<f32>(${packedBits(w, 'bf16', 'n * K + k')} << 16u)`;
    case 'int8': return `f32((i32(${packedBits(w, 'i8', 'n * K + k')}) << 24u) >> 24u) * ${scale}`;
    case 'int4': return `f32(((i32((${packedBits(w, 'u8', 'n * (K / 2u) + k / 2u')} >> ((k % 2u) * 4u)) & 15u)) << 28u) >> 28u) * ${scale}`;
    case 'mxfp4': return `fp4_((${packedBits(w, 'u8', 'n * (K / 2u) + k / 2u')} >> ((k % 2u) * 4u)) & 15u) * e8m0_(${packedBits(sc, 'u8', 'n * (K / gs) + k / gs')})`;
    case 'fp8': return `e4m3_(${packedBits(w, 'u8', 'n * K + k')}) * bitcast<f32>(${sc}[n * (K / gs) + k / gs])`;
  }
}

/** WGSL decoders of the minifloat codes: FP4 E2M1, FP8 E4M3FN (0x7F/0xFF NaN) and E8M0 scales (0xFF NaN). */
const MINIFLOAT = `
fn fp4_(c: u32) -> f32 {
  let e = i32((c >> 1u) & 3u); let m = f32(c & 1u);
  var v = m * 0.5;
  if (e > 0) { v = ldexp(1.0 + m * 0.5, e - 1); }
  return select(v, -v, (c & 8u) != 0u);
}
fn e4m3_(c: u32) -> f32 {
  let e = i32((c >> 3u) & 15u); let m = f32(c & 7u);
  if ((c & 0x7fu) == 0x7fu) { return bitcast<f32>(0x7fc00000u | (c & 0u)); } // NaN (not a const-expression)
  var v = ldexp(m, -9);
  if (e > 0) { v = ldexp(1.0 + m / 8.0, e - 7); }
  return select(v, -v, (c & 0x80u) != 0u);
}
fn e8m0_(b: u32) -> f32 {
  if (b == 255u) { return bitcast<f32>(0x7fc00000u | (b & 0u)); }
  if (b == 0u) { return bitcast<f32>(0x00400000u | b); }
  return bitcast<f32>(b << 23u);
}`;

const dequantizeKernel: Kernel<Op.Dequantize> = (b, ins, p, outs) => {
  const [data, scales] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  const [N, K] = o.shape as [number, number];
  const code = `${bindings(['u32', 'u32'], ['f32'])}
${HALF}
${MINIFLOAT}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let K = prm[1]; let gs = prm[2];
  let n = i / K; let k = i % K;
  out0[i] = ${weightElem(p.format, 'in0', 'in1')};
}`;
  launch(b, code, [data, scales], [o], [N * K, K, p.groupSize], N * K);
};

const quantMatmulKernel: Kernel<Op.QuantMatmul> = (b, ins, p, outs) => {
  const [x, w, scales] = ins as [BackendInput, BackendInput, BackendInput | undefined];
  const o = outs[0]!;
  const [M, K] = x.shape as [number, number];
  const N = w.shape[0]!;
  const code = `${bindings(scales ? ['f32', 'u32', 'u32'] : ['f32', 'u32'], ['f32'])}
${HALF}
${MINIFLOAT}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let K = prm[1]; let gs = prm[2]; let N = prm[3];
  let m = i / N; let n = i % N;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) { acc = acc + in0[m * K + k] * ${weightElem(p.format, 'in1', 'in2')}; }
  out0[i] = acc;
}`;
  launch(b, code, scales ? [x, w, scales] : [x, w], [o], [M * N, K, p.groupSize, N], M * N);
};

/** Quantise: pass 1, one thread per scale word (two groups): scale = f16(max|w| / qmax); pass 2, one thread per data word. */
const quantizeKernel: Kernel<Op.Quantize> = (b, ins, p, outs) => {
  const w = ins[0]!;
  const [data, scales] = outs as [Out, Out];
  const [N, K] = w.shape as [number, number];
  const groups = K / p.groupSize;
  const nScales = N * groups;
  const qmax = p.format === 'int4' ? 7 : 127;
  const qmin = p.format === 'int4' ? -8 : -127;
  const sWords = Math.ceil(nScales / 2);
  launch(b, `${bindings(['f32'], ['u32'])}
${HALF}
${MAIN} {
  ${INDEX}
  if (i >= prm[1]) { return; }
  let gs = prm[2];
  var word = 0u;
  for (var l = 0u; l < 2u; l++) {
    let g = i * 2u + l;
    if (g >= prm[0]) { break; }
    var amax = 0.0;
    for (var j = 0u; j < gs; j++) { amax = max(amax, abs(in0[g * gs + j])); }
    word = word | (f2h_(amax / ${qmax}.0) << (l * 16u));
  }
  out0[i] = word;
}`, [w], [scales], [nScales, sWords, p.groupSize], sWords);
  const per = p.format === 'int4' ? 8 : 4; // values per data word
  const bits = p.format === 'int4' ? 4 : 8;
  const total = N * K;
  const dWords = Math.ceil(total / per);
  launch(b, `${bindings(['f32', 'u32'], ['u32'])}
${HALF}
${MAIN} {
  ${INDEX}
  if (i >= prm[1]) { return; }
  let gs = prm[2];
  var word = 0u;
  for (var l = 0u; l < ${per}u; l++) {
    let j = i * ${per}u + l;
    if (j >= prm[0]) { break; }
    let g = j / gs;
    let s = h2f_((in1[g / 2u] >> ((g % 2u) * 16u)) & 0xffffu);
    var q = 0;
    if (s != 0.0) { q = i32(clamp(floor(in0[j] / s + 0.5), ${qmin}.0, ${qmax}.0)); }
    word = word | ((u32(q) & ${(1 << bits) - 1}u) << (l * ${bits}u));
  }
  out0[i] = word;
}`, [w, scales], [data], [total, dWords, p.groupSize], dWords);
};

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

/** Register blocking of the matmul: a 16×16 workgroup computes a (16·RM)×(16·RN) tile, RM×RN outputs per thread. */
const RM = 4;
const RN = 4;
const BK = 16;

/**
 * C (batch, M, N) = op(A) · op(B) [+ bias]. Each workgroup stages a (64 × 16) slice of A and a (16 × 64) slice of B
 * in workgroup memory per step of K (four loads per thread each), then every thread accumulates its 4 × 4 block of
 * C in registers: 16 multiply-adds per 8 workgroup-memory reads. Edges load zeros (indices clamped, then masked).
 */
const matmulKernel: Kernel<Op.Matmul> = (b, ins, p, outs) => {
  const [a, w, bias] = ins as [BackendInput, BackendInput, BackendInput | undefined];
  const o = outs[0]!;
  wgsl(a.dtype);
  const M = o.shape.at(-2)!;
  const N = o.shape.at(-1)!;
  const K = a.shape.at(p.transA ? -2 : -1)!;
  const batch = M * N === 0 ? 0 : sizeOf(o.shape) / (M * N);
  if (batch === 0) return;
  if (K === 0) {
    // an empty inner dimension: C = bias (or 0)
    launch(b, `${bindings(bias ? ['f32'] : [], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  out0[i] = ${bias ? 'in0[i % prm[1]]' : '0.0'};
}`, bias ? [bias] : [], [o], [sizeOf(o.shape), N], sizeOf(o.shape));
    return;
  }
  const bBatched = w.shape.length > 2;
  const TM = 16 * RM;
  const TN = 16 * RN;
  // element (row, k) of op(A) and (k, col) of op(B), indices already clamped in range
  const aAt = p.transA ? 'in0[aBase + kk * M + rr]' : 'in0[aBase + rr * K + kk]';
  const bAt = p.transB ? 'in1[bBase + cc * K + kk]' : 'in1[bBase + kk * N + cc]';
  const code = `${bindings(bias ? ['f32', 'f32', 'f32'] : ['f32', 'f32'], ['f32'])}
var<workgroup> ta: array<f32, ${TM * BK}>;
var<workgroup> tb: array<f32, ${BK * TN}>;
@compute @workgroup_size(16, 16) fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let M = prm[0]; let N = prm[1]; let K = prm[2];
  let z = wg.z;
  let aBase = z * M * K;
  let bBase = select(0u, z * K * N, prm[3] == 1u);
  let row0 = wg.y * ${TM}u; let col0 = wg.x * ${TN}u;
  var acc: array<array<f32, ${RN}>, ${RM}>;
  for (var i = 0u; i < ${RM}u; i++) { for (var j = 0u; j < ${RN}u; j++) { acc[i][j] = 0.0; } }
  for (var k0 = 0u; k0 < K; k0 += ${BK}u) {
    // stage A (TM × BK) and B (BK × TN): 256 threads, ${(TM * BK) / 256} elements each
    for (var e = li; e < ${TM * BK}u; e += 256u) {
      let r = e / ${BK}u; let c = e % ${BK}u;
      let rr = min(row0 + r, M - 1u); let kk = min(k0 + c, K - 1u);
      ta[e] = select(0.0, ${aAt}, row0 + r < M && k0 + c < K);
    }
    for (var e = li; e < ${BK * TN}u; e += 256u) {
      let r = e / ${TN}u; let c = e % ${TN}u;
      let kk = min(k0 + r, K - 1u); let cc = min(col0 + c, N - 1u);
      tb[e] = select(0.0, ${bAt}, k0 + r < K && col0 + c < N);
    }
    workgroupBarrier();
    for (var k = 0u; k < ${BK}u; k++) {
      var av: array<f32, ${RM}>;
      var bv: array<f32, ${RN}>;
      for (var i = 0u; i < ${RM}u; i++) { av[i] = ta[(lid.y + i * 16u) * ${BK}u + k]; }
      for (var j = 0u; j < ${RN}u; j++) { bv[j] = tb[k * ${TN}u + lid.x + j * 16u]; }
      for (var i = 0u; i < ${RM}u; i++) { for (var j = 0u; j < ${RN}u; j++) { acc[i][j] = acc[i][j] + av[i] * bv[j]; } }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${RM}u; i++) {
    let r = row0 + lid.y + i * 16u;
    if (r >= M) { continue; }
    for (var j = 0u; j < ${RN}u; j++) {
      let c = col0 + lid.x + j * 16u;
      if (c < N) { out0[z * M * N + r * N + c] = acc[i][j]${bias ? ' + in2[c]' : ''}; }
    }
  }
}`;
  b.dispatch(code, [...ins.map((x) => b.stored(x.id).buffer), b.stored(o.id).buffer], [M, N, K, bBatched ? 1 : 0], [Math.ceil(N / TN), Math.ceil(M / TM), batch]);
};

// ---- gelu gradient ----

const geluGradKernel: Kernel<Op.GeluGrad> = (b, ins, p, outs) => {
  const [x, dy] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  wgsl(x.dtype);
  const body = p.approximate === 'tanh'
    ? `let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  let th = tanh(u);
  let d = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);`
    : 'let d = 0.5 * (1.0 + erf_(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x);';
  const code = `${bindings(['f32', 'f32'], ['f32'])}
${ERF}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let x = in0[i];
  ${body}
  out0[i] = in1[i] * d;
}`;
  launch(b, code, [x, dy], [o], [sizeOf(o.shape)], sizeOf(o.shape));
};

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

// ---- RMSNorm, cross-entropy ----

const rmsNormKernel: Kernel<Op.RMSNorm> = (b, ins, p, outs) => {
  const [x, w] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  const H = w.shape[0]!;
  const rows = H === 0 ? 0 : sizeOf(x.shape) / H;
  const code = `${bindings(['f32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let H = prm[1]; let base = i * H;
  var ss = 0.0;
  for (var j = 0u; j < H; j++) { let v = in0[base + j]; ss = ss + v * v; }
  let inv = inverseSqrt(ss / f32(H) + bitcast<f32>(prm[2]));
  for (var j = 0u; j < H; j++) { out0[base + j] = in0[base + j] * inv * in1[j]; }
}`;
  launch(b, code, [x, w], [o], [rows, H, f32Bits(p.eps)], rows);
};

const rmsNormGradKernel: Kernel<Op.RMSNormGrad> = (b, ins, p, outs) => {
  const [x, w, dy] = ins as [BackendInput, BackendInput, BackendInput];
  const [dx, dw] = outs as [Out, Out];
  const H = w.shape[0]!;
  const rows = H === 0 ? 0 : sizeOf(x.shape) / H;
  const inv = `fn inv_(base: u32, H: u32) -> f32 {
  var ss = 0.0;
  for (var j = 0u; j < H; j++) { let v = in0[base + j]; ss = ss + v * v; }
  return inverseSqrt(ss / f32(H) + bitcast<f32>(prm[2]));
}`;
  const dxCode = `${bindings(['f32', 'f32', 'f32'], ['f32'])}
${inv}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let H = prm[1]; let base = i * H;
  let r = inv_(base, H);
  var dot = 0.0;
  for (var j = 0u; j < H; j++) { dot = dot + in2[base + j] * in1[j] * in0[base + j] * r; }
  dot = dot / f32(H);
  for (var j = 0u; j < H; j++) { out0[base + j] = r * (in2[base + j] * in1[j] - in0[base + j] * r * dot); }
}`;
  launch(b, dxCode, [x, w, dy], [dx], [rows, H, f32Bits(p.eps)], rows);
  // dw[j] = Σ_rows dy·x̂: one thread per column
  const dwCode = `${bindings(['f32', 'f32', 'f32'], ['f32'])}
${inv}
${MAIN} {
  ${INDEX}
  if (i >= prm[1]) { return; }
  let H = prm[1];
  var acc = 0.0;
  for (var r = 0u; r < prm[0]; r++) { acc = acc + in2[r * H + i] * in0[r * H + i] * inv_(r * H, H); }
  out0[i] = acc;
}`;
  launch(b, dwCode, [x, w, dy], [dw], [rows, H, f32Bits(p.eps)], H);
};

const crossEntropyKernel: Kernel<Op.CrossEntropy> = (b, ins, p, outs) => {
  const [logits, tg] = ins as [BackendInput, BackendInput];
  const [loss, lse] = outs as [Out, Out];
  const [N, V] = logits.shape as [number, number];
  const code = `${bindings(['f32', 'i32'], ['f32', 'f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let V = prm[1]; let base = i * V;
  var m = -3.4028234663852886e38;
  for (var v = 0u; v < V; v++) { m = max(m, in0[base + v]); }
  var s = 0.0;
  for (var v = 0u; v < V; v++) { s = s + exp(in0[base + v] - m); }
  let l = m + log(s);
  out1[i] = l;
  let t = in1[i];
  out0[i] = select(l - in0[base + u32(clamp(t, 0, i32(V) - 1))], 0.0, t == bitcast<i32>(prm[2]) || t < 0 || t >= i32(V));
}`;
  launch(b, code, [logits, tg], [loss, lse], [N, V, p.ignoreIndex >>> 0], N);
};

const crossEntropyGradKernel: Kernel<Op.CrossEntropyGrad> = (b, ins, p, outs) => {
  const [logits, tg, lse, dl] = ins as [BackendInput, BackendInput, BackendInput, BackendInput];
  const g = outs[0]!;
  const [N, V] = logits.shape as [number, number];
  const code = `${bindings(['f32', 'i32', 'f32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let V = prm[1]; let row = i / V; let col = i32(i % V);
  let t = in1[row];
  if (t == bitcast<i32>(prm[2])) { out0[i] = 0.0; return; }
  let d = in3[row];
  out0[i] = exp(in0[i] - in2[row]) * d - select(0.0, d, col == t);
}`;
  launch(b, code, [logits, tg, lse, dl], [g], [N * V, V, p.ignoreIndex >>> 0], N * V);
};

// ---- grouped matmul ----

/** The expert of row t from offsets (binary search): WGSL helper reading the offsets binding `off`. */
const SEGMENT = (off: string) => `fn segment_(t: u32, E: u32) -> u32 {
  var lo = 0u; var hi = E;
  while (hi - lo > 1u) { let mid = (lo + hi) / 2u; if (u32(${off}[mid]) <= t) { lo = mid; } else { hi = mid; } }
  return lo;
}`;

/** One thread per output element (t, n): the row's expert from the offsets, then a dot product with its W_e column. */
const groupedMatmulKernel: Kernel<Op.GroupedMatmul> = (b, ins, p, outs) => {
  const [x, w, off] = ins as [BackendInput, BackendInput, BackendInput];
  const o = outs[0]!;
  const [T, K] = x.shape as [number, number];
  const N = o.shape[1]!;
  const E = off.shape[0]! - 1;
  const wAt = p.transW ? 'in1[e * N * K + n * K + k]' : 'in1[e * K * N + k * N + n]';
  const code = `${bindings(['f32', 'f32', 'i32'], ['f32'])}
${SEGMENT('in2')}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let K = prm[1]; let N = prm[2]; let E = prm[3];
  let t = i / N; let n = i % N;
  let e = segment_(t, E);
  var acc = 0.0;
  for (var k = 0u; k < K; k++) { acc = acc + in0[t * K + k] * ${wAt}; }
  out0[i] = acc;
}`;
  launch(b, code, [x, w, off], [o], [T * N, K, N, E], T * N);
};

/** dW_e (K, N) = x_eᵀ·dy_e: one thread per weight element, summing over the expert's rows. */
const groupedMatmulWeightGradKernel: Kernel<Op.GroupedMatmulWeightGrad> = (b, ins, p, outs) => {
  const [x, dy, off] = ins as [BackendInput, BackendInput, BackendInput];
  const o = outs[0]!;
  const K = x.shape[1]!;
  const N = dy.shape[1]!;
  const E = off.shape[0]! - 1;
  // element (e, k, n) of the (E, K, N) layout, or (e, n, k) of the transposed one
  const decode = p.transW ? 'let e = i / (N * K); let n = (i / K) % N; let k = i % K;' : 'let e = i / (K * N); let k = (i / N) % K; let n = i % N;';
  const code = `${bindings(['f32', 'f32', 'i32'], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let K = prm[1]; let N = prm[2];
  ${decode}
  var acc = 0.0;
  for (var t = u32(in2[e]); t < u32(in2[e + 1u]); t++) { acc = acc + in0[t * K + k] * in1[t * N + n]; }
  out0[i] = acc;
}`;
  launch(b, code, [x, dy, off], [o], [E * K * N, K, N], E * K * N);
};

// ---- RoPE, attention ----

/**
 * sin and cos to ~1e-7: built-in sin/cos may be approximations (SwiftShader's are good to ~1e-4). Cody–Waite
 * reduction by π/2 (split in two constants), then Taylor polynomials on [-π/4, π/4] and the quadrant's swap/sign.
 */
const SINCOS = `fn sincos_(x: f32) -> vec2f {
  let q = round(x * 0.6366197723675814);
  let r = (x - q * 1.5703125) - q * 4.838267948966e-4;
  let r2 = r * r;
  let s = r + r * r2 * (-0.16666666666666666 + r2 * (0.008333333333333333 + r2 * (-0.0001984126984126984 + r2 * 2.7557319223985893e-6)));
  let c = 1.0 + r2 * (-0.5 + r2 * (0.041666666666666664 + r2 * (-0.001388888888888889 + r2 * 2.48015873015873e-5)));
  let n = i32(q) & 3;
  if (n == 0) { return vec2f(s, c); }
  if (n == 1) { return vec2f(c, -s); }
  if (n == 2) { return vec2f(-s, -c); }
  return vec2f(-c, s);
}`;

const ropeKernel: Kernel<Op.RoPE> = (b, ins, p, outs) => {
  const [x, pos, inv] = ins as [BackendInput, BackendInput, BackendInput];
  const o = outs[0]!;
  const [B, T, nH, D] = x.shape as [number, number, number, number];
  const half = inv.shape[0]!;
  const perBatch = sizeOf(pos.shape) === B * T ? 1 : 0;
  // one thread per element: rotated pairs read both partners, the rest (d >= 2·half) is copied
  const code = `${bindings(['f32', 'i32', 'f32'], ['f32'])}
${SINCOS}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let T = prm[1]; let nH = prm[2]; let D = prm[3]; let half = prm[4];
  let d = i % D; let row = i / D; let t = (row / nH) % T; let bb = row / (nH * T);
  let base = row * D;
  let interleaved = prm[5] == 1u;
  var pair = 0u; var first = true; var rotated = true;
  if (interleaved) { pair = d / 2u; first = d % 2u == 0u; rotated = d < 2u * half; }
  else { rotated = d < 2u * half; first = d < half; pair = select(d - half, d, first); }
  if (!rotated) { out0[i] = in0[i]; return; }
  let at = in1[select(t, bb * T + t, prm[6] == 1u)];
  let sc = sincos_(f32(at) * in2[pair]);
  let c = sc.y;
  let sn = select(1.0, -1.0, prm[7] == 1u) * sc.x;
  var i1 = base + pair; var i2 = base + pair + half;
  if (interleaved) { i1 = base + 2u * pair; i2 = i1 + 1u; }
  let x1 = in0[i1]; let x2 = in0[i2];
  out0[i] = select(x2 * c + x1 * sn, x1 * c - x2 * sn, first);
}`;
  launch(b, code, [x, pos, inv], [o], [sizeOf(x.shape), T, nH, D, half, p.interleaved ? 1 : 0, perBatch, p.inverse ? 1 : 0], sizeOf(x.shape));
};

/** WGSL [lo, hi) of visible keys for query i (prm: ..., T at 1, S at 5, causal at 8, window at 9). */
const KEY_RANGE = `fn keyRange_(i: u32) -> vec2i {
  let T = i32(prm[1]); let S = i32(prm[5]);
  let qpos = i32(i) + S - T;
  var hi = S;
  if (prm[8] == 1u) { hi = min(S, qpos + 1); }
  var lo = 0;
  if (prm[9] > 0u) { lo = max(0, qpos - i32(prm[9]) + 1); }
  return vec2i(lo, max(lo, hi));
}`;

function attentionMeta(q: BackendInput, k: BackendInput, v: BackendInput, p: OpParams[Op.Attention]): number[] {
  const [B, T, Hq, D] = q.shape as [number, number, number, number];
  return [B, T, Hq, D, k.shape[2]!, k.shape[1]!, v.shape[3]!, f32Bits(p.scale), p.causal ? 1 : 0, p.window];
}
// prm: 0 B, 1 T, 2 Hq, 3 D, 4 Hkv, 5 S, 6 Dv, 7 scale, 8 causal, 9 window
const ATT_DIMS = `let B = prm[0]; let T = prm[1]; let Hq = prm[2]; let D = prm[3]; let Hkv = prm[4]; let S = prm[5]; let Dv = prm[6];
  let scale = bitcast<f32>(prm[7]); let group = Hq / Hkv;`;
const NEG_INF = 'bitcast<f32>(0xff800000u | (prm[0] & 0u))'; // not a constant expression: WGSL rejects a constant -inf

/** One thread per (b, h, i): an online-softmax pass over the visible keys (flash-style running max and sum). */
const attentionKernel: Kernel<Op.Attention> = (b, ins, p, outs) => {
  const [q, k, v] = ins as [BackendInput, BackendInput, BackendInput];
  const [o, lse] = outs as [Out, Out];
  const meta = attentionMeta(q, k, v, p);
  const [B, T, Hq] = meta as [number, number, number];
  const code = `${bindings(['f32', 'f32', 'f32'], ['f32', 'f32'])}
${KEY_RANGE}
${MAIN} {
  ${INDEX}
  ${ATT_DIMS}
  if (i >= B * Hq * T) { return; }
  let qi = i % T; let h = (i / T) % Hq; let bb = i / (T * Hq);
  let kh = h / group;
  let qo = ((bb * T + qi) * Hq + h) * D;
  let oo = ((bb * T + qi) * Hq + h) * Dv;
  let r = keyRange_(qi);
  var m = ${NEG_INF}; var sum = 0.0;
  for (var d = 0u; d < Dv; d++) { out0[oo + d] = 0.0; }
  for (var j = r.x; j < r.y; j++) {
    let ko = ((bb * S + u32(j)) * Hkv + kh) * D;
    var s = 0.0;
    for (var d = 0u; d < D; d++) { s = s + in0[qo + d] * in1[ko + d]; }
    s = s * scale;
    let mNew = max(m, s);
    let corr = exp(m - mNew);
    let w = exp(s - mNew);
    sum = sum * corr + w;
    let vo = ((bb * S + u32(j)) * Hkv + kh) * Dv;
    for (var d = 0u; d < Dv; d++) { out0[oo + d] = out0[oo + d] * corr + w * in2[vo + d]; }
    m = mNew;
  }
  if (sum > 0.0) {
    for (var d = 0u; d < Dv; d++) { out0[oo + d] = out0[oo + d] / sum; }
    out1[(bb * Hq + h) * T + qi] = m + log(sum);
  } else {
    out1[(bb * Hq + h) * T + qi] = ${NEG_INF};
  }
}`;
  launch(b, code, [q, k, v], [o, lse], meta, B * Hq * T);
};

/**
 * Backward in four passes (at most 8 storage bindings each): Di = dO·O per query; dQ per (b, h, i) thread; dK and
 * dV per (b, kv head, j) thread, over the group's heads and the queries that see key j.
 */
const attentionGradKernel: Kernel<Op.AttentionGrad> = (b, ins, p, outs) => {
  const [q, k, v, o, lse, dO] = ins as [BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput];
  const [dq, dk, dv] = outs as [Out, Out, Out];
  const meta = attentionMeta(q, k, v, p);
  const [B, T, Hq, , Hkv, S] = meta as [number, number, number, number, number, number];
  withTemps(b, [B * Hq * T], ([di]) => {
    launch(b, `${bindings(['f32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  ${ATT_DIMS}
  if (i >= B * Hq * T) { return; }
  let qi = i % T; let h = (i / T) % Hq; let bb = i / (T * Hq);
  let oo = ((bb * T + qi) * Hq + h) * Dv;
  var acc = 0.0;
  for (var d = 0u; d < Dv; d++) { acc = acc + in0[oo + d] * in1[oo + d]; }
  out0[i] = acc;
}`, [o, dO], [di], meta, B * Hq * T);
    // inputs of the three gradient passes: q, k, v, lse, dO, Di (Di indexed like lse)
    const score = `fn p_(qo: u32, ko: u32, D: u32, scale: f32, l: f32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < D; d++) { s = s + in0[qo + d] * in1[ko + d]; }
  return exp(s * scale - l);
}
fn dp_(oo: u32, vo: u32, Dv: u32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < Dv; d++) { s = s + in4[oo + d] * in2[vo + d]; }
  return s;
}`;
    const types = ['f32', 'f32', 'f32', 'f32', 'f32', 'f32'];
    launch(b, `${bindings(types, ['f32'])}
${KEY_RANGE}
${score}
${MAIN} {
  ${INDEX}
  ${ATT_DIMS}
  if (i >= B * Hq * T) { return; }
  let qi = i % T; let h = (i / T) % Hq; let bb = i / (T * Hq);
  let kh = h / group;
  let qo = ((bb * T + qi) * Hq + h) * D;
  let oo = ((bb * T + qi) * Hq + h) * Dv;
  for (var d = 0u; d < D; d++) { out0[qo + d] = 0.0; }
  let li = (bb * Hq + h) * T + qi;
  let l = in3[li];
  if (l == ${NEG_INF}) { return; }
  let r = keyRange_(qi);
  for (var j = r.x; j < r.y; j++) {
    let ko = ((bb * S + u32(j)) * Hkv + kh) * D;
    let vo = ((bb * S + u32(j)) * Hkv + kh) * Dv;
    let dS = p_(qo, ko, D, scale, l) * (dp_(oo, vo, Dv) - in5[li]) * scale;
    for (var d = 0u; d < D; d++) { out0[qo + d] = out0[qo + d] + dS * in1[ko + d]; }
  }
}`, [q, k, v, lse, dO, di], [dq], meta, B * Hq * T);
    const perKey = (which: 'dk' | 'dv'): string => `${bindings(types, ['f32'])}
${KEY_RANGE}
${score}
${MAIN} {
  ${INDEX}
  ${ATT_DIMS}
  if (i >= B * Hkv * S) { return; }
  let j = i % S; let kh = (i / S) % Hkv; let bb = i / (S * Hkv);
  let ko = ((bb * S + j) * Hkv + kh) * D;
  let vo = ((bb * S + j) * Hkv + kh) * Dv;
  ${which === 'dk' ? 'for (var d = 0u; d < D; d++) { out0[ko + d] = 0.0; }' : 'for (var d = 0u; d < Dv; d++) { out0[vo + d] = 0.0; }'}
  for (var h = kh * group; h < (kh + 1u) * group; h++) {
    for (var qi = 0u; qi < T; qi++) {
      let r = keyRange_(qi);
      if (i32(j) < r.x || i32(j) >= r.y) { continue; }
      let li = (bb * Hq + h) * T + qi;
      let l = in3[li];
      if (l == ${NEG_INF}) { continue; }
      let qo = ((bb * T + qi) * Hq + h) * D;
      let oo = ((bb * T + qi) * Hq + h) * Dv;
      let P = p_(qo, ko, D, scale, l);
      ${which === 'dk'
        ? `let dS = P * (dp_(oo, vo, Dv) - in5[li]) * scale;
      for (var d = 0u; d < D; d++) { out0[ko + d] = out0[ko + d] + dS * in0[qo + d]; }`
        : 'for (var d = 0u; d < Dv; d++) { out0[vo + d] = out0[vo + d] + P * in4[oo + d]; }'}
    }
  }
}`;
    launch(b, perKey('dk'), [q, k, v, lse, dO, di], [dk], meta, B * Hkv * S);
    launch(b, perKey('dv'), [q, k, v, lse, dO, di], [dv], meta, B * Hkv * S);
  });
};

// ---- expert bins (device-side dispatch bookkeeping) ----

/**
 * Offsets: one thread per expert counts the slots of lower experts (O(N·E) total); order/tokens: one thread per
 * slot, its sorted row = offsets[e] + the earlier slots with the same expert (stable, O(N²) total).
 */
const expertBinsKernel: Kernel<Op.ExpertBins> = (b, ins, p, outs) => {
  const ids = ins[0]!;
  const [order, tokens, offsets] = outs as [Out, Out, Out];
  const N = sizeOf(ids.shape);
  const K = ids.shape[1]!;
  const E = p.experts;
  launch(b, `${bindings(['i32'], ['i32'])}
${MAIN} {
  ${INDEX}
  if (i > prm[1]) { return; }
  var c = 0;
  for (var s = 0u; s < prm[0]; s++) { if (in0[s] < i32(i)) { c = c + 1; } }
  out0[i] = c;
}`, [ids], [offsets], [N, E], E + 1);
  launch(b, `${bindings(['i32', 'i32'], ['i32', 'i32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let e = in0[i];
  var r = in1[u32(clamp(e, 0, i32(prm[1])))];
  for (var s = 0u; s < i; s++) { if (in0[s] == e) { r = r + 1; } }
  out0[u32(r)] = i32(i); out1[u32(r)] = i32(i / prm[2]);
}`, [ids, offsets], [order, tokens], [N, E, K], N);
};

// ---- fused MoE routing ----

/**
 * One thread per token: softmax, the top groups by summed selection score (a bitmask, G <= 32), then top-k inside
 * them. The score is the probability, plus the bias (in1) when there is one; the weights are the probabilities.
 */
const routeTopKKernel: Kernel<Op.RouteTopK> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const [w, ids] = outs as [Out, Out];
  const [T, E] = x.shape as [number, number];
  if (p.groups > 32) throw new Error(`webgpu: route_topk supports at most 32 groups, got ${p.groups}`);
  const biased = ins.length > 1;
  const sc = (e: string): string => (biased ? `(exp(in0[base + ${e}] - m) / s + in1[${e}])` : `(exp(in0[base + ${e}] - m) / s)`);
  const code = `${bindings(biased ? ['f32', 'f32'] : ['f32'], ['f32', 'i32'])}
${MAIN} {
  ${INDEX}
  let T = prm[0]; let E = prm[1]; let K = prm[2]; let G = prm[3]; let TG = prm[4];
  if (i >= T) { return; }
  let M = E / G; let base = i * E;
  var m = -3.4028234663852886e38;
  for (var e = 0u; e < E; e++) { m = max(m, in0[base + e]); }
  var s = 0.0;
  for (var e = 0u; e < E; e++) { s = s + exp(in0[base + e] - m); }
  var allowed = 0xffffffffu;
  if (TG < G) {
    allowed = 0u;
    var pv = 0.0; var pg = -1;
    for (var j = 0u; j < TG; j++) {
      var bv = 0.0; var bg = -1;
      for (var g = 0u; g < G; g++) {
        var gs = 0.0;
        for (var e = g * M; e < (g + 1u) * M; e++) { gs = gs + ${sc('e')}; }
        let gi = i32(g);
        let below = pg < 0 || gs < pv || (gs == pv && gi > pg);
        if (below && (bg < 0 || gs > bv)) { bv = gs; bg = gi; }
      }
      allowed = allowed | (1u << u32(bg));
      pv = bv; pg = bg;
    }
  }
  var pv = 0.0; var pe = -1; var norm = 0.0;
  for (var k = 0u; k < K; k++) {
    var bv = 0.0; var be = -1;
    for (var e = 0u; e < E; e++) {
      if ((allowed & (1u << (e / M))) == 0u) { continue; }
      let v = ${sc('e')};
      let ei = i32(e);
      let below = pe < 0 || v < pv || (v == pv && ei > pe);
      if (below && (be < 0 || v > bv)) { bv = v; be = ei; }
    }
    let pb = exp(in0[base + u32(be)] - m) / s;
    out0[i * K + k] = pb; out1[i * K + k] = be;
    norm = norm + pb;
    pv = bv; pe = be;
  }
  if (prm[5] == 1u) { for (var k = 0u; k < K; k++) { out0[i * K + k] = out0[i * K + k] / norm; } }
}`;
  launch(b, code, ins, [w, ids], [T, E, p.k, p.groups, p.topGroups, p.renormalize ? 1 : 0], T);
};

// ---- fused MoE FFNs (inference): a few passes over temporaries, one thread per output element ----

const SILU_W = 'fn swiglu_(g: f32, u: f32, w: f32) -> f32 { return g / (1.0 + exp(-g)) * u * w; }';

const moeFfnKernel: Kernel<Op.MoeFfn> = (b, ins, _p, outs) => {
  const [x, ids, wt, gate, up, down] = ins as [BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput];
  const y = outs[0]!;
  const [T, H] = x.shape as [number, number];
  const K = ids.shape[1]!;
  const [E, , I] = gate.shape as [number, number, number];
  const meta = [T, K, E, H, I];
  const dims = 'let T = prm[0]; let K = prm[1]; let E = prm[2]; let H = prm[3]; let I = prm[4];';
  withTemps(b, [T * K * I], ([h]) => {
    // h[s, i] = silu(x_t·gate_e[:, i])·(x_t·up_e[:, i])·w_s (an id outside [0, E) gives 0)
    launch(b, `${bindings(['f32', 'i32', 'f32', 'f32', 'f32'], ['f32'])}
${SILU_W}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * I) { return; }
  let s = i / I; let c = i % I; let t = s / K;
  let e = in1[s];
  if (e < 0 || e >= i32(E)) { out0[i] = 0.0; return; }
  let wo = u32(e) * H * I;
  var g = 0.0; var u = 0.0;
  for (var k = 0u; k < H; k++) { let xv = in0[t * H + k]; g = g + xv * in3[wo + k * I + c]; u = u + xv * in4[wo + k * I + c]; }
  out0[i] = swiglu_(g, u, in2[s]);
}`, [x, ids, wt, gate, up], [h], meta, T * K * I);
    // y[t, j] = Σ_k h[t·K + k]·down_e[:, j]
    launch(b, `${bindings(['f32', 'i32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * H) { return; }
  let t = i / H; let j = i % H;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) {
    let s = t * K + k; let e = in1[s];
    if (e < 0 || e >= i32(E)) { continue; }
    let wo = u32(e) * I * H;
    for (var c = 0u; c < I; c++) { acc = acc + in0[s * I + c] * in2[wo + c * H + j]; }
  }
  out0[i] = acc;
}`, [h, ids, down], [y], meta, T * H);
  });
};

const clusteredFfnKernel: Kernel<Op.ClusteredFfn> = (b, ins, _p, outs) => {
  const [x, ids, wt, bg, bu, bd, ga, gb, ua, ub, da, db] = ins as BackendInput[] as [BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput];
  const y = outs[0]!;
  const [T, H] = x.shape as [number, number];
  const K = ids.shape[1]!;
  const [G, , I] = bg.shape as [number, number, number];
  const [E, , R] = ga.shape as [number, number, number];
  const meta = [T, K, E, H, I, R, E / G];
  const dims = 'let T = prm[0]; let K = prm[1]; let E = prm[2]; let H = prm[3]; let I = prm[4]; let R = prm[5]; let M = prm[6];';
  const bad = 'e < 0 || e >= i32(E)';
  // f16 bases are bound as packed u32 words and widened per element
  const bt = bg.dtype;
  const half = bt === 'f16' ? HALF : '';
  const baseAt = (j: string): string => loadElem('in2', bt, j);
  withTemps(b, [T * K * R, T * K * R, T * K * I, T * K * I, T * K * R], ([xg, xu, h, u, hd]) => {
    // low-rank inputs: xg[s, c] = x_t·gateA_e[:, c], xu[s, c] = x_t·upA_e[:, c]
    launch(b, `${bindings(['f32', 'i32', 'f32', 'f32'], ['f32', 'f32'])}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * R) { return; }
  let s = i / R; let c = i % R; let t = s / K; let e = in1[s];
  if (${bad}) { out0[i] = 0.0; out1[i] = 0.0; return; }
  let ao = u32(e) * H * R;
  var g = 0.0; var u = 0.0;
  for (var k = 0u; k < H; k++) { let xv = in0[t * H + k]; g = g + xv * in2[ao + k * R + c]; u = u + xv * in3[ao + k * R + c]; }
  out0[i] = g; out1[i] = u;
}`, [x, ids, ga, ua], [xg, xu], meta, T * K * R);
    // pre-activations: h = x·base_gate + xg·gateB, then u = x·base_up + xu·upB, then h = silu(h)·u·w
    // (three passes: at most 8 storage bindings per stage on common adapters)
    const pre = (base: BackendInput, fB: BackendInput, xa: Out, out: Out): void => launch(b, `${bindings(['f32', 'i32', boundAs(bt), 'f32', 'f32'], ['f32'])}
${half}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * I) { return; }
  let s = i / I; let c = i % I; let t = s / K; let e = in1[s];
  if (${bad}) { out0[i] = 0.0; return; }
  let bo = (u32(e) / M) * H * I;
  var g = 0.0;
  for (var k = 0u; k < H; k++) { g = g + in0[t * H + k] * ${baseAt('bo + k * I + c')}; }
  let fo = u32(e) * R * I;
  for (var r = 0u; r < R; r++) { g = g + in4[s * R + r] * in3[fo + r * I + c]; }
  out0[i] = g;
}`, [x, ids, base, fB, xa], [out], meta, T * K * I);
    pre(bg, gb, xg, h);
    pre(bu, ub, xu, u);
    launch(b, `${bindings(['f32', 'f32'], ['f32'])}
${SILU_W}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * I) { return; }
  out0[i] = swiglu_(out0[i], in0[i], in1[i / I]);
}`, [u, wt], [h], meta, T * K * I);
    // hd[s, c] = h_s·downA_e[:, c]
    launch(b, `${bindings(['f32', 'i32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * R) { return; }
  let s = i / R; let c = i % R; let e = in1[s];
  if (${bad}) { out0[i] = 0.0; return; }
  let ao = u32(e) * I * R;
  var acc = 0.0;
  for (var k = 0u; k < I; k++) { acc = acc + in0[s * I + k] * in2[ao + k * R + c]; }
  out0[i] = acc;
}`, [h, ids, da], [hd], meta, T * K * R);
    // y[t, j] = Σ_k h_s·base_down[:, j] + hd_s·downB_e[:, j]
    launch(b, `${bindings(['f32', 'i32', boundAs(bt), 'f32', 'f32'], ['f32'])}
${half}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * H) { return; }
  let t = i / H; let j = i % H;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) {
    let s = t * K + k; let e = in1[s];
    if (${bad}) { continue; }
    let bo = (u32(e) / M) * I * H;
    for (var c = 0u; c < I; c++) { acc = acc + in0[s * I + c] * ${baseAt('bo + c * H + j')}; }
    let fo = u32(e) * R * H;
    for (var r = 0u; r < R; r++) { acc = acc + in3[s * R + r] * in4[fo + r * H + j]; }
  }
  out0[i] = acc;
}`, [h, ids, bd, hd, db], [y], meta, T * H);
  });
};

function f32Bits(v: number): number {
  const d = new DataView(new ArrayBuffer(4));
  d.setFloat32(0, v, true);
  return d.getUint32(0, true);
}

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
  [Op.GeluGrad]: geluGradKernel,
  [Op.TopK]: topkKernel,
  [Op.TakeAlong]: takeAlongKernel,
  [Op.ScatterAlong]: scatterAlongKernel,
  [Op.Concat]: concatKernel,
  [Op.Pad]: padKernel,
  [Op.Gather]: gatherKernel,
  [Op.ScatterAdd]: scatterAddKernel,
  [Op.RMSNorm]: rmsNormKernel,
  [Op.RMSNormGrad]: rmsNormGradKernel,
  [Op.CrossEntropy]: crossEntropyKernel,
  [Op.CrossEntropyGrad]: crossEntropyGradKernel,
  [Op.GroupedMatmul]: groupedMatmulKernel,
  [Op.GroupedMatmulWeightGrad]: groupedMatmulWeightGradKernel,
  [Op.RoPE]: ropeKernel,
  [Op.Attention]: attentionKernel,
  [Op.AttentionGrad]: attentionGradKernel,
  [Op.ExpertBins]: expertBinsKernel,
  [Op.RouteTopK]: routeTopKKernel,
  [Op.MoeFfn]: moeFfnKernel,
  [Op.Dequantize]: dequantizeKernel,
  [Op.Quantize]: quantizeKernel,
  [Op.QuantMatmul]: quantMatmulKernel,
  [Op.ClusteredFfn]: clusteredFfnKernel,
};
