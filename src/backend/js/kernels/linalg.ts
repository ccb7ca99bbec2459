// js reference kernels: (batched, transposed, biased) matmul and the grouped matmul over permuted rows.
import { Op } from '../../../tensor/ops.js';
import { fl, ix, type CpuKernel } from '../view.js';
import type { FloatArray } from '../../../tensor/dtype.js';

/**
 * C (M, N) = op(A)·op(B) for one problem at element offsets; A is (M, K) or (K, M) when transA,
 * B is (K, N) or (N, K) when transB. i-k-j order so the inner loop runs over contiguous N.
 */
export function gemm(A: FloatArray, aOff: number, B: FloatArray, bOff: number, C: FloatArray, cOff: number, M: number, N: number, K: number, transA: boolean, transB: boolean): void {
  const acc = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    acc.fill(0);
    for (let k = 0; k < K; k++) {
      const a = A[aOff + (transA ? k * M + m : m * K + k)]!;
      if (a === 0) continue;
      if (transB) for (let n = 0; n < N; n++) acc[n] += a * B[bOff + n * K + k]!;
      else {
        const row = bOff + k * N;
        for (let n = 0; n < N; n++) acc[n] += a * B[row + n]!;
      }
    }
    for (let n = 0; n < N; n++) C[cOff + m * N + n] = acc[n]!;
  }
}

export const linalgKernels = {
  [Op.Matmul]: (ins, p, outs) => {
    const [a, b, bias] = ins;
    const out = outs[0]!;
    const M = out.shape.at(-2)!;
    const N = out.shape.at(-1)!;
    const K = a!.shape.at(p.transA ? -2 : -1)!;
    const batch = M * N === 0 ? 0 : out.data.length / (M * N);
    const bBatched = b!.shape.length > 2;
    const A = fl(a);
    const Bd = fl(b);
    const C = fl(out);
    for (let i = 0; i < batch; i++) gemm(A, i * M * K, Bd, bBatched ? i * K * N : 0, C, i * M * N, M, N, K, p.transA, p.transB);
    if (bias) {
      const bv = fl(bias);
      for (let r = 0; r < batch * M; r++) for (let n = 0; n < N; n++) C[r * N + n] += bv[n]!;
    }
  },
  [Op.GroupedMatmul]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const W = fl(ins[1]);
    const off = ix(ins[2]);
    const [T, K] = ins[0]!.shape as [number, number];
    const N = outs[0]!.shape[1]!;
    const E = off.length - 1;
    const Y = fl(outs[0]);
    checkOffsets(off, E, T);
    for (let e = 0; e < E; e++) {
      const rows = off[e + 1]! - off[e]!;
      if (rows > 0) gemm(X, off[e]! * K, W, e * K * N, Y, off[e]! * N, rows, N, K, false, p.transW);
    }
  },
  [Op.GroupedMatmulWeightGrad]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const DY = fl(ins[1]);
    const off = ix(ins[2]);
    const [T, K] = ins[0]!.shape as [number, number];
    const N = ins[1]!.shape[1]!;
    const E = off.length - 1;
    const DW = fl(outs[0]);
    checkOffsets(off, E, T);
    DW.fill(0);
    for (let e = 0; e < E; e++) {
      const rows = off[e + 1]! - off[e]!;
      if (rows === 0) continue;
      // dW_e (K, N) = X_eᵀ (K, rows) · dY_e (rows, N); transW stores it as (N, K) = dY_eᵀ · X_e
      if (p.transW) gemm(DY, off[e]! * N, X, off[e]! * K, DW, e * K * N, N, K, rows, true, false);
      else gemm(X, off[e]! * K, DY, off[e]! * N, DW, e * K * N, K, N, rows, true, false);
    }
  },
} satisfies { [O in Op.Matmul | Op.GroupedMatmul | Op.GroupedMatmulWeightGrad]: CpuKernel<O> };

/** Offsets must start at 0, never decrease and end at T (the permuted row count). */
export function checkOffsets(off: Int32Array, E: number, T: number): void {
  let prev = 0;
  for (let e = 0; e <= E; e++) {
    const o = off[e]!;
    if ((e === 0 && o !== 0) || o < prev || (e === E && o !== T)) {
      throw new RangeError(`grouped_matmul: offsets [${Array.from(off.slice(0, 8)).join(', ')}${E > 7 ? ', ...' : ''}] must start at 0, never decrease and end at ${T} (offset ${e} is ${o})`);
    }
    prev = o;
  }
}
