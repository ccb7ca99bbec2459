// The js reference kernels checked against independent compositions of simpler ops and known values.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../../src/index.js';
import { maxAbsDiff } from '../../helpers/compare.js';

const rng = new mk.Rng(99);
const rnd = (shape: number[], std = 1): mk.Tensor => mk.randn(shape, rng, std);

beforeAll(async () => {
  await mk.setBackend('js');
});

describe('js kernels against compositions', () => {
  it('matmul: known product, transposes and bias', () => {
    const a = mk.tensor([[1, 2], [3, 4]]);
    const b = mk.tensor([[5, 6], [7, 8]]);
    expect(mk.matmul(a, b).toArray()).toEqual([19, 22, 43, 50]);
    expect(mk.matmul(a, b, { transA: true }).toArray()).toEqual([26, 30, 38, 44]);
    expect(mk.matmul(a, b, { transB: true, bias: mk.tensor([1, -1]) }).toArray()).toEqual([18, 22, 40, 52]);
  });

  it('attention equals matmul + causal mask + softmax + matmul (GQA, window, KV offset)', () => {
    const [B, T, S, Hq, Hkv, D] = [2, 5, 7, 4, 2, 3];
    const q = rnd([B, T, Hq, D]);
    const k = rnd([B, S, Hkv, D]);
    const v = rnd([B, S, Hkv, D]);
    for (const window of [0, 3]) {
      const fused = mk.attention(q, k, v, { causal: true, window, scale: 0.4 }).toArray();
      const ref: number[] = new Array(B * T * Hq * D).fill(0);
      for (let h = 0; h < Hq; h++) {
        const kh = Math.floor(h / (Hq / Hkv));
        const qh = mk.reshape(mk.slice(q, [0, 0, h, 0], [B, T, 1, D]), [B, T, D]);
        const kk = mk.reshape(mk.slice(k, [0, 0, kh, 0], [B, S, 1, D]), [B, S, D]);
        const vv = mk.reshape(mk.slice(v, [0, 0, kh, 0], [B, S, 1, D]), [B, S, D]);
        const mask = mk.tensor(Array.from({ length: T * S }, (_, n) => {
          const i = Math.floor(n / S) + S - T;
          const j = n % S;
          return j <= i && (window === 0 || i - j < window) ? 1 : 0;
        }), [T, S]);
        const scores = mk.where(mask, mk.mul(mk.matmul(qh, kk, { transB: true }), 0.4), -1e30);
        const o = mk.matmul(mk.softmax(scores), vv).toArray();
        for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) ref[((b * T + t) * Hq + h) * D + d] = o[(b * T + t) * D + d]!;
      }
      expect(maxAbsDiff(fused, ref)).toBeLessThan(1e-5);
    }
  });

  it('rms_norm equals x * rsqrt(mean(x^2) + eps) * w', () => {
    const x = rnd([3, 4, 9]);
    const w = rnd([9]);
    const ref = mk.mul(mk.mul(x, mk.rsqrt(mk.add(mk.mean(mk.mul(x, x), -1, true), 1e-5))), w);
    expect(maxAbsDiff(mk.rmsNorm(x, w, 1e-5).toArray(), ref.toArray())).toBeLessThan(1e-5);
  });

  it('cross_entropy equals -log_softmax at the target, mean over non-ignored rows', () => {
    const logits = rnd([6, 13], 3);
    const t = mk.tensor([3, -100, 0, 12, 7, 7], [6], 'i32');
    const ls = mk.logSoftmax(logits).toArray();
    const tv = t.toArray();
    let s = 0;
    for (let i = 0; i < 6; i++) if (tv[i] !== -100) s -= ls[i * 13 + tv[i]!]!;
    expect(Math.abs(mk.crossEntropy(logits, t).item() - s / 5)).toBeLessThan(1e-5);
    expect(() => mk.crossEntropy(logits, mk.tensor([13, 0, 0, 0, 0, 0], [6], 'i32')).item()).toThrow(/target 13 at row 0 is out of range/);
  });

  it('logsumexp equals log(sum(exp)), stable for large values', () => {
    const x = mk.tensor([[1000, 1000], [-3, 2]]);
    expect(mk.logSumExp(x).toArray()[0]).toBeCloseTo(1000 + Math.log(2), 3);
    expect(mk.logSumExp(x).toArray()[1]).toBeCloseTo(Math.log(Math.exp(-3) + Math.exp(2)), 5);
  });

  it('grouped_matmul equals a matmul per segment, empty segments included', () => {
    const off = [0, 3, 3, 7, 8];
    const x = rnd([8, 5]);
    const w = rnd([4, 5, 6]);
    const y = mk.groupedMatmul(x, w, mk.tensor(off, [5], 'i32')).toArray();
    for (let e = 0; e < 4; e++) {
      const rows = off[e + 1]! - off[e]!;
      if (rows === 0) continue;
      const ref = mk.matmul(mk.slice(x, [off[e]!, 0], [rows, 5]), mk.reshape(mk.slice(w, [e, 0, 0], [1, 5, 6]), [5, 6])).toArray();
      expect(maxAbsDiff(y.slice(off[e]! * 6, off[e + 1]! * 6), ref)).toBeLessThan(1e-5);
    }
    expect(() => mk.groupedMatmul(x, w, mk.tensor([0, 3, 2, 7, 8], [5], 'i32'))).toThrow(/never decrease/);
  });

  it('quant_matmul (int8, int4, f16, bf16) equals dequantise-then-matmul', () => {
    const x = rnd([5, 64]);
    const w = rnd([7, 64], 0.3);
    for (const format of ['int8', 'int4'] as const) {
      for (const g of [32, 64]) {
        const { data, scales } = mk.quantize(w, format, g);
        const deq = mk.dequantize(data, scales, format, g);
        const ref = mk.matmul(x, deq, { transB: true }).toArray();
        expect(maxAbsDiff(mk.quantMatmul(x, data, scales, format, g).toArray(), ref)).toBeLessThan(1e-4);
        // quantisation error is at most half a step per element
        const wv = w.toArray();
        const dv = deq.toArray();
        const sv = scales.toArray().map(mk.f16ToF32);
        for (let i = 0; i < wv.length; i++) {
          const s = sv[Math.floor(i / g)]!;
          expect(Math.abs(wv[i]! - dv[i]!)).toBeLessThanOrEqual(s / 2 + 1e-6 + (format === 'int4' ? s : 0));
        }
      }
    }
    for (const format of ['f16', 'bf16'] as const) {
      const wh = mk.cast(w, format);
      const ref = mk.matmul(x, mk.cast(wh, 'f32'), { transB: true }).toArray();
      expect(maxAbsDiff(mk.quantMatmul(x, wh, null, format).toArray(), ref)).toBeLessThan(1e-4);
    }
  });

  it('rope rotate-half equals the cos/sin formula; inverse undoes it', () => {
    const [T, D] = [4, 6];
    const x = rnd([1, T, 2, D]);
    const pos = mk.tensor([0, 1, 5, 9], [T], 'i32');
    const inv = mk.tensor([1, 0.1, 0.01]);
    const y = mk.rope(x, pos, inv).toArray();
    const xv = x.toArray();
    const p = [0, 1, 5, 9];
    const f = [1, 0.1, 0.01];
    for (let t = 0; t < T; t++) for (let h = 0; h < 2; h++) for (let d = 0; d < 3; d++) {
      const b = (t * 2 + h) * D;
      const a = p[t]! * f[d]!;
      expect(y[b + d]).toBeCloseTo(xv[b + d]! * Math.cos(a) - xv[b + d + 3]! * Math.sin(a), 5);
      expect(y[b + d + 3]).toBeCloseTo(xv[b + d + 3]! * Math.cos(a) + xv[b + d]! * Math.sin(a), 5);
    }
    const back = mk.run(mk.Op.RoPE, [mk.tensor(y, [1, T, 2, D]), pos, inv], { interleaved: false, inverse: true })[0]!;
    expect(maxAbsDiff(back.toArray(), xv)).toBeLessThan(1e-5);
  });

  it('topk equals sorting, ties to the lower index', () => {
    const v = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
    const { values, indices } = mk.topk(mk.tensor([v]), 4);
    expect(values.toArray()).toEqual([9, 6, 5, 5]);
    expect(indices.toArray()).toEqual([5, 7, 4, 8]);
  });

  it('gather / scatter_add are adjoint', () => {
    const table = rnd([5, 3]);
    const idx = mk.tensor([4, 0, 4], [3], 'i32');
    const g = mk.gather(table, idx).toArray();
    expect(g.slice(0, 3)).toEqual(table.toArray().slice(12, 15));
    const s = mk.scatterAdd(mk.ones([3, 2]), idx, 5).toArray();
    expect(s).toEqual([1, 1, 0, 0, 0, 0, 0, 0, 2, 2]);
    expect(() => mk.gather(table, mk.tensor([5], [1], 'i32'))).toThrow(/index 5 at position 0 is out of range \[0, 5\)/);
  });
});

