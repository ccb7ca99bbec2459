// Clustered MoE: two-stage routing, the fused base + low-rank expert op against materialised weights, rank = full
// equals the standard block, regrouping keeps the function, gradchecks, and a clustered model that trains and regroups.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { maxAbsDiff, relErr } from '../helpers/compare.js';
import { tempDir } from '../helpers/tmp.js';
import { ClusteredMoEBlock, MoEBlock, clusteredExperts, experts as standardExperts, indicesAndBins, offsetsTensor, permute, twoStageRoute, unpermute } from '../../src/moe/index.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

/** y = Σ_k w_k · SwiGLU_k(x) with materialised expert weights (the reference of the fused op). */
function materialised(x: mk.Tensor, ids: mk.Tensor, weights: mk.Tensor, eff: { E: number; H: number; I: number; gate: Float32Array; up: Float32Array; down: Float32Array }): mk.Tensor {
  const bins = indicesAndBins(ids, eff.E);
  const w = { gate: mk.tensor(eff.gate, [eff.E, eff.H, eff.I]), up: mk.tensor(eff.up, [eff.E, eff.H, eff.I]), down: mk.tensor(eff.down, [eff.E, eff.I, eff.H]) };
  return unpermute(standardExperts(permute(x, bins), offsetsTensor(bins), w), bins, weights, x.shape[0]!);
}

