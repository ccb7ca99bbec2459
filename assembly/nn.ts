// SIMD128 kernels for the non-GEMM hot ops: elementwise binary/unary, softmax family, RMSNorm, cross-entropy, attention.
// Every exported kernel takes (tid, nthreads) last and does its own share of the rows; none allocates.
import { fma, hsum } from './common';
import { at, hmax, INV_SQRT_2, lo, sp, SQRT_2_OVER_PI, vexp, vgeluDeriv, vlog, vOnePlusErf, vsigmoid, vtanh } from './nn_math';
export { nn_attention, nn_attention_grad, nn_ragged_attention } from './nn_attention';


// ---------------------------------------------------------------------------------------------------------------
// elementwise binary: op 0 add, 1 sub, 2 mul, 3 div, 4 maximum (x >= y || x is NaN ? x : y)

// @ts-ignore: decorator
@inline function bop(op: i32, a: v128, b: v128): v128 {
  if (op == 0) return f32x4.add(a, b);
  if (op == 1) return f32x4.sub(a, b);
  if (op == 2) return f32x4.mul(a, b);
  if (op == 3) return f32x4.div(a, b);
  return v128.bitselect(a, b, v128.or(f32x4.ge(a, b), f32x4.ne(a, a)));
}

/** o[i] = a[i] op b[i] for i < n; mode 0 both full, 1 b scalar, 2 a scalar. */
// @ts-ignore: decorator
@inline function bspan(op: i32, mode: i32, a: usize, b: usize, o: usize, n: i32): void {
  let i = 0;
  if (mode == 0) {
    for (; i + 8 <= n; i += 8) {
      const q = <usize>i << 2;
      v128.store(o + q, bop(op, v128.load(a + q), v128.load(b + q)));
      v128.store(o + q, bop(op, v128.load(a + q, 16), v128.load(b + q, 16)), 16);
    }
    for (; i + 4 <= n; i += 4) {
      const q = <usize>i << 2;
      v128.store(o + q, bop(op, v128.load(a + q), v128.load(b + q)));
    }
    for (; i < n; i++) {
      const q = <usize>i << 2;
      store<f32>(o + q, f32x4.extract_lane(bop(op, sp(load<f32>(a + q)), sp(load<f32>(b + q))), 0));
    }
  } else if (mode == 1) {
    const bv = sp(load<f32>(b));
    for (; i + 8 <= n; i += 8) {
      const q = <usize>i << 2;
      v128.store(o + q, bop(op, v128.load(a + q), bv));
      v128.store(o + q, bop(op, v128.load(a + q, 16), bv), 16);
    }
    for (; i + 4 <= n; i += 4) {
      const q = <usize>i << 2;
      v128.store(o + q, bop(op, v128.load(a + q), bv));
    }
    for (; i < n; i++) {
      const q = <usize>i << 2;
      store<f32>(o + q, f32x4.extract_lane(bop(op, sp(load<f32>(a + q)), bv), 0));
    }
  } else {
    const av = sp(load<f32>(a));
    for (; i + 8 <= n; i += 8) {
      const q = <usize>i << 2;
      v128.store(o + q, bop(op, av, v128.load(b + q)));
      v128.store(o + q, bop(op, av, v128.load(b + q, 16)), 16);
    }
    for (; i + 4 <= n; i += 4) {
      const q = <usize>i << 2;
      v128.store(o + q, bop(op, av, v128.load(b + q)));
    }
    for (; i < n; i++) {
      const q = <usize>i << 2;
      store<f32>(o + q, f32x4.extract_lane(bop(op, av, sp(load<f32>(b + q))), 0));
    }
  }
}

function bspanOp(op: i32, mode: i32, a: usize, b: usize, o: usize, n: i32): void {
  if (mode == 0) {
    if (op == 0) bspan(0, 0, a, b, o, n);
    else if (op == 1) bspan(1, 0, a, b, o, n);
    else if (op == 2) bspan(2, 0, a, b, o, n);
    else if (op == 3) bspan(3, 0, a, b, o, n);
    else bspan(4, 0, a, b, o, n);
  } else if (mode == 1) {
    if (op == 0) bspan(0, 1, a, b, o, n);
    else if (op == 1) bspan(1, 1, a, b, o, n);
    else if (op == 2) bspan(2, 1, a, b, o, n);
    else if (op == 3) bspan(3, 1, a, b, o, n);
    else bspan(4, 1, a, b, o, n);
  } else {
    if (op == 0) bspan(0, 2, a, b, o, n);
    else if (op == 1) bspan(1, 2, a, b, o, n);
    else if (op == 2) bspan(2, 2, a, b, o, n);
    else if (op == 3) bspan(3, 2, a, b, o, n);
    else bspan(4, 2, a, b, o, n);
  }
}

