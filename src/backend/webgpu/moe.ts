// MoE webgpu kernels: grouped matmul and its weight gradient, expert bins, routing, fused MoE / clustered FFNs.
import type { BackendInput } from '../backend.js';
import { Op } from '../../tensor/ops.js';
import { sizeOf } from '../../tensor/shape.js';
import type { Kernel, Out } from './context.js';
import { HALF, INDEX, MAIN, bindings, boundAs, launch, loadElem, withTemps } from './wgsl.js';

// ---- grouped matmul ----

/** The expert of row t from offsets (binary search): WGSL helper reading the offsets binding `off`. */
const SEGMENT = (off: string) => `fn segment_(t: u32, E: u32) -> u32 {
  var lo = 0u; var hi = E;
  while (hi - lo > 1u) { let mid = (lo + hi) / 2u; if (u32(${off}[mid]) <= t) { lo = mid; } else { hi = mid; } }
  return lo;
}`;

/** One thread per output element (t, n): the row's expert from the offsets, then a dot product with its W_e column. */
const groupedMatmulKernel: Kernel<Op.GroupedMatmul> = (b, ins, p, outs) => {
  const [x, w, off] = ins as [BackendInput, BackendInput, BackendInput];
  const o = outs[0]!;
  const [T, K] = x.shape as [number, number];
  const N = o.shape[1]!;
  const E = off.shape[0]! - 1;
  const wAt = p.transW ? 'in1[e * N * K + n * K + k]' : 'in1[e * K * N + k * N + n]';
  const code = `${bindings(['f32', 'f32', 'i32'], ['f32'])}
${SEGMENT('in2')}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let K = prm[1]; let N = prm[2]; let E = prm[3];
  let t = i / N; let n = i % N;
  let e = segment_(t, E);
  var acc = 0.0;
  for (var k = 0u; k < K; k++) { acc = acc + in0[t * K + k] * ${wAt}; }
  out0[i] = acc;
}`;
  launch(b, code, [x, w, off], [o], [T * N, K, N, E], T * N);
};

/** dW_e (K, N) = x_eᵀ·dy_e: one thread per weight element, summing over the expert's rows. */
const groupedMatmulWeightGradKernel: Kernel<Op.GroupedMatmulWeightGrad> = (b, ins, p, outs) => {
  const [x, dy, off] = ins as [BackendInput, BackendInput, BackendInput];
  const o = outs[0]!;
  const K = x.shape[1]!;
  const N = dy.shape[1]!;
  const E = off.shape[0]! - 1;
  // element (e, k, n) of the (E, K, N) layout, or (e, n, k) of the transposed one
  const decode = p.transW ? 'let e = i / (N * K); let n = (i / K) % N; let k = i % K;' : 'let e = i / (K * N); let k = (i / N) % K; let n = i % N;';
  const code = `${bindings(['f32', 'f32', 'i32'], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let K = prm[1]; let N = prm[2];
  ${decode}
  var acc = 0.0;
  for (var t = u32(in2[e]); t < u32(in2[e + 1u]); t++) { acc = acc + in0[t * K + k] * in1[t * N + n]; }
  out0[i] = acc;
}`;
  launch(b, code, [x, dy, off], [o], [E * K * N, K, N], E * K * N);
};

// ---- expert bins (device-side dispatch bookkeeping) ----

/**
 * Offsets: one thread per expert counts the slots of lower experts (O(N·E) total); order/tokens: one thread per
 * slot, its sorted row = offsets[e] + the earlier slots with the same expert (stable, O(N²) total).
 */