describe('twoStageRoute', () => {
  it("'lse': p_group·p_expert is the flat softmax; k_g = 1 keeps every token's experts in one group", () => {
    const [T, E, G, K] = [16, 8, 2, 2];
    const logits = mk.randn([T, E], new mk.Rng(1), 2);
    const r = twoStageRoute(logits, null, { groups: G, K, groupTopK: 1, renormalize: true });
    expect(maxAbsDiff(r.probs.toArray() as number[], mk.softmax(logits).toArray() as number[])).toBeLessThan(1e-6);
    const ids = r.experts.toArray() as number[];
    const pg = r.groupProbs.toArray() as number[];
    for (let t = 0; t < T; t++) {
      const g = Math.floor(ids[t * K]! / (E / G));
      expect(Math.floor(ids[t * K + 1]! / (E / G))).toBe(g);
      expect(pg[t * G + g]).toBe(Math.max(...pg.slice(t * G, (t + 1) * G))); // the most probable group
    }
    const w = r.weights.toArray() as number[];
    for (let t = 0; t < T; t++) expect(w[t * K]! + w[t * K + 1]!).toBeCloseTo(1, 6);
    // k_g = G: plain top-k of the softmax
    const all = twoStageRoute(logits, null, { groups: G, K, groupTopK: G, renormalize: true });
    expect(all.experts.toArray()).toEqual(mk.topk(mk.softmax(logits), K).indices.toArray());
    expect(() => twoStageRoute(logits, null, { groups: 3, K, groupTopK: 1, renormalize: true })).toThrow('groups 3 must divide E = 8');
    expect(() => twoStageRoute(logits, null, { groups: 4, K: 3, groupTopK: 1, renormalize: true })).toThrow('groupTopK 1 must be in [1, 4] and hold K = 3 experts (2 per group)');
  });

  it('a selection bias re-ranks experts and groups but the weights stay the renormalised probabilities', () => {
    const [T, E, G, K] = [32, 8, 2, 2];
    const logits = mk.randn([T, E], new mk.Rng(2), 0.5);
    const probs = mk.softmax(logits).toArray() as number[];
    // a large bias on expert 5 (group 1): every token picks group 1, and expert 5 in it
    const b = new Float32Array(E);
    b[5] = 1;
    const r = twoStageRoute(logits, null, { groups: G, K, groupTopK: 1, renormalize: true, bias: mk.tensor(b, [E]) });
    const ids = r.experts.toArray() as number[];
    const w = r.weights.toArray() as number[];
    for (let t = 0; t < T; t++) {
      expect(ids[t * K]).toBe(5);
      expect(Math.floor(ids[t * K + 1]! / 4)).toBe(1);
      const p0 = probs[t * E + ids[t * K]!]!;
      const p1 = probs[t * E + ids[t * K + 1]!]!;
      expect(w[t * K]).toBeCloseTo(p0 / (p0 + p1), 6);
    }
    // a zero bias routes exactly as no bias
    const zero = twoStageRoute(logits, null, { groups: G, K, groupTopK: 1, renormalize: true, bias: mk.zeros([E]) });
    const none = twoStageRoute(logits, null, { groups: G, K, groupTopK: 1, renormalize: true });
    expect(zero.experts.toArray()).toEqual(none.experts.toArray());
    expect(() => twoStageRoute(logits, null, { groups: G, K, groupTopK: 1, renormalize: true, bias: mk.zeros([E + 1]) })).toThrow('bias f32(9) must be (E = 8)');
  });

  it('updateBias (aux-loss-free balancing) evens out a skewed load at both stages', () => {
    const [H, E, G, K] = [8, 8, 2, 2];
    const block = new ClusteredMoEBlock({ hidden: H, experts: E, topK: K, expertWidth: 4, groups: G, rank: 2, selectionBias: true }, new mk.Rng(12));
    // skew the router: feature 0 is always 1 and pushes experts 0 and 1 (group 0) up
    const wr = block.gate.weight.toArray() as number[];
    for (let e = 0; e < E; e++) wr[e * H] = e < 2 ? 2 : -1;
    mk.noGrad(() => block.gate.setTensor('weight', mk.tensor(wr, [E, H])));
    const rng = new mk.Rng(13);
    const x = mk.tensor(Array.from({ length: 256 * H }, (_, i) => (i % H === 0 ? 1 : rng.normal())), [256, H]);
    const stats = (): { variance: number; groups: number[] } => {
      const s = mk.noGrad(() => block.infer(x)).stats;
      const n = s.tokensPerExpert.reduce((a, c) => a + c, 0);
      const f = s.tokensPerExpert.map((c) => c / n);
      return { variance: f.reduce((a, v) => a + (v - 1 / E) ** 2, 0) / E, groups: s.tokensPerGroup };
    };
    const before = stats();
    for (let i = 0; i < 300; i++) block.updateBias(mk.noGrad(() => block.infer(x)).stats.tokensPerExpert, 0.002);
    const after = stats();
    console.log(`clustered load variance: before ${before.variance.toExponential(2)}, after 300 bias updates ${after.variance.toExponential(2)}; group loads ${before.groups.join('/')} -> ${after.groups.join('/')}`);
    expect(after.variance).toBeLessThan(before.variance / 10);
    expect(Math.abs(after.groups[0]! - after.groups[1]!)).toBeLessThan(Math.abs(before.groups[0]! - before.groups[1]!) / 4);
    expect(() => new ClusteredMoEBlock({ hidden: H, experts: E, topK: K, expertWidth: 4, groups: G, rank: 2 }, new mk.Rng(1)).updateBias(new Array(E).fill(1))).toThrow(/ClusteredMoEBlock.updateBias: this block has no selection bias/);
  });

  it('group balance loss is 0 for uniform group probabilities and positive otherwise', () => {
    const flat = twoStageRoute(mk.zeros([4, 6]), null, { groups: 3, K: 2, groupTopK: 1, renormalize: true });
    expect(flat.aux.group.item()).toBeCloseTo(0, 6);
    expect(flat.aux.switch.item()).toBeGreaterThan(0);
    const skew = twoStageRoute(mk.tensor([[5, 5, 0, 0, 0, 0], [4, 6, 0, 0, 0, 0]]), null, { groups: 3, K: 2, groupTopK: 1, renormalize: true });
    expect(skew.aux.group.item()).toBeGreaterThan(0.5);
  });

  for (const kind of ['lse', 'linear'] as const) {
    it(`${kind}: gradcheck of the routing weights and aux losses w.r.t. the router${kind === 'linear' ? ' and group router' : ''}`, () => {
      const [T, H, E, G, K] = [5, 4, 6, 3, 2];
      const rng = new mk.Rng(kind === 'lse' ? 3 : 4);
      const rnd = (n: number, s: number) => Array.from({ length: n }, () => s * rng.normal());
      const x = rnd(T * H, 1);
      const inputs: mk.GradcheckInput[] = [{ data: rnd(E * H, 1.5), shape: [E, H] }];
      if (kind === 'linear') inputs.push({ data: rnd(G * H, 1.5), shape: [G, H] });
      const run = (ts: mk.Tensor[]) => {
        const xt = mk.tensor(x, [T, H]);
        return twoStageRoute(mk.matmul(xt, ts[0]!, { transB: true }), ts[1] ? mk.matmul(xt, ts[1], { transB: true }) : null, { groups: G, K, groupTopK: 1, renormalize: true });
      };
      const gw = mk.gradcheck((...ts) => run(ts).weights, inputs);
      expect(gw.ok, JSON.stringify(gw)).toBe(true);
      const ga = mk.gradcheck((...ts) => { const a = run(ts).aux; return mk.reshape(mk.add(mk.add(a.switch, a.group), a.z), [1]); }, inputs);
      expect(ga.ok, JSON.stringify(ga)).toBe(true);
    });
  }
});