describe('half precision conversions', () => {
  it('every f16 bit pattern survives f16 -> f32 -> f16 (NaNs stay NaN)', () => {
    for (let h = 0; h < 65536; h++) {
      const v = mk.f16ToF32(h);
      if (Number.isNaN(v)) expect(Number.isNaN(mk.f16ToF32(mk.f32ToF16(v)))).toBe(true);
      else expect(mk.f32ToF16(v)).toBe(h);
    }
  });
  it('rounds to nearest even and overflows to infinity', () => {
    expect(mk.f32ToF16(1)).toBe(0x3c00);
    expect(mk.f32ToF16(65504)).toBe(0x7bff);
    expect(mk.f32ToF16(65520)).toBe(0x7c00);
    expect(mk.f32ToF16(2 ** -24)).toBe(0x0001);
    expect(mk.f32ToF16(2 ** -26)).toBe(0x0000);
    expect(mk.f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie to even
    expect(mk.f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });
  it('bf16 keeps the f32 exponent and rounds the mantissa to nearest even', () => {
    expect(mk.f32ToBf16(1)).toBe(0x3f80);
    expect(mk.bf16ToF32(0x3f80)).toBe(1);
    expect(mk.bf16ToF32(mk.f32ToBf16(3.1415926))).toBeCloseTo(3.140625, 6);
    expect(Number.isNaN(mk.bf16ToF32(mk.f32ToBf16(NaN)))).toBe(true);
  });
});

describe('misuse gives errors that name the op, shapes and dtypes', () => {
  it('matmul inner sizes', () => {
    expect(() => mk.matmul(mk.zeros([2, 3]), mk.zeros([4, 5]))).toThrow('matmul: inner sizes differ: a (2, 3) vs b (4, 5)');
  });
  it('binary broadcast and dtype', () => {
    expect(() => mk.add(mk.zeros([2, 3]), mk.zeros([4]))).toThrow('add: shapes do not broadcast: f32(2, 3) vs f32(4)');
    expect(() => mk.add(mk.zeros([2]), mk.zeros([2], 'i32'))).toThrow('add: dtypes differ: f32(2) vs i32(2)');
  });
  it('reshape, topk, gather dtypes', () => {
    expect(() => mk.reshape(mk.zeros([2, 3]), [4])).toThrow('reshape: cannot reshape f32(2, 3) (6 elements) to (4)');
    expect(() => mk.topk(mk.zeros([2, 3]), 4)).toThrow('topk: k = 4 must be in [1, 3] for f32(2, 3)');
    expect(() => mk.gather(mk.zeros([4, 2]), mk.zeros([3]))).toThrow('gather: indices must be i32, got f32(3)');
  });
  it('quantised weights', () => {
    expect(() => mk.quantize(mk.zeros([2, 48]), 'int4', 32)).toThrow('quantize: group size 32 must be a positive even divisor of K = 48');
  });
  it('a disposed tensor', () => {
    const t = mk.zeros([2]);
    t.dispose();
    expect(() => mk.exp(t)).toThrow('exp: tensor f32(2) was already disposed');
  });
});
