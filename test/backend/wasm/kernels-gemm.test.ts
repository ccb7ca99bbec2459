// GEMM-family wasm kernels against float64 reference loops: matmul, grouped matmul (+ weight grad), qmatmul.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmRuntime } from '../../../src/backend/wasm/runtime.js';
import * as K from '../../../src/backend/wasm/kernels.js';

const SIZES = [1, 3, 17, 129];
const TOL = 1e-5;

/** Deterministic uniform [-1, 1) generator. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

function relErr(got: Float32Array, ref: Float64Array): number {
  let maxRef = 0, maxDiff = 0;
  for (let i = 0; i < ref.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
    const d = Math.abs(got[i]! - ref[i]!);
    maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
  }
  return maxDiff / Math.max(1, maxRef);
}

/** C (M, N) = op(A) op(B) + bias + C0, f64 accumulate. */
function refMatmul(A: Float32Array, B: Float32Array, M: number, N: number, Kd: number, tA: boolean, tB: boolean,
  bias?: Float32Array, C0?: Float32Array): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = (bias ? bias[j]! : 0) + (C0 ? C0[i * N + j]! : 0);
      for (let k = 0; k < Kd; k++) s += A[tA ? k * M + i : i * Kd + k]! * B[tB ? j * Kd + k : k * N + j]!;
      C[i * N + j] = s;
    }
  }
  return C;
}

type Build = { name: string; rt: WasmRuntime };
const builds: Build[] = [];
beforeAll(async () => {
  builds.push({ name: 'relaxed', rt: await WasmRuntime.create({ threads: 2, relaxedSimd: true }) });
  builds.push({ name: 'plain', rt: await WasmRuntime.create({ threads: 2, relaxedSimd: false }) });
});
afterAll(() => { for (const b of builds) b.rt.dispose(); });

function put(rt: WasmRuntime, data: Float32Array): number {
  const p = rt.alloc(Math.max(4, data.length * 4));
  rt.f32(p, data.length).set(data);
  return p;
}
function fill(n: number, r: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r();
  return a;
}

describe('matmul', () => {
  it('matches the reference for all sizes in {1,3,17,129}³, all transposes, 1, 2 and 7 chunks, both builds', () => {
    const r = rng(1);
    let cases = 0;
    for (const M of SIZES) for (const N of SIZES) for (const Kd of SIZES) {
      const A = fill(M * Kd, r), B = fill(Kd * N, r), bias = fill(N, r), C0 = fill(M * N, r);
      for (const tA of [false, true]) for (const tB of [false, true]) {
        const withExtras = (M + N + Kd + (tA ? 1 : 0) + (tB ? 2 : 0)) % 3 === 0;
        const ref = refMatmul(A, B, M, N, Kd, tA, tB, withExtras ? bias : undefined, withExtras ? C0 : undefined);
        for (const { name, rt } of builds) for (const chunks of [1, 2, 7]) {
          const a = put(rt, A), b = put(rt, B), c = put(rt, withExtras ? C0 : fill(M * N, r));
          const bi = withExtras ? put(rt, bias) : 0;
          K.matmul(rt, { a, b, c, bias: bi, M, N, K: Kd, transA: tA, transB: tB, accumulate: withExtras, chunks });
          const err = relErr(rt.f32(c, M * N), ref);
          if (!(err <= TOL)) throw new Error(`${name} c${chunks} M${M} N${N} K${Kd} tA${tA} tB${tB}: err ${err}`);
          for (const p of [a, b, c]) rt.free(p);
          if (bi) rt.free(bi);
          cases++;
        }
      }
    }
    expect(cases).toBe(64 * 4 * 6);
  });

  it('handles larger blocked shapes (several K, N, M blocks)', () => {
    const r = rng(2);
    for (const [M, N, Kd] of [[300, 1200, 800], [2, 1500, 70], [1, 700, 900]] as const) {
      for (const tA of [false, true]) for (const tB of [false, true]) {
        const A = fill(M * Kd, r), B = fill(Kd * N, r), bias = fill(N, r);
        const ref = refMatmul(A, B, M, N, Kd, tA, tB, bias);
        for (const { name, rt } of builds) {
          const a = put(rt, A), b = put(rt, B), c = rt.alloc(M * N * 4), bi = put(rt, bias);
          K.matmul(rt, { a, b, c, bias: bi, M, N, K: Kd, transA: tA, transB: tB });
          const err = relErr(rt.f32(c, M * N), ref);
          if (!(err <= TOL)) throw new Error(`${name} M${M} N${N} K${Kd} tA${tA} tB${tB}: err ${err}`);
          for (const p of [a, b, c, bi]) rt.free(p);
        }
      }
    }
  });

  it('runs batches with broadcast strides, 1, 2 and 7 chunks', () => {
    const r = rng(3);
    const M = 17, N = 33, Kd = 9;
    for (const batch of [1, 2, 3, 8]) for (const bcast of ['none', 'A', 'B'] as const) {
      const A = fill((bcast === 'A' ? 1 : batch) * M * Kd, r), B = fill((bcast === 'B' ? 1 : batch) * Kd * N, r);
      const bias = fill(N, r);
      const ref = new Float64Array(batch * M * N);
      for (let i = 0; i < batch; i++) {
        const Ai = A.subarray(bcast === 'A' ? 0 : i * M * Kd, (bcast === 'A' ? 1 : i + 1) * M * Kd);
        const Bi = B.subarray(bcast === 'B' ? 0 : i * Kd * N, (bcast === 'B' ? 1 : i + 1) * Kd * N);
        ref.set(refMatmul(Ai, Bi, M, N, Kd, false, true, bias), i * M * N);
      }
      for (const { name, rt } of builds) for (const chunks of [1, 2, 7]) {
        const a = put(rt, A), b = put(rt, B), c = rt.alloc(batch * M * N * 4), bi = put(rt, bias);
        K.matmul(rt, { a, b, c, bias: bi, M, N, K: Kd, transB: true, batch, chunks,
          strideA: bcast === 'A' ? 0 : M * Kd, strideB: bcast === 'B' ? 0 : Kd * N, strideC: M * N });
        const err = relErr(rt.f32(c, batch * M * N), ref);
        if (!(err <= TOL)) throw new Error(`${name} c${chunks} batch ${batch} bcast ${bcast}: err ${err}`);
        for (const p of [a, b, c, bi]) rt.free(p);
      }
    }
  });

  it('K = 0 gives bias (+ C when accumulating)', () => {
    const { rt } = builds[0]!;
    const c = put(rt, new Float32Array([1, 2, 3, 4])), bias = put(rt, new Float32Array([10, 20]));
    K.matmul(rt, { a: c, b: c, c, bias, M: 2, N: 2, K: 0, accumulate: true });
    expect(Array.from(rt.f32(c, 4))).toEqual([11, 22, 13, 24]);
    K.matmul(rt, { a: c, b: c, c, M: 2, N: 2, K: 0 });
    expect(Array.from(rt.f32(c, 4))).toEqual([0, 0, 0, 0]);
  });
});