describe('clusteredExperts (fused base + low-rank)', () => {
  it('equals the materialised experts W̃ = base + A·B under the same routing (rank < full, k_g = 1 and 2)', () => {
    for (const kg of [1, 2]) {
      const [T, H, I, E, G, K, r] = [12, 8, 6, 6, 3, 2, 2];
      const block = new ClusteredMoEBlock({ hidden: H, experts: E, topK: K, expertWidth: I, groups: G, rank: r, groupTopK: kg }, new mk.Rng(5 + kg));
      const x = mk.randn([T, H], new mk.Rng(9));
      const route = twoStageRoute(mk.matmul(x, block.gate.weight, { transB: true }), null, { groups: G, K, groupTopK: kg, renormalize: true });
      const got = clusteredExperts(x, route.experts, route.weights, block.f32Experts().weights);
      const ref = materialised(x, route.experts, route.weights, block.f32Experts().effective());
      expect(maxAbsDiff(got.y.toArray() as number[], ref.toArray() as number[])).toBeLessThan(1e-5);
      expect(got.tokensPerExpert.reduce((a, b) => a + b, 0)).toBe(T * K);
      if (kg === 1) expect(got.crossGroup).toBe(0);
      expect(got.tokensPerGroup.reduce((a, b) => a + b, 0)).toBe(T + got.crossGroup);
    }
  });

  it('gradcheck w.r.t. x, bases and factors', () => {
    const [T, H, I, E, G, K, r] = [5, 4, 3, 4, 2, 2, 2];
    const rng = new mk.Rng(11);
    const rnd = (n: number) => Array.from({ length: n }, () => rng.normal());
    const idsData = [0, 1, 2, 3, 1, 0, 3, 0, 2, 1]; // tokens 3 and 4 cross groups
    const wtsData = rnd(T * K).map((v) => 0.5 + 0.2 * v);
    const shapes = [[T, H], [G, H, I], [G, H, I], [G, I, H], [E, H, r], [E, r, I], [E, H, r], [E, r, I], [E, I, r], [E, r, H]];
    const inputs = shapes.map((s) => ({ data: rnd(s.reduce((a, b) => a * b, 1)), shape: s }));
    // constants are built inside: gradcheck runs the function on its float64 backend
    const g = mk.gradcheck((...ts) => clusteredExperts(ts[0]!, mk.tensor(idsData, [T, K], 'i32'), mk.tensor(wtsData, [T, K]), {
      baseGate: ts[1]!, baseUp: ts[2]!, baseDown: ts[3]!, gateA: ts[4]!, gateB: ts[5]!, upA: ts[6]!, upB: ts[7]!, downA: ts[8]!, downB: ts[9]!,
    }).y, inputs);
    expect(g.ok, JSON.stringify(g)).toBe(true);
  });
});

