// Multi-head latent attention: equals a plain float64 transcription of transformers' DeepseekV3Attention (de-interleaved
// RoPE included), KV-cache decoding equals the full forward, gradcheck, HF parameter names.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { KVCache } from '../../src/nn/index.js';
import { MLA_LORA_NORM_EPS, MLAttention, type MlaConfig } from '../../src/nn/mla.js';
import { maxAbsDiff } from '../helpers/compare.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

/** y = W x (+ b), W (out, in) row-major. */
function linear(W: number[], b: number[] | null, x: number[], out: number): number[] {
  const n = x.length;
  return Array.from({ length: out }, (_, o) => x.reduce((s, xi, i) => s + W[o * n + i]! * xi, b ? b[o]! : 0));
}
function rms(x: number[], w: number[], eps: number): number[] {
  const inv = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}
/** transformers' RoPE of one head's rotary part at position p: rotate_half, after de-interleaving when interleaved. */
function ropeHf(x: number[], p: number, inv: number[], interleaved: boolean): number[] {
  const R = x.length;
  const h = R / 2;
  const xs = interleaved ? [...Array.from({ length: h }, (_, j) => x[2 * j]!), ...Array.from({ length: h }, (_, j) => x[2 * j + 1]!)] : x;
  return xs.map((v, d) => {
    const j = d % h;
    const c = Math.cos(p * inv[j]!);
    const s = Math.sin(p * inv[j]!);
    return d < h ? v * c - xs[d + h]! * s : v * c + xs[d - h]! * s;
  });
}

/** DeepseekV3Attention.forward, eager, for x (T, H) of one sequence. */
function reference(m: MLAttention, x: number[][]): number[][] {
  const P = new Map(m.parameters().map(([n, t]) => [n, t.toArray() as number[]]));
  const p = (n: string): number[] => P.get(n)!;
  const b = (n: string): number[] | null => P.get(n) ?? null;
  const { Hq, D, R, Dv, C } = m;
  const N = D - R;
  const inv = m.buffers().find(([n]) => n === 'inv_freq')![1].toArray() as number[];
  const T = x.length;
  const qs: number[][] = [];
  const ks: number[][] = [];
  const vs: number[][] = [];
  x.forEach((xt, t) => {
    const q = m.qProj ? linear(p('q_proj.weight'), null, xt, Hq * D) : linear(p('q_b_proj.weight'), null, rms(linear(p('q_a_proj.weight'), b('q_a_proj.bias'), xt, m.qAProj!.weight.shape[0]!), p('q_a_layernorm.weight'), MLA_LORA_NORM_EPS), Hq * D);
    const ckv = linear(p('kv_a_proj_with_mqa.weight'), b('kv_a_proj_with_mqa.bias'), xt, C + R);
    const kv = linear(p('kv_b_proj.weight'), null, rms(ckv.slice(0, C), p('kv_a_layernorm.weight'), MLA_LORA_NORM_EPS), Hq * (N + Dv));
    const kr = ropeHf(ckv.slice(C), t, inv, m.ropeInterleaved);
    for (let h = 0; h < Hq; h++) {
      qs.push([...q.slice(h * D, h * D + N), ...ropeHf(q.slice(h * D + N, (h + 1) * D), t, inv, m.ropeInterleaved)]);
      ks.push([...kv.slice(h * (N + Dv), h * (N + Dv) + N), ...kr]);
      vs.push(kv.slice(h * (N + Dv) + N, (h + 1) * (N + Dv)));
    }
  });
  return x.map((_, t) => {
    const o: number[] = [];
    for (let h = 0; h < Hq; h++) {
      const q = qs[t * Hq + h]!;
      const sc = Array.from({ length: t + 1 }, (_, s) => q.reduce((a, v, d) => a + v * ks[s * Hq + h]![d]!, 0) * m.scale);
      const mx = Math.max(...sc);
      const e = sc.map((v) => Math.exp(v - mx));
      const z = e.reduce((a, v) => a + v, 0);
      for (let d = 0; d < Dv; d++) o.push(e.reduce((a, w, s) => a + (w / z) * vs[s * Hq + h]![d]!, 0));
    }
    return linear(p('o_proj.weight'), b('o_proj.bias'), o, m.H);
  }).slice(0, T);
}

const configs: [string, MlaConfig][] = [
  ['DeepSeek-V3 style: q LoRA, interleaved RoPE, Dv > D', { hidden: 24, heads: 3, headDim: 10, ropeDim: 4, vHeadDim: 12, kvLoraRank: 6, qLoraRank: 8, ropeInterleaved: true }],
  ['full q_proj, rotate-half RoPE, Dv < D, biases', { hidden: 16, heads: 2, headDim: 12, ropeDim: 8, vHeadDim: 6, kvLoraRank: 5, qkvBias: true, oBias: true, ropeTheta: 500 }],
  ['no nope part (D = R), scale override', { hidden: 12, heads: 4, headDim: 4, ropeDim: 4, kvLoraRank: 3, qLoraRank: 5, scale: 0.3 }],
];

