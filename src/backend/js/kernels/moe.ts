// js reference kernels of the fused MoE inference ops: softmax top-k routing (optionally within the top groups),
// the routed SwiGLU experts, and the clustered experts (shared base + low-rank residual). Written token by token,
// independently of the composed training form they are tested against.
import { Op } from '../../../tensor/ops.js';
import { f16ToF32, type FloatArray } from '../../../tensor/dtype.js';
import { fl, ix, type CpuKernel, type View } from '../view.js';

/** Float data of a weight view, f16 widened to f32. */
const weights = (v: View): FloatArray => (v.dtype === 'f16' ? Float32Array.from(v.data as Uint16Array, f16ToF32) : fl(v));

const silu = (v: number): number => v / (1 + Math.exp(-v));

/** Indices 0..n-1 of `v` (at `base`) sorted by value descending, ties to the lower index. */
function byValueDesc(v: ArrayLike<number>, base: number, idx: number[]): number[] {
  return idx.sort((a, b) => v[base + b]! - v[base + a]! || a - b);
}

/** acc (N) += x (K) · W (K, N) with W at element offset `off` (row-major). */
function vecMat(x: ArrayLike<number>, xOff: number, K: number, W: FloatArray, off: number, N: number, acc: Float64Array): void {
  for (let k = 0; k < K; k++) {
    const a = x[xOff + k]!;
    if (a === 0) continue;
    const row = off + k * N;
    for (let n = 0; n < N; n++) acc[n] += a * W[row + n]!;
  }
}

/** Throws when an expert id is outside [0, E). */
function checkIds(op: Op, ids: Int32Array, E: number, K: number): void {
  for (let s = 0; s < ids.length; s++) {
    const e = ids[s]!;
    if (!(e >= 0 && e < E)) throw new RangeError(`${op}: slot ${s} (token ${Math.floor(s / K)}) names expert ${e}, outside [0, ${E})`);
  }
}

