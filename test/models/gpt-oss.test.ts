// gpt_oss: YaRN frequencies, attention sinks (against an explicit softmax with the sink column), the clamped SwiGLU
// experts, and a model of other sizes (sliding window shorter than the sequence, 16 experts, top-4) on every CPU device:
// gradients equal js, KV-cache decoding equals the full forward, and the export reloads with identical logits. The
// transformers fixture is checked on js in hf.test.ts, on the wasm devices and webgpu in hf-devices.test.ts.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { fromHfConfig, toHfConfig } from '../../src/models/hf/config.js';
import { exportHf } from '../../src/models/hf/export.js';
import { Checkpoint, loadHfModel } from '../../src/models/hf/load.js';
import { MoELM, parseConfig } from '../../src/models/index.js';
import { KVCache } from '../../src/nn/attention.js';
import { sinkAttention } from '../../src/nn/sinks.js';
import { mscaleOf, yarnRope } from '../../src/nn/yarn.js';
import { expertActivation } from '../../src/moe/experts.js';
import { generate } from '../../src/serve/generate.js';
import { ids, maxAbsDiff } from '../helpers/compare.js';
import { DEVICES, JS, useDevice } from '../helpers/devices.js';
import { fixture } from '../helpers/fixtures.js';
import { OTHER, SEQ, close, explicitSinkAttention, lossAndGrads, otherModel, raw } from '../helpers/gpt-oss.js';
import { tempDir } from '../helpers/tmp.js';

beforeAll(() => mk.useBackend(new mk.JsBackend()));

describe('YaRN', () => {
  it('matches transformers\' _compute_yarn_parameters (numpy float32 reference)', () => {
    const a = yarnRope({ theta: 1e4, dim: 16, factor: 32, originalMaxPos: 4096, betaFast: 32, betaSlow: 1, truncate: false });
    close(a.invFreq, [1, 0.31622776, 0.1, 0.027735936, 0.0055527543, 0.00073827687, 3.1250001e-5, 9.8821183e-6], 1e-6);
    expect(a.attentionFactor).toBeCloseTo(0.1 * Math.log(32) + 1, 12);
    // gpt-oss-20b's own sizes (head_dim 64, θ 150000), and the truncated ramp
    const b = yarnRope({ theta: 150000, dim: 64, factor: 32, originalMaxPos: 4096, truncate: false });
    close(b.invFreq.subarray(14, 20), [0.00209379266, 0.00105260219, 0.000456483918, 0.000129318694, 3.83088118e-5, 2.63964721e-5], 1e-6);
    const c = yarnRope({ theta: 1e4, dim: 16, factor: 40, originalMaxPos: 4096 });
    close(c.invFreq, [1, 0.31622776, 0.1, 0.023914725, 0.0051249997, 0.00084986218, 2.4999999e-5, 7.9056945e-6], 1e-6);
  });

  it('attention factor: explicit, DeepSeek\'s mscale ratio, or 0.1·ln(s) + 1; bad parameters name themselves', () => {
    const base = { theta: 1e4, dim: 16, factor: 40, originalMaxPos: 4096 };
    expect(yarnRope({ ...base, attentionFactor: 0.5 }).attentionFactor).toBe(0.5);
    expect(yarnRope({ ...base, mscale: 1, mscaleAllDim: 0.5 }).attentionFactor).toBeCloseTo(mscaleOf(40, 1) / mscaleOf(40, 0.5), 12);
    expect(yarnRope({ ...base, mscale: 1, mscaleAllDim: 1 }).attentionFactor).toBe(1);
    expect(mscaleOf(0.5)).toBe(1);
    expect(() => yarnRope({ ...base, factor: 0 })).toThrow(/factor = 0: expected a positive number/);
    expect(() => yarnRope({ ...base, dim: 15 })).toThrow(/dim = 15: expected an even integer/);
  });
});

