// js reference kernels: fused RMSNorm (+grad), RoPE (rotate-half and interleaved) and cross-entropy (+grad).
import { Op } from '../../../tensor/ops.js';
import { fl, ix, type CpuKernel } from '../view.js';

export const nnKernels = {
  [Op.RMSNorm]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const W = fl(ins[1]);
    const O = fl(outs[0]);
    const H = W.length;
    const rows = H === 0 ? 0 : X.length / H;
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let j = 0; j < H; j++) ss += X[r * H + j]! * X[r * H + j]!;
      const inv = 1 / Math.sqrt(ss / H + p.eps);
      for (let j = 0; j < H; j++) O[r * H + j] = X[r * H + j]! * inv * W[j]!;
    }
  },
  [Op.RMSNormGrad]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const W = fl(ins[1]);
    const DY = fl(ins[2]);
    const DX = fl(outs[0]);
    const DW = fl(outs[1]);
    const H = W.length;
    const rows = H === 0 ? 0 : X.length / H;
    const dw = new Float64Array(H);
    for (let r = 0; r < rows; r++) {
      const o = r * H;
      let ss = 0;
      for (let j = 0; j < H; j++) ss += X[o + j]! * X[o + j]!;
      const inv = 1 / Math.sqrt(ss / H + p.eps);
      let dot = 0;
      for (let j = 0; j < H; j++) {
        const xhat = X[o + j]! * inv;
        dw[j] += DY[o + j]! * xhat;
        dot += DY[o + j]! * W[j]! * xhat;
      }
      dot /= H;
      for (let j = 0; j < H; j++) DX[o + j] = inv * (DY[o + j]! * W[j]! - X[o + j]! * inv * dot);
    }
    DW.set(dw);
  },
  [Op.RoPE]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const pos = ix(ins[1]);
    const inv = fl(ins[2]);
    const O = fl(outs[0]);
    const [B, T, nH, D] = ins[0]!.shape as [number, number, number, number];
    const half = inv.length;
    const perBatch = pos.length === T * B;
    const sign = p.inverse ? -1 : 1;
    O.set(X);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const at = pos[perBatch ? b * T + t : t]!;
        for (let d = 0; d < half; d++) {
          const ang = at * inv[d]!;
          const c = Math.cos(ang);
          const s = sign * Math.sin(ang);
          for (let h = 0; h < nH; h++) {
            const base = ((b * T + t) * nH + h) * D;
            const i1 = p.interleaved ? base + 2 * d : base + d;
            const i2 = p.interleaved ? i1 + 1 : i1 + half;
            const x1 = X[i1]!;
            const x2 = X[i2]!;
            O[i1] = x1 * c - x2 * s;
            O[i2] = x2 * c + x1 * s;
          }
        }
      }
    }
  },
  [Op.CrossEntropy]: (ins, p, outs) => {
    const L = fl(ins[0]);
    const tg = ix(ins[1]);
    const loss = fl(outs[0]);
    const lse = fl(outs[1]);
    const [N, V] = ins[0]!.shape as [number, number];
    for (let i = 0; i < N; i++) {
      const o = i * V;
      let m = -Infinity;
      for (let v = 0; v < V; v++) m = Math.max(m, L[o + v]!);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(L[o + v]! - m);
      lse[i] = m + Math.log(s);
      const t = tg[i]!;
      if (t === p.ignoreIndex) {
        loss[i] = 0;
        continue;
      }
      if (t < 0 || t >= V) throw new RangeError(`${Op.CrossEntropy}: target ${t} at row ${i} is out of range [0, ${V}) and is not the ignore index ${p.ignoreIndex}`);
      loss[i] = lse[i]! - L[o + t]!;
    }
  },
  [Op.CrossEntropyGrad]: (ins, p, outs) => {
    const L = fl(ins[0]);
    const tg = ix(ins[1]);
    const lse = fl(ins[2]);
    const dl = fl(ins[3]);
    const G = fl(outs[0]);
    const [N, V] = ins[0]!.shape as [number, number];
    for (let i = 0; i < N; i++) {
      const o = i * V;
      const t = tg[i]!;
      if (t === p.ignoreIndex) {
        G.fill(0, o, o + V);
        continue;
      }
      const g = dl[i]!;
      for (let v = 0; v < V; v++) G[o + v] = Math.exp(L[o + v]! - lse[i]!) * g;
      G[o + t] -= g;
    }
  },
} satisfies { [O in Op.RMSNorm | Op.RMSNormGrad | Op.RoPE | Op.CrossEntropy | Op.CrossEntropyGrad]: CpuKernel<O> };
