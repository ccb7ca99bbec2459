// Neural-network webgpu kernels: RMSNorm, cross-entropy, RoPE and attention, with their gradients.
import type { BackendInput } from '../backend.js';
import { Op, type OpParams } from '../../tensor/ops.js';
import { sizeOf } from '../../tensor/shape.js';
import type { Kernel, Out } from './context.js';
import { INDEX, MAIN, bindings, f32Bits, launch, withTemps } from './wgsl.js';

// ---- RMSNorm, cross-entropy ----

const rmsNormKernel: Kernel<Op.RMSNorm> = (b, ins, p, outs) => {
  const [x, w] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  const H = w.shape[0]!;
  const rows = H === 0 ? 0 : sizeOf(x.shape) / H;
  const code = `${bindings(['f32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let H = prm[1]; let base = i * H;
  var ss = 0.0;
  for (var j = 0u; j < H; j++) { let v = in0[base + j]; ss = ss + v * v; }
  let inv = inverseSqrt(ss / f32(H) + bitcast<f32>(prm[2]));
  for (var j = 0u; j < H; j++) { out0[base + j] = in0[base + j] * inv * in1[j]; }
}`;
  launch(b, code, [x, w], [o], [rows, H, f32Bits(p.eps)], rows);
};

const rmsNormGradKernel: Kernel<Op.RMSNormGrad> = (b, ins, p, outs) => {
  const [x, w, dy] = ins as [BackendInput, BackendInput, BackendInput];
  const [dx, dw] = outs as [Out, Out];
  const H = w.shape[0]!;
  const rows = H === 0 ? 0 : sizeOf(x.shape) / H;
  const inv = `fn inv_(base: u32, H: u32) -> f32 {
  var ss = 0.0;
  for (var j = 0u; j < H; j++) { let v = in0[base + j]; ss = ss + v * v; }
  return inverseSqrt(ss / f32(H) + bitcast<f32>(prm[2]));
}`;
  const dxCode = `${bindings(['f32', 'f32', 'f32'], ['f32'])}
${inv}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let H = prm[1]; let base = i * H;
  let r = inv_(base, H);
  var dot = 0.0;
  for (var j = 0u; j < H; j++) { dot = dot + in2[base + j] * in1[j] * in0[base + j] * r; }
  dot = dot / f32(H);
  for (var j = 0u; j < H; j++) { out0[base + j] = r * (in2[base + j] * in1[j] - in0[base + j] * r * dot); }
}`;
  launch(b, dxCode, [x, w, dy], [dx], [rows, H, f32Bits(p.eps)], rows);
  // dw[j] = Σ_rows dy·x̂: one thread per column
  const dwCode = `${bindings(['f32', 'f32', 'f32'], ['f32'])}
${inv}
${MAIN} {
  ${INDEX}
  if (i >= prm[1]) { return; }
  let H = prm[1];
  var acc = 0.0;
  for (var r = 0u; r < prm[0]; r++) { acc = acc + in2[r * H + i] * in0[r * H + i] * inv_(r * H, H); }
  out0[i] = acc;
}`;
  launch(b, dwCode, [x, w, dy], [dw], [rows, H, f32Bits(p.eps)], H);
};

const crossEntropyKernel: Kernel<Op.CrossEntropy> = (b, ins, p, outs) => {
  const [logits, tg] = ins as [BackendInput, BackendInput];
  const [loss, lse] = outs as [Out, Out];
  const [N, V] = logits.shape as [number, number];
  const code = `${bindings(['f32', 'i32'], ['f32', 'f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let V = prm[1]; let base = i * V;
  var m = -3.4028234663852886e38;
  for (var v = 0u; v < V; v++) { m = max(m, in0[base + v]); }
  var s = 0.0;
  for (var v = 0u; v < V; v++) { s = s + exp(in0[base + v] - m); }
  let l = m + log(s);
  out1[i] = l;
  let t = in1[i];
  out0[i] = select(l - in0[base + u32(clamp(t, 0, i32(V) - 1))], 0.0, t == bitcast<i32>(prm[2]) || t < 0 || t >= i32(V));
}`;
  launch(b, code, [logits, tg], [loss, lse], [N, V, p.ignoreIndex >>> 0], N);
};

