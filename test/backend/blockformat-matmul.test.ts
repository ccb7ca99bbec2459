// quantMatmul and dequantize in the block-scaled checkpoint formats (MXFP4, FP8 E4M3) on every backend, against the
// loader's own dequantisation (tensor/blockquant.ts) and an f64 product.
import { describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { dequantFp8Blocks, dequantMxfp4 } from '../../src/tensor/blockquant.js';
import { E4M3_VALUES } from '../../src/tensor/minifloat.js';
import { maxAbsDiff } from '../helpers/compare.js';
import { DEVICES, JS, WEBGPU, useDevice } from '../helpers/devices.js';

const rng = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);

/** An MXFP4 (N, K) weight: every nibble value occurs, scales 2^-6 .. 2^3. */
function mxfp4Weight(N: number, K: number, seed: number): { data: Uint8Array; scales: Uint8Array; dense: Float32Array } {
  const r = rng(seed);
  const data = Uint8Array.from({ length: (N * K) / 2 }, () => Math.floor(r() * 256)); // (N, K/2)
  const scales = Uint8Array.from({ length: (N * K) / 32 }, () => 121 + Math.floor(r() * 10)); // (N, K/32)
  return { data, scales, dense: dequantMxfp4(data, scales) }; // rows of K/32 blocks are exactly the (N, K) matrix
}

/** An FP8 E4M3 (N, K) weight with f32 scales per `gs` values of a row: every finite code occurs (NaN codes left out). */
function fp8Weight(N: number, K: number, gs: number, seed: number): { data: Uint8Array; scales: Float32Array; dense: Float32Array } {
  const r = rng(seed);
  const data = Uint8Array.from({ length: N * K }, () => {
    const c = Math.floor(r() * 256);
    return (c & 0x7f) === 0x7f ? c - 1 : c;
  });
  const scales = Float32Array.from({ length: (N * K) / gs }, () => (r() + 0.05) * 1e-3);
  // per-row groups are tiles of one row and gs columns
  return { data, scales, dense: dequantFp8Blocks(data, E4M3_VALUES, scales, { n: 1, rows: N, cols: K, blockRows: 1, blockCols: gs }) };
}

/** x (M, K) · denseᵀ in f64, rounded to f32. */
function reference(x: Float32Array, dense: Float32Array, M: number, N: number, K: number): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let acc = 0;
    for (let k = 0; k < K; k++) acc += x[m * K + k]! * dense[n * K + k]!;
    y[m * N + n] = acc;
  }
  return y;
}

const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

for (const device of [JS, ...DEVICES, WEBGPU]) {
  describe(`block formats on ${device.name}`, () => {
    const dev = useDevice(device);
    // shapes: decode (M = 1, 4-row fast paths), a few rows, and a GEMM-sized batch with N not a multiple of 4
    for (const [M, N, K] of [[1, 12, 64], [3, 7, 96], [9, 21, 160]] as const) {
      it(`mxfp4 (${M}, ${K}) x (${N}, ${K})ᵀ`, async (ctx) => {
        dev.use(ctx);
        const w = mxfp4Weight(N, K, 7 + M);
        const x = Float32Array.from({ length: M * K }, rng(3 + N));
        const want = reference(x, w.dense, M, N, K);
        const data = mk.tensor(w.data, [N, K / 2], 'u8');
        const scales = mk.tensor(w.scales, [N, K / 32], 'u8');
        const y = await mk.quantMatmul(mk.tensor(x, [M, K]), data, scales, 'mxfp4', 32).data();
        const d = maxAbsDiff(y, want);
        console.log(`mxfp4 ${device.name} (${M}, ${N}, ${K}): max |diff| ${d.toExponential(2)} of max ${maxAbs(want).toFixed(2)}`);
        expect(d).toBeLessThanOrEqual(1e-5 * Math.max(1, maxAbs(want)));
        const deq = await mk.dequantize(data, scales, 'mxfp4', 32).data();
        expect(maxAbsDiff(deq, w.dense)).toBe(0); // each value is a code times a power of two: exact
      });
      it(`fp8 (${M}, ${K}) x (${N}, ${K})ᵀ with groups of 32`, async (ctx) => {
        dev.use(ctx);
        const w = fp8Weight(N, K, 32, 11 + M);
        const x = Float32Array.from({ length: M * K }, rng(5 + N));
        const want = reference(x, w.dense, M, N, K);
        const data = mk.tensor(w.data, [N, K], 'u8');
        const scales = mk.tensor(w.scales, [N, K / 32]);
        const y = await mk.quantMatmul(mk.tensor(x, [M, K]), data, scales, 'fp8', 32).data();
        const d = maxAbsDiff(y, want);
        console.log(`fp8 ${device.name} (${M}, ${N}, ${K}): max |diff| ${d.toExponential(2)} of max ${maxAbs(want).toFixed(2)}`);
        expect(d).toBeLessThanOrEqual(1e-5 * Math.max(1, maxAbs(want)));
        const deq = await mk.dequantize(data, scales, 'fp8', 32).data();
        expect(maxAbsDiff(deq, w.dense)).toBe(0); // the code's value times its scale, rounded once, as the loader does
      });
    }
    it('a wrong block shape or scale dtype is an error naming it', (ctx) => {
      dev.use(ctx);
      const x = mk.zeros([1, 64]);
      expect(() => mk.quantMatmul(x, mk.tensor(new Uint8Array(4 * 32), [4, 32], 'u8'), mk.tensor(new Uint8Array(4 * 4), [4, 4], 'u8'), 'mxfp4', 16)).toThrow('mxfp4 has one scale per 32 values, got group size 16');
      expect(() => mk.quantMatmul(x, mk.tensor(new Uint8Array(4 * 32), [4, 32], 'u8'), mk.zeros([4, 2]), 'mxfp4', 32)).toThrow(/scales must be u8/);
      expect(() => mk.quantMatmul(x, mk.tensor(new Uint8Array(4 * 64), [4, 64], 'u8'), mk.tensor(new Uint8Array(8), [4, 2], 'u8'), 'fp8', 32)).toThrow(/scales must be f32/);
    });
  });
}