describe('ClusteredMoEBlock', () => {
  const [H, I, E, K] = [8, 6, 4, 2];

  it('rank = full: compressed from a standard block it computes the same function (k_g = G)', () => {
    const std = new MoEBlock({ hidden: H, experts: E, topK: K, expertWidth: I, selectionBias: false }, new mk.Rng(1));
    const cl = new ClusteredMoEBlock({ hidden: H, experts: E, topK: K, expertWidth: I, groups: 2, rank: Math.min(H, I), groupTopK: 2 }, new mk.Rng(2));
    const w = std.experts.weights;
    const err = cl.f32Experts().compressFrom({ E, H, I, gate: w.gate.dataSync() as Float32Array, up: w.up.dataSync() as Float32Array, down: w.down.dataSync() as Float32Array });
    expect(err).toBeLessThan(1e-6);
    mk.assign(cl.gate.weight, std.gate.weight);
    const x = mk.randn([3, 5, H], new mk.Rng(3));
    const a = std.forward(x).y.toArray() as number[];
    const b = cl.forward(x).y.toArray() as number[];
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    expect(cl.parameters('mlp.').map(([n]) => n)).toEqual([
      'mlp.gate.weight', 'mlp.experts.base_gate', 'mlp.experts.base_up', 'mlp.experts.base_down',
      'mlp.experts.gate_a', 'mlp.experts.gate_b', 'mlp.experts.up_a', 'mlp.experts.up_b', 'mlp.experts.down_a', 'mlp.experts.down_b',
    ]);
  });

  it('regrouping moves experts with their router rows and keeps the function (exactly at full rank, closely at low rank)', () => {
    // low rank: experts near a common matrix plus a rank-1 term each, so any pairing leaves a residual of rank <= 2 plus noise
    const E6 = 6;
    const rng = new mk.Rng(9);
    const structured = (din: number, dout: number): Float32Array => {
      const base = Array.from({ length: din * dout }, () => rng.normal() / Math.sqrt(din));
      const out = new Float32Array(E6 * din * dout);
      for (let e = 0; e < E6; e++) {
        const u = Array.from({ length: din }, () => rng.normal());
        const v = Array.from({ length: dout }, () => rng.normal() / Math.sqrt(din));
        for (let i = 0; i < din; i++) for (let j = 0; j < dout; j++) out[(e * din + i) * dout + j] = base[i * dout + j]! + u[i]! * v[j]! + 1e-3 * rng.normal();
      }
      return out;
    };
    for (const [rank, tol] of [[Math.min(H, I), 1e-5], [3, 5e-3]] as const) {
      const cl = new ClusteredMoEBlock({ hidden: H, experts: E6, topK: K, expertWidth: I, groups: 3, rank, groupTopK: 3, selectionBias: true }, new mk.Rng(4));
      if (rank < Math.min(H, I)) cl.f32Experts().compressFrom({ E: E6, H, I, gate: structured(H, I), up: structured(H, I), down: structured(I, H) });
      const bias = mk.randn([E6], new mk.Rng(8), 0.05);
      const biasBefore = bias.toArray() as number[];
      mk.noGrad(() => cl.gate.setTensor('e_score_correction_bias', bias));
      const x = mk.randn([20, H], new mk.Rng(5));
      cl.tracking = true;
      const before = cl.forward(x).y.toArray() as number[];
      cl.tracking = false;
      const e = cl.regroup({ alpha: 0.7, tau: 0.1, rng: new mk.Rng(6) });
      expect(e.membership.flat().sort()).toEqual([0, 1, 2, 3, 4, 5]);
      expect(e.membership.every((g) => g.length === 2)).toBe(true);
      expect([...cl.ids]).toEqual(e.membership.flat());
      expect(e.changedGroups).toBeGreaterThan(0); // deterministic seeds: the experts really move
      expect(cl.gate.bias!.toArray()).toEqual([...cl.ids].map((id) => biasBefore[id]!)); // the bias moved with its expert
      const after = cl.forward(x).y.toArray() as number[];
      const scale = Math.max(...before.map(Math.abs));
      expect(maxAbsDiff(before, after) / scale).toBeLessThan(tol);
      // a second regrouping of unchanged experts changes nothing
      const e2 = cl.regroup({ alpha: 0.7, tau: 0.1, rng: new mk.Rng(6) });
      if (e2.changedGroups === 0) expect(maxAbsDiff(after, cl.forward(x).y.toArray() as number[])).toBe(0);
    }
  });

  it('counts active expert parameters: k_g bases and K experts’ factors', () => {
    const cl = new ClusteredMoEBlock({ hidden: 16, experts: 8, topK: 2, expertWidth: 8, groups: 2, rank: 2 }, new mk.Rng(1));
    expect(cl.f32Experts().numParams()).toBe(3 * (2 * 16 * 8 + 8 * 2 * (16 + 8)));
    expect(cl.activeExpertParams()).toBe(3 * 16 * 8 + 2 * 3 * 2 * (16 + 8));
    expect(() => new ClusteredMoEBlock({ hidden: 16, experts: 8, topK: 3, expertWidth: 8, groups: 4, rank: 2 }, new mk.Rng(1))).toThrow('groupTopK 1 must be <= groups 4 and hold topK 3 experts (2 per group)');
  });
});