describe('clamped SwiGLU (swiglu-oai)', () => {
  it('is min(g, L)·σ(α·min(g, L))·(clamp(u, ±L) + 1), with zero gradient where clamped', () => {
    const g = mk.variable(mk.tensor([-9, -1, 0.5, 6.9, 8, 20], [1, 6]));
    const u = mk.variable(mk.tensor([-8, -7.5, 0.3, 2, 7.5, -1], [1, 6]));
    const y = expertActivation(g, u, { kind: 'swiglu-oai', limit: 7, alpha: 1.702 });
    const want = [-9, -1, 0.5, 6.9, 8, 20].map((gv, i) => {
      const gc = Math.min(gv, 7);
      const uc = Math.max(-7, Math.min(7, [-8, -7.5, 0.3, 2, 7.5, -1][i]!));
      return (gc / (1 + Math.exp(-1.702 * gc))) * (uc + 1);
    });
    close(y.dataSync(), want, 1e-6);
    mk.backward(mk.sum(y));
    const dg = g.grad!.dataSync();
    const du = u.grad!.dataSync();
    expect([dg[4], dg[5], du[0], du[1], du[4]].map((x) => Math.abs(x!))).toEqual([0, 0, 0, 0, 0]);
    expect(dg[2]).not.toBe(0);
    expect(du[2]).not.toBe(0);
  });
});

describe.each([JS, ...DEVICES])('attention sinks on $name', (device) => {
  const dev = useDevice(device);

  // [B, T, S, Hq, Hkv, D, window]: prefill, a cached step (S > T), a window shorter than the keys, one key
  it.for([[2, 7, 7, 4, 2, 8, 0], [1, 3, 11, 6, 2, 5, 4], [2, 9, 9, 2, 1, 16, 3], [1, 1, 1, 3, 3, 4, 0]] as const)(
    'B %i, T %i, S %i, Hq %i, Hkv %i, D %i, window %i: output and gradients (q, k, v, sinks) equal the explicit softmax',
    ([B, T, S, Hq, Hkv, D, window], ctx) => {
      dev.use(ctx);
      const rng = new mk.Rng(B * 100 + S * 10 + window);
      const make = (shape: number[], std = 1): mk.Tensor => mk.variable(mk.randn(shape, rng, std));
      const [q, k, v, sinks] = [make([B, T, Hq, D]), make([B, S, Hkv, D]), make([B, S, Hkv, D]), make([Hq], 2)];
      const r = mk.randn([B, T, Hq, D], rng);
      const run = (f: () => mk.Tensor): number[][] => {
        for (const t of [q, k, v, sinks]) t.grad = null;
        const o = f();
        mk.backward(mk.sum(mk.mul(o, r)));
        return [Array.from(o.dataSync()), ...[q, k, v, sinks].map((t) => Array.from(t.grad!.dataSync()))];
      };
      const got = run(() => sinkAttention(q, k, v, sinks, { causal: true, window }));
      const want = run(() => explicitSinkAttention(q, k, v, sinks, window));
      ['o', 'dq', 'dk', 'dv', 'dsinks'].forEach((n, i) => expect(maxAbsDiff(got[i]!, want[i]!), n).toBeLessThan(2e-5));
    },
  );
});

