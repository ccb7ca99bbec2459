// Matmul webgpu kernels: the tiled f32 matmul and the quantised / block-format ones (dequantize, quantize, quant_matmul).
import type { BackendInput } from '../backend.js';
import { Op, type WeightFormat } from '../../tensor/ops.js';
import { sizeOf } from '../../tensor/shape.js';
import type { Kernel, Out } from './context.js';
import { HALF, INDEX, MAIN, bindings, launch, packedBits, wgsl } from './wgsl.js';

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

// ---- quantised and block-scaled weights ----

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

export const matmulKernels = {
  [Op.Matmul]: matmulKernel,
  [Op.Dequantize]: dequantizeKernel,
  [Op.Quantize]: quantizeKernel,
  [Op.QuantMatmul]: quantMatmulKernel,
} satisfies { [O in Op.Matmul | Op.Dequantize | Op.Quantize | Op.QuantMatmul]: Kernel<O> };
