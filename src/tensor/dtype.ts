// Data types: compute dtypes (f32, i32), storage dtypes (f16, bf16, i8, u8) and half-precision conversion.

/** Element types a tensor can hold. f32 and i32 are compute types; f16, bf16, i8, u8 are storage types. */
export type DType = 'f32' | 'i32' | 'f16' | 'bf16' | 'i8' | 'u8';
export const DTYPES: readonly DType[] = ['f32', 'i32', 'f16', 'bf16', 'i8', 'u8'];

/** Float storage used by CPU kernels: f32 normally, f64 for gradient checks on the js backend. */
export type FloatArray = Float32Array | Float64Array;
/** Every typed array a CPU backend stores. */
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint16Array | Int8Array | Uint8Array;

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'f32':
    case 'i32':
      return 4;
    case 'f16':
    case 'bf16':
      return 2;
    case 'i8':
    case 'u8':
      return 1;
    default:
      return dtype satisfies never;
  }
}

/** A fresh zeroed typed array for `size` elements of `dtype` (f32 as f64 when `f64` is set). */
export function allocTyped(dtype: DType, size: number, f64 = false): TypedArray {
  switch (dtype) {
    case 'f32':
      return f64 ? new Float64Array(size) : new Float32Array(size);
    case 'i32':
      return new Int32Array(size);
    case 'f16':
    case 'bf16':
      return new Uint16Array(size);
    case 'i8':
      return new Int8Array(size);
    case 'u8':
      return new Uint8Array(size);
    default:
      return dtype satisfies never;
  }
}

/** A typed-array view of `dtype` over `buffer` (used by backends that own one memory). */
export function viewTyped(dtype: DType, buffer: ArrayBufferLike, byteOffset: number, size: number): TypedArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, byteOffset, size);
    case 'i32':
      return new Int32Array(buffer, byteOffset, size);
    case 'f16':
    case 'bf16':
      return new Uint16Array(buffer, byteOffset, size);
    case 'i8':
      return new Int8Array(buffer, byteOffset, size);
    case 'u8':
      return new Uint8Array(buffer, byteOffset, size);
    default:
      return dtype satisfies never;
  }
}

/** True when an array of this constructor can hold `dtype` (f32 accepts Float32Array or Float64Array). */
export function matchesDType(data: TypedArray, dtype: DType): boolean {
  switch (dtype) {
    case 'f32':
      return data instanceof Float32Array || data instanceof Float64Array;
    case 'i32':
      return data instanceof Int32Array;
    case 'f16':
    case 'bf16':
      return data instanceof Uint16Array;
    case 'i8':
      return data instanceof Int8Array;
    case 'u8':
      return data instanceof Uint8Array;
    default:
      return dtype satisfies never;
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half bits -> number (exact, including subnormals, infinities and NaN). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** number -> IEEE half bits, round to nearest even; overflow gives infinity. */
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}

/** bfloat16 bits -> number. */
export function bf16ToF32(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0]!;
}

/** number -> bfloat16 bits, round to nearest even (NaN stays NaN). */
export function f32ToBf16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}