describe('gpt_oss of other sizes (js)', () => {
  it('the config holds every gpt_oss key and the model has its parameters', () => {
    const c = parseConfig(OTHER);
    expect([c.attnSinks, c.routerBias, c.expertBias, c.expertAct, c.ropeType, c.ropeTruncate, c.renormalize]).toEqual([true, true, true, 'swiglu-oai', 'yarn', false, true]);
    const names = new Set(new MoELM(OTHER).parameters().map(([n]) => n));
    for (const n of ['self_attn.sinks', 'mlp.gate.bias', 'mlp.experts.gate_proj_bias', 'mlp.experts.up_proj_bias', 'mlp.experts.down_proj_bias', 'self_attn.o_proj.bias']) {
      expect(names.has(`model.layers.2.${n}`), n).toBe(true);
    }
  });

  it('decoding with a KV cache (sinks, window 5 < 12 tokens) gives the full forward\'s logits; the fused inference path equals training\'s', () => {
    const m = otherModel();
    const full = mk.noGrad(() => m.forward(ids(SEQ)).logits.dataSync()); // (12, V)
    const infer = mk.noGrad(() => m.forward(ids(SEQ), { aux: false }).logits.dataSync());
    expect(maxAbsDiff(infer, full)).toBeLessThan(1e-5);
    const cache = Array.from({ length: m.cfg.layers }, () => new KVCache());
    const steps: Float32Array[] = [mk.noGrad(() => Float32Array.from(m.forward(ids(SEQ.slice(0, 4)), { cache, aux: false }).logits.dataSync()))];
    for (let t = 4; t < SEQ.length; t++) steps.push(mk.noGrad(() => Float32Array.from(m.forward(ids([SEQ[t]!]), { cache, aux: false }).logits.dataSync())));
    const V = m.cfg.vocabSize;
    const cached = new Float32Array(SEQ.length * V);
    let off = 0;
    for (const s of steps) {
      cached.set(s, off);
      off += s.length;
    }
    const d = maxAbsDiff(cached, full);
    console.log(`gpt_oss other sizes: KV-cache decoding vs full forward max |diff| ${d.toExponential(2)}`);
    expect(d).toBeLessThan(1e-4);
    const g = generate(m, SEQ.slice(0, 6), { maxNewTokens: 6, greedy: true });
    expect(g.ids.length).toBe(12);
  });

  it('export → load reproduces every tensor and the logits exactly; the config.json has gpt_oss\'s keys', async () => {
    const m = otherModel();
    const out = path.join(tempDir('moekit-gpt-oss-'), 'export');
    await exportHf(m, 'gpt_oss', out, { baseConfig: raw() });
    const cfgJson = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfgJson.layer_types).toEqual(['sliding_attention', 'full_attention', 'sliding_attention']);
    expect([cfgJson.num_local_experts, cfgJson.num_experts_per_tok, cfgJson.sliding_window, cfgJson.intermediate_size]).toEqual([16, 4, 5, 24]);
    expect(cfgJson.rope_parameters).toEqual(raw().rope_parameters);
    const ck = await Checkpoint.open(out);
    expect(ck.shape('model.layers.1.mlp.experts.gate_up_proj')).toEqual([16, 96, 48]);
    expect(ck.shape('model.layers.1.mlp.experts.down_proj')).toEqual([16, 24, 96]);
    await ck.close();
    const back = await loadHfModel(out);
    expect(back.unused).toEqual([]);
    expect(back.config).toEqual(m.cfg);
    const a = new Map(m.parameters());
    for (const [n, p] of back.model.parameters()) expect(maxAbsDiff(p.dataSync(), a.get(n)!.dataSync()), n).toBe(0);
    const la = mk.noGrad(() => m.forward(ids(SEQ)).logits.dataSync());
    const lb = mk.noGrad(() => back.model.forward(ids(SEQ)).logits.dataSync());
    expect(maxAbsDiff(la, lb)).toBe(0);
  });
});

describe.each(DEVICES)('gpt_oss on $name', (device) => {
  const dev = useDevice(device);

  it('other sizes: loss and every gradient equal the js backend\'s', (ctx) => {
    const backend = dev.backend(ctx);
    const want = lossAndGrads(new mk.JsBackend());
    const got = lossAndGrads(backend);
    expect(Math.abs(got.loss - want.loss)).toBeLessThan(1e-4);
    let worst = 0;
    for (const [n, g] of want.grads) {
      const d = maxAbsDiff(got.grads.get(n)!, g) / Math.max(1, ...g.map(Math.abs));
      worst = Math.max(worst, d);
      expect(d, n).toBeLessThan(1e-4);
    }
    console.log(`${device.name} gpt_oss other sizes: loss |diff| ${Math.abs(got.loss - want.loss).toExponential(2)}, worst gradient ${worst.toExponential(2)} (relative)`);
  }, 60_000);
});