const crossEntropyGradKernel: Kernel<Op.CrossEntropyGrad> = (b, ins, p, outs) => {
  const [logits, tg, lse, dl] = ins as [BackendInput, BackendInput, BackendInput, BackendInput];
  const g = outs[0]!;
  const [N, V] = logits.shape as [number, number];
  const code = `${bindings(['f32', 'i32', 'f32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let V = prm[1]; let row = i / V; let col = i32(i % V);
  let t = in1[row];
  if (t == bitcast<i32>(prm[2])) { out0[i] = 0.0; return; }
  let d = in3[row];
  out0[i] = exp(in0[i] - in2[row]) * d - select(0.0, d, col == t);
}`;
  launch(b, code, [logits, tg, lse, dl], [g], [N * V, V, p.ignoreIndex >>> 0], N * V);
};

// ---- RoPE, attention ----

/**
 * sin and cos to ~1e-7: built-in sin/cos may be approximations (SwiftShader's are good to ~1e-4). Cody–Waite
 * reduction by π/2 (split in two constants), then Taylor polynomials on [-π/4, π/4] and the quadrant's swap/sign.
 */
const SINCOS = `fn sincos_(x: f32) -> vec2f {
  let q = round(x * 0.6366197723675814);
  let r = (x - q * 1.5703125) - q * 4.838267948966e-4;
  let r2 = r * r;
  let s = r + r * r2 * (-0.16666666666666666 + r2 * (0.008333333333333333 + r2 * (-0.0001984126984126984 + r2 * 2.7557319223985893e-6)));
  let c = 1.0 + r2 * (-0.5 + r2 * (0.041666666666666664 + r2 * (-0.001388888888888889 + r2 * 2.48015873015873e-5)));
  let n = i32(q) & 3;
  if (n == 0) { return vec2f(s, c); }
  if (n == 1) { return vec2f(c, -s); }
  if (n == 2) { return vec2f(-s, -c); }
  return vec2f(-c, s);
}`;

const ropeKernel: Kernel<Op.RoPE> = (b, ins, p, outs) => {
  const [x, pos, inv] = ins as [BackendInput, BackendInput, BackendInput];
  const o = outs[0]!;
  const [B, T, nH, D] = x.shape as [number, number, number, number];
  const half = inv.shape[0]!;
  const perBatch = sizeOf(pos.shape) === B * T ? 1 : 0;
  // one thread per element: rotated pairs read both partners, the rest (d >= 2·half) is copied
  const code = `${bindings(['f32', 'i32', 'f32'], ['f32'])}
${SINCOS}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let T = prm[1]; let nH = prm[2]; let D = prm[3]; let half = prm[4];
  let d = i % D; let row = i / D; let t = (row / nH) % T; let bb = row / (nH * T);
  let base = row * D;
  let interleaved = prm[5] == 1u;
  var pair = 0u; var first = true; var rotated = true;
  if (interleaved) { pair = d / 2u; first = d % 2u == 0u; rotated = d < 2u * half; }
  else { rotated = d < 2u * half; first = d < half; pair = select(d - half, d, first); }
  if (!rotated) { out0[i] = in0[i]; return; }
  let at = in1[select(t, bb * T + t, prm[6] == 1u)];
  let sc = sincos_(f32(at) * in2[pair]);
  let c = sc.y;
  let sn = select(1.0, -1.0, prm[7] == 1u) * sc.x;
  var i1 = base + pair; var i2 = base + pair + half;
  if (interleaved) { i1 = base + 2u * pair; i2 = i1 + 1u; }
  let x1 = in0[i1]; let x2 = in0[i2];
  out0[i] = select(x2 * c + x1 * sn, x1 * c - x2 * sn, first);
}`;
  launch(b, code, [x, pos, inv], [o], [sizeOf(x.shape), T, nH, D, half, p.interleaved ? 1 : 0, perBatch, p.inverse ? 1 : 0], sizeOf(x.shape));
};