describe('clustered MoELM', () => {
  it('trains, regroups every T steps after warm-up with a small loss jump, and counts parameters', async () => {
    const cfg = mk.parseConfig({ ...mk.PRESETS.tiny, ffn: 'clustered', experts: 8, clusterGroups: 2, clusterRank: 4, clusterEvery: 10, clusterWarmup: 20, biasUpdateRate: 0 });
    const rng = new mk.Rng(1);
    // a token stream with structure: repeating random phrases
    const phrases = Array.from({ length: 12 }, () => Array.from({ length: 6 }, () => rng.int(cfg.vocabSize)));
    const tokens = Int32Array.from(Array.from({ length: 3000 }, (_, i) => phrases[Math.floor(i / 6) % 12]![i % 6]!));
    const { train } = await import('../../src/train/loop.js');
    const r = await train({ config: cfg, tokens, steps: 45, batch: 4, seqLen: 32, lr: 1e-2, out: null });
    expect(r.metrics[44]!.ce).toBeLessThan(r.metrics[0]!.ce * 0.7);
    const steps = [...new Set(r.regroups.map((e) => e.step))];
    expect(steps).toEqual([20, 30, 40]);
    for (const e of r.regroups) {
      expect(e.membership.map((g) => g.length)).toEqual([4, 4]);
      expect(Math.abs(e.loss_after - e.loss_before)).toBeLessThan(0.5);
    }
    expect(r.metrics[44]!.cross_group).toEqual([0, 0]);
    const counts = r.model.paramCounts();
    const layer = 3 * (2 * 32 * 32 + 8 * 4 * 64);
    expect(counts.expert).toBe(2 * layer);
    expect(counts.active).toBe(counts.total - 2 * layer + 2 * (3 * 32 * 32 + 2 * 3 * 4 * 64));
  });

  it('clusterDenseWarmup: full experts until the warm-up, then compressed by the first clustering; resumes across it', async () => {
    const cfg = mk.parseConfig({ ...mk.PRESETS.tiny, ffn: 'clustered', experts: 8, clusterGroups: 2, clusterRank: 4, clusterEvery: 10, clusterWarmup: 20, clusterDenseWarmup: true, biasUpdateRate: 0 });
    const rng = new mk.Rng(2);
    const phrases = Array.from({ length: 12 }, () => Array.from({ length: 6 }, () => rng.int(cfg.vocabSize)));
    const tokens = Int32Array.from(Array.from({ length: 3000 }, (_, i) => phrases[Math.floor(i / 6) % 12]![i % 6]!));
    const { train } = await import('../../src/train/loop.js');
    const steps: number[] = [];
    const r = await train({ config: cfg, tokens, steps: 35, batch: 4, seqLen: 32, lr: 1e-2, out: null, onStep: (m) => void (m.cross_group === undefined && steps.push(m.step)) });
    expect(steps).toEqual(Array.from({ length: 20 }, (_, i) => i + 1)); // the warm-up steps ran a standard MoE
    const first = r.regroups.filter((e) => e.step === 20);
    expect(first.map((e) => e.changed_groups)).toEqual([2, 2]); // the first clustering forms every group
    for (const e of first) {
      expect(e.membership.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(e.rel_error).toBeGreaterThan(0);
      expect(e.rel_error).toBeLessThan(1);
    }
    expect(r.regroups.some((e) => e.step === 30)).toBe(true);
    expect(r.model.cfg.ffn).toBe('clustered');
    expect(r.model.clusteredBlocks().length).toBe(2);
    expect(r.metrics[34]!.ce).toBeLessThan(r.metrics[0]!.ce * 0.7);
    // a run interrupted before the switch and resumed gives the same losses as an uninterrupted one
    const fs = await import('node:fs');
    const path = await import('node:path');
    const out = tempDir('moekit-dw-');
    const full = await train({ config: cfg, tokens, steps: 25, batch: 4, seqLen: 32, lr: 1e-2, out: null });
    const crash = (m: { step: number }): void => {
      if (m.step === 17) throw new Error('simulated crash');
    };
    await expect(train({ config: cfg, tokens, steps: 25, batch: 4, seqLen: 32, lr: 1e-2, out, checkpointEvery: 15, onStep: crash })).rejects.toThrow('simulated crash');
    const cut = await train({ config: cfg, tokens, steps: 25, batch: 4, seqLen: 32, lr: 1e-2, out, resume: true });
    expect(cut.startStep).toBe(15);
    expect(cut.model.cfg.ffn).toBe('clustered');
    const halfway = await train({ config: cfg, tokens, steps: 15, batch: 4, seqLen: 32, lr: 1e-2, out: path.join(out, 'b') });
    expect(halfway.model.cfg.ffn).toBe('clustered'); // warm-up >= steps: no switch, the config's model throughout
    const resumed = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number });
    expect(resumed.map((m) => m.loss)).toEqual(full.metrics.map((m) => m.loss));
  });
});

