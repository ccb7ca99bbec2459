// The fused MoE inference ops on wasm: the routing bookkeeping runs on the host over the (T, K) ids, then one
// chain of SIMD kernels (row gathers, grouped GEMMs, the weighted SwiGLU, scatter-adds) runs on temporaries in wasm
// memory. No tensors are created between the steps, which is what makes decode-sized batches fast.
import type { Op } from '../../tensor/ops.js';
import { chunksFor } from './chunks.js';
import type { WasmRuntime } from './runtime.js';
import { binSlots, countSlots, groupPairs } from '../../tensor/moe-plan.js';
import type { WasmKernel, WasmView } from './kernel.js';
import * as K from './kernels.js';

/** Elements (rows × width) one chunk of a row kernel should get at least: waking workers costs more below. */
const MIN_ELEMENTS_PER_CHUNK = 1 << 16;
const rowChunks = (_rt: WasmRuntime, rows: number, width: number): number => chunksFor(rows * width, MIN_ELEMENTS_PER_CHUNK, rows);

/** Allocates named f32/i32 buffers (element counts) in one block; `free` releases it. */
function temps<N extends string>(rt: WasmRuntime, sizes: Record<N, number>): { ptr: Record<N, number>; free: () => void } {
  let total = 0;
  const ptr = {} as Record<N, number>;
  const offs: [N, number][] = [];
  for (const [n, len] of Object.entries(sizes) as [N, number][]) {
    offs.push([n, total]);
    total += Math.ceil((len * 4) / 16) * 16;
  }
  const base = rt.alloc(Math.max(16, total));
  for (const [n, o] of offs) ptr[n] = base + o;
  return { ptr, free: () => rt.free(base) };
}

/** Batches of at most this many routing slots run token by token (GEMVs, one call); larger ones as grouped GEMMs. */
export const TOKEN_PATH_SLOTS = 16;

/** Runs a token-path kernel with `floats` of workspace per thread slot; chunks split the T tokens. */
function tokenPath(rt: WasmRuntime, kernel: string, args: number[], T: number, floats: number, macsPerToken: number): void {
  const nc = chunksFor(T * macsPerToken, 1 << 17, T);
  const stride = Math.ceil((floats * 4 + 64) / 64) * 64;
  const work = rt.alloc(stride * rt.threads);
  try {
    rt.parallel(kernel, [...args, work, stride], nc);
  } finally {
    rt.free(work);
  }
}

const gmm = (rt: WasmRuntime, x: number, w: number, y: number, offsets: number, E: number, Kd: number, N: number): void =>
  K.groupedMatmul(rt, { x, w, y, offsets, E, K: Kd, N });

export const moeFfn: WasmKernel<Op.MoeFfn> = (rt, ins, _p, outs) => {
  const [x, ids, wt, gate, up, down] = ins as [WasmView, WasmView, WasmView, WasmView, WasmView, WasmView];
  const [T, H] = x.shape as [number, number];
  const Kk = ids.shape[1]!;
  const [E, , I] = gate.shape as [number, number, number];
  const y = outs[0]!;
  if (T === 0 || H === 0) return;
  if (T * Kk <= TOKEN_PATH_SLOTS) {
    countSlots(ids.data as Int32Array, E, Kk, 'moe_ffn'); // checks the ids
    tokenPath(rt, 'moe_ffn_tokens', [x.ptr, ids.ptr, wt.ptr, gate.ptr, up.ptr, down.ptr, y.ptr, T, Kk, H, I], T, 2 * I + 8, Kk * 3 * H * I);
    return;
  }
  const b = binSlots(ids.data as Int32Array, E, Kk, Infinity, 'moe_ffn');
  const N = T * Kk;
  const w = Float32Array.from(b.order, (s) => (wt.data as Float32Array)[s]!);
  const tm = temps(rt, { off: E + 1, tok: N, w: N, xs: N * H, g: N * I, u: N * I, ys: N * H });
  try {
    const p = tm.ptr;
    rt.i32(p.off, E + 1).set(b.offsets);
    rt.i32(p.tok, N).set(b.tokens);
    rt.f32(p.w, N).set(w);
    rt.parallel('nn_gather_rows', [x.ptr, p.tok, p.xs, N, H], rowChunks(rt, N, H));
    gmm(rt, p.xs, gate.ptr, p.g, p.off, E, H, I);
    gmm(rt, p.xs, up.ptr, p.u, p.off, E, H, I);
    rt.parallel('nn_swiglu_rows', [p.g, p.u, p.w, p.g, N, I], rowChunks(rt, N, I));
    gmm(rt, p.g, down.ptr, p.ys, p.off, E, I, H);
    rt.parallel('nn_scatter_add_rows', [p.ys, p.tok, y.ptr, N, T, H], rowChunks(rt, N, H));
  } finally {
    tm.free();
  }
};

