// Heterogeneous precision: FP16 bases + INT4/INT8 group-wise residual factors. The quantised inference path must
// equal the clustered layer built from the dequantised weights (kernel correctness), and stay within a stated
// tolerance of the FP32 layer (quantisation error), with the storage bytes it reports.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { factorGroupSize } from '../../src/moe/clustered-quant.js';
import { ClusteredMoEBlock } from '../../src/moe/index.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const [H, I, E, K, G, r] = [64, 48, 8, 2, 2, 8];
const cfg = { hidden: H, experts: E, topK: K, expertWidth: I, groups: G, rank: r, groupTopK: 2 };

const stack0 = (ts: mk.Tensor[]): mk.Tensor => mk.concat(ts.map((t) => mk.reshape(t, [1, ...t.shape])), 0);

function relErr(a: number[], b: number[]): { rel: number; max: number } {
  let d = 0;
  let n = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
    max = Math.max(max, Math.abs(a[i]! - b[i]!));
  }
  return { rel: Math.sqrt(d / n), max };
}

describe('quantizeClustered', () => {
  // int8 keeps the layer within 2% (relative L2 of the output); int4 within 20% for these residual-dominated random
  // experts (about 9% noise per factor at group size 32); FP16 bases add < 0.1%.
  for (const [format, tol] of [['int8', 0.02], ['int4', 0.2]] as const) {
    it(`${format}: the inference form equals the dequantised layer and stays within ${tol * 100}% of FP32`, () => {
      const block = new ClusteredMoEBlock(cfg, new mk.Rng(1));
      const x = mk.randn([40, H], new mk.Rng(2));
      const fp32 = block.forward(x).y.toArray() as number[];
      const f32 = block.f32Experts();
      const q = f32.toQuantized({ format });
      const qc = q.quantized;
      expect(block.setExperts(q)).toBe(f32);
      const quant = block.forward(x).y.toArray() as number[];
      // reference: an FP32 layer holding the dequantised weights
      const ref = new ClusteredMoEBlock(cfg, new mk.Rng(1));
      mk.noGrad(() => mk.tidy(() => {
        const w = ref.f32Experts().weights;
        const mats = { gate: [w.baseGate, w.gateA, w.gateB], up: [w.baseUp, w.upA, w.upB], down: [w.baseDown, w.downA, w.downB] } as const;
        for (const m of ['gate', 'up', 'down'] as const) {
          const [base, A, B] = mats[m];
          mk.assign(base, stack0(qc.bases[m].map((b) => mk.transpose(mk.cast(b, 'f32')))));
          mk.assign(A, stack0(qc.a[m].map((f) => mk.transpose(mk.dequantize(f.data, f.scales, format, f.groupSize)))));
          mk.assign(B, stack0(qc.b[m].map((f) => mk.transpose(mk.dequantize(f.data, f.scales, format, f.groupSize)))));
        }
      }));
      const deq = ref.forward(x).y.toArray() as number[];
      expect(relErr(quant, deq).max).toBeLessThan(1e-5);
      const e = relErr(quant, fp32);
      expect(e.rel).toBeLessThan(tol);
      expect(e.rel).toBeGreaterThan(0); // it really is quantised
      // bytes: f16 bases; factor data (1 byte per int8 value, half for int4) plus f16 scales
      const factorValues = E * 3 * r * (H + I);
      const per = format === 'int8' ? 1 : 0.5;
      const gs = (k: number): number => factorGroupSize(k, 32, format);
      // per expert and matrix (din → dout): Aᵀ (r, din) has r·din/gs(din) scales, Bᵀ (dout, r) has dout·r/gs(r)
      const scales = E * ([[H, I], [H, I], [I, H]] as const).reduce((a, [din, dout]) => a + (r * din) / gs(din) + (dout * r) / gs(r), 0);
      expect(qc.bytes.base).toBe(G * 3 * H * I * 2);
      expect(qc.bytes.factors).toBe(factorValues * per + 2 * scales);
      expect(qc.bytes.total).toBeLessThan(f32.numParams() * 4 * (format === 'int8' ? 0.45 : 0.35));
      // swapping the f32 experts back restores the FP32 layer exactly
      block.setExperts(f32).dispose();
      expect(block.forward(x).y.toArray()).toEqual(fp32);
    });
  }

  for (const backend of ['js', 'wasm'] as const) {
    it(`${backend}: the fused inference form (FP16 bases + widened INT4 factors in clusteredFfn) equals the quantised matmul form`, async () => {
      const prev = mk.getBackend();
      const be = backend === 'js' ? new mk.JsBackend() : await mk.WasmBackend.create({ threads: 2 });
      mk.useBackend(be);
      try {
        for (const groupTopK of [1, 2]) {
          const block = new ClusteredMoEBlock({ ...cfg, groupTopK }, new mk.Rng(3));
          const q = block.f32Experts().toQuantized({ format: 'int4' });
          const qc = q.quantized;
          const fused = q.toFused();
          expect(fused.weights.baseGate.dtype).toBe('f16');
          expect(fused.bytes.base).toBe(qc.bytes.base);
          expect(fused.bytes.factors).toBe(E * 3 * r * (H + I) * 4);
          for (const T of [1, 3, 40]) { // decode (token path) and prefill (grouped path) sizes
            const x = mk.randn([T, H], new mk.Rng(4 + T));
            const f32 = block.setExperts(q);
            const composed = mk.noGrad(() => block.infer(x));
            block.setExperts(fused);
            const viaFused = mk.noGrad(() => block.infer(x));
            block.setExperts(f32);
            expect(viaFused.experts.toArray()).toEqual(composed.experts.toArray());
            expect(relErr(viaFused.y.toArray() as number[], composed.y.toArray() as number[]).max).toBeLessThan(2e-5);
          }
          fused.dispose();
          q.dispose();
        }
      } finally {
        mk.useBackend(prev);
        await be.dispose();
      }
    });
  }

  it('picks factor group sizes that divide the reduction dim (even for int4) and says when none does', () => {
    expect(factorGroupSize(48, 32, 'int4')).toBe(24);
    expect(factorGroupSize(8, 32, 'int4')).toBe(8);
    expect(factorGroupSize(7, 32, 'int8')).toBe(7);
    expect(() => factorGroupSize(7, 32, 'int4')).toThrow('no even group size divides K = 7 (int4 needs an even K)');
  });
});