/** WGSL [lo, hi) of visible keys for query i (prm: ..., T at 1, S at 5, causal at 8, window at 9). */
const KEY_RANGE = `fn keyRange_(i: u32) -> vec2i {
  let T = i32(prm[1]); let S = i32(prm[5]);
  let qpos = i32(i) + S - T;
  var hi = S;
  if (prm[8] == 1u) { hi = min(S, qpos + 1); }
  var lo = 0;
  if (prm[9] > 0u) { lo = max(0, qpos - i32(prm[9]) + 1); }
  return vec2i(lo, max(lo, hi));
}`;

function attentionMeta(q: BackendInput, k: BackendInput, v: BackendInput, p: OpParams[Op.Attention]): number[] {
  const [B, T, Hq, D] = q.shape as [number, number, number, number];
  return [B, T, Hq, D, k.shape[2]!, k.shape[1]!, v.shape[3]!, f32Bits(p.scale), p.causal ? 1 : 0, p.window];
}
// prm: 0 B, 1 T, 2 Hq, 3 D, 4 Hkv, 5 S, 6 Dv, 7 scale, 8 causal, 9 window
const ATT_DIMS = `let B = prm[0]; let T = prm[1]; let Hq = prm[2]; let D = prm[3]; let Hkv = prm[4]; let S = prm[5]; let Dv = prm[6];
  let scale = bitcast<f32>(prm[7]); let group = Hq / Hkv;`;
const NEG_INF = 'bitcast<f32>(0xff800000u | (prm[0] & 0u))'; // not a constant expression: WGSL rejects a constant -inf

/**
 * WGSL: one query row (q at qo, o at oo), an online-softmax pass (flash-style running max and sum) over keys [lo, hi),
 * key j at kBase + j·ks in in1 and its value at vBase + j·vs in in2; returns the lse (negInf when no key is visible).
 */
const ATTEND_ROW = `fn attendRow_(qo: u32, oo: u32, kBase: u32, vBase: u32, ks: u32, vs: u32, lo: i32, hi: i32, D: u32, Dv: u32, scale: f32, negInf: f32) -> f32 {
  var m = negInf; var sum = 0.0;
  for (var d = 0u; d < Dv; d++) { out0[oo + d] = 0.0; }
  for (var j = lo; j < hi; j++) {
    let ko = kBase + u32(j) * ks;
    var s = 0.0;
    for (var d = 0u; d < D; d++) { s = s + in0[qo + d] * in1[ko + d]; }
    s = s * scale;
    let mNew = max(m, s);
    let corr = exp(m - mNew);
    let w = exp(s - mNew);
    sum = sum * corr + w;
    let vo = vBase + u32(j) * vs;
    for (var d = 0u; d < Dv; d++) { out0[oo + d] = out0[oo + d] * corr + w * in2[vo + d]; }
    m = mNew;
  }
  if (sum > 0.0) {
    for (var d = 0u; d < Dv; d++) { out0[oo + d] = out0[oo + d] / sum; }
    return m + log(sum);
  }
  return negInf;
}`;

/** One thread per (b, h, i): an online-softmax pass over the visible keys (flash-style running max and sum). */
const attentionKernel: Kernel<Op.Attention> = (b, ins, p, outs) => {
  const [q, k, v] = ins as [BackendInput, BackendInput, BackendInput];
  const [o, lse] = outs as [Out, Out];
  const meta = attentionMeta(q, k, v, p);
  const [B, T, Hq] = meta as [number, number, number];
  const code = `${bindings(['f32', 'f32', 'f32'], ['f32', 'f32'])}
${KEY_RANGE}
${ATTEND_ROW}
${MAIN} {
  ${INDEX}
  ${ATT_DIMS}
  if (i >= B * Hq * T) { return; }
  let qi = i % T; let h = (i / T) % Hq; let bb = i / (T * Hq);
  let kh = h / group;
  let qo = ((bb * T + qi) * Hq + h) * D;
  let oo = ((bb * T + qi) * Hq + h) * Dv;
  let r = keyRange_(qi);
  out1[(bb * Hq + h) * T + qi] = attendRow_(qo, oo, (bb * S * Hkv + kh) * D, (bb * S * Hkv + kh) * Dv, Hkv * D, Hkv * Dv, r.x, r.y, D, Dv, scale, ${NEG_INF});
}`;
  launch(b, code, [q, k, v], [o, lse], meta, B * Hq * T);
};