describe.each(configs)('MLAttention %s', (_name, cfg) => {
  const build = (): MLAttention => {
    const m = new MLAttention(cfg, new mk.Rng(7));
    const rng = new mk.Rng(9);
    for (const [n, t] of m.parameters()) if (n.endsWith('bias') || n.endsWith('layernorm.weight')) m.setTensor(n, mk.add(mk.randn(t.shape, rng, 0.2), n.endsWith('bias') ? 0 : 1));
    return m;
  };

  it('equals a float64 transcription of transformers (eager attention)', () => {
    const m = build();
    const T = 6;
    const x = mk.randn([T, cfg.hidden], new mk.Rng(3)); // (T, H)
    const want = reference(m, Array.from({ length: T }, (_, t) => (x.toArray() as number[]).slice(t * cfg.hidden, (t + 1) * cfg.hidden)));
    const got = m.forward(x).toArray() as number[];
    expect(maxAbsDiff(got, want.flat())).toBeLessThan(2e-5);
    m.dispose();
  });

  it('token-by-token decoding with the KV cache equals the full causal forward', () => {
    const m = build();
    const [B, T, H] = [2, 7, cfg.hidden];
    const x = mk.randn([B, T, H], new mk.Rng(12)); // (B, T, H)
    const full = m.forward(x); // (B, T, H)
    const cache = new KVCache();
    const steps = [m.forward(mk.slice(x, [0, 0, 0], [B, 3, H]), { cache })];
    for (let t = 3; t < T; t++) steps.push(m.forward(mk.slice(x, [0, t, 0], [B, 1, H]), { cache }));
    expect(cache.length).toBe(T);
    expect(cache.v!.shape).toEqual([B, T, cfg.heads, cfg.vHeadDim ?? cfg.headDim]);
    expect(maxAbsDiff(mk.concat(steps, 1).toArray() as number[], full.toArray() as number[])).toBeLessThan(1e-5);
    cache.dispose();
    m.dispose();
  });
});

describe('MLAttention', () => {
  it('has transformers\' parameter names and shapes', () => {
    const m = new MLAttention({ hidden: 64, heads: 4, headDim: 16, ropeDim: 8, vHeadDim: 16, kvLoraRank: 16, qLoraRank: 32 }, new mk.Rng(1));
    expect(m.parameters().map(([n, t]) => `${n} [${t.shape.join(', ')}]`)).toEqual([
      'q_a_proj.weight [32, 64]', 'q_a_layernorm.weight [32]', 'q_b_proj.weight [64, 32]', 'kv_a_proj_with_mqa.weight [24, 64]',
      'kv_a_layernorm.weight [16]', 'kv_b_proj.weight [96, 16]', 'o_proj.weight [64, 64]',
    ]);
    expect(() => m.forward(mk.zeros([3, 5]))).toThrow('MLAttention: input f32(3, 5) must be (B, T, 64) or (T, 64)');
    expect(() => new MLAttention({ hidden: 8, heads: 2, headDim: 4, ropeDim: 6, kvLoraRank: 2 }, new mk.Rng(1))).toThrow('ropeDim 6 must be even and at most headDim 4');
    m.dispose();
  });

  it('gradients w.r.t. x and every projection pass gradcheck (float64)', () => {
    const [T, H] = [4, 8];
    const cfg: MlaConfig = { hidden: H, heads: 2, headDim: 6, ropeDim: 4, vHeadDim: 5, kvLoraRank: 3, qLoraRank: 4, ropeInterleaved: true };
    const names = ['q_a_proj.weight', 'q_b_proj.weight', 'kv_a_proj_with_mqa.weight', 'kv_b_proj.weight', 'o_proj.weight'];
    const shapes = new Map(new MLAttention(cfg, new mk.Rng(1)).parameters().map(([n, t]) => [n, t.shape]));
    const rng = new mk.Rng(5);
    const input = (shape: readonly number[], s: number) => ({ data: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => s * rng.normal()), shape: [...shape] });
    const res = mk.gradcheck((x, ...ws) => {
      const m = new MLAttention(cfg, new mk.Rng(1));
      names.forEach((n, i) => m.setTensor(n, ws[i]!));
      return m.forward(x!);
    }, [input([T, H], 1), ...names.map((n) => input(shapes.get(n)!, 0.5))]);
    expect(res.ok, JSON.stringify(res.worst)).toBe(true);
  });
});