/** Flat binary op over n elements: mode 0 same shape, 1 b is a scalar, 2 a is a scalar. */
export function nn_binary(op: i32, a: usize, b: usize, o: usize, n: i32, mode: i32, tid: i32, nthreads: i32): void {
  const i0 = lo(n, 64, tid, nthreads), i1 = lo(n, 64, tid + 1, nthreads);
  if (i1 <= i0) return;
  bspanOp(op, mode, mode == 2 ? a : at(a, i0), mode == 1 ? b : at(b, i0), at(o, i0), i1 - i0);
}

/** One value per row: out (rows, cols) = a (rows, cols) op b (rows) (b broadcast along each row). */
export function nn_binary_rowscalar(op: i32, a: usize, b: usize, o: usize, rows: i32, cols: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(rows, 1, tid, nthreads), r1 = lo(rows, 1, tid + 1, nthreads);
  const rb = <usize>cols << 2;
  for (let r = r0; r < r1; r++) bspanOp(op, 1, a + <usize>r * rb, b + (<usize>r << 2), o + <usize>r * rb, cols);
}
/**
 * Row-broadcast binary op: out (rows, cols); the full operand is (rows, cols), the other one row (cols)
 * repeated for every row. rowIsA: a is the repeated row (else b is).
 */
export function nn_binary_rows(op: i32, a: usize, b: usize, o: usize, rows: i32, cols: i32, rowIsA: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(rows, 1, tid, nthreads), r1 = lo(rows, 1, tid + 1, nthreads);
  const rb = <usize>cols << 2;
  for (let r = r0; r < r1; r++) {
    const off = <usize>r * rb;
    if (rowIsA) bspanOp(op, 0, a, b + off, o + off, cols);
    else bspanOp(op, 0, a + off, b, o + off, cols);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// elementwise unary: 0 neg, 1 abs, 2 sqrt, 3 rsqrt, 4 exp, 5 log, 6 sigmoid, 7 tanh, 8 silu, 9 gelu (erf), 10 gelu (tanh)

// @ts-ignore: decorator
@inline function uop(op: i32, x: v128): v128 {
  if (op == 0) return f32x4.neg(x);
  if (op == 1) return f32x4.abs(x);
  if (op == 2) return f32x4.sqrt(x);
  if (op == 3) return f32x4.div(sp(1), f32x4.sqrt(x));
  if (op == 4) return vexp(x);
  if (op == 5) return vlog(x);
  if (op == 6) return vsigmoid(x);
  if (op == 7) return vtanh(x);
  if (op == 8) return f32x4.div(x, f32x4.add(sp(1), vexp(f32x4.neg(x))));
  if (op == 9) return f32x4.mul(f32x4.mul(sp(0.5), x), vOnePlusErf(f32x4.mul(x, sp(INV_SQRT_2))));
  // x * 0.5 (1 + tanh u) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
  const u = f32x4.mul(sp(SQRT_2_OVER_PI), fma(f32x4.mul(f32x4.mul(x, x), x), sp(0.044715), x));
  return f32x4.div(x, f32x4.add(sp(1), vexp(f32x4.mul(sp(-2), u))));
}

// @ts-ignore: decorator
@inline function uspan(op: i32, x: usize, o: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const q = <usize>i << 2;
    const a = uop(op, v128.load(x + q));
    const b = uop(op, v128.load(x + q, 16));
    v128.store(o + q, a);
    v128.store(o + q, b, 16);
  }
  for (; i + 4 <= n; i += 4) {
    const q = <usize>i << 2;
    v128.store(o + q, uop(op, v128.load(x + q)));
  }
  for (; i < n; i++) {
    const q = <usize>i << 2;
    store<f32>(o + q, f32x4.extract_lane(uop(op, sp(load<f32>(x + q))), 0));
  }
}

export function nn_unary(op: i32, x: usize, o: usize, n: i32, tid: i32, nthreads: i32): void {
  const i0 = lo(n, 64, tid, nthreads), i1 = lo(n, 64, tid + 1, nthreads);
  if (i1 <= i0) return;
  x = at(x, i0);
  o = at(o, i0);
  n = i1 - i0;
  switch (op) {
    case 0: uspan(0, x, o, n); break;
    case 1: uspan(1, x, o, n); break;
    case 2: uspan(2, x, o, n); break;
    case 3: uspan(3, x, o, n); break;
    case 4: uspan(4, x, o, n); break;
    case 5: uspan(5, x, o, n); break;
    case 6: uspan(6, x, o, n); break;
    case 7: uspan(7, x, o, n); break;
    case 8: uspan(8, x, o, n); break;
    case 9: uspan(9, x, o, n); break;
    default: uspan(10, x, o, n); break;
  }
}

// @ts-ignore: decorator
@inline function ggspan(tanhApprox: bool, x: usize, dy: usize, o: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const q = <usize>i << 2;
    v128.store(o + q, f32x4.mul(v128.load(dy + q), vgeluDeriv(v128.load(x + q), tanhApprox)));
  }
  for (; i < n; i++) {
    const q = <usize>i << 2;
    store<f32>(o + q, f32x4.extract_lane(f32x4.mul(sp(load<f32>(dy + q)), vgeluDeriv(sp(load<f32>(x + q)), tanhApprox)), 0));
  }
}