const expertBinsKernel: Kernel<Op.ExpertBins> = (b, ins, p, outs) => {
  const ids = ins[0]!;
  const [order, tokens, offsets] = outs as [Out, Out, Out];
  const N = sizeOf(ids.shape);
  const K = ids.shape[1]!;
  const E = p.experts;
  launch(b, `${bindings(['i32'], ['i32'])}
${MAIN} {
  ${INDEX}
  if (i > prm[1]) { return; }
  var c = 0;
  for (var s = 0u; s < prm[0]; s++) { if (in0[s] < i32(i)) { c = c + 1; } }
  out0[i] = c;
}`, [ids], [offsets], [N, E], E + 1);
  launch(b, `${bindings(['i32', 'i32'], ['i32', 'i32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let e = in0[i];
  var r = in1[u32(clamp(e, 0, i32(prm[1])))];
  for (var s = 0u; s < i; s++) { if (in0[s] == e) { r = r + 1; } }
  out0[u32(r)] = i32(i); out1[u32(r)] = i32(i / prm[2]);
}`, [ids, offsets], [order, tokens], [N, E, K], N);
};

// ---- fused MoE routing ----

/**
 * One thread per token: softmax, the top groups by summed selection score (a bitmask, G <= 32), then top-k inside
 * them. The score is the probability, plus the bias (in1) when there is one; the weights are the probabilities.
 */
const routeTopKKernel: Kernel<Op.RouteTopK> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const [w, ids] = outs as [Out, Out];
  const [T, E] = x.shape as [number, number];
  if (p.groups > 32) throw new Error(`webgpu: route_topk supports at most 32 groups, got ${p.groups}`);
  const biased = ins.length > 1;
  const sc = (e: string): string => (biased ? `(exp(in0[base + ${e}] - m) / s + in1[${e}])` : `(exp(in0[base + ${e}] - m) / s)`);
  const code = `${bindings(biased ? ['f32', 'f32'] : ['f32'], ['f32', 'i32'])}
${MAIN} {
  ${INDEX}
  let T = prm[0]; let E = prm[1]; let K = prm[2]; let G = prm[3]; let TG = prm[4];
  if (i >= T) { return; }
  let M = E / G; let base = i * E;
  var m = -3.4028234663852886e38;
  for (var e = 0u; e < E; e++) { m = max(m, in0[base + e]); }
  var s = 0.0;
  for (var e = 0u; e < E; e++) { s = s + exp(in0[base + e] - m); }
  var allowed = 0xffffffffu;
  if (TG < G) {
    allowed = 0u;
    var pv = 0.0; var pg = -1;
    for (var j = 0u; j < TG; j++) {
      var bv = 0.0; var bg = -1;
      for (var g = 0u; g < G; g++) {
        var gs = 0.0;
        for (var e = g * M; e < (g + 1u) * M; e++) { gs = gs + ${sc('e')}; }
        let gi = i32(g);
        let below = pg < 0 || gs < pv || (gs == pv && gi > pg);
        if (below && (bg < 0 || gs > bv)) { bv = gs; bg = gi; }
      }
      allowed = allowed | (1u << u32(bg));
      pv = bv; pg = bg;
    }
  }
  var pv = 0.0; var pe = -1; var norm = 0.0;
  for (var k = 0u; k < K; k++) {
    var bv = 0.0; var be = -1;
    for (var e = 0u; e < E; e++) {
      if ((allowed & (1u << (e / M))) == 0u) { continue; }
      let v = ${sc('e')};
      let ei = i32(e);
      let below = pe < 0 || v < pv || (v == pv && ei > pe);
      if (below && (be < 0 || v > bv)) { bv = v; be = ei; }
    }
    let pb = exp(in0[base + u32(be)] - m) / s;
    out0[i * K + k] = pb; out1[i * K + k] = be;
    norm = norm + pb;
    pv = bv; pe = be;
  }
  if (prm[5] == 1u) { for (var k = 0u; k < K; k++) { out0[i * K + k] = out0[i * K + k] / norm; } }
}`;
  launch(b, code, ins, [w, ids], [T, E, p.k, p.groups, p.topGroups, p.renormalize ? 1 : 0], T);
};

// ---- fused MoE FFNs (inference): a few passes over temporaries, one thread per output element ----

