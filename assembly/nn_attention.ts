// Fused causal attention (GQA, sliding window, KV offset): flash-style forward with online softmax over blocks of
// 4 keys, and the backward split by (batch, kv-head) so that threads never write the same dk/dv rows.
// Layout: q (B,T,Hq,D), k (B,S,Hkv,D), v (B,S,Hkv,Dv), o (B,T,Hq,Dv), lse (B,Hq,T); f32 row-major.
import { fma, hsum } from './common';
import { at, hmax, hsum4, lo, sp, vexp } from './nn_math';

/** [q·k0, q·k1, q·k2, q·k3] over n elements. */
// @ts-ignore: decorator
@inline function dot4(q: usize, k0: usize, k1: usize, k2: usize, k3: usize, n: i32): v128 {
  let a0 = sp(0), a1 = a0, a2 = a0, a3 = a0;
  let d = 0;
  for (; d + 4 <= n; d += 4) {
    const o = <usize>d << 2;
    const qv = v128.load(q + o);
    a0 = fma(qv, v128.load(k0 + o), a0);
    a1 = fma(qv, v128.load(k1 + o), a1);
    a2 = fma(qv, v128.load(k2 + o), a2);
    a3 = fma(qv, v128.load(k3 + o), a3);
  }
  let s = hsum4(a0, a1, a2, a3);
  if (d < n) {
    let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
    for (; d < n; d++) {
      const o = <usize>d << 2;
      const qd = load<f32>(q + o);
      t0 += qd * load<f32>(k0 + o);
      t1 += qd * load<f32>(k1 + o);
      t2 += qd * load<f32>(k2 + o);
      t3 += qd * load<f32>(k3 + o);
    }
    s = f32x4.add(s, f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(t0), 1, t1), 2, t2), 3, t3));
  }
  return s;
}

function dot(a: usize, b: usize, n: i32): f32 {
  let s0 = sp(0);
  let d = 0;
  for (; d + 4 <= n; d += 4) s0 = fma(v128.load(at(a, d)), v128.load(at(b, d)), s0);
  let s = hsum(s0);
  for (; d < n; d++) s += load<f32>(at(a, d)) * load<f32>(at(b, d));
  return s;
}

/** y += a * x over n elements. */
// @ts-ignore: decorator
@inline function axpy(y: usize, a: f32, x: usize, n: i32): void {
  const av = sp(a);
  let d = 0;
  for (; d + 4 <= n; d += 4) v128.store(at(y, d), fma(av, v128.load(at(x, d)), v128.load(at(y, d))));
  for (; d < n; d++) store<f32>(at(y, d), load<f32>(at(y, d)) + a * load<f32>(at(x, d)));
}

/** y += a0 x0 + a1 x1 + a2 x2 + a3 x3 over n elements (lanes of a). */
// @ts-ignore: decorator
@inline function axpy4(y: usize, a: v128, x0: usize, x1: usize, x2: usize, x3: usize, n: i32): void {
  const c0 = f32x4.splat(f32x4.extract_lane(a, 0)), c1 = f32x4.splat(f32x4.extract_lane(a, 1));
  const c2 = f32x4.splat(f32x4.extract_lane(a, 2)), c3 = f32x4.splat(f32x4.extract_lane(a, 3));
  let d = 0;
  for (; d + 4 <= n; d += 4) {
    const o = <usize>d << 2;
    let acc = v128.load(y + o);
    acc = fma(c0, v128.load(x0 + o), acc);
    acc = fma(c1, v128.load(x1 + o), acc);
    acc = fma(c2, v128.load(x2 + o), acc);
    acc = fma(c3, v128.load(x3 + o), acc);
    v128.store(y + o, acc);
  }
  if (d < n) {
    const e0 = f32x4.extract_lane(a, 0), e1 = f32x4.extract_lane(a, 1);
    const e2 = f32x4.extract_lane(a, 2), e3 = f32x4.extract_lane(a, 3);
    for (; d < n; d++) {
      const o = <usize>d << 2;
      store<f32>(y + o, load<f32>(y + o) + e0 * load<f32>(x0 + o) + e1 * load<f32>(x1 + o) + e2 * load<f32>(x2 + o) + e3 * load<f32>(x3 + o));
    }
  }
}

function scaleRow(y: usize, c: f32, n: i32): void {
  const cv = sp(c);
  let d = 0;
  for (; d + 4 <= n; d += 4) v128.store(at(y, d), f32x4.mul(v128.load(at(y, d)), cv));
  for (; d < n; d++) store<f32>(at(y, d), load<f32>(at(y, d)) * c);
}

/** Lanes [0, nk) set. */
// @ts-ignore: decorator
@inline function laneMask(nk: i32): v128 {
  return i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(nk));
}