/** Offsets (E + 1) for T rows: a pattern name or explicit sizes. */
function offsetsFor(sizes: number[]): Int32Array {
  const o = new Int32Array(sizes.length + 1);
  for (let e = 0; e < sizes.length; e++) o[e + 1] = o[e]! + sizes[e]!;
  return o;
}
const GROUPINGS: number[][] = [[0, 5, 0, 12, 0], [17], [0, 0, 17, 0], [1, 1, 1, 14], [130, 0, 3]];

describe('groupedMatmul', () => {
  it('matches per-segment matmuls (empty groups, one group, skew), transW, 1, 2 and 7 chunks, both builds', () => {
    const r = rng(4);
    for (const sizes of GROUPINGS) for (const Kd of [1, 3, 17, 129]) for (const N of [1, 3, 17, 129]) {
      const E = sizes.length, off = offsetsFor(sizes), T = off[E]!;
      const X = fill(T * Kd, r), W = fill(E * Kd * N, r);
      for (const transW of [false, true]) {
        const ref = new Float64Array(T * N);
        for (let e = 0; e < E; e++) {
          const r0 = off[e]!, r1 = off[e + 1]!;
          if (r1 === r0) continue;
          ref.set(refMatmul(X.subarray(r0 * Kd, r1 * Kd), W.subarray(e * Kd * N, (e + 1) * Kd * N), r1 - r0, N, Kd, false, transW), r0 * N);
        }
        for (const { name, rt } of builds) for (const chunks of [1, 2, 7]) {
          const x = put(rt, X), w = put(rt, W), y = put(rt, fill(T * N, r)), o = rt.alloc(4 * (E + 1));
          rt.i32(o, E + 1).set(off);
          K.groupedMatmul(rt, { x, w, y, offsets: o, E, K: Kd, N, transW, chunks });
          const err = relErr(rt.f32(y, T * N), ref);
          if (!(err <= TOL)) throw new Error(`${name} c${chunks} sizes ${sizes} K${Kd} N${N} transW ${transW}: err ${err}`);
          for (const p of [x, w, y, o]) rt.free(p);
        }
      }
    }
  });
});

