// js reference kernels: fused causal attention (GQA, sliding window) forward with log-sum-exp, and its backward.
import { Op, type AttentionParams } from '../../../tensor/ops.js';
import { fl, type CpuKernel } from '../view.js';

interface Dims { B: number; T: number; Hq: number; D: number; S: number; Hkv: number; Dv: number }

function dims(q: readonly number[], k: readonly number[], v: readonly number[]): Dims {
  return { B: q[0]!, T: q[1]!, Hq: q[2]!, D: q[3]!, S: k[1]!, Hkv: k[2]!, Dv: v[3]! };
}

/** Visible key range [lo, hi) for query row i. */
export function keyRange(i: number, T: number, S: number, p: AttentionParams): [number, number] {
  const qpos = i + S - T;
  const hi = p.causal ? Math.min(S, qpos + 1) : S;
  const lo = p.window > 0 ? Math.max(0, qpos - p.window + 1) : 0;
  return [lo, Math.max(lo, hi)];
}

export const attentionKernels = {
  [Op.Attention]: (ins, p, outs) => {
    const Q = fl(ins[0]);
    const Kd = fl(ins[1]);
    const Vd = fl(ins[2]);
    const O = fl(outs[0]);
    const LSE = fl(outs[1]);
    const { B, T, Hq, D, S, Hkv, Dv } = dims(ins[0]!.shape, ins[1]!.shape, ins[2]!.shape);
    const group = Hq / Hkv;
    const scores = new Float64Array(S);
    const acc = new Float64Array(Dv);
    for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const qo = ((b * T + i) * Hq + h) * D;
        const [lo, hi] = keyRange(i, T, S, p);
        let m = -Infinity;
        for (let j = lo; j < hi; j++) {
          const ko = ((b * S + j) * Hkv + kh) * D;
          let s = 0;
          for (let d = 0; d < D; d++) s += Q[qo + d]! * Kd[ko + d]!;
          scores[j] = s * p.scale;
          m = Math.max(m, scores[j]!);
        }
        let sum = 0;
        acc.fill(0);
        for (let j = lo; j < hi; j++) {
          const w = Math.exp(scores[j]! - m);
          sum += w;
          const vo = ((b * S + j) * Hkv + kh) * Dv;
          for (let d = 0; d < Dv; d++) acc[d] += w * Vd[vo + d]!;
        }
        const oo = ((b * T + i) * Hq + h) * Dv;
        for (let d = 0; d < Dv; d++) O[oo + d] = sum > 0 ? acc[d]! / sum : 0;
        LSE[(b * Hq + h) * T + i] = sum > 0 ? m + Math.log(sum) : -Infinity;
      }
    }
  },
  [Op.AttentionGrad]: (ins, p, outs) => {
    const [Q, Kd, Vd, O, LSE, DO] = ins.map((v) => fl(v)) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
    const [DQ, DK, DV] = outs.map((v) => fl(v));
    const { B, T, Hq, D, S, Hkv, Dv } = dims(ins[0]!.shape, ins[1]!.shape, ins[2]!.shape);
    const group = Hq / Hkv;
    DQ!.fill(0);
    DK!.fill(0);
    DV!.fill(0);
    for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const qo = ((b * T + i) * Hq + h) * D;
        const oo = ((b * T + i) * Hq + h) * Dv;
        const lse = LSE[(b * Hq + h) * T + i]!;
        if (lse === -Infinity) continue;
        let Di = 0;
        for (let d = 0; d < Dv; d++) Di += DO[oo + d]! * O[oo + d]!;
        const [lo, hi] = keyRange(i, T, S, p);
        for (let j = lo; j < hi; j++) {
          const ko = ((b * S + j) * Hkv + kh) * D;
          const vo = ((b * S + j) * Hkv + kh) * Dv;
          let s = 0;
          for (let d = 0; d < D; d++) s += Q[qo + d]! * Kd[ko + d]!;
          const P = Math.exp(s * p.scale - lse);
          let dP = 0;
          for (let d = 0; d < Dv; d++) {
            dP += DO[oo + d]! * Vd[vo + d]!;
            DV![vo + d] += P * DO[oo + d]!;
          }
          const dS = P * (dP - Di) * p.scale;
          for (let d = 0; d < D; d++) {
            DQ![qo + d] += dS * Kd[ko + d]!;
            DK![ko + d] += dS * Q[qo + d]!;
          }
        }
      }
    }
  },
} satisfies { [O in Op.Attention | Op.AttentionGrad]: CpuKernel<O> };