// @ts-ignore: decorator
@inline function keyLo(i: i32, T: i32, S: i32, window: i32): i32 {
  return window > 0 ? max(0, i + S - T - window + 1) : 0;
}

// @ts-ignore: decorator
@inline function keyHi(i: i32, T: i32, S: i32, causal: i32, jlo: i32): i32 {
  return max(jlo, causal ? min(S, i + S - T + 1) : S);
}

/**
 * One query row: o (Dv) = softmax(scale q·K[jlo:jhi]ᵀ) V[jlo:jhi], online over blocks of 4 keys; returns the lse.
 * k, v point at key row 0 of this (batch, kv head); ks, vs are the byte strides between key rows.
 */
function attnRow(q: usize, k: usize, v: usize, ks: usize, vs: usize, o: usize, D: i32, Dv: i32, jlo: i32, jhi: i32, scale: f32): f32 {
  memory.fill(o, 0, <usize>Dv << 2);
  if (jhi <= jlo) return -<f32>Infinity;
  const scv = sp(scale);
  let m: f32 = -<f32>Infinity, l: f32 = 0;
  let j = jlo;
  if (((D | Dv) & 3) == 0) {
    // blocks of 8 keys: q and the o row are loaded once per 8 keys
    for (; j + 8 <= jhi; j += 8) {
      const k0 = k + <usize>j * ks, k1 = k0 + ks, k2 = k1 + ks, k3 = k2 + ks;
      const k4 = k3 + ks, k5 = k4 + ks, k6 = k5 + ks, k7 = k6 + ks;
      let a0 = sp(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
      for (let d = 0; d < D; d += 4) {
        const off = <usize>d << 2;
        const qv = v128.load(q + off);
        a0 = fma(qv, v128.load(k0 + off), a0);
        a1 = fma(qv, v128.load(k1 + off), a1);
        a2 = fma(qv, v128.load(k2 + off), a2);
        a3 = fma(qv, v128.load(k3 + off), a3);
        a4 = fma(qv, v128.load(k4 + off), a4);
        a5 = fma(qv, v128.load(k5 + off), a5);
        a6 = fma(qv, v128.load(k6 + off), a6);
        a7 = fma(qv, v128.load(k7 + off), a7);
      }
      const s0 = f32x4.mul(hsum4(a0, a1, a2, a3), scv);
      const s1 = f32x4.mul(hsum4(a4, a5, a6, a7), scv);
      const mb = hmax(f32x4.max(s0, s1));
      if (mb > m) {
        if (l > 0) {
          const c = Mathf.exp(m - mb);
          l *= c;
          scaleRow(o, c, Dv);
        }
        m = mb;
      }
      const p0 = vexp(f32x4.sub(s0, sp(m))), p1 = vexp(f32x4.sub(s1, sp(m)));
      l += hsum(f32x4.add(p0, p1));
      const v0 = v + <usize>j * vs, v1 = v0 + vs, v2 = v1 + vs, v3 = v2 + vs;
      const v4 = v3 + vs, v5 = v4 + vs, v6 = v5 + vs, v7 = v6 + vs;
      const c0 = f32x4.splat(f32x4.extract_lane(p0, 0)), c1 = f32x4.splat(f32x4.extract_lane(p0, 1));
      const c2 = f32x4.splat(f32x4.extract_lane(p0, 2)), c3 = f32x4.splat(f32x4.extract_lane(p0, 3));
      const c4 = f32x4.splat(f32x4.extract_lane(p1, 0)), c5 = f32x4.splat(f32x4.extract_lane(p1, 1));
      const c6 = f32x4.splat(f32x4.extract_lane(p1, 2)), c7 = f32x4.splat(f32x4.extract_lane(p1, 3));
      for (let d = 0; d < Dv; d += 4) {
        const off = <usize>d << 2;
        let acc = v128.load(o + off);
        acc = fma(c0, v128.load(v0 + off), acc);
        acc = fma(c1, v128.load(v1 + off), acc);
        acc = fma(c2, v128.load(v2 + off), acc);
        acc = fma(c3, v128.load(v3 + off), acc);
        acc = fma(c4, v128.load(v4 + off), acc);
        acc = fma(c5, v128.load(v5 + off), acc);
        acc = fma(c6, v128.load(v6 + off), acc);
        acc = fma(c7, v128.load(v7 + off), acc);
        v128.store(o + off, acc);
      }
    }
  }
  for (; j < jhi; j += 4) {
    const nk = min(4, jhi - j);
    const k0 = k + <usize>j * ks, v0 = v + <usize>j * vs;
    const k1 = nk > 1 ? k0 + ks : k0, k2 = nk > 2 ? k0 + 2 * ks : k0, k3 = nk > 3 ? k0 + 3 * ks : k0;
    const v1 = nk > 1 ? v0 + vs : v0, v2 = nk > 2 ? v0 + 2 * vs : v0, v3 = nk > 3 ? v0 + 3 * vs : v0;
    let s = f32x4.mul(dot4(q, k0, k1, k2, k3, D), scv);
    if (nk < 4) s = v128.bitselect(s, sp(-<f32>Infinity), laneMask(nk));
    const mb = hmax(s);
    if (mb > m) {
      if (l > 0) {
        const c = Mathf.exp(m - mb);
        l *= c;
        scaleRow(o, c, Dv);
      }
      m = mb;
    }
    const p = vexp(f32x4.sub(s, sp(m)));
    l += hsum(p);
    axpy4(o, p, v0, v1, v2, v3, Dv);
  }
  scaleRow(o, <f32>(1.0 / <f64>l), Dv);
  return <f32>(<f64>m + Math.log(<f64>l));
}

/** Attention forward; rows (b, h, i) are dealt to threads round-robin in chunks of 4 (balances the causal triangle). */
export function nn_attention(q: usize, k: usize, v: usize, o: usize, lse: usize, B: i32, T: i32, S: i32, Hq: i32, Hkv: i32,
  D: i32, Dv: i32, scale: f32, causal: i32, window: i32, tid: i32, nthreads: i32): void {
  const group = Hq / Hkv;
  const ks = <usize>Hkv * <usize>D * 4, vs = <usize>Hkv * <usize>Dv * 4;
  const total = B * Hq * T;
  for (let c = tid * 4; c < total; c += nthreads * 4) {
    const end = min(total, c + 4);
    for (let g = c; g < end; g++) {
      const i = g % T, bh = g / T;
      const h = bh % Hq, b = bh / Hq;
      const kh = h / group;
      const jlo = keyLo(i, T, S, window), jhi = keyHi(i, T, S, causal, jlo);
      const row = (b * T + i) * Hq + h;
      const kb = k + <usize>(b * S * Hkv + kh) * <usize>D * 4, vb = v + <usize>(b * S * Hkv + kh) * <usize>Dv * 4;
      const l = attnRow(q + <usize>row * <usize>D * 4, kb, vb, ks, vs, o + <usize>row * <usize>Dv * 4, D, Dv, jlo, jhi, scale);
      store<f32>(at(lse, bh * T + i), l);
    }
  }
}

/**
 * Attention of several sequences over their slots of a KV pool: seqs (B, 4) i32 of [qStart, rows, slot, length]; q
 * (N, Hq, D), k (P, C, Hkv, D), v (P, C, Hkv, Dv), o (N, Hq, Dv), lse (N, Hq). Each (row, head) is attnRow over its own
 * slot, the same arithmetic as nn_attention, so a sequence gets the bits it gets alone. Work items (sequence, head,
 * row) are dealt round-robin in chunks of 4; the caller zeroes o and fills lse with -inf for unclaimed rows.
 */
export function nn_ragged_attention(q: usize, k: usize, v: usize, o: usize, lse: usize, seqs: usize, B: i32, Hq: i32, Hkv: i32,
  C: i32, D: i32, Dv: i32, scale: f32, window: i32, tid: i32, nthreads: i32): void {
  const group = Hq / Hkv;
  const ks = <usize>Hkv * <usize>D * 4, vs = <usize>Hkv * <usize>Dv * 4;
  let g = 0;
  for (let b = 0; b < B; b++) {
    const q0 = load<i32>(seqs + (<usize>(4 * b) << 2)), rows = load<i32>(seqs + (<usize>(4 * b + 1) << 2));
    const slot = load<i32>(seqs + (<usize>(4 * b + 2) << 2)), S = load<i32>(seqs + (<usize>(4 * b + 3) << 2));
    for (let h = 0; h < Hq; h++) {
      const kh = h / group;
      const kb = k + <usize>(slot * C * Hkv + kh) * <usize>D * 4, vb = v + <usize>(slot * C * Hkv + kh) * <usize>Dv * 4;
      for (let i = 0; i < rows; i++, g++) {
        if ((g >> 2) % nthreads != tid) continue;
        const jlo = keyLo(i, rows, S, window), jhi = keyHi(i, rows, S, 1, jlo);
        const row = (q0 + i) * Hq + h;
        store<f32>(at(lse, row), attnRow(q + <usize>row * <usize>D * 4, kb, vb, ks, vs, o + <usize>row * <usize>Dv * 4, D, Dv, jlo, jhi, scale));
      }
    }
  }
}

/**
 * Attention backward: dq, dk, dv. Threads take (b, kv head) pairs, so each owns its dk/dv rows and the dq rows of the
 * query heads in that group (the wrapper runs one thread when there is a single pair).
 */
export function nn_attention_grad(q: usize, k: usize, v: usize, o: usize, lse: usize, dO: usize, dq: usize, dk: usize, dv: usize,
  B: i32, T: i32, S: i32, Hq: i32, Hkv: i32, D: i32, Dv: i32, scale: f32, causal: i32, window: i32, tid: i32, nthreads: i32): void {
  const group = Hq / Hkv;
  const ks = <usize>Hkv * <usize>D * 4, vs = <usize>Hkv * <usize>Dv * 4;
  const qs = <usize>Hq * <usize>D * 4, os = <usize>Hq * <usize>Dv * 4;
  const pairs = B * Hkv;
  const p0 = lo(pairs, 1, tid, nthreads), p1 = lo(pairs, 1, tid + 1, nthreads);
  const scv = sp(scale);
  const Db = <usize>D << 2, Dvb = <usize>Dv << 2;
  for (let pr = p0; pr < p1; pr++) {
    // batch-fastest order: chunks that run at the same time write rows far apart, not neighbouring heads' lines
    const b = pr % B, kh = pr / B;
    const kb = k + <usize>(b * S * Hkv + kh) * Db, vb = v + <usize>(b * S * Hkv + kh) * Dvb;
    const dkb = dk + <usize>(b * S * Hkv + kh) * Db, dvb = dv + <usize>(b * S * Hkv + kh) * Dvb;
    for (let j = 0; j < S; j++) {
      memory.fill(dkb + <usize>j * ks, 0, Db);
      memory.fill(dvb + <usize>j * vs, 0, Dvb);
    }
    for (let h = kh * group; h < (kh + 1) * group; h++) {
      const qb = q + <usize>(b * T * Hq + h) * Db, dqb = dq + <usize>(b * T * Hq + h) * Db;
      const ob = o + <usize>(b * T * Hq + h) * Dvb, dob = dO + <usize>(b * T * Hq + h) * Dvb;
      for (let i = 0; i < T; i++) {
        const qi = qb + <usize>i * qs, dqi = dqb + <usize>i * qs;
        const oi = ob + <usize>i * os, doi = dob + <usize>i * os;
        memory.fill(dqi, 0, Db);
        const L = load<f32>(at(lse, (b * Hq + h) * T + i));
        if (L == -<f32>Infinity) continue;
        const Di = sp(dot(doi, oi, Dv));
        const Lv = sp(L);
        const jlo = keyLo(i, T, S, window), jhi = keyHi(i, T, S, causal, jlo);
        for (let j = jlo; j < jhi; j += 4) {
          const nk = min(4, jhi - j);
          const k0 = kb + <usize>j * ks, v0 = vb + <usize>j * vs;
          const k1 = nk > 1 ? k0 + ks : k0, k2 = nk > 2 ? k0 + 2 * ks : k0, k3 = nk > 3 ? k0 + 3 * ks : k0;
          const v1 = nk > 1 ? v0 + vs : v0, v2 = nk > 2 ? v0 + 2 * vs : v0, v3 = nk > 3 ? v0 + 3 * vs : v0;
          let s = fma(dot4(qi, k0, k1, k2, k3, D), scv, f32x4.neg(Lv));
          if (nk < 4) s = v128.bitselect(s, sp(-<f32>Infinity), laneMask(nk));
          const P = vexp(s);
          const dP = dot4(doi, v0, v1, v2, v3, Dv);
          let dS = f32x4.mul(f32x4.mul(P, f32x4.sub(dP, Di)), scv);
          if (nk < 4) dS = v128.and(dS, laneMask(nk));
          axpy4(dqi, dS, k0, k1, k2, k3, D);
          const dk0 = dkb + <usize>j * ks, dv0 = dvb + <usize>j * vs;
          axpy(dv0, f32x4.extract_lane(P, 0), doi, Dv);
          axpy(dk0, f32x4.extract_lane(dS, 0), qi, D);
          if (nk > 1) {
            axpy(dv0 + vs, f32x4.extract_lane(P, 1), doi, Dv);
            axpy(dk0 + ks, f32x4.extract_lane(dS, 1), qi, D);
          }
          if (nk > 2) {
            axpy(dv0 + 2 * vs, f32x4.extract_lane(P, 2), doi, Dv);
            axpy(dk0 + 2 * ks, f32x4.extract_lane(dS, 2), qi, D);
          }
          if (nk > 3) {
            axpy(dv0 + 3 * vs, f32x4.extract_lane(P, 3), doi, Dv);
            axpy(dk0 + 3 * ks, f32x4.extract_lane(dS, 3), qi, D);
          }
        }
      }
    }
  }
}