/** dx = dy * gelu'(x). */
export function nn_gelu_grad(x: usize, dy: usize, o: usize, n: i32, tanhApprox: i32, tid: i32, nthreads: i32): void {
  const i0 = lo(n, 64, tid, nthreads), i1 = lo(n, 64, tid + 1, nthreads);
  if (i1 <= i0) return;
  if (tanhApprox) ggspan(true, at(x, i0), at(dy, i0), at(o, i0), i1 - i0);
  else ggspan(false, at(x, i0), at(dy, i0), at(o, i0), i1 - i0);
}

// ---------------------------------------------------------------------------------------------------------------
// rows: softmax family, RMSNorm, cross-entropy

function rowMax(x: usize, n: i32): f32 {
  let m0 = sp(-<f32>Infinity), m1 = m0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const q = <usize>i << 2;
    m0 = f32x4.max(m0, v128.load(x + q));
    m1 = f32x4.max(m1, v128.load(x + q, 16));
  }
  for (; i + 4 <= n; i += 4) m0 = f32x4.max(m0, v128.load(x + (<usize>i << 2)));
  let m = hmax(f32x4.max(m0, m1));
  for (; i < n; i++) m = max(m, load<f32>(x + (<usize>i << 2)));
  return m;
}

/** Σ e^(x - m) over the row; writes the exponentials to o when o != 0. */
function rowSumExp(x: usize, n: i32, m: f32, o: usize): f32 {
  const mv = sp(m);
  let s0 = sp(0), s1 = s0;
  let i = 0;
  if (o) {
    for (; i + 8 <= n; i += 8) {
      const q = <usize>i << 2;
      const e0 = vexp(f32x4.sub(v128.load(x + q), mv));
      const e1 = vexp(f32x4.sub(v128.load(x + q, 16), mv));
      v128.store(o + q, e0);
      v128.store(o + q, e1, 16);
      s0 = f32x4.add(s0, e0);
      s1 = f32x4.add(s1, e1);
    }
    for (; i + 4 <= n; i += 4) {
      const q = <usize>i << 2;
      const e0 = vexp(f32x4.sub(v128.load(x + q), mv));
      v128.store(o + q, e0);
      s0 = f32x4.add(s0, e0);
    }
  } else {
    for (; i + 8 <= n; i += 8) {
      const q = <usize>i << 2;
      s0 = f32x4.add(s0, vexp(f32x4.sub(v128.load(x + q), mv)));
      s1 = f32x4.add(s1, vexp(f32x4.sub(v128.load(x + q, 16), mv)));
    }
    for (; i + 4 <= n; i += 4) s0 = f32x4.add(s0, vexp(f32x4.sub(v128.load(x + (<usize>i << 2)), mv)));
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) {
    const q = <usize>i << 2;
    const e = f32x4.extract_lane(vexp(sp(load<f32>(x + q) - m)), 0);
    if (o) store<f32>(o + q, e);
    s += e;
  }
  return s;
}