export const moeKernels = {
  [Op.ExpertBins]: (ins, p, outs) => {
    const ids = ix(ins[0]);
    const K = ins[0]!.shape[1]!;
    const E = p.experts;
    checkIds(Op.ExpertBins, ids, E, K);
    const [order, tokens, offsets] = [ix(outs[0]), ix(outs[1]), ix(outs[2])];
    offsets.fill(0);
    for (let s = 0; s < ids.length; s++) offsets[ids[s]! + 1]!++;
    for (let e = 0; e < E; e++) offsets[e + 1]! += offsets[e]!;
    const fill = offsets.slice(0, E);
    for (let s = 0; s < ids.length; s++) {
      const r = fill[ids[s]!]!++;
      order[r] = s;
      tokens[r] = Math.floor(s / K);
    }
  },
  [Op.RouteTopK]: (ins, p, outs) => {
    const L = fl(ins[0]);
    const [T, E] = ins[0]!.shape as [number, number];
    const { k: K, groups: G, topGroups: TG } = p;
    const M = E / G;
    const W = fl(outs[0]);
    const ID = ix(outs[1]);
    const bias = ins[1] ? fl(ins[1]) : null;
    const probs = new Float64Array(E);
    const score = new Float64Array(E); // selection: p + bias
    const gsum = new Float64Array(G);
    for (let t = 0; t < T; t++) {
      let mx = -Infinity;
      for (let e = 0; e < E; e++) mx = Math.max(mx, L[t * E + e]!);
      let s = 0;
      for (let e = 0; e < E; e++) s += (probs[e] = Math.exp(L[t * E + e]! - mx));
      for (let e = 0; e < E; e++) {
        probs[e]! /= s;
        score[e] = bias ? probs[e]! + bias[e]! : probs[e]!;
      }
      let cand: number[];
      if (TG < G) {
        gsum.fill(0);
        for (let e = 0; e < E; e++) gsum[Math.floor(e / M)]! += score[e]!;
        const chosen = byValueDesc(gsum, 0, Array.from({ length: G }, (_, g) => g)).slice(0, TG);
        cand = chosen.flatMap((g) => Array.from({ length: M }, (_, j) => g * M + j));
      } else cand = Array.from({ length: E }, (_, e) => e);
      const best = byValueDesc(score, 0, cand).slice(0, K);
      let norm = 0;
      for (const e of best) norm += probs[e]!;
      best.forEach((e, k) => {
        ID[t * K + k] = e;
        W[t * K + k] = p.renormalize ? probs[e]! / norm : probs[e]!;
      });
    }
  },
  [Op.MoeFfn]: (ins, _p, outs) => {
    const X = fl(ins[0]);
    const ids = ix(ins[1]);
    const WT = fl(ins[2]);
    const [gate, up, down] = [fl(ins[3]), fl(ins[4]), fl(ins[5])];
    const [T, H] = ins[0]!.shape as [number, number];
    const K = ins[1]!.shape[1]!;
    const [E, , I] = ins[3]!.shape as [number, number, number];
    checkIds(Op.MoeFfn, ids, E, K);
    const Y = fl(outs[0]);
    const g = new Float64Array(I);
    const u = new Float64Array(I);
    const h = new Float64Array(I);
    const y = new Float64Array(H);
    for (let t = 0; t < T; t++) {
      y.fill(0);
      for (let k = 0; k < K; k++) {
        const e = ids[t * K + k]!;
        const w = WT[t * K + k]!;
        g.fill(0);
        u.fill(0);
        vecMat(X, t * H, H, gate, e * H * I, I, g);
        vecMat(X, t * H, H, up, e * H * I, I, u);
        for (let i = 0; i < I; i++) h[i] = w * silu(g[i]!) * u[i]!;
        vecMat(h, 0, I, down, e * I * H, H, y);
      }
      for (let j = 0; j < H; j++) Y[t * H + j] = y[j]!;
    }
  },
  [Op.ClusteredFfn]: (ins, _p, outs) => {
    const X = fl(ins[0]);
    const ids = ix(ins[1]);
    const WT = fl(ins[2]);
    const [bg, bu, bd, ga, gb, ua, ub, da, db] = ins.slice(3).map(weights) as [FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray];
    const [T, H] = ins[0]!.shape as [number, number];
    const K = ins[1]!.shape[1]!;
    const [G, , I] = ins[3]!.shape as [number, number, number];
    const [E, , R] = ins[6]!.shape as [number, number, number];
    const M = E / G;
    checkIds(Op.ClusteredFfn, ids, E, K);
    const Y = fl(outs[0]);
    const baseG = new Float64Array(I);
    const baseU = new Float64Array(I);
    const hsum = new Float64Array(I);
    const g = new Float64Array(I);
    const u = new Float64Array(I);
    const h = new Float64Array(I);
    const lr = new Float64Array(R);
    const y = new Float64Array(H);
    const lowRank = (x: ArrayLike<number>, xOff: number, din: number, A: FloatArray, B: FloatArray, e: number, dout: number, acc: Float64Array): void => {
      lr.fill(0);
      vecMat(x, xOff, din, A, e * din * R, R, lr);
      vecMat(lr, 0, R, B, e * R * dout, dout, acc);
    };
    for (let t = 0; t < T; t++) {
      y.fill(0);
      const groups: number[] = [];
      for (let k = 0; k < K; k++) {
        const grp = Math.floor(ids[t * K + k]! / M);
        if (!groups.includes(grp)) groups.push(grp);
      }
      for (const grp of groups) {
        baseG.fill(0);
        baseU.fill(0);
        hsum.fill(0);
        vecMat(X, t * H, H, bg, grp * H * I, I, baseG);
        vecMat(X, t * H, H, bu, grp * H * I, I, baseU);
        for (let k = 0; k < K; k++) {
          const e = ids[t * K + k]!;
          if (Math.floor(e / M) !== grp) continue;
          const w = WT[t * K + k]!;
          g.set(baseG);
          u.set(baseU);
          lowRank(X, t * H, H, ga, gb, e, I, g);
          lowRank(X, t * H, H, ua, ub, e, I, u);
          for (let i = 0; i < I; i++) {
            h[i] = w * silu(g[i]!) * u[i]!;
            hsum[i]! += h[i]!;
          }
          lowRank(h, 0, I, da, db, e, H, y);
        }
        vecMat(hsum, 0, I, bd, grp * I * H, H, y);
      }
      for (let j = 0; j < H; j++) Y[t * H + j] = y[j]!;
    }
  },
} satisfies { [O in Op.ExpertBins | Op.RouteTopK | Op.MoeFfn | Op.ClusteredFfn]: CpuKernel<O> };
