// js reference kernels: int8/int4 quantise and dequantise (group-wise f16 scales), MXFP4 / FP8 dequantise, and matmul
// with a stored weight.
import { bf16ToF32, f16ToF32, f32ToF16 } from '../../../tensor/dtype.js';
import { E4M3_VALUES, E8M0_VALUES, FP4_E2M1_VALUES } from '../../../tensor/minifloat.js';
import { Op, type QuantFormat, type WeightFormat } from '../../../tensor/ops.js';
import { fl, type CpuKernel, type View } from '../view.js';

/** Largest magnitude of a quantised value: symmetric int8 uses [-127, 127], int4 [-8, 7] with scale max/7. */
export const QMAX: { [F in QuantFormat]: number } = { int8: 127, int4: 7 };

/** Writes row n of a stored (N, K) weight as f32 into `out` (length K). */
export function dequantRow(format: WeightFormat, w: View, scales: View | undefined, groupSize: number, n: number, K: number, out: Float64Array | Float32Array): void {
  const W = w.data;
  if (format === 'f16' || format === 'bf16') {
    const conv = format === 'f16' ? f16ToF32 : bf16ToF32;
    for (let k = 0; k < K; k++) out[k] = conv(W[n * K + k]!);
    return;
  }
  const S = scales!.data;
  const groups = K / groupSize;
  for (let g = 0; g < groups; g++) {
    const sc = S[n * groups + g]!;
    const s = format === 'fp8' ? sc : format === 'mxfp4' ? E8M0_VALUES[sc]! : f16ToF32(sc);
    for (let j = 0; j < groupSize; j++) {
      const k = g * groupSize + j;
      let q: number;
      if (format === 'int8') q = W[n * K + k]!;
      else if (format === 'fp8') q = E4M3_VALUES[W[n * K + k]!]!;
      else {
        const byte = W[n * (K / 2) + (k >> 1)]!;
        const nib = k & 1 ? byte >> 4 : byte & 15;
        q = format === 'mxfp4' ? FP4_E2M1_VALUES[nib]! : nib >= 8 ? nib - 16 : nib;
      }
      out[k] = q * s;
    }
  }
}

export const quantKernels = {
  [Op.Dequantize]: (ins, p, outs) => {
    const [N, K] = outs[0]!.shape as [number, number];
    const O = fl(outs[0]);
    const row = new Float64Array(K);
    for (let n = 0; n < N; n++) {
      dequantRow(p.format, ins[0]!, ins[1], p.groupSize, n, K, row);
      O.set(row, n * K);
    }
  },
  [Op.Quantize]: (ins, p, outs) => {
    const W = fl(ins[0]);
    const [N, K] = ins[0]!.shape as [number, number];
    const D = outs[0]!.data;
    const S = outs[1]!.data;
    const groups = K / p.groupSize;
    const qmax = QMAX[p.format];
    if (p.format === 'int4') D.fill(0);
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < groups; g++) {
        const base = n * K + g * p.groupSize;
        let amax = 0;
        for (let j = 0; j < p.groupSize; j++) amax = Math.max(amax, Math.abs(W[base + j]!));
        const sBits = f32ToF16(amax / qmax);
        S[n * groups + g] = sBits;
        const s = f16ToF32(sBits);
        for (let j = 0; j < p.groupSize; j++) {
          const k = g * p.groupSize + j;
          const q = s === 0 ? 0 : Math.max(p.format === 'int4' ? -8 : -127, Math.min(qmax, Math.round(W[base + j]! / s)));
          if (p.format === 'int8') D[n * K + k] = q;
          else D[n * (K / 2) + (k >> 1)]! |= (q & 15) << (k & 1 ? 4 : 0);
        }
      }
    }
  },
  [Op.QuantMatmul]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const [M, K] = ins[0]!.shape as [number, number];
    const N = outs[0]!.shape[1]!;
    const O = fl(outs[0]);
    const row = new Float64Array(K);
    for (let n = 0; n < N; n++) {
      dequantRow(p.format, ins[1]!, ins[2], p.groupSize, n, K, row);
      for (let m = 0; m < M; m++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += X[m * K + k]! * row[k]!;
        O[m * N + n] = acc;
      }
    }
  },
} satisfies { [O in Op.Dequantize | Op.Quantize | Op.QuantMatmul]: CpuKernel<O> };