describe('clustered training resume', () => {
  it('a run interrupted after a regrouping resumes exactly: slot ids, centroids and the regrouping RNG are checkpointed', async () => {
    // compressed from step 0 (no dense warm-up) and S_task only, so that a regrouping moves experts between groups
    const cfg = mk.parseConfig({ ...mk.PRESETS.tiny, ffn: 'clustered', experts: 8, clusterGroups: 2, clusterRank: 2, clusterEvery: 4, clusterWarmup: 4, clusterDenseWarmup: false, clusterAlpha: 0, biasUpdateRate: 0 });
    const rng = new mk.Rng(4);
    const tokens = Int32Array.from({ length: 3000 }, () => rng.int(cfg.vocabSize));
    const { train } = await import('../../src/train/loop.js');
    const fs = await import('node:fs');
    const path = await import('node:path');
    const o = { config: cfg, tokens, steps: 22, batch: 2, seqLen: 16, lr: 1e-2 };
    const full = await train({ ...o, out: null });
    expect(full.regroups.some((e) => e.changed_groups > 0 && e.step <= 10)).toBe(true); // experts moved before the checkpoint
    const out = tempDir('moekit-cl-');
    const crash = (m: { step: number }): void => {
      if (m.step === 15) throw new Error('simulated crash');
    };
    await expect(train({ ...o, out, checkpointEvery: 10, onStep: crash })).rejects.toThrow('simulated crash');
    const state = JSON.parse(fs.readFileSync(path.join(out, 'checkpoints', 'step-10', 'state.json'), 'utf8')) as { cluster: { layers: { ids: number[] }[] } };
    expect(state.cluster.layers).toHaveLength(2);
    expect(state.cluster.layers.some((l) => l.ids.some((id, s) => id !== s))).toBe(true); // a slot holds another expert
    const resumed = await train({ ...o, out, resume: true });
    expect(resumed.startStep).toBe(10);
    expect(resumed.metrics.map((m) => m.loss)).toEqual(full.metrics.slice(10).map((m) => m.loss));
    expect(resumed.regroups).toEqual(full.regroups.filter((e) => e.step > 10));
    resumed.model.clusteredBlocks().forEach(([, b], i) => expect(Array.from(b.ids)).toEqual(Array.from(full.model.clusteredBlocks()[i]![1].ids)));
  });
});

