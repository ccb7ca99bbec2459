// js reference kernels: fused causal attention (GQA, sliding window) forward with log-sum-exp, and its backward.
import { Op, type AttentionParams } from '../../../tensor/ops.js';
import type { FloatArray } from '../../../tensor/dtype.js';
import { fl, ix, type CpuKernel } from '../view.js';

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

/**
 * Checks a RaggedAttention table seqs (B, 4) of [qStart, rows, slot, length] against N query rows and a pool of P
 * slots of C rows: every value in range, and no query row claimed twice. Throws naming the sequence and the value.
 */
export function checkRaggedSeqs(seqs: Int32Array, N: number, P: number, C: number): void {
  const claimed: [number, number, number][] = [];
  for (let b = 0; b < seqs.length / 4; b++) {
    const [q0, rows, slot, len] = [seqs[4 * b]!, seqs[4 * b + 1]!, seqs[4 * b + 2]!, seqs[4 * b + 3]!];
    const at = `${Op.RaggedAttention}: sequence ${b} [qStart ${q0}, rows ${rows}, slot ${slot}, length ${len}]`;
    if (slot < 0 || slot >= P) throw new RangeError(`${at}: slot is not in [0, ${P})`);
    if (len < 0 || len > C) throw new RangeError(`${at}: length is not in [0, ${C}] (the pool's rows per slot)`);
    if (rows < 0 || rows > len) throw new RangeError(`${at}: rows must be in [0, length]`);
    if (q0 < 0 || q0 + rows > N) throw new RangeError(`${at}: query rows are not within the ${N} rows of q`);
    if (rows > 0) claimed.push([q0, q0 + rows, b]);
  }
  claimed.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < claimed.length; i++) {
    if (claimed[i]![0] < claimed[i - 1]![1]) throw new RangeError(`${Op.RaggedAttention}: sequences ${claimed[i - 1]![2]} and ${claimed[i]![2]} claim the same query row ${claimed[i]![0]}`);
  }
}

interface RowWork { scores: Float64Array; acc: Float64Array }

/**
 * One query row over keys [lo, hi): writes o (Dv) at oo and returns the lse. Keys j sit at kBase + j·Hkv·D, values
 * at vBase + j·Hkv·Dv. The one arithmetic of the dense and the ragged kernels, so that both give the same bits.
 */
function attendRow(Q: FloatArray, qo: number, Kd: FloatArray, Vd: FloatArray, kBase: number, vBase: number, Hkv: number, D: number, Dv: number,
  lo: number, hi: number, scale: number, O: FloatArray, oo: number, w: RowWork): number {
  const { scores, acc } = w;
  let m = -Infinity;
  for (let j = lo; j < hi; j++) {
    const ko = kBase + j * Hkv * D;
    let s = 0;
    for (let d = 0; d < D; d++) s += Q[qo + d]! * Kd[ko + d]!;
    scores[j] = s * scale;
    m = Math.max(m, scores[j]!);
  }
  let sum = 0;
  acc.fill(0);
  for (let j = lo; j < hi; j++) {
    const e = Math.exp(scores[j]! - m);
    sum += e;
    const vo = vBase + j * Hkv * Dv;
    for (let d = 0; d < Dv; d++) acc[d] += e * Vd[vo + d]!;
  }
  for (let d = 0; d < Dv; d++) O[oo + d] = sum > 0 ? acc[d]! / sum : 0;
  return sum > 0 ? m + Math.log(sum) : -Infinity;
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
    const w: RowWork = { scores: new Float64Array(S), acc: new Float64Array(Dv) };
    for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const [lo, hi] = keyRange(i, T, S, p);
        const lse = attendRow(Q, ((b * T + i) * Hq + h) * D, Kd, Vd, (b * S * Hkv + kh) * D, (b * S * Hkv + kh) * Dv, Hkv, D, Dv, lo, hi, p.scale, O, ((b * T + i) * Hq + h) * Dv, w);
        LSE[(b * Hq + h) * T + i] = lse;
      }
    }
  },
  [Op.RaggedAttention]: (ins, p, outs) => {
    const Q = fl(ins[0]);
    const Kd = fl(ins[1]);
    const Vd = fl(ins[2]);
    const seqs = ix(ins[3]);
    const O = fl(outs[0]);
    const LSE = fl(outs[1]);
    const [N, Hq, D] = ins[0]!.shape as [number, number, number];
    const [P, C, Hkv] = ins[1]!.shape as [number, number, number];
    const Dv = ins[2]!.shape[3]!;
    checkRaggedSeqs(seqs, N, P, C);
    const group = Hq / Hkv;
    const w: RowWork = { scores: new Float64Array(C), acc: new Float64Array(Dv) };
    O.fill(0);
    LSE.fill(-Infinity);
    for (let b = 0; b < seqs.length / 4; b++) {
      const [q0, rows, slot, S] = [seqs[4 * b]!, seqs[4 * b + 1]!, seqs[4 * b + 2]!, seqs[4 * b + 3]!];
      for (let h = 0; h < Hq; h++) {
        const kh = Math.floor(h / group);
        for (let i = 0; i < rows; i++) {
          const [lo, hi] = keyRange(i, rows, S, { causal: true, window: p.window, scale: p.scale });
          const n = q0 + i;
          LSE[n * Hq + h] = attendRow(Q, (n * Hq + h) * D, Kd, Vd, (slot * C * Hkv + kh) * D, (slot * C * Hkv + kh) * Dv, Hkv, D, Dv, lo, hi, p.scale, O, (n * Hq + h) * Dv, w);
        }
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
} satisfies { [O in Op.Attention | Op.AttentionGrad | Op.RaggedAttention]: CpuKernel<O> };
