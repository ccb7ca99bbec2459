// WGSL building blocks shared by the webgpu kernels: dispatch helpers, bindings, broadcasting, packed storage.
import type { DType } from '../../tensor/dtype.js';
import { broadcastStrides, sizeOf } from '../../tensor/shape.js';
import type { DeviceContext, Out } from './context.js';

const WG = 256;

export function wgsl(dtype: DType): 'f32' | 'i32' {
  if (dtype === 'f32' || dtype === 'i32') return dtype;
  throw new Error(`webgpu: dtype ${dtype} is not supported by this kernel yet (f32 and i32 are)`);
}

/** Workgroup counts for n threads of WG each (2-D when n exceeds 65535 groups). */
function grid(n: number): [number, number] {
  const g = Math.max(1, Math.ceil(n / WG));
  return g <= 65535 ? [g, 1] : [65535, Math.ceil(g / 65535)];
}

/** The flat thread index in a grid() dispatch. */
export const INDEX = `let i = gid.x + gid.y * nwg.x * ${WG}u;`;
export const MAIN = `@compute @workgroup_size(${WG}) fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u)`;

export function bindings(types: readonly string[], outTypes: readonly string[]): string {
  const lines = types.map((t, k) => `@group(0) @binding(${k}) var<storage, read> in${k}: array<${t}>;`);
  outTypes.forEach((t, k) => lines.push(`@group(0) @binding(${types.length + k}) var<storage, read_write> out${k}: array<${t}>;`));
  lines.push(`@group(0) @binding(${types.length + outTypes.length}) var<storage, read> prm: array<u32>;`);
  return lines.join('\n');
}

export function launch(b: DeviceContext, code: string, ins: readonly { id: number }[], outs: readonly { id: number }[], meta: number[], threads: number): void {
  if (threads === 0) return;
  b.dispatch(code, [...ins.map((x) => b.stored(x.id).buffer), ...outs.map((x) => b.stored(x.id).buffer)], meta, grid(threads));
}

/** Runs `f` with temporary f32 buffers of the given sizes (freed after recording; later work reuses them). */
export function withTemps(b: DeviceContext, sizes: number[], f: (ids: Out[]) => void): void {
  const ids = sizes.map((n) => ({ id: b.allocate('f32', Math.max(1, n)), shape: [n], dtype: 'f32' as const }));
  try {
    f(ids);
  } finally {
    for (const t of ids) b.free(t.id);
  }
}

/** Index arithmetic of a broadcast over rank r: prm[1..r] the output shape, then r strides per input. */
export function broadcastIndex(r: number, nIn: number): string {
  const lines = [`var rem = i; var o0 = 0u; var o1 = 0u; var o2 = 0u;`];
  for (let d = r - 1; d >= 0; d--) {
    lines.push(`{ let c = rem % prm[${1 + d}u]; rem = rem / prm[${1 + d}u];`);
    for (let k = 0; k < nIn; k++) lines.push(`  o${k} = o${k} + c * prm[${1 + r + k * r + d}u];`);
    lines.push('}');
  }
  return lines.join('\n');
}

export function broadcastMeta(out: readonly number[], ins: readonly (readonly number[])[]): number[] {
  return [sizeOf(out), ...out, ...ins.flatMap((s) => broadcastStrides(s, out))];
}

// ---- 16- and 8-bit storage: buffers of those dtypes are bound as array<u32> and unpacked here ----

/** Bits per element of a packed dtype, or 32. */
export const BITS: Record<DType, number> = { f32: 32, i32: 32, f16: 16, bf16: 16, i8: 8, u8: 8 };
export const isPacked = (d: DType): boolean => BITS[d] < 32;
/** The WGSL array element type a dtype is bound as. */
export const boundAs = (d: DType): string => (isPacked(d) ? 'u32' : d === 'f32' ? 'f32' : 'i32');

/** Exact f16 <-> f32 and bf16 -> f32 conversions (round to nearest even), matching src/tensor/dtype.ts bit for bit. */
export const HALF = `fn h2f_(h: u32) -> f32 {
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
export function packedBits(buf: string, d: DType, j: string): string {
  const bits = BITS[d];
  const per = 32 / bits;
  return `((${buf}[(${j}) / ${per}u] >> (((${j}) % ${per}u) * ${bits}u)) & ${bits === 16 ? '0xffffu' : '0xffu'})`;
}

/** Element j of a binding as f32 (float dtypes) or i32 (integer dtypes). */
export function loadElem(buf: string, d: DType, j: string): string {
  switch (d) {
    case 'f32': case 'i32': return `${buf}[${j}]`;
    case 'f16': return `h2f_(${packedBits(buf, d, j)})`;
    case 'bf16': return `bitcast<f32>(${packedBits(buf, d, j)} << 16u)`;
    case 'i8': return `((i32(${packedBits(buf, d, j)}) << 24u) >> 24u)`;
    case 'u8': return `i32(${packedBits(buf, d, j)})`;
  }
}
export const isFloat = (d: DType): boolean => d === 'f32' || d === 'f16' || d === 'bf16';

export function f32Bits(v: number): number {
  const d = new DataView(new ArrayBuffer(4));
  d.setFloat32(0, v, true);
  return d.getUint32(0, true);
}
