// Attention: KV-cache decoding equals the full causal forward (GQA, q/k norms, bias, sliding window); gradcheck.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { Attention, KVCache, type AttentionConfig } from '../../src/nn/index.js';
import { maxAbsDiff } from '../helpers/compare.js';

beforeAll(async () => {
  await mk.setBackend('js');
});


const configs: [string, AttentionConfig][] = [
  ['MHA', { hidden: 16, heads: 2 }],
  ['GQA + per-head q/k norm (Qwen3)', { hidden: 16, heads: 4, kvHeads: 2, headDim: 6, qkNorm: 'head', ropeTheta: 1e6 }],
  ['full q/k norm (OLMoE) + qkv bias', { hidden: 16, heads: 4, kvHeads: 1, qkNorm: 'full', qkvBias: true }],
  ['sliding window 3', { hidden: 16, heads: 2, kvHeads: 1, window: 3 }],
];

describe.each(configs)('Attention %s', (_name, cfg) => {
  it('token-by-token decoding with the KV cache equals the full causal forward', () => {
    const [B, T] = [2, 7];
    const att = new Attention(cfg, new mk.Rng(11));
    if (cfg.qkvBias) att.setTensor('q_proj.bias', mk.randn([att.Hq * att.D], new mk.Rng(2)));
    const x = mk.randn([B, T, cfg.hidden], new mk.Rng(12)); // (B, T, H)
    const full = att.forward(x); // (B, T, H)
    expect(full.shape).toEqual([B, T, cfg.hidden]);
    const cache = new KVCache();
    const steps: mk.Tensor[] = [];
    // a 2-token prefill, then one token at a time
    steps.push(att.forward(mk.slice(x, [0, 0, 0], [B, 2, cfg.hidden]), { cache }));
    for (let t = 2; t < T; t++) steps.push(att.forward(mk.slice(x, [0, t, 0], [B, 1, cfg.hidden]), { cache }));
    expect(cache.length).toBe(T);
    const inc = mk.concat(steps, 1); // (B, T, H)
    expect(maxAbsDiff(inc.toArray(), full.toArray())).toBeLessThan(1e-5);
    cache.dispose();
    att.dispose();
  });
});

describe('Attention', () => {
  it('accepts (T, H), rejects a wrong width and a startPos that disagrees with the cache', () => {
    const att = new Attention({ hidden: 8, heads: 2 }, new mk.Rng(1));
    expect(att.forward(mk.zeros([3, 8])).shape).toEqual([3, 8]);
    expect(() => att.forward(mk.zeros([3, 5]))).toThrow('Attention: input f32(3, 5) must be (B, T, 8) or (T, 8)');
    expect(() => att.forward(mk.zeros([1, 8]), { cache: new KVCache(), startPos: 4 })).toThrow('startPos 4 must equal the cache length 0');
    expect(att.parameters().map(([n]) => n)).toEqual(['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight']);
  });

  it('gradients w.r.t. x and the projections pass gradcheck (float64)', () => {
    const [T, H] = [4, 8];
    const rng = new mk.Rng(5);
    const rnd = (n: number, s: number) => Array.from({ length: n }, () => s * rng.normal());
    const res = mk.gradcheck((x, wq, wk, wv, wo) => {
      const att = new Attention({ hidden: H, heads: 2, kvHeads: 1, qkNorm: 'head' }, new mk.Rng(1));
      for (const [n, w] of [['q_proj.weight', wq], ['k_proj.weight', wk], ['v_proj.weight', wv], ['o_proj.weight', wo]] as const) att.setTensor(n, w!);
      return att.forward(x!);
    }, [
      { data: rnd(T * H, 1), shape: [T, H] },
      { data: rnd(8 * H, 0.4), shape: [8, H] },
      { data: rnd(4 * H, 0.4), shape: [4, H] },
      { data: rnd(4 * H, 0.4), shape: [4, H] },
      { data: rnd(H * 8, 0.4), shape: [H, 8] },
    ]);
    expect(res.ok, JSON.stringify(res.worst)).toBe(true);
  });
});
