// MoELM on the js backend: names, shapes, loss at init ≈ ln V, every gradient, param counts, KV cache, training.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { KVCache } from '../../src/nn/index.js';
import { MoELM, denseBaseline, parseConfig, tiny, type ModelConfigInput } from '../../src/models/index.js';
import { maxAbsDiff } from '../helpers/compare.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const [B, T] = [2, 12];

/** A fixed batch: ids (B, T) and next-token targets with the last position ignored. */
function batch(V: number, seed = 1): { ids: mk.Tensor; targets: mk.Tensor } {
  const rng = new mk.Rng(seed);
  const ids = Array.from({ length: B * T }, () => rng.int(V));
  const tg = ids.map((_, i) => (i % T === T - 1 ? -100 : ids[i + 1]!));
  return { ids: mk.tensor(ids, [B, T], 'i32'), targets: mk.tensor(tg, [B, T], 'i32') };
}


const variants: [string, ModelConfigInput][] = [
  ['moe softmax-topk, tied', tiny],
  ['moe sigmoid-group, shared gated expert, untied, capacity 1.25', { ...tiny, router: 'sigmoid-group', groups: 2, topGroups: 1, sharedWidth: 16, sharedGate: true, tieEmbeddings: false, capacityFactor: 1.25 }],
  ['dense', { ...tiny, ffn: 'dense' }],
];

describe('MoELM', () => {
  it('names parameters HF-style', () => {
    const m = new MoELM({ ...tiny, tieEmbeddings: false, sharedWidth: 8 });
    const names = m.parameters().map(([n]) => n);
    for (const n of ['model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.v_proj.weight', 'model.layers.0.self_attn.o_proj.weight', 'model.layers.0.post_attention_layernorm.weight', 'model.layers.0.mlp.gate.weight',
      'model.layers.1.mlp.experts.gate_proj', 'model.layers.1.mlp.experts.down_proj', 'model.layers.1.mlp.shared_expert.up_proj.weight', 'model.norm.weight', 'lm_head.weight']) {
      expect(names).toContain(n);
    }
    expect(m.buffers().map(([n]) => n)).toContain('model.layers.0.mlp.gate.e_score_correction_bias');
    expect(new MoELM(tiny).parameters().map(([n]) => n)).not.toContain('lm_head.weight');
    const d = new MoELM({ ...tiny, ffn: 'dense' }).parameters().map(([n]) => n);
    expect(d).toContain('model.layers.0.mlp.gate_proj.weight');
  });

  it('is deterministic in its seed', () => {
    const weight = (seed: number) => {
      const m = new MoELM({ ...tiny, seed });
      const w = m.parameters().find(([n]) => n === 'model.layers.0.self_attn.q_proj.weight')![1].toArray();
      m.dispose();
      return w;
    };
    expect(weight(0)).toEqual(weight(0));
    expect(weight(1)).not.toEqual(weight(0));
  });

  it('paramCounts: active = total − expert·(1 − K/E); the dense baseline has the same active count within the router', () => {
    for (const cfg of [parseConfig(tiny), parseConfig({ ...tiny, sharedWidth: 16, sharedGate: true, experts: 8, topK: 3 })]) {
      const m = new MoELM(cfg);
      const c = m.paramCounts();
      const { hidden: H, experts: E, topK: K, expertWidth: I, layers: L } = cfg;
      expect(c.total).toBe(m.numParams());
      expect(c.expert).toBe(L * E * 3 * H * I);
      expect(c.active).toBe(c.total - c.expert + (c.expert * K) / E);
      const d = new MoELM(denseBaseline(cfg)).paramCounts();
      expect(d.expert).toBe(0);
      expect(d.active).toBe(d.total);
      const routerParams = L * (E * H + (cfg.sharedGate ? H : 0));
      expect(c.active - d.active).toBe(routerParams);
      m.dispose();
    }
  });

  for (const [name, cfg] of variants) {
    describe(name, () => {
      it('forward shapes, stats per layer, loss at init ≈ ln V', () => {
        const m = new MoELM(cfg);
        const V = m.cfg.vocabSize;
        const { ids, targets } = batch(V);
        mk.tidy(() => {
          const o = m.forward(ids);
          expect(o.logits.shape).toEqual([B * T, V]);
          expect(o.stats).toHaveLength(m.cfg.layers);
          if (m.cfg.ffn === 'moe') {
            expect(o.aux!.shape).toEqual([]);
            for (const s of o.stats) expect(s!.tokensPerExpert.reduce((a, c) => a + c, 0)).toBe(B * T * m.cfg.topK);
          } else {
            expect(o.aux).toBeNull();
            expect(o.stats.every((s) => s === null)).toBe(true);
          }
          const l = m.loss(ids, targets);
          const ce = l.ce.item();
          console.log(`${name}: loss at init ${ce.toFixed(3)}, ln V = ${Math.log(V).toFixed(3)}`);
          expect(Math.abs(ce - Math.log(V)) / Math.log(V)).toBeLessThan(0.1);
          expect(l.loss.item()).toBeCloseTo(ce + (l.aux?.item() ?? 0), 5);
        });
        expect(() => m.forward(mk.tensor([1, 2], [2], 'i32'))).toThrow(/ids must be i32 \(B, T\), got i32\(2\)/);
        expect(() => m.loss(ids, mk.zeros([B, T + 1], 'i32'))).toThrow(/targets i32\(2, 13\) must be i32 with the shape of ids i32\(2, 12\)/);
        m.dispose();
      });

      it('backward reaches every parameter (not the bias buffer)', () => {
        const m = new MoELM(cfg);
        const { ids, targets } = batch(m.cfg.vocabSize);
        mk.tidy(() => mk.backward(m.loss(ids, targets).loss));
        for (const [n, p] of m.parameters()) expect(p.grad?.shape, n).toEqual(p.shape);
        for (const [n, b] of m.buffers()) expect(b.grad, n).toBeNull();
        m.dispose();
      });

      it('loss falls by >= 30% over 30 AdamW steps on a repeated batch', () => {
        const m = new MoELM(cfg);
        const { ids, targets } = batch(m.cfg.vocabSize, 2);
        const params = m.parameters();
        const opt = new mk.AdamW(params, { weightDecay: 0 });
        const losses: number[] = [];
        for (let s = 0; s < 30; s++) {
          losses.push(mk.tidy(() => {
            const l = m.loss(ids, targets);
            mk.backward(l.loss);
            m.updateBiases(l.stats);
            return l.ce.item();
          }));
          opt.update(1e-2);
          mk.zeroGrad(params.map(([, p]) => p));
        }
        console.log(`${name}: ce ${losses[0]!.toFixed(3)} -> ${losses.at(-1)!.toFixed(3)}`);
        expect(losses.at(-1)!).toBeLessThan(0.7 * losses[0]!);
        opt.dispose();
        m.dispose();
      });
    });
  }

  it('decoding with a KV cache token by token equals the full forward', () => {
    const m = new MoELM(tiny);
    const { ids } = batch(m.cfg.vocabSize, 3);
    const full = m.forward(ids).logits.toArray(); // (B·T, V)
    const V = m.cfg.vocabSize;
    const cache = m.layers.map(() => new KVCache());
    const steps: number[][] = [];
    for (let t = 0; t < T; t++) {
      steps.push(mk.tidy(() => m.forward(mk.slice(ids, [0, t], [B, 1]), { cache }).logits.toArray())); // (B, V)
    }
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        expect(maxAbsDiff(steps[t]!.slice(b * V, (b + 1) * V), full.slice((b * T + t) * V, (b * T + t + 1) * V))).toBeLessThan(1e-4);
      }
    }
    expect(() => m.forward(ids, { cache: cache.slice(1) })).toThrow(/1 KV caches for 2 layers/);
    cache.forEach((c) => c.dispose());
    m.dispose();
  });

  it('updateBiases moves the selection bias by γ and is a no-op when γ = 0', () => {
    const m = new MoELM({ ...tiny, biasUpdateRate: 0.5 });
    const { ids } = batch(m.cfg.vocabSize);
    const stats = mk.noGrad(() => mk.tidy(() => m.forward(ids).stats));
    m.updateBiases(stats);
    const moeBlock = m.layers[0]!.mlp as mk.MoEBlock;
    const b = [...moeBlock.bias!];
    expect(b.every((v) => v === 0.5 || v === -0.5 || v === 0)).toBe(true);
    expect(b.some((v) => v !== 0)).toBe(true);
    const off = new MoELM({ ...tiny, biasUpdateRate: 0 });
    expect(off.buffers()).toHaveLength(off.cfg.layers * 1); // only the attention inv_freq buffers
    off.updateBiases(stats);
    expect(() => m.updateBiases(stats.slice(1))).toThrow(/stats for 1 layers, the model has 2/);
  });
});