/** log Σ e^x over the row (-inf for an empty or all -inf row). */
// @ts-ignore: decorator
@inline function rowLse(x: usize, n: i32): f32 {
  const m = rowMax(x, n);
  if (m == -<f32>Infinity) return m;
  return <f32>(<f64>m + Math.log(<f64>rowSumExp(x, n, m, 0)));
}

/** o (rows, n) = x + c (per-row constant add, row of n). */
function rowAddScalar(x: usize, o: usize, n: i32, c: f32): void {
  const cv = sp(c);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const q = <usize>i << 2;
    v128.store(o + q, f32x4.add(v128.load(x + q), cv));
  }
  for (; i < n; i++) store<f32>(at(o, i), load<f32>(at(x, i)) + c);
}

function rowScale(o: usize, n: i32, c: f32): void {
  const cv = sp(c);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const q = <usize>i << 2;
    v128.store(o + q, f32x4.mul(v128.load(o + q), cv));
  }
  for (; i < n; i++) store<f32>(at(o, i), load<f32>(at(o, i)) * c);
}

/** Softmax along the last axis of x (rows, n). */
export function nn_softmax(x: usize, o: usize, rows: i32, n: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(rows, 1, tid, nthreads), r1 = lo(rows, 1, tid + 1, nthreads);
  const rb = <usize>n << 2;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rb, or = o + <usize>r * rb;
    const m = rowMax(xr, n);
    const s = rowSumExp(xr, n, m, or);
    rowScale(or, n, <f32>(1.0 / <f64>s));
  }
}

/** Log-softmax along the last axis of x (rows, n). */
export function nn_log_softmax(x: usize, o: usize, rows: i32, n: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(rows, 1, tid, nthreads), r1 = lo(rows, 1, tid + 1, nthreads);
  const rb = <usize>n << 2;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rb;
    rowAddScalar(xr, o + <usize>r * rb, n, -rowLse(xr, n));
  }
}

/** o (rows) = log Σ e^x along the last axis of x (rows, n). */
export function nn_logsumexp(x: usize, o: usize, rows: i32, n: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(rows, 1, tid, nthreads), r1 = lo(rows, 1, tid + 1, nthreads);
  const rb = <usize>n << 2;
  for (let r = r0; r < r1; r++) store<f32>(at(o, r), rowLse(x + <usize>r * rb, n));
}

function rowSumSq(x: usize, n: i32): f32 {
  let s0 = sp(0), s1 = s0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const q = <usize>i << 2;
    const a = v128.load(x + q), b = v128.load(x + q, 16);
    s0 = fma(a, a, s0);
    s1 = fma(b, b, s1);
  }
  for (; i + 4 <= n; i += 4) {
    const a = v128.load(x + (<usize>i << 2));
    s0 = fma(a, a, s0);
  }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < n; i++) {
    const v = load<f32>(at(x, i));
    s += v * v;
  }
  return s;
}

// @ts-ignore: decorator
@inline function invRms(ss: f32, H: i32, eps: f32): f32 {
  return <f32>(1.0 / Math.sqrt(<f64>ss / <f64>H + <f64>eps));
}

/** o = x / rms(x) * w over rows of H. */
export function nn_rmsnorm(x: usize, w: usize, o: usize, rows: i32, H: i32, eps: f32, tid: i32, nthreads: i32): void {
  const r0 = lo(rows, 1, tid, nthreads), r1 = lo(rows, 1, tid + 1, nthreads);
  const rb = <usize>H << 2;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rb, or = o + <usize>r * rb;
    const inv = invRms(rowSumSq(xr, H), H, eps);
    const iv = sp(inv);
    let j = 0;
    for (; j + 4 <= H; j += 4) {
      const q = <usize>j << 2;
      v128.store(or + q, f32x4.mul(f32x4.mul(v128.load(xr + q), iv), v128.load(w + q)));
    }
    for (; j < H; j++) store<f32>(at(or, j), load<f32>(at(xr, j)) * inv * load<f32>(at(w, j)));
  }
}

/**
 * RMSNorm backward over rows of H: dx rows, and this thread's partial dw (H) at dwPart + tid * H * 4
 * (the wrapper sums the partials with nn_sum_rows).
 */
