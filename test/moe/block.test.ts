// MoE block: E=1/K=1 equals dense SwiGLU, dropless equals ample capacity, drops, gradcheck, aux-free balancing.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { MoEBlock, imbalance, moe, type MoEConfig } from '../../src/moe/index.js';
import { SwiGLU } from '../../src/nn/index.js';
import { maxAbsDiff } from '../helpers/compare.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const rowOf = (a: number[], t: number, H: number): number[] => a.slice(t * H, (t + 1) * H);

describe('MoEBlock', () => {
  it('E = 1, K = 1 equals a dense SwiGLU with the same weights (within 1e-6)', () => {
    const [H, I] = [8, 12];
    const block = new MoEBlock({ hidden: H, experts: 1, topK: 1, expertWidth: I }, new mk.Rng(1));
    const dense = new SwiGLU(H, I, new mk.Rng(2));
    const e = block.experts.weights;
    const at0 = (t: mk.Tensor) => mk.transpose(mk.reshape(t, t.shape.slice(1))); // (1, a, b) -> (b, a)
    dense.setTensor('gate_proj.weight', at0(e.gate));
    dense.setTensor('up_proj.weight', at0(e.up));
    dense.setTensor('down_proj.weight', at0(e.down));
    const x = mk.randn([2, 5, H], new mk.Rng(3)); // (B, T, H)
    const out = block.forward(x);
    expect(out.y.shape).toEqual([2, 5, H]);
    expect(maxAbsDiff(out.y.toArray(), dense.forward(x).toArray())).toBeLessThan(1e-6);
    expect(out.stats).toEqual({ tokensPerExpert: [10], dropped: 0 });
  });

  it('names parameters HF-style and counts them', () => {
    const block = new MoEBlock({ hidden: 4, experts: 3, topK: 2, expertWidth: 5, sharedWidth: 6, sharedGate: true, router: 'sigmoid-group' }, new mk.Rng(1));
    expect(block.parameters('mlp.').map(([n]) => n)).toEqual([
      'mlp.gate.weight', 'mlp.experts.gate_proj', 'mlp.experts.up_proj', 'mlp.experts.down_proj',
      'mlp.shared_expert.gate_proj.weight', 'mlp.shared_expert.up_proj.weight', 'mlp.shared_expert.down_proj.weight', 'mlp.shared_expert_gate.weight',
    ]);
    expect(block.buffers().map(([n]) => n)).toEqual(['gate.e_score_correction_bias']);
    expect(block.numParams()).toBe(3 * 4 + 3 * 3 * 4 * 5 + 3 * 4 * 6 + 4);
    expect(() => block.forward(mk.zeros([3, 5]))).toThrow('MoE: input f32(3, 5) must be (T, 4) or (B, T, 4)');
  });

  for (const router of ['softmax-topk', 'sigmoid-group'] as const) {
    it(`${router}: dropless equals capacity mode with ample capacity; tiny capacity drops to shared-only`, () => {
      const cfg: MoEConfig = { hidden: 6, experts: 4, topK: 2, expertWidth: 5, router, groups: 2, topGroups: 1, sharedWidth: 4, sharedGate: true };
      const block = new MoEBlock(cfg, new mk.Rng(5));
      const x = mk.randn([16, 6], new mk.Rng(6)); // (T, H)
      const a = block.forward(x);
      const w = block.weights;
      const ample = moe(x, w, { ...cfg, capacityFactor: cfg.experts / cfg.topK }); // capacity = T ≥ any count
      expect(ample.stats.dropped).toBe(0);
      expect(maxAbsDiff(ample.y.toArray(), a.y.toArray())).toBeLessThan(1e-6);
      expect(a.stats.tokensPerExpert.reduce((s, c) => s + c, 0)).toBe(32);

      const tiny = moe(x, w, { ...cfg, capacityFactor: 0.1 }); // capacity ceil(0.1·32/4) = 1 slot per expert
      expect(tiny.stats.dropped).toBeGreaterThan(0);
      const sharedOnly = moe(x, { ...w, experts: { gate: mk.mul(w.experts.gate, 0), up: w.experts.up, down: w.experts.down } }, cfg).y.toArray();
      const noShared = moe(x, { router: w.router, experts: w.experts, ...(w.bias ? { bias: w.bias } : {}) }, { ...cfg, capacityFactor: 0.1 }).y.toArray();
      const ids = tiny.routing.experts.toArray();
      const y = tiny.y.toArray();
      const seen = new Set<number>();
      let droppedTokens = 0;
      for (let t = 0; t < 16; t++) {
        const fresh = [ids[2 * t]!, ids[2 * t + 1]!].filter((e) => !seen.has(e));
        [ids[2 * t]!, ids[2 * t + 1]!].forEach((e) => seen.add(e));
        if (fresh.length === 0) {
          droppedTokens++;
          expect(maxAbsDiff(rowOf(y, t, 6), rowOf(sharedOnly, t, 6))).toBeLessThan(1e-6);
          expect(rowOf(noShared, t, 6).every((v) => v === 0)).toBe(true);
        }
      }
      expect(droppedTokens).toBeGreaterThan(0);
    });
  }

  it('backward from y and the aux loss reaches every parameter of the module, not the bias buffer', () => {
    const block = new MoEBlock({ hidden: 6, experts: 4, topK: 2, expertWidth: 3, router: 'sigmoid-group', groups: 2, topGroups: 2, sharedWidth: 4, sharedGate: true }, new mk.Rng(3));
    mk.tidy(() => {
      const o = block.forward(mk.randn([2, 8, 6], new mk.Rng(4)));
      mk.backward(mk.add(mk.sum(mk.square(o.y)), o.aux.loss));
    });
    for (const [n, p] of block.parameters()) expect(p.grad?.shape, n).toEqual(p.shape);
    expect(block.gate.bias!.grad).toBeNull();
    mk.zeroGrad(block.parameters().map(([, p]) => p));
    block.dispose();
  });

  it('repeated forward + backward steps in tidy allocate nothing new after the first', () => {
    const block = new MoEBlock({ hidden: 6, experts: 4, topK: 2, expertWidth: 3, sharedWidth: 4 }, new mk.Rng(3));
    const x = mk.randn([10, 6], new mk.Rng(4));
    const params = block.parameters().map(([, p]) => p);
    const inUse: number[] = [];
    for (let s = 0; s < 4; s++) {
      mk.tidy(() => {
        const o = block.forward(x);
        mk.backward(mk.add(mk.sum(mk.square(o.y)), o.aux.loss));
      });
      mk.zeroGrad(params);
      inUse.push(mk.getBackend().bytesInUse());
    }
    expect(new Set(inUse).size).toBe(1);
    block.dispose();
  });

  for (const router of ['softmax-topk', 'sigmoid-group'] as const) {
    it(`${router}: gradcheck of y and aux loss w.r.t. x, router, experts, shared expert and its gate`, () => {
      const [T, H, E, K, I, S] = [6, 5, 4, 2, 3, 4];
      const cfg: MoEConfig = { hidden: H, experts: E, topK: K, expertWidth: I, router, groups: 2, topGroups: 1, routedScale: 1.5, sharedWidth: S, sharedGate: true };
      const rng = new mk.Rng(router === 'softmax-topk' ? 21 : 22);
      const rnd = (n: number, s: number) => Array.from({ length: n }, () => s * rng.normal());
      const xs = rnd(T * H, 1);
      const router0 = rnd(E * H, 1.5);
      // the router logits must be well separated so ±1e-6 perturbations never flip the top-k choice
      const logits = mk.matmul(mk.tensor(xs, [T, H]), mk.tensor(router0, [E, H]), { transB: true });
      const sel = router === 'softmax-topk' ? mk.softmax(logits) : mk.sigmoid(logits);
      const v = sel.toArray();
      for (let t = 0; t < T; t++) {
        const s = v.slice(t * E, (t + 1) * E).sort((a, b) => b - a);
        for (let j = 1; j < E; j++) expect(s[j - 1]! - s[j]!).toBeGreaterThan(1e-4);
      }
      const inputs = [
        { data: xs, shape: [T, H] }, { data: router0, shape: [E, H] },
        { data: rnd(E * H * I, 0.5), shape: [E, H, I] }, { data: rnd(E * H * I, 0.5), shape: [E, H, I] }, { data: rnd(E * I * H, 0.5), shape: [E, I, H] },
        { data: rnd(S * H, 0.5), shape: [S, H] }, { data: rnd(S * H, 0.5), shape: [S, H] }, { data: rnd(H * S, 0.5), shape: [H, S] }, { data: rnd(H, 0.5), shape: [1, H] },
      ];
      const run = (ts: mk.Tensor[]) => moe(ts[0]!, { router: ts[1]!, experts: { gate: ts[2]!, up: ts[3]!, down: ts[4]! }, shared: { gate: ts[5]!, up: ts[6]!, down: ts[7]! }, sharedGate: ts[8]! }, cfg);
      const gy = mk.gradcheck((...ts) => run(ts).y, inputs);
      expect(gy.ok, JSON.stringify(gy)).toBe(true);
      const gl = mk.gradcheck((...ts) => mk.reshape(run(ts).aux.loss, [1]), inputs.slice(0, 2).concat(inputs.slice(2).map((i) => ({ ...i, grad: false }))));
      expect(gl.ok, JSON.stringify(gl)).toBe(true);
    });
  }

  it('the aux-loss-free bias update balances a skewed router (selection only)', () => {
    const [T, H, E] = [64, 8, 8];
    const block = new MoEBlock({ hidden: H, experts: E, topK: 2, expertWidth: 4, router: 'sigmoid-group', selectionBias: true }, new mk.Rng(7));
    // skew: feature 0 is always 1 and pushes experts 0 and 1 up
    const w = block.gate.weight.toArray();
    for (let e = 0; e < E; e++) w[e * H] = e < 2 ? 3 : -1;
    block.setTensor('gate.weight', mk.tensor(w, [E, H]));
    const rng = new mk.Rng(8);
    const x = mk.tensor(Array.from({ length: T * H }, (_, i) => (i % H === 0 ? 1 : rng.normal())), [T, H]); // (T, H)
    const step = () => mk.noGrad(() => mk.tidy(() => {
      const o = block.forward(x);
      return { counts: o.stats.tokensPerExpert, y: o.y.toArray() };
    }));
    const first = step();
    const before = imbalance(first.counts);
    let counts = first.counts;
    for (let s = 0; s < 300; s++) {
      block.updateBias(counts, 0.01);
      counts = step().counts;
    }
    const after = imbalance(counts);
    console.log(`imbalance max/mean: before ${before.toFixed(2)}, after 300 bias updates ${after.toFixed(2)}`);
    expect(before).toBeGreaterThan(2.5);
    expect(after).toBeLessThan(1.5);
    // weights still come from the unbiased scores: zeroing the bias only changes selection
    const bias = block.bias!;
    expect(Math.max(...bias.slice(0, 2))).toBeLessThan(0);
    const o = block.forward(x);
    const scores = mk.sigmoid(o.routing.logits).toArray();
    const ids = o.routing.experts.toArray();
    const wts = o.routing.weights.toArray();
    const t0 = [scores[ids[0]!]!, scores[ids[1]!]!];
    expect(wts[0]).toBeCloseTo(t0[0]! / (t0[0]! + t0[1]!), 5);
    expect(() => new MoEBlock({ hidden: 4, experts: 2, topK: 1, expertWidth: 2 }, new mk.Rng(1)).updateBias([1, 1])).toThrow(/no selection bias/);
  });
});