/** Whether f16 storage holds no inf or NaN: scanned once per storage (until it is written again). */
function f16Finite(rt: WasmRuntime, v: WasmView): boolean {
  return v.memo('f16-finite', () => {
    const out = rt.alloc(16);
    try {
      rt.call('f16_finite', [v.ptr, v.size, out]);
      return rt.i32(out, 1)[0] === 1;
    } finally {
      rt.free(out);
    }
  });
}

export const clusteredFfn: WasmKernel<Op.ClusteredFfn> = (rt, ins, _p, outs) => {
  const [x, ids, wt, bg, bu, bd, ga, gb, ua, ub, da, db] = ins as WasmView[] as [WasmView, WasmView, WasmView, WasmView, WasmView, WasmView, WasmView, WasmView, WasmView, WasmView, WasmView, WasmView];
  const [T, H] = x.shape as [number, number];
  const Kk = ids.shape[1]!;
  const [G, , I] = bg.shape as [number, number, number];
  const [E, , R] = ga.shape as [number, number, number];
  const M = E / G;
  const y = outs[0]!;
  if (T === 0 || H === 0) return;
  if (T * Kk <= TOKEN_PATH_SLOTS) {
    countSlots(ids.data as Int32Array, E, Kk, 'clustered_ffn'); // checks the ids
    // f16 bases: 2 when all three are known finite (the kernel's faster widening), 1 otherwise
    const h16 = bg.dtype !== 'f16' ? 0 : [bg, bu, bd].every((b) => f16Finite(rt, b)) ? 2 : 1;
    const args = [x.ptr, ids.ptr, wt.ptr, bg.ptr, bu.ptr, bd.ptr, ga.ptr, gb.ptr, ua.ptr, ub.ptr, da.ptr, db.ptr, y.ptr, T, Kk, M, H, I, R, h16];
    tokenPath(rt, 'clustered_ffn_tokens', args, T, 5 * I + R + 24, 3 * H * I + Kk * 3 * R * (H + I));
    return;
  }
  const idv = Int32Array.from(ids.data as Int32Array);
  const b = binSlots(idv, E, Kk, Infinity, 'clustered_ffn');
  const N = T * Kk;
  // (token, group) pairs sorted by group (stable), as the composed clustered layer plans them
  const { groupOffsets: gOff, pairTokens, slotPair } = groupPairs(idv, b.order, Kk, E, G);
  const P = pairTokens.length;
  const cat = new Int32Array(P + N); // scatter index of [base down rows (P); low-rank down rows (N)]
  cat.set(pairTokens);
  cat.set(b.tokens, P);
  const w = Float32Array.from(b.order, (s) => (wt.data as Float32Array)[s]!);
  const rowExpert = new Int32Array(N);
  for (let e = 0; e < E; e++) rowExpert.fill(e, b.offsets[e]!, b.offsets[e + 1]!);
  // f16 bases: widened once per call into f32 temporaries for the grouped GEMMs (prefill amortises it over its rows)
  const half = bg.dtype === 'f16';
  const tm = temps(rt, {
    baseG: half ? G * H * I : 0, baseU: half ? G * H * I : 0, baseD: half ? G * I * H : 0,
    gOff: G + 1, cat: P + N, slotPair: N, rowExpert: N, w: N,
    xg: P * H, xs: N * H, gb: P * I, ub: P * I, g: N * I, u: N * I, hs: P * I, ycat: (P + N) * H,
  });
  const lrChunks = rowChunks(rt, N, R * (H + I));
  const lrStride = Math.ceil((R * 4 + 64) / 64) * 64;
  const lrWork = rt.alloc(lrStride * rt.threads);
  try {
    const p = tm.ptr;
    rt.i32(p.gOff, G + 1).set(gOff);
    rt.i32(p.cat, P + N).set(cat);
    rt.i32(p.slotPair, N).set(slotPair);
    rt.i32(p.rowExpert, N).set(rowExpert);
    rt.f32(p.w, N).set(w);
    const slotTok = p.cat + P * 4;
    const widen = (src: number, dst: number, n: number): number => {
      rt.parallel('widen_f16', [src, dst, n], rowChunks(rt, n, 1));
      return dst;
    };
    const [bgp, bup, bdp] = half ? [widen(bg.ptr, p.baseG, G * H * I), widen(bu.ptr, p.baseU, G * H * I), widen(bd.ptr, p.baseD, G * I * H)] : [bg.ptr, bu.ptr, bd.ptr];
    const lowRank = (xp: number, A: number, B: number, base: number, out: number, din: number, dout: number): void =>
      rt.parallel('lowrank_rows', [xp, A, B, base, p.slotPair, out, p.rowExpert, N, din, R, dout, lrWork, lrStride], lrChunks);
    rt.parallel('nn_gather_rows', [x.ptr, p.cat, p.xg, P, H], rowChunks(rt, P, H));
    rt.parallel('nn_gather_rows', [x.ptr, slotTok, p.xs, N, H], rowChunks(rt, N, H));
    // gate and up: x·base once per (token, group) pair as a grouped GEMM, plus (x·A_e)·B_e per slot
    gmm(rt, p.xg, bgp, p.gb, p.gOff, G, H, I);
    gmm(rt, p.xg, bup, p.ub, p.gOff, G, H, I);
    lowRank(p.xs, ga.ptr, gb.ptr, p.gb, p.g, H, I);
    lowRank(p.xs, ua.ptr, ub.ptr, p.ub, p.u, H, I);
    rt.parallel('nn_swiglu_rows', [p.g, p.u, p.w, p.g, N, I], rowChunks(rt, N, I));
    // down: the base once per pair on Σ_slots h, the low-rank terms per slot
    rt.parallel('nn_scatter_add_rows', [p.g, p.slotPair, p.hs, N, P, I], rowChunks(rt, N, I));
    gmm(rt, p.hs, bdp, p.ycat, p.gOff, G, I, H);
    lowRank(p.g, da.ptr, db.ptr, 0, p.ycat + P * H * 4, I, H);
    rt.parallel('nn_scatter_add_rows', [p.ycat, p.cat, y.ptr, P + N, T, H], rowChunks(rt, P + N, H));
  } finally {
    tm.free();
    rt.free(lrWork);
  }
};