export function nn_rmsnorm_grad(x: usize, w: usize, dy: usize, dx: usize, dwPart: usize, rows: i32, H: i32, eps: f32,
  tid: i32, nthreads: i32): void {
  const r0 = lo(rows, 1, tid, nthreads), r1 = lo(rows, 1, tid + 1, nthreads);
  const rb = <usize>H << 2;
  const dw = dwPart + <usize>tid * rb;
  memory.fill(dw, 0, rb);
  const H4 = H & ~3;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rb, dyr = dy + <usize>r * rb, dxr = dx + <usize>r * rb;
    const inv = invRms(rowSumSq(xr, H), H, eps);
    const iv = sp(inv);
    let dot0 = sp(0);
    let j = 0;
    for (; j < H4; j += 4) {
      const q = <usize>j << 2;
      const xh = f32x4.mul(v128.load(xr + q), iv);
      const g = v128.load(dyr + q);
      v128.store(dw + q, fma(g, xh, v128.load(dw + q)));
      dot0 = fma(f32x4.mul(g, v128.load(w + q)), xh, dot0);
    }
    let dot = hsum(dot0);
    for (; j < H; j++) {
      const xh = load<f32>(at(xr, j)) * inv;
      const g = load<f32>(at(dyr, j));
      store<f32>(at(dw, j), load<f32>(at(dw, j)) + g * xh);
      dot += g * load<f32>(at(w, j)) * xh;
    }
    dot /= <f32>H;
    // dx = inv * (dy * w - x * inv * dot)
    const c = sp(inv * dot);
    j = 0;
    for (; j < H4; j += 4) {
      const q = <usize>j << 2;
      const t = f32x4.sub(f32x4.mul(v128.load(dyr + q), v128.load(w + q)), f32x4.mul(v128.load(xr + q), c));
      v128.store(dxr + q, f32x4.mul(t, iv));
    }
    for (; j < H; j++) {
      store<f32>(at(dxr, j), inv * (load<f32>(at(dyr, j)) * load<f32>(at(w, j)) - load<f32>(at(xr, j)) * inv * dot));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// row gather / scatter-add (indices were range-checked by the caller)

/** out (n, width) = table[idx[i]] row by row (4-byte elements), split over rows. */
export function nn_gather_rows(table: usize, idx: usize, out: usize, n: i32, width: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(n, 1, tid, nthreads), r1 = lo(n, 1, tid + 1, nthreads);
  const rb = <usize>width << 2;
  for (let i = r0; i < r1; i++) memory.copy(out + <usize>i * rb, table + <usize>load<i32>(idx + (<usize>i << 2)) * rb, rb);
}

/** out (rows, width) = 0, then out[idx[i]] += src[i] for i < n; split over columns so threads never collide. */
export function nn_scatter_add_rows(src: usize, idx: usize, out: usize, n: i32, rows: i32, width: i32, tid: i32, nthreads: i32): void {
  const j0 = lo(width, 4, tid, nthreads), j1 = lo(width, 4, tid + 1, nthreads);
  if (j1 <= j0) return;
  const rb = <usize>width << 2;
  const cb = <usize>(j1 - j0) << 2;
  for (let r = 0; r < rows; r++) memory.fill(out + <usize>r * rb + (<usize>j0 << 2), 0, cb);
  for (let i = 0; i < n; i++) {
    const s = src + <usize>i * rb, d = out + <usize>load<i32>(idx + (<usize>i << 2)) * rb;
    let j = j0;
    for (; j + 4 <= j1; j += 4) v128.store(at(d, j), f32x4.add(v128.load(at(d, j)), v128.load(at(s, j))));
    for (; j < j1; j++) store<f32>(at(d, j), load<f32>(at(d, j)) + load<f32>(at(s, j)));
  }
}

/** o (n) = Σ_r parts (r, n) over `rows` rows, split over n. */
export function nn_sum_rows(parts: usize, o: usize, rows: i32, n: i32, tid: i32, nthreads: i32): void {
  const j0 = lo(n, 16, tid, nthreads), j1 = lo(n, 16, tid + 1, nthreads);
  const rb = <usize>n << 2;
  let j = j0;
  for (; j + 4 <= j1; j += 4) {
    let s = sp(0);
    for (let r = 0; r < rows; r++) s = f32x4.add(s, v128.load(at(parts + <usize>r * rb, j)));
    v128.store(at(o, j), s);
  }
  for (; j < j1; j++) {
    let s: f32 = 0;
    for (let r = 0; r < rows; r++) s += load<f32>(at(parts + <usize>r * rb, j));
    store<f32>(at(o, j), s);
  }
}

/** loss (N) = lse - logits[target] (0 for ignored rows), lse (N); targets were range-checked by the caller. */
export function nn_cross_entropy(logits: usize, targets: usize, loss: usize, lse: usize, N: i32, V: i32, ignoreIndex: i32,
  tid: i32, nthreads: i32): void {
  const r0 = lo(N, 1, tid, nthreads), r1 = lo(N, 1, tid + 1, nthreads);
  const rb = <usize>V << 2;
  for (let r = r0; r < r1; r++) {
    const lr = logits + <usize>r * rb;
    const l = rowLse(lr, V);
    store<f32>(at(lse, r), l);
    const t = load<i32>(at(targets, r));
    store<f32>(at(loss, r), t == ignoreIndex ? 0 : l - load<f32>(at(lr, t)));
  }
}

/** dlogits (N, V) = (softmax(logits) - onehot(target)) * dloss; zero rows where ignored. */
export function nn_cross_entropy_grad(logits: usize, targets: usize, lse: usize, dloss: usize, g: usize, N: i32, V: i32,
  ignoreIndex: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(N, 1, tid, nthreads), r1 = lo(N, 1, tid + 1, nthreads);
  const rb = <usize>V << 2;
  for (let r = r0; r < r1; r++) {
    const lr = logits + <usize>r * rb, gr = g + <usize>r * rb;
    const t = load<i32>(at(targets, r));
    if (t == ignoreIndex) {
      memory.fill(gr, 0, rb);
      continue;
    }
    const l = load<f32>(at(lse, r));
    const d = load<f32>(at(dloss, r));
    const lv = sp(l), dv = sp(d);
    let j = 0;
    for (; j + 4 <= V; j += 4) {
      const q = <usize>j << 2;
      v128.store(gr + q, f32x4.mul(vexp(f32x4.sub(v128.load(lr + q), lv)), dv));
    }
    for (; j < V; j++) store<f32>(at(gr, j), f32x4.extract_lane(vexp(sp(load<f32>(at(lr, j)) - l)), 0) * d);
    store<f32>(at(gr, t), load<f32>(at(gr, t)) - d);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// fused MoE inference helpers (the orchestration runs in src/backend/wasm/moe.ts)

/** o (n, width) = silu(g)·u·w[row], split over rows (o may alias g or u). */
export function nn_swiglu_rows(g: usize, u: usize, w: usize, o: usize, n: i32, width: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(n, 1, tid, nthreads), r1 = lo(n, 1, tid + 1, nthreads);
  const rb = <usize>width << 2;
  for (let r = r0; r < r1; r++) {
    const gr = g + <usize>r * rb, ur = u + <usize>r * rb, orow = o + <usize>r * rb;
    const ws = load<f32>(w + (<usize>r << 2));
    const wv = sp(ws);
    let j = 0;
    for (; j + 4 <= width; j += 4) {
      const x = v128.load(at(gr, j));
      const s = f32x4.div(x, f32x4.add(sp(1), vexp(f32x4.neg(x))));
      v128.store(at(orow, j), f32x4.mul(f32x4.mul(s, v128.load(at(ur, j))), wv));
    }
    for (; j < width; j++) {
      const x = load<f32>(at(gr, j));
      const s = f32x4.extract_lane(f32x4.div(sp(x), f32x4.add(sp(1), vexp(sp(-x)))), 0);
      store<f32>(at(orow, j), s * load<f32>(at(ur, j)) * ws);
    }
  }
}

/** out[i] += src[idx[i]] for rows i < n (width f32 each), split over rows; indices were range-checked by the caller. */
export function nn_add_gathered_rows(out: usize, src: usize, idx: usize, n: i32, width: i32, tid: i32, nthreads: i32): void {
  const r0 = lo(n, 1, tid, nthreads), r1 = lo(n, 1, tid + 1, nthreads);
  const rb = <usize>width << 2;
  for (let r = r0; r < r1; r++) {
    const d = out + <usize>r * rb, s = src + <usize>load<i32>(idx + (<usize>r << 2)) * rb;
    let j = 0;
    for (; j + 4 <= width; j += 4) v128.store(at(d, j), f32x4.add(v128.load(at(d, j)), v128.load(at(s, j))));
    for (; j < width; j++) store<f32>(at(d, j), load<f32>(at(d, j)) + load<f32>(at(s, j)));
  }
}