describe('fused inference path (moeFfn, routeTopK)', () => {
  const backends: [string, () => Promise<mk.Backend>][] = [
    ['js', async () => new mk.JsBackend()],
    ['wasm', async () => mk.WasmBackend.create({ threads: 2 })],
  ];
  for (const [name, make] of backends) {
    it(`${name}: no-gradient forward and infer() equal the composed training form (y within 1e-5, same experts and loads)`, async () => {
      const backend = await make();
      const prev = mk.getBackend();
      mk.useBackend(backend);
      try {
        for (const [renormalize, selectionBias] of [[true, false], [false, false], [true, true]] as const) {
          const cfg: MoEConfig = { hidden: 16, experts: 8, topK: 2, expertWidth: 12, sharedWidth: 10, sharedGate: true, renormalize, selectionBias };
          const block = new MoEBlock(cfg, new mk.Rng(3));
          // a selection bias large enough to change which experts win (the fused routeTopK then ranks p + bias)
          if (selectionBias) mk.noGrad(() => block.gate.setTensor('e_score_correction_bias', mk.randn([8], new mk.Rng(9), 0.1)));
          const x = mk.randn([2, 9, 16], new mk.Rng(4));
          const composed = block.forward(x); // parameters require grad: the composed, differentiable ops
          const fused = mk.noGrad(() => block.forward(x));
          const inf = mk.noGrad(() => block.infer(x));
          const yc = composed.y.toArray() as number[];
          expect(maxAbsDiff(fused.y.toArray() as number[], yc)).toBeLessThan(1e-5);
          expect(maxAbsDiff(inf.y.toArray() as number[], yc)).toBeLessThan(1e-5);
          expect(inf.y.shape).toEqual(x.shape);
          expect(fused.stats).toEqual(composed.stats);
          expect(inf.stats).toEqual(composed.stats);
          expect(inf.experts.toArray()).toEqual(composed.routing.experts.toArray());
          expect(maxAbsDiff(fused.aux.loss.toArray() as number[], composed.aux.loss.toArray() as number[])).toBe(0);
        }
      } finally {
        mk.useBackend(prev);
        await backend.dispose();
      }
    });
  }

  it('the fused kernels refuse to run where a gradient would be recorded', () => {
    const block = new MoEBlock({ hidden: 8, experts: 4, topK: 2, expertWidth: 4 }, new mk.Rng(1));
    const x = mk.randn([3, 8], new mk.Rng(2));
    const w = block.weights.experts;
    const ids = mk.tensor([0, 1, 2, 3, 1, 2], [3, 2], 'i32');
    const wt = mk.full([3, 2], 0.5);
    expect(() => mk.moeFfn(x, ids, wt, w)).toThrow(/moeFfn is an inference kernel without a gradient/);
    expect(() => mk.routeTopK(mk.matmul(x, block.gate.weight, { transB: true }), 2)).toThrow(/routeTopK is an inference kernel/);
    expect(mk.noGrad(() => mk.moeFfn(x, ids, wt, w)).shape).toEqual([3, 8]);
  });

  it('bad expert ids and shapes are named in the error', () => {
    const w = { gate: mk.zeros([4, 8, 4]), up: mk.zeros([4, 8, 4]), down: mk.zeros([4, 4, 8]) };
    const x = mk.zeros([2, 8]);
    expect(() => mk.moeFfn(x, mk.tensor([0, 4, 1, 2], [2, 2], 'i32'), mk.zeros([2, 2]), w)).toThrow(/slot 1 \(token 0\) names expert 4, outside \[0, 4\)/);
    expect(() => mk.moeFfn(x, mk.tensor([0, 1], [2, 1], 'i32'), mk.zeros([2, 2]), w)).toThrow(/ids i32\(2, 1\) and weights f32\(2, 2\) must both be \(T = 2, K\)/);
    expect(() => mk.moeFfn(x, mk.tensor([0, 1], [2, 1], 'i32'), mk.zeros([2, 1]), { ...w, down: mk.zeros([4, 8, 4]) })).toThrow(/down f32\(4, 8, 4\) must be/);
    expect(() => mk.routeTopK(mk.zeros([2, 6]), 2, { groups: 4 })).toThrow(/groups 4 must divide E = 6/);
    expect(() => mk.routeTopK(mk.zeros([2, 6]), 4, { groups: 3, topGroups: 1 })).toThrow(/k = 4 must be in \[1, 2\]/);
  });
});