/**
 * Several sequences over their slots of a KV pool: one thread per (query row, head), which finds its sequence in the
 * table (B is a batch of sequences: a short scan) and runs attentionKernel's row pass over its slot.
 */
const raggedAttentionKernel: Kernel<Op.RaggedAttention> = (b, ins, p, outs) => {
  const [q, k, v, seqs] = ins as [BackendInput, BackendInput, BackendInput, BackendInput];
  const [o, lse] = outs as [Out, Out];
  const [N, Hq, D] = q.shape as [number, number, number];
  const [, C, Hkv] = k.shape as [number, number, number];
  const Dv = v.shape[3]!;
  // prm: 0 N, 1 Hq, 2 D, 3 Hkv, 4 C, 5 Dv, 6 scale, 7 window, 8 B
  const code = `${bindings(['f32', 'f32', 'f32', 'i32'], ['f32', 'f32'])}
${ATTEND_ROW}
${MAIN} {
  ${INDEX}
  let N = prm[0]; let Hq = prm[1]; let D = prm[2]; let Hkv = prm[3]; let C = prm[4]; let Dv = prm[5];
  let scale = bitcast<f32>(prm[6]); let win = i32(prm[7]); let group = Hq / Hkv;
  if (i >= N * Hq) { return; }
  let n = i / Hq; let h = i % Hq; let kh = h / group;
  let oo = (n * Hq + h) * Dv;
  for (var d = 0u; d < Dv; d++) { out0[oo + d] = 0.0; }
  out1[n * Hq + h] = ${NEG_INF}; // a row no sequence claims
  for (var s = 0u; s < prm[8]; s++) {
    let q0 = in3[4u * s]; let rows = in3[4u * s + 1u]; let slot = u32(in3[4u * s + 2u]); let S = in3[4u * s + 3u];
    if (i32(n) < q0 || i32(n) >= q0 + rows) { continue; }
    let qpos = i32(n) - q0 + S - rows;
    let hi = min(S, qpos + 1);
    var lo = 0;
    if (win > 0) { lo = max(0, qpos - win + 1); }
    let base = slot * C * Hkv + kh;
    out1[n * Hq + h] = attendRow_((n * Hq + h) * D, oo, base * D, base * Dv, Hkv * D, Hkv * Dv, lo, hi, D, Dv, scale, ${NEG_INF});
    return;
  }
}`;
  launch(b, code, [q, k, v, seqs], [o, lse], [N, Hq, D, Hkv, C, Dv, f32Bits(p.scale), p.window, seqs.shape[0]!], N * Hq);
};

/**
 * Backward in four passes (at most 8 storage bindings each): Di = dO·O per query; dQ per (b, h, i) thread; dK and
 * dV per (b, kv head, j) thread, over the group's heads and the queries that see key j.
 */