describe('gpt_oss config.json', () => {
  it('reads the fixture\'s keys: YaRN, sinks, biases, clamped SwiGLU, sliding layers', () => {
    const c = fromHfConfig(raw()).config;
    expect([c.ropeType, c.ropeFactor, c.ropeOriginalMaxPos, c.ropeBetaFast, c.ropeBetaSlow, c.ropeTruncate, c.ropeTheta]).toEqual(['yarn', 32, 4096, 32, 1, false, 10000]);
    expect([c.attnSinks, c.routerBias, c.expertBias, c.expertAct, c.swigluLimit, c.swigluAlpha]).toEqual([true, true, true, 'swiglu-oai', 7, 1.702]);
    expect([c.qkvBias, c.attnOutBias, c.slidingWindow, c.slidingLayers, c.experts, c.expertWidth, c.auxLossCoef, c.balanceLoss]).toEqual([true, true, 16, [0], 8, 32, 0.001, 'global']);
  });

  it('fills what config.json leaves out with GptOssConfig\'s defaults', () => {
    const r = raw();
    for (const k of ['rope_parameters', 'layer_types', 'sliding_window', 'rms_norm_eps', 'attention_bias']) delete r[k];
    const c = fromHfConfig({ ...r, num_hidden_layers: 4 }).config;
    expect([c.ropeType, c.ropeTheta, c.ropeFactor, c.ropeTruncate, c.normEps, c.slidingWindow, c.slidingLayers, c.qkvBias]).toEqual(['yarn', 150000, 32, false, 1e-5, 128, [0, 2], true]);
    expect(fromHfConfig({ ...raw(), swiglu_limit: 5, swiglu_alpha: 2 }).config.swigluLimit).toBe(5);
  });

  it('round-trips a config of other sizes; rejects what it cannot hold, naming key and value', () => {
    const c = parseConfig(OTHER);
    expect(fromHfConfig(toHfConfig(c, 'gpt_oss', raw())).config).toEqual(c);
    expect(() => fromHfConfig({ ...raw(), layer_types: ['sliding_attention', 'chunked_attention'] })).toThrow(/"layer_types" has "chunked_attention": expected "sliding_attention" or "full_attention"/);
    expect(() => fromHfConfig({ ...raw(), layer_types: ['full_attention'] })).toThrow(/"layer_types" = \["full_attention"\]: expected a list of num_hidden_layers = 2 strings/);
    expect(() => fromHfConfig({ ...raw(), rope_parameters: { rope_theta: 1e4, rope_type: 'longrope' } })).toThrow(/rope type "longrope" is not supported/);
    expect(() => fromHfConfig({ ...raw(), rope_parameters: { rope_theta: 1e4, rope_type: 'yarn', factor: -2 } })).toThrow(/rope parameter "factor" = -2: expected a positive number/);
    expect(() => toHfConfig({ ...c, attnSinks: false }, 'gpt_oss')).toThrow(/gpt_oss needs attnSinks = true \(got false\)/);
    return expect(exportHf(new MoELM(OTHER), 'mixtral', path.join(tempDir('moekit-gpt-oss-'), 'x'))).rejects.toThrow(/attnSinks \(mixtral has no attention sinks\)/);
  });

  it('YaRN is read for the other architectures too (transformers computes RoPE the same way for each)', () => {
    const mx = JSON.parse(readFileSync(fixture('hf/mixtral/config.json'), 'utf8')) as Record<string, unknown>;
    const c = fromHfConfig({ ...mx, rope_parameters: { rope_theta: 1e6, rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32 } }).config;
    expect([c.ropeType, c.ropeFactor, c.ropeOriginalMaxPos, c.ropeTruncate, c.ropeTheta]).toEqual(['yarn', 4, 32, true, 1e6]);
    expect(toHfConfig(c, 'mixtral').rope_parameters).toEqual({ beta_fast: 32, beta_slow: 1, factor: 4, original_max_position_embeddings: 32, rope_theta: 1e6, rope_type: 'yarn', truncate: true });
  });
});

describe('what gpt_oss experts cannot do yet', () => {
  it('expert compression and clustering refuse them instead of dropping the biases and the clamp', () => {
    const m = new MoELM(OTHER);
    expect(() => mk.toClustered(m, null, { groups: 4, rank: 4 })).toThrow(/toClustered: the experts must be plain SwiGLU without biases .* got expertAct "swiglu-oai", expertBias true, routerBias true/);
    expect(() => parseConfig({ ...OTHER, ffn: 'clustered' })).toThrow(/"expertAct" = "swiglu-oai": expected "swiglu" unless ffn is "moe"/);
  });
});