const SILU_W = 'fn swiglu_(g: f32, u: f32, w: f32) -> f32 { return g / (1.0 + exp(-g)) * u * w; }';

const moeFfnKernel: Kernel<Op.MoeFfn> = (b, ins, _p, outs) => {
  const [x, ids, wt, gate, up, down] = ins as [BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput];
  const y = outs[0]!;
  const [T, H] = x.shape as [number, number];
  const K = ids.shape[1]!;
  const [E, , I] = gate.shape as [number, number, number];
  const meta = [T, K, E, H, I];
  const dims = 'let T = prm[0]; let K = prm[1]; let E = prm[2]; let H = prm[3]; let I = prm[4];';
  withTemps(b, [T * K * I], ([h]) => {
    // h[s, i] = silu(x_t·gate_e[:, i])·(x_t·up_e[:, i])·w_s (an id outside [0, E) gives 0)
    launch(b, `${bindings(['f32', 'i32', 'f32', 'f32', 'f32'], ['f32'])}
${SILU_W}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * I) { return; }
  let s = i / I; let c = i % I; let t = s / K;
  let e = in1[s];
  if (e < 0 || e >= i32(E)) { out0[i] = 0.0; return; }
  let wo = u32(e) * H * I;
  var g = 0.0; var u = 0.0;
  for (var k = 0u; k < H; k++) { let xv = in0[t * H + k]; g = g + xv * in3[wo + k * I + c]; u = u + xv * in4[wo + k * I + c]; }
  out0[i] = swiglu_(g, u, in2[s]);
}`, [x, ids, wt, gate, up], [h], meta, T * K * I);
    // y[t, j] = Σ_k h[t·K + k]·down_e[:, j]
    launch(b, `${bindings(['f32', 'i32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * H) { return; }
  let t = i / H; let j = i % H;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) {
    let s = t * K + k; let e = in1[s];
    if (e < 0 || e >= i32(E)) { continue; }
    let wo = u32(e) * I * H;
    for (var c = 0u; c < I; c++) { acc = acc + in0[s * I + c] * in2[wo + c * H + j]; }
  }
  out0[i] = acc;
}`, [h, ids, down], [y], meta, T * H);
  });
};