const attentionGradKernel: Kernel<Op.AttentionGrad> = (b, ins, p, outs) => {
  const [q, k, v, o, lse, dO] = ins as [BackendInput, BackendInput, BackendInput, BackendInput, BackendInput, BackendInput];
  const [dq, dk, dv] = outs as [Out, Out, Out];
  const meta = attentionMeta(q, k, v, p);
  const [B, T, Hq, , Hkv, S] = meta as [number, number, number, number, number, number];
  withTemps(b, [B * Hq * T], ([di]) => {
    launch(b, `${bindings(['f32', 'f32'], ['f32'])}
${MAIN} {
  ${INDEX}
  ${ATT_DIMS}
  if (i >= B * Hq * T) { return; }
  let qi = i % T; let h = (i / T) % Hq; let bb = i / (T * Hq);
  let oo = ((bb * T + qi) * Hq + h) * Dv;
  var acc = 0.0;
  for (var d = 0u; d < Dv; d++) { acc = acc + in0[oo + d] * in1[oo + d]; }
  out0[i] = acc;
}`, [o, dO], [di], meta, B * Hq * T);
    // inputs of the three gradient passes: q, k, v, lse, dO, Di (Di indexed like lse)
    const score = `fn p_(qo: u32, ko: u32, D: u32, scale: f32, l: f32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < D; d++) { s = s + in0[qo + d] * in1[ko + d]; }
  return exp(s * scale - l);
}
fn dp_(oo: u32, vo: u32, Dv: u32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < Dv; d++) { s = s + in4[oo + d] * in2[vo + d]; }
  return s;
}`;
    const types = ['f32', 'f32', 'f32', 'f32', 'f32', 'f32'];
    launch(b, `${bindings(types, ['f32'])}
${KEY_RANGE}
${score}
${MAIN} {
  ${INDEX}
  ${ATT_DIMS}
  if (i >= B * Hq * T) { return; }
  let qi = i % T; let h = (i / T) % Hq; let bb = i / (T * Hq);
  let kh = h / group;
  let qo = ((bb * T + qi) * Hq + h) * D;
  let oo = ((bb * T + qi) * Hq + h) * Dv;
  for (var d = 0u; d < D; d++) { out0[qo + d] = 0.0; }
  let li = (bb * Hq + h) * T + qi;
  let l = in3[li];
  if (l == ${NEG_INF}) { return; }
  let r = keyRange_(qi);
  for (var j = r.x; j < r.y; j++) {
    let ko = ((bb * S + u32(j)) * Hkv + kh) * D;
    let vo = ((bb * S + u32(j)) * Hkv + kh) * Dv;
    let dS = p_(qo, ko, D, scale, l) * (dp_(oo, vo, Dv) - in5[li]) * scale;
    for (var d = 0u; d < D; d++) { out0[qo + d] = out0[qo + d] + dS * in1[ko + d]; }
  }
}`, [q, k, v, lse, dO, di], [dq], meta, B * Hq * T);
    const perKey = (which: 'dk' | 'dv'): string => `${bindings(types, ['f32'])}
${KEY_RANGE}
${score}
${MAIN} {
  ${INDEX}
  ${ATT_DIMS}
  if (i >= B * Hkv * S) { return; }
  let j = i % S; let kh = (i / S) % Hkv; let bb = i / (S * Hkv);
  let ko = ((bb * S + j) * Hkv + kh) * D;
  let vo = ((bb * S + j) * Hkv + kh) * Dv;
  ${which === 'dk' ? 'for (var d = 0u; d < D; d++) { out0[ko + d] = 0.0; }' : 'for (var d = 0u; d < Dv; d++) { out0[vo + d] = 0.0; }'}
  for (var h = kh * group; h < (kh + 1u) * group; h++) {
    for (var qi = 0u; qi < T; qi++) {
      let r = keyRange_(qi);
      if (i32(j) < r.x || i32(j) >= r.y) { continue; }
      let li = (bb * Hq + h) * T + qi;
      let l = in3[li];
      if (l == ${NEG_INF}) { continue; }
      let qo = ((bb * T + qi) * Hq + h) * D;
      let oo = ((bb * T + qi) * Hq + h) * Dv;
      let P = p_(qo, ko, D, scale, l);
      ${which === 'dk'
        ? `let dS = P * (dp_(oo, vo, Dv) - in5[li]) * scale;
      for (var d = 0u; d < D; d++) { out0[ko + d] = out0[ko + d] + dS * in0[qo + d]; }`
        : 'for (var d = 0u; d < Dv; d++) { out0[vo + d] = out0[vo + d] + P * in4[oo + d]; }'}
    }
  }
}`;
    launch(b, perKey('dk'), [q, k, v, lse, dO, di], [dk], meta, B * Hkv * S);
    launch(b, perKey('dv'), [q, k, v, lse, dO, di], [dv], meta, B * Hkv * S);
  });
};

export const nnKernels = {
  [Op.RMSNorm]: rmsNormKernel,
  [Op.RMSNormGrad]: rmsNormGradKernel,
  [Op.CrossEntropy]: crossEntropyKernel,
  [Op.CrossEntropyGrad]: crossEntropyGradKernel,
  [Op.RoPE]: ropeKernel,
  [Op.Attention]: attentionKernel,
  [Op.AttentionGrad]: attentionGradKernel,
  [Op.RaggedAttention]: raggedAttentionKernel,
} satisfies { [O in Op.RMSNorm | Op.RMSNormGrad | Op.CrossEntropy | Op.CrossEntropyGrad | Op.RoPE | Op.Attention | Op.AttentionGrad | Op.RaggedAttention]: Kernel<O> };