describe('groupedMatmulWeightGrad', () => {
  it('dW_e = x_eᵀ dy_e with zeros for empty segments, 1, 2 and 7 chunks, both builds', () => {
    const r = rng(5);
    for (const sizes of GROUPINGS) for (const Kd of [1, 3, 17, 129]) for (const N of [1, 17, 129]) {
      const E = sizes.length, off = offsetsFor(sizes), T = off[E]!;
      const X = fill(T * Kd, r), DY = fill(T * N, r);
      const ref = new Float64Array(E * Kd * N);
      for (let e = 0; e < E; e++) {
        const r0 = off[e]!, r1 = off[e + 1]!;
        ref.set(refMatmul(X.subarray(r0 * Kd, r1 * Kd), DY.subarray(r0 * N, r1 * N), Kd, N, r1 - r0, true, false), e * Kd * N);
      }
      for (const { name, rt } of builds) for (const chunks of [1, 2, 7]) {
        const x = put(rt, X), dy = put(rt, DY), dw = put(rt, fill(E * Kd * N, r)), o = rt.alloc(4 * (E + 1));
        rt.i32(o, E + 1).set(off);
        K.groupedMatmulWeightGrad(rt, { x, dy, dw, offsets: o, E, K: Kd, N, chunks });
        const err = relErr(rt.f32(dw, E * Kd * N), ref);
        if (!(err <= TOL)) throw new Error(`${name} c${chunks} sizes ${sizes} K${Kd} N${N}: err ${err}`);
        for (const p of [x, dy, dw, o]) rt.free(p);
      }
    }
  });
});

// ---- quantised matmul -------------------------------------------------------------------------------------------

/** Exact IEEE half decode. */
function f16(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
/** f32 → nearest finite half bits (for building scales). */
function toF16(v: number): number {
  let best = 0, bestD = Infinity;
  const a = Math.abs(v);
  let lo = 0, hi = 0x7bff;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (f16(mid) < a) lo = mid + 1; else hi = mid; }
  for (const c of [lo - 1, lo, lo + 1]) if (c >= 0 && c <= 0x7bff && Math.abs(f16(c) - a) < bestD) { bestD = Math.abs(f16(c) - a); best = c; }
  return (v < 0 ? 0x8000 : 0) | best;
}

interface QCase { w: Uint8Array | Int8Array | Uint16Array; scales?: Uint16Array; deq: Float64Array }

/** Random weights in `format` for W (N, K) and their exact dequantised values. */
function makeQ(format: K.QFormat, N: number, Kd: number, gs: number, r: () => number): QCase {
  const deq = new Float64Array(N * Kd);
  const ng = Kd / gs;
  const scales = new Uint16Array(N * ng);
  for (let i = 0; i < scales.length; i++) scales[i] = toF16(0.01 + Math.abs(r()) * 0.1);
  if (format === 'int8') {
    const w = new Int8Array(N * Kd);
    for (let i = 0; i < w.length; i++) w[i] = Math.round(r() * 127.5) | 0;
    for (let n = 0; n < N; n++) for (let k = 0; k < Kd; k++) deq[n * Kd + k] = w[n * Kd + k]! * f16(scales[n * ng + Math.floor(k / gs)]!);
    return { w, scales, deq };
  }
  if (format === 'int4') {
    const w = new Uint8Array(N * Kd / 2);
    for (let i = 0; i < w.length; i++) w[i] = Math.floor((r() + 1) * 128) & 255;
    for (let n = 0; n < N; n++) for (let k = 0; k < Kd; k++) {
      const byte = w[n * (Kd / 2) + (k >> 1)]!;
      const nib = k & 1 ? byte >> 4 : byte & 15;
      deq[n * Kd + k] = (nib >= 8 ? nib - 16 : nib) * f16(scales[n * ng + Math.floor(k / gs)]!);
    }
    return { w, scales, deq };
  }
  const w = new Uint16Array(N * Kd);
  for (let i = 0; i < w.length; i++) {
    w[i] = format === 'f16' ? toF16(r()) : (new Uint32Array(new Float32Array([r()]).buffer)[0]! >>> 16);
    deq[i] = format === 'f16' ? f16(w[i]!) : new Float32Array(new Uint32Array([w[i]! << 16]).buffer)[0]!;
  }
  return { w, deq };
}