const clusteredFfnKernel: Kernel<Op.ClusteredFfn> = (b, ins, _p, outs) => {
  const [x, ids, wt, bg, bu, bd, ga, gb, ua, ub, da, db] = ins as BackendInput[] as [BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput];
  const y = outs[0]!;
  const [T, H] = x.shape as [number, number];
  const K = ids.shape[1]!;
  const [G, , I] = bg.shape as [number, number, number];
  const [E, , R] = ga.shape as [number, number, number];
  const meta = [T, K, E, H, I, R, E / G];
  const dims = 'let T = prm[0]; let K = prm[1]; let E = prm[2]; let H = prm[3]; let I = prm[4]; let R = prm[5]; let M = prm[6];';
  const bad = 'e < 0 || e >= i32(E)';
  // f16 bases are bound as packed u32 words and widened per element
  const bt = bg.dtype;
  const half = bt === 'f16' ? HALF : '';
  const baseAt = (j: string): string => loadElem('in2', bt, j);
  withTemps(b, [T * K * R, T * K * R, T * K * I, T * K * I, T * K * R], ([xg, xu, h, u, hd]) => {
    // low-rank inputs: xg[s, c] = x_t·gateA_e[:, c], xu[s, c] = x_t·upA_e[:, c]
    launch(b, `${bindings(['f32', 'i32', 'f32', 'f32'], ['f32', 'f32'])}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * R) { return; }
  let s = i / R; let c = i % R; let t = s / K; let e = in1[s];
  if (${bad}) { out0[i] = 0.0; out1[i] = 0.0; return; }
  let ao = u32(e) * H * R;
  var g = 0.0; var u = 0.0;
  for (var k = 0u; k < H; k++) { let xv = in0[t * H + k]; g = g + xv * in2[ao + k * R + c]; u = u + xv * in3[ao + k * R + c]; }
  out0[i] = g; out1[i] = u;
}`, [x, ids, ga, ua], [xg, xu], meta, T * K * R);
    // pre-activations: h = x·base_gate + xg·gateB, then u = x·base_up + xu·upB, then h = silu(h)·u·w
    // (three passes: at most 8 storage bindings per stage on common adapters)
    const pre = (base: BackendInput, fB: BackendInput, xa: Out, out: Out): void => launch(b, `${bindings(['f32', 'i32', boundAs(bt), 'f32', 'f32'], ['f32'])}
${half}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * I) { return; }
  let s = i / I; let c = i % I; let t = s / K; let e = in1[s];
  if (${bad}) { out0[i] = 0.0; return; }
  let bo = (u32(e) / M) * H * I;
  var g = 0.0;
  for (var k = 0u; k < H; k++) { g = g + in0[t * H + k] * ${baseAt('bo + k * I + c')}; }
  let fo = u32(e) * R * I;
  for (var r = 0u; r < R; r++) { g = g + in4[s * R + r] * in3[fo + r * I + c]; }
  out0[i] = g;
}`, [x, ids, base, fB, xa], [out], meta, T * K * I);
    pre(bg, gb, xg, h);
    pre(bu, ub, xu, u);
    launch(b, `${bindings(['f32', 'f32'], ['f32'])}
${SILU_W}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * I) { return; }
  out0[i] = swiglu_(out0[i], in0[i], in1[i / I]);
}`, [u, wt], [h], meta, T * K * I);
    // hd[s, c] = h_s·downA_e[:, c]
    launch(b, `${bindings(['f32', 'i32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * K * R) { return; }
  let s = i / R; let c = i % R; let e = in1[s];
  if (${bad}) { out0[i] = 0.0; return; }
  let ao = u32(e) * I * R;
  var acc = 0.0;
  for (var k = 0u; k < I; k++) { acc = acc + in0[s * I + k] * in2[ao + k * R + c]; }
  out0[i] = acc;
}`, [h, ids, da], [hd], meta, T * K * R);
    // y[t, j] = Σ_k h_s·base_down[:, j] + hd_s·downB_e[:, j]
    launch(b, `${bindings(['f32', 'i32', boundAs(bt), 'f32', 'f32'], ['f32'])}
${half}
${MAIN} {
  ${INDEX}
  ${dims}
  if (i >= T * H) { return; }
  let t = i / H; let j = i % H;
  var acc = 0.0;
  for (var k = 0u; k < K; k++) {
    let s = t * K + k; let e = in1[s];
    if (${bad}) { continue; }
    let bo = (u32(e) / M) * I * H;
    for (var c = 0u; c < I; c++) { acc = acc + in0[s * I + c] * ${baseAt('bo + c * H + j')}; }
    let fo = u32(e) * R * H;
    for (var r = 0u; r < R; r++) { acc = acc + in3[s * R + r] * in4[fo + r * H + j]; }
  }
  out0[i] = acc;
}`, [h, ids, bd, hd, db], [y], meta, T * H);
  });
};

export const moeKernels = {
  [Op.GroupedMatmul]: groupedMatmulKernel,
  [Op.GroupedMatmulWeightGrad]: groupedMatmulWeightGradKernel,
  [Op.ExpertBins]: expertBinsKernel,
  [Op.RouteTopK]: routeTopKKernel,
  [Op.MoeFfn]: moeFfnKernel,
  [Op.ClusteredFfn]: clusteredFfnKernel,
} satisfies { [O in Op.GroupedMatmul | Op.GroupedMatmulWeightGrad | Op.ExpertBins | Op.RouteTopK | Op.MoeFfn | Op.ClusteredFfn]: Kernel<O> };