describe('fused inference path (clusteredFfn, routeTopK over groups)', () => {
  const backends: [string, () => Promise<mk.Backend>][] = [
    ['js', async () => new mk.JsBackend()],
    ['wasm', () => mk.WasmBackend.create({ threads: 2 })],
  ];
  for (const [name, make] of backends) {
    it(`${name}: no-gradient forward and infer() equal the composed training form (y within 1e-5, same experts, group stats)`, async () => {
      const backend = await make();
      const prev = mk.getBackend();
      mk.useBackend(backend);
      try {
        for (const [groupTopK, sharedWidth, groupRouter, selectionBias] of [[1, 0, 'lse', false], [2, 6, 'lse', false], [1, 6, 'linear', false], [1, 0, 'lse', true], [2, 0, 'lse', true]] as const) {
          const block = new ClusteredMoEBlock({ hidden: 12, experts: 12, topK: 3, expertWidth: 10, groups: 3, rank: 3, groupTopK, sharedWidth, groupRouter, selectionBias }, new mk.Rng(5));
          if (selectionBias) mk.noGrad(() => block.gate.setTensor('e_score_correction_bias', mk.randn([12], new mk.Rng(7), 0.05)));
          const x = mk.randn([2, 11, 12], new mk.Rng(6));
          const composed = block.forward(x);
          const fused = mk.noGrad(() => block.forward(x));
          const inf = mk.noGrad(() => block.infer(x));
          const yc = composed.y.toArray() as number[];
          expect(maxAbsDiff(fused.y.toArray() as number[], yc)).toBeLessThan(1e-5);
          expect(maxAbsDiff(inf.y.toArray() as number[], yc)).toBeLessThan(1e-5);
          expect(fused.stats).toEqual(composed.stats);
          expect(inf.stats).toEqual({ ...composed.stats });
          expect(inf.experts.toArray()).toEqual(composed.routing.experts.toArray());
          if (groupTopK === 2) expect(composed.stats.crossGroup).toBeGreaterThan(0); // the case where pairs matter
        }
      } finally {
        mk.useBackend(prev);
        await backend.dispose();
      }
    });
  }

  it('clusteredFfn with f16 bases equals the f32 op on the widened bases', () => {
    const block = new ClusteredMoEBlock({ hidden: 12, experts: 6, topK: 2, expertWidth: 10, groups: 3, rank: 2 }, new mk.Rng(18));
    const w = block.f32Experts().weights;
    const T = 21;
    const x = mk.randn([T, 12], new mk.Rng(19));
    const rng = new mk.Rng(20);
    const ids = mk.tensor(Int32Array.from({ length: T * 2 }, () => rng.int(6)), [T, 2], 'i32');
    const wt = mk.rand([T, 2], new mk.Rng(21));
    const half = { ...w, baseGate: mk.cast(w.baseGate, 'f16'), baseUp: mk.cast(w.baseUp, 'f16'), baseDown: mk.cast(w.baseDown, 'f16') };
    const widened = { ...w, baseGate: mk.cast(half.baseGate, 'f32'), baseUp: mk.cast(half.baseUp, 'f32'), baseDown: mk.cast(half.baseDown, 'f32') };
    for (const n of [1, T]) { // token path and grouped path on wasm; one path on js
      const xs = mk.slice(x, [0, 0], [n, 12]);
      const is = mk.slice(ids, [0, 0], [n, 2]);
      const ws = mk.slice(wt, [0, 0], [n, 2]);
      const got = mk.noGrad(() => mk.clusteredFfn(xs, is, ws, half)).toArray() as number[];
      const want = mk.noGrad(() => mk.clusteredFfn(xs, is, ws, widened)).toArray() as number[];
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
    }
    expect(() => mk.noGrad(() => mk.clusteredFfn(x, ids, wt, { ...w, baseGate: half.baseGate }))).toThrow(/the bases must share one dtype/);
  });

  it('wasm clusteredFfn with f16 bases matches js when the fast widening does not apply: inf/NaN bases, |x| >= 2^15, a base overwritten in place', async () => {
    const H = 16, I = 16, E = 4, G = 2, T = 3;
    const block = new ClusteredMoEBlock({ hidden: H, experts: E, topK: 2, expertWidth: I, groups: G, rank: 2 }, new mk.Rng(31));
    const host = Object.fromEntries(Object.entries(block.f32Experts().weights).map(([k, t]) => [k, { data: Float32Array.from(t.dataSync() as Float32Array), shape: [...t.shape] }]));
    const x0 = Float32Array.from(mk.randn([T, H], new mk.Rng(32)).dataSync() as Float32Array);
    const ids = Int32Array.from([0, 1, 2, 3, 1, 0]);
    const wts = Float32Array.from([0.6, 0.4, 0.7, 0.3, 0.5, 0.5]);
    const wasm = await mk.WasmBackend.create({ threads: 1 });
    const prev = mk.getBackend();
    /** the op on a backend; bases cast to f16 there, base_gate then overwritten by `assignGate` (in place) */
    const run = (backend: mk.Backend, x: Float32Array<ArrayBuffer>, gateValues?: Float32Array<ArrayBuffer>, assignGate?: Float32Array<ArrayBuffer>): number[][] => {
      mk.useBackend(backend);
      return mk.noGrad(() => mk.tidy(() => {
        const t = (k: string, data = host[k]!.data): mk.Tensor => mk.tensor(data, host[k]!.shape);
        const w = {
          baseGate: mk.keep(mk.cast(t('baseGate', gateValues), 'f16')), baseUp: mk.cast(t('baseUp'), 'f16'), baseDown: mk.cast(t('baseDown'), 'f16'),
          gateA: t('gateA'), gateB: t('gateB'), upA: t('upA'), upB: t('upB'), downA: t('downA'), downB: t('downB'),
        };
        const args = [mk.tensor(x, [T, H]), mk.tensor(ids, [T, 2], 'i32'), mk.tensor(wts, [T, 2])] as const;
        const out = [mk.clusteredFfn(...args, w).toArray()];
        if (assignGate) {
          mk.assign(w.baseGate, mk.cast(mk.tensor(assignGate, host.baseGate!.shape), 'f16'));
          out.push(mk.clusteredFfn(...args, w).toArray());
        }
        w.baseGate.dispose();
        return out;
      }));
    };
    try {
      const js = new mk.JsBackend();
      const withInf = Float32Array.from(host.baseGate!.data);
      withInf[5] = Infinity;
      withInf[H * I + 7] = NaN;
      const big = x0.map((v) => v * 1e5);
      for (const [label, x, gate, later] of [
        ['finite (fast path)', x0, undefined, undefined], ['inf and NaN in base_gate', x0, withInf, undefined],
        ['|x| up to 1e5', big, undefined, undefined], ['base_gate assigned inf after a first call', x0, undefined, withInf],
      ] as const) {
        const got = run(wasm, x, gate, later);
        const want = run(js, x, gate, later);
        got.forEach((g, i) => expect(relErr(g, want[i]!), `${label}, call ${i}`).toBeLessThan(1e-5));
        if (gate || later) expect(got.at(-1)!.some((v) => !Number.isFinite(v)), label).toBe(true);
      }
    } finally {
      mk.useBackend(prev);
      await wasm.dispose();
    }
  });

  it('clusteredFfn equals the materialised experts W̃ = base + A·B on random routing (within 1e-5)', () => {
    const block = new ClusteredMoEBlock({ hidden: 9, experts: 6, topK: 2, expertWidth: 7, groups: 3, rank: 2 }, new mk.Rng(8));
    const T = 13;
    const x = mk.randn([T, 9], new mk.Rng(9));
    const rng = new mk.Rng(10);
    const ids = mk.tensor(Int32Array.from({ length: T * 2 }, () => rng.int(6)), [T, 2], 'i32'); // any pairs, also across groups
    const wt = mk.rand([T, 2], new mk.Rng(11));
    const got = mk.noGrad(() => mk.clusteredFfn(x, ids, wt, block.f32Experts().weights)).toArray() as number[];
    const want = materialised(x, ids, wt, block.f32Experts().effective()).toArray() as number[];
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
  });
});