function putBytes(rt: WasmRuntime, a: Uint8Array | Int8Array | Uint16Array): number {
  const p = rt.alloc(Math.max(4, a.byteLength));
  rt.u8(p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return p;
}

describe('qmatmul', () => {
  it('matches x·Wᵀ of the dequantised weights: every format, group sizes 32 and K, decode and batched M', () => {
    const r = rng(6);
    const formats: K.QFormat[] = ['int8', 'int4', 'f16', 'bf16'];
    for (const format of formats) for (const Kd of [32, 64, 96, 416]) for (const gsKind of ['32', 'K'] as const) {
      const gs = gsKind === '32' ? 32 : Kd;
      if ((format === 'f16' || format === 'bf16') && gsKind === 'K') continue;
      for (const N of [1, 3, 17, 129]) {
        const q = makeQ(format, N, Kd, gs, r);
        for (const M of [1, 3, 17, 129]) {
          const X = fill(M * Kd, r);
          const ref = new Float64Array(M * N);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < Kd; k++) s += X[m * Kd + k]! * q.deq[n * Kd + k]!;
            ref[m * N + n] = s;
          }
          for (const { name, rt } of builds) for (const chunks of [1, 2, 7]) {
            const x = put(rt, X), w = putBytes(rt, q.w), sc = q.scales ? putBytes(rt, q.scales) : 0, y = rt.alloc(M * N * 4);
            K.qmatmul(rt, { x, w, scales: sc, y, M, N, K: Kd, format, groupSize: gs, chunks });
            const err = relErr(rt.f32(y, M * N), ref);
            if (!(err <= TOL)) throw new Error(`${name} c${chunks} ${format} gs${gs} M${M} N${N} K${Kd}: err ${err}`);
            for (const p of [x, w, y]) rt.free(p);
            if (sc) rt.free(sc);
          }
        }
      }
    }
  });

  it('odd K with groupSize K (int8) and tiny groups (int4, groupSize 2)', () => {
    const r = rng(7);
    for (const [format, Kd, gs] of [['int8', 17, 17], ['int8', 129, 129], ['int8', 3, 1], ['int4', 18, 2], ['int4', 34, 34]] as const) {
      for (const M of [1, 5]) {
        const N = 13;
        const q = makeQ(format, N, Kd, gs, r);
        const X = fill(M * Kd, r);
        const ref = new Float64Array(M * N);
        for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < Kd; k++) s += X[m * Kd + k]! * q.deq[n * Kd + k]!;
          ref[m * N + n] = s;
        }
        for (const { name, rt } of builds) {
          const x = put(rt, X), w = putBytes(rt, q.w), sc = putBytes(rt, q.scales!), y = rt.alloc(M * N * 4);
          K.qmatmul(rt, { x, w, scales: sc, y, M, N, K: Kd, format, groupSize: gs });
          const err = relErr(rt.f32(y, M * N), ref);
          if (!(err <= TOL)) throw new Error(`${name} ${format} gs${gs} M${M} K${Kd}: err ${err}`);
          for (const p of [x, w, sc, y]) rt.free(p);
        }
      }
    }
  });

  it('converts every f16 bit pattern exactly (subnormals, inf, nan), SIMD and scalar paths', () => {
    for (const { name, rt } of builds) for (const Kd of [8, 4]) {
      const N = 65536;
      const w = new Uint16Array(N * Kd);
      for (let n = 0; n < N; n++) w.fill(n, n * Kd, (n + 1) * Kd);
      const x = put(rt, new Float32Array(Kd).fill(1 / Kd)), wp = putBytes(rt, w), y = rt.alloc(N * 4);
      K.qmatmul(rt, { x, w: wp, y, M: 1, N, K: Kd, format: 'f16' });
      const Y = rt.f32(y, N);
      for (let n = 0; n < N; n++) {
        const want = Math.fround(f16(n));
        if (Y[n] !== want && !(Number.isNaN(want) && Number.isNaN(Y[n]!))) { // -0 sums to +0
          throw new Error(`${name} K${Kd}: f16 0x${n.toString(16)} gave ${Y[n]}, want ${want}`);
        }
      }
      for (const p of [x, wp, y]) rt.free(p);
    }
  });

  it('rejects bad group sizes and missing scales', () => {
    const { rt } = builds[0]!;
    expect(() => K.qmatmul(rt, { x: 0, w: 0, scales: 64, y: 0, M: 1, N: 1, K: 30, format: 'int8', groupSize: 32 })).toThrow(/divide/);
    expect(() => K.qmatmul(rt, { x: 0, w: 0, scales: 64, y: 0, M: 1, N: 1, K: 6, format: 'int4', groupSize: 3 })).toThrow(/even/);
    expect(() => K.qmatmul(rt, { x: 0, w: 0, y: 0, M: 1, N: 1, K: 32, format: 'int8' })).toThrow(/scales/);
  });
});