describe('MoELM inference forward (aux: false)', () => {
  const cases: [string, ModelConfigInput][] = [
    ...variants,
    ['clustered k_g = 1', { ...tiny, ffn: 'clustered', clusterGroups: 2, clusterRank: 3 }],
    ['moe with a shared expert, no renormalisation', { ...tiny, sharedWidth: 16, renormalize: false }],
  ];
  for (const [name, cfg] of cases) {
    it(`${name}: logits and routed ids equal the training forward's (within 1e-5), no aux loss`, () => {
      const m = new MoELM(cfg);
      const { ids } = batch(m.cfg.vocabSize, 3);
      const trainRec = new mk.RoutingRecorder();
      const infRec = new mk.RoutingRecorder();
      const train = m.forward(ids, { observer: trainRec });
      const inf = mk.noGrad(() => m.forward(ids, { observer: infRec, aux: false }));
      expect(maxAbsDiff(inf.logits.toArray() as number[], train.logits.toArray() as number[])).toBeLessThan(1e-5);
      expect(inf.aux).toBeNull();
      const [tr, ir] = [trainRec.events(), infRec.events()];
      expect(ir.map((e) => e.layer)).toEqual(m.layers.flatMap((l, i) => (l.mlp instanceof mk.SwiGLU ? [] : [i])));
      expect(ir.map((e) => e.experts)).toEqual(tr.map((e) => e.experts));
      inf.stats.forEach((s, l) => {
        expect(s?.tokensPerExpert).toEqual(train.stats[l]?.tokensPerExpert);
        const want = train.routerLogits[l];
        if (want) expect(maxAbsDiff(inf.routerLogits[l]!.toArray() as number[], want.toArray() as number[])).toBeLessThan(1e-6);
      });
    });
  }
});