/**
 * Softmax top-k routing on the host over the logits view: no allocation per row, selection by repeated scans (K and
 * the group count are small), ties to the lower index like the reference.
 */
export const routeTopK: WasmKernel<Op.RouteTopK> = (_rt, ins, p, outs) => {
  const L = ins[0]!.data as Float32Array;
  const [T, E] = ins[0]!.shape as [number, number];
  const { k: Kk, groups: G, topGroups: TG, renormalize } = p;
  const M = E / G;
  const W = outs[0]!.data as Float32Array;
  const ID = outs[1]!.data as Int32Array;
  const bias = ins[1] ? (ins[1].data as Float32Array) : null;
  const prob = new Float64Array(E);
  const score = bias ? new Float64Array(E) : prob; // selection: p + bias
  const gsum = new Float64Array(G);
  const allowed = new Uint8Array(E);
  const taken = new Uint8Array(Math.max(E, G));
  for (let t = 0; t < T; t++) {
    const row = t * E;
    let mx = -Infinity;
    for (let e = 0; e < E; e++) if (L[row + e]! > mx) mx = L[row + e]!;
    let s = 0;
    for (let e = 0; e < E; e++) s += (prob[e] = Math.exp(L[row + e]! - mx));
    for (let e = 0; e < E; e++) prob[e]! /= s;
    if (bias) for (let e = 0; e < E; e++) score[e] = prob[e]! + bias[e]!;
    if (TG < G) {
      gsum.fill(0);
      for (let e = 0; e < E; e++) gsum[(e / M) | 0]! += score[e]!;
      allowed.fill(0);
      taken.fill(0, 0, G);
      for (let i = 0; i < TG; i++) {
        let best = -1;
        for (let g = 0; g < G; g++) if (!taken[g] && (best < 0 || gsum[g]! > gsum[best]!)) best = g;
        taken[best] = 1;
        allowed.fill(1, best * M, (best + 1) * M);
      }
    } else allowed.fill(1);
    taken.fill(0, 0, E);
    let norm = 0;
    for (let k = 0; k < Kk; k++) {
      let best = -1;
      for (let e = 0; e < E; e++) if (allowed[e] && !taken[e] && (best < 0 || score[e]! > score[best]!)) best = e;
      taken[best] = 1;
      ID[t * Kk + k] = best;
      norm += prob[best]!;
    }
    for (let k = 0; k < Kk; k++) W[t * Kk + k] = renormalize ? prob[ID[t * Kk + k]!]! / norm : prob[ID[t * Kk + k]!]!;
  }
};
