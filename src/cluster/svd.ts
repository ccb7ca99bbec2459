// Singular value decomposition (one-sided Jacobi, float64 on the host) and the truncated low-rank factors
// that structured compression initialises residuals with.

export interface Svd {
  /** m × k column-major-free row-major left singular vectors: U[i·k + j] */
  U: Float64Array;
  /** k singular values, descending */
  S: Float64Array;
  /** n × k right singular vectors: V[i·k + j] */
  V: Float64Array;
  m: number;
  n: number;
  k: number;
}

/**
 * Thin SVD of a row-major m × n matrix A = U·diag(S)·Vᵀ with k = min(m, n), singular values descending.
 * One-sided Jacobi (Hestenes): orthogonalises the columns of A·V by plane rotations until every pair is
 * orthogonal to `tol` (relative), then S = column norms. Accurate to working precision; O(sweeps · m · n²).
 */
export function svd(a: ArrayLike<number>, m: number, n: number, opts: { tol?: number; maxSweeps?: number } = {}): Svd {
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 1 || n < 1) throw new RangeError(`svd: shape ${m} × ${n} must be positive integers`);
  if (a.length !== m * n) throw new RangeError(`svd: ${a.length} values for a ${m} × ${n} matrix (expected ${m * n})`);
  if (m < n) {
    // A = U S Vᵀ  <=>  Aᵀ = V S Uᵀ
    const t = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
    const r = svd(t, n, m, opts);
    return { U: r.V, S: r.S, V: r.U, m, n, k: r.k };
  }
  const tol = opts.tol ?? 1e-12;
  const maxSweeps = opts.maxSweeps ?? 60;
  // work on columns: W (n columns of length m), column-major for cache-friendly rotations
  const W = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) W[j * m + i] = a[i * n + j]!;
  const Vc = new Float64Array(n * n); // column-major V
  for (let j = 0; j < n; j++) Vc[j * n + j] = 1;
  for (let i = 0; i < W.length; i++) if (!Number.isFinite(W[i]!)) throw new RangeError(`svd: value ${W[i]} at flat index ${i} is not finite`);
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      const op = p * m;
      for (let q = p + 1; q < n; q++) {
        const oq = q * m;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const x = W[op + i]!;
          const y = W[oq + i]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= tol * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = W[op + i]!;
          const y = W[oq + i]!;
          W[op + i] = c * x - s * y;
          W[oq + i] = s * x + c * y;
        }
        const vp = p * n;
        const vq = q * n;
        for (let i = 0; i < n; i++) {
          const x = Vc[vp + i]!;
          const y = Vc[vq + i]!;
          Vc[vp + i] = c * x - s * y;
          Vc[vq + i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = Array.from({ length: n }, (_, j) => {
    let s = 0;
    for (let i = 0; i < m; i++) s += W[j * m + i]! ** 2;
    return Math.sqrt(s);
  });
  const order = norms.map((_, j) => j).sort((x, y) => norms[y]! - norms[x]! || x - y);
  const k = n;
  const U = new Float64Array(m * k);
  const S = new Float64Array(k);
  const V = new Float64Array(n * k);
  order.forEach((j, c) => {
    const sv = norms[j]!;
    S[c] = sv;
    for (let i = 0; i < m; i++) U[i * k + c] = sv > 0 ? W[j * m + i]! / sv : 0;
    for (let i = 0; i < n; i++) V[i * k + c] = Vc[j * n + i]!;
  });
  return { U, S, V, m, n, k };
}

/**
 * Rank-r factors of a row-major m × n matrix: A (m × r) and B (r × n) with A·B the best rank-r approximation
 * (Eckart–Young), the singular values split evenly (A = U·√S, B = √S·Vᵀ) so both factors have similar scale.
 * r may exceed min(m, n); the extra columns are zero. Returns float32 arrays and the relative Frobenius error.
 */
export function lowRankFactors(a: ArrayLike<number>, m: number, n: number, r: number): { A: Float32Array; B: Float32Array; relError: number } {
  if (!Number.isInteger(r) || r < 1) throw new RangeError(`lowRankFactors: rank ${r} must be a positive integer`);
  const d = svd(a, m, n);
  const A = new Float32Array(m * r);
  const B = new Float32Array(r * n);
  const kk = Math.min(r, d.k);
  let total = 0;
  let kept = 0;
  for (let c = 0; c < d.k; c++) {
    total += d.S[c]! ** 2;
    if (c < kk) kept += d.S[c]! ** 2;
  }
  for (let c = 0; c < kk; c++) {
    const s = Math.sqrt(d.S[c]!);
    for (let i = 0; i < m; i++) A[i * r + c] = d.U[i * d.k + c]! * s;
    for (let j = 0; j < n; j++) B[c * n + j] = s * d.V[j * d.k + c]!;
  }
  return { A, B, relError: total > 0 ? Math.sqrt(Math.max(0, total - kept) / total) : 0 };
}

/**
 * Rank-r factors like `lowRankFactors`, computed by a randomized range finder (Halko, Martinsson & Tropp 2011):
 * Q = orth((A·Aᵀ)^q·A·Ω) with Ω Gaussian n × (r + oversample), then the exact SVD of the small Qᵀ·A. Close to
 * the optimal rank-r error (within a few percent for q = 4) at O(m·n·(r + p)·q) instead of O(m·n²) per sweep;
 * falls back to the exact SVD when r + oversample reaches min(m, n). Deterministic for a given seed.
 */
export function fastLowRankFactors(a: ArrayLike<number>, m: number, n: number, r: number, opts: { oversample?: number; powerIters?: number; seed?: number } = {}): { A: Float32Array; B: Float32Array; relError: number } {
  if (!Number.isInteger(r) || r < 1) throw new RangeError(`fastLowRankFactors: rank ${r} must be a positive integer`);
  if (a.length !== m * n) throw new RangeError(`fastLowRankFactors: ${a.length} values for a ${m} × ${n} matrix (expected ${m * n})`);
  const k = Math.min(m, n, r + (opts.oversample ?? 8));
  if (k >= Math.min(m, n)) return lowRankFactors(a, m, n, r);
  let seed = (opts.seed ?? 0x9e3779b9) >>> 0;
  const gauss = (): number => {
    // xorshift32 + Box-Muller: self-contained so this stays a pure function of its inputs
    const u = (): number => {
      seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
      return (seed + 0.5) / 4294967296;
    };
    return Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  };
  const A = Float64Array.from(a);
  // Y = A·Ω (m × k)
  const mulA = (X: Float64Array): Float64Array => { // (n × k) -> (m × k)
    const Y = new Float64Array(m * k);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      const v = A[i * n + j]!;
      if (v === 0) continue;
      for (let c = 0; c < k; c++) Y[i * k + c]! += v * X[j * k + c]!;
    }
    return Y;
  };
  const mulAt = (Y: Float64Array): Float64Array => { // (m × k) -> (n × k)
    const X = new Float64Array(n * k);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      const v = A[i * n + j]!;
      if (v === 0) continue;
      for (let c = 0; c < k; c++) X[j * k + c]! += v * Y[i * k + c]!;
    }
    return X;
  };
  const orth = (Y: Float64Array, rows: number): Float64Array => { // modified Gram-Schmidt on the k columns, twice
    for (let pass = 0; pass < 2; pass++) for (let c = 0; c < k; c++) {
      for (let p = 0; p < c; p++) {
        let d = 0;
        for (let i = 0; i < rows; i++) d += Y[i * k + c]! * Y[i * k + p]!;
        for (let i = 0; i < rows; i++) Y[i * k + c]! -= d * Y[i * k + p]!;
      }
      let s = 0;
      for (let i = 0; i < rows; i++) s += Y[i * k + c]! ** 2;
      s = Math.sqrt(s);
      for (let i = 0; i < rows; i++) Y[i * k + c] = s > 1e-300 ? Y[i * k + c]! / s : 0;
    }
    return Y;
  };
  const omega = Float64Array.from({ length: n * k }, gauss);
  let Q = orth(mulA(omega), m);
  for (let q = 0; q < (opts.powerIters ?? 4); q++) Q = orth(mulA(orth(mulAt(Q), n)), m);
  const Bt = mulAt(Q); // (n × k) = Aᵀ·Q, i.e. (Qᵀ·A)ᵀ
  const Bs = new Float64Array(k * n); // Qᵀ·A (k × n)
  for (let j = 0; j < n; j++) for (let c = 0; c < k; c++) Bs[c * n + j] = Bt[j * k + c]!;
  const d = svd(Bs, k, n); // Qᵀ·A = Ub·S·Vᵀ, so A ≈ (Q·Ub)·S·Vᵀ
  const rr = Math.min(r, d.k);
  const outA = new Float32Array(m * r);
  const outB = new Float32Array(r * n);
  let total = 0;
  for (let i = 0; i < A.length; i++) total += A[i]! ** 2;
  let kept = 0;
  for (let c = 0; c < rr; c++) {
    kept += d.S[c]! ** 2;
    const s = Math.sqrt(d.S[c]!);
    for (let i = 0; i < m; i++) {
      let u = 0;
      for (let p = 0; p < k; p++) u += Q[i * k + p]! * d.U[p * d.k + c]!;
      outA[i * r + c] = u * s;
    }
    for (let j = 0; j < n; j++) outB[c * n + j] = s * d.V[j * d.k + c]!;
  }
  return { A: outA, B: outB, relError: total > 0 ? Math.sqrt(Math.max(0, total - kept) / total) : 0 };
}
