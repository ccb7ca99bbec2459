// SVD against reconstruction and orthogonality; rank-r factors against the Eckart–Young optimum; the randomized
// factors against the exact ones.
import { describe, expect, it } from 'vitest';
import { fastLowRankFactors, lowRankFactors, svd } from '../../src/cluster/svd.js';
import { Rng } from '../../src/tensor/random.js';

const randomMatrix = (m: number, n: number, seed: number): Float64Array => {
  const r = new Rng(seed);
  return Float64Array.from({ length: m * n }, () => r.normal());
};

describe('svd', () => {
  for (const [m, n] of [[7, 5], [5, 7], [16, 16], [1, 4], [30, 3]] as const) {
    it(`${m} × ${n}: U·S·Vᵀ reconstructs A, U and V are orthonormal, S descends`, () => {
      const a = randomMatrix(m, n, m * 31 + n);
      const d = svd(a, m, n);
      const k = Math.min(m, n);
      expect(d.k).toBe(k);
      let err = 0;
      let norm = 0;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let q = 0; q < k; q++) s += d.U[i * k + q]! * d.S[q]! * d.V[j * k + q]!;
          err = Math.max(err, Math.abs(s - a[i * n + j]!));
          norm = Math.max(norm, Math.abs(a[i * n + j]!));
        }
      }
      expect(err / norm).toBeLessThan(1e-12);
      for (const [M, rows] of [[d.U, m], [d.V, n]] as const) {
        for (let p = 0; p < k; p++) {
          for (let q = 0; q < k; q++) {
            let s = 0;
            for (let i = 0; i < rows; i++) s += M[i * k + p]! * M[i * k + q]!;
            expect(Math.abs(s - (p === q ? 1 : 0))).toBeLessThan(1e-10);
          }
        }
      }
      for (let q = 1; q < k; q++) expect(d.S[q]!).toBeLessThanOrEqual(d.S[q - 1]! + 1e-12);
    });
  }

  it('recovers known singular values of a constructed matrix (rank deficient too)', () => {
    // A = Σ σ_q u_q v_qᵀ with orthonormal u (coordinate axes, permuted) and v (a rotation)
    const sig = [5, 3, 0.5, 0];
    const m = 6;
    const n = 4;
    const c = Math.cos(0.3);
    const s = Math.sin(0.3);
    const V = [[c, -s, 0, 0], [s, c, 0, 0], [0, 0, c, s], [0, 0, -s, c]]; // columns orthonormal
    const rows = [4, 0, 2, 5];
    const a = new Float64Array(m * n);
    sig.forEach((sv, q) => {
      for (let j = 0; j < n; j++) a[rows[q]! * n + j]! += sv * V[j]![q]!;
    });
    const d = svd(a, m, n);
    sig.forEach((sv, q) => expect(Math.abs(d.S[q]! - sv)).toBeLessThan(1e-12));
  });

  it('rejects bad shapes with the values named', () => {
    expect(() => svd([1, 2, 3], 2, 2)).toThrow('3 values for a 2 × 2 matrix (expected 4)');
    expect(() => svd([], 0, 2)).toThrow('shape 0 × 2 must be positive integers');
  });
});

describe('rank-r factors', () => {
  it('A·B is the best rank-r approximation: its error is the tail of the singular values (Eckart–Young)', () => {
    const [m, n, r] = [12, 9, 3];
    const a = randomMatrix(m, n, 5);
    const d = svd(a, m, n);
    const f = lowRankFactors(a, m, n, r);
    let tail = 0;
    let total = 0;
    for (let q = 0; q < d.k; q++) {
      total += d.S[q]! ** 2;
      if (q >= r) tail += d.S[q]! ** 2;
    }
    expect(Math.abs(f.relError - Math.sqrt(tail / total))).toBeLessThan(1e-6);
    let err = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < r; q++) s += f.A[i * r + q]! * f.B[q * n + j]!;
        err += (s - a[i * n + j]!) ** 2;
      }
    }
    expect(Math.abs(Math.sqrt(err / total) - f.relError)).toBeLessThan(1e-5);
    expect(lowRankFactors(a, m, n, n).relError).toBeLessThan(1e-6);
  });

  it('the randomized factors come within 1% of the optimal error (and are exact for low-rank input)', () => {
    const [m, n, r] = [96, 64, 6];
    const a = randomMatrix(m, n, 9);
    const exact = lowRankFactors(a, m, n, r);
    const fast = fastLowRankFactors(a, m, n, r, { seed: 3 });
    expect(fast.relError).toBeGreaterThanOrEqual(exact.relError - 1e-6);
    expect(fast.relError).toBeLessThan(exact.relError * 1.01);
    // exactly rank 4: both recover it
    const u = randomMatrix(m, 4, 1);
    const v = randomMatrix(4, n, 2);
    const low = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let q = 0; q < 4; q++) low[i * n + j]! += u[i * 4 + q]! * v[q * n + j]!;
    expect(fastLowRankFactors(low, m, n, 4).relError).toBeLessThan(1e-5);
    expect(() => fastLowRankFactors(low, m, n, 0)).toThrow('rank 0 must be a positive integer');
  });
});
