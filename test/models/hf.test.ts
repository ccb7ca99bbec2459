// Hugging Face checkpoints: logits, router logits, greedy generations and one training step's gradients against
// transformers' golden files for every architecture in HF_ARCHS (router logits where the fixture has them); configs,
// layouts and export round trips.
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { HF_ARCHS, fromHfConfig, toHfConfig } from '../../src/models/hf/config.js';
import { Checkpoint, loadHfModel, readHfConfig } from '../../src/models/hf/load.js';
import { exportHf } from '../../src/models/hf/export.js';
import { hfTensors } from '../../src/models/hf/weights.js';
import { generate } from '../../src/serve/generate.js';
import { fixture } from '../helpers/fixtures.js';

interface Reference {
  input_ids: number[];
  logits: number[][];
  /** absent for glm4_moe and deepseek_v3 (transformers does not return them) */
  router_logits?: number[][][];
  greedy_from_first8: number[];
}
interface GradRef {
  input_ids: number[];
  aux_loss: number;
  loss_total: number;
  grad_names: string[];
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'moekit-hf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await mk.setBackend('js');
});

const ids = (xs: readonly number[]): mk.Tensor => mk.tensor(Int32Array.from(xs), [1, xs.length], 'i32');
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe.each(HF_ARCHS)('%s fixture vs transformers', (arch) => {
  const dir = path.dirname(fixture(`hf/${arch}/config.json`));
  const ref = JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;

  it('logits and router logits within 1e-4; every checkpoint tensor used', async () => {
    const hf = await loadHfModel(dir);
    expect(hf.arch).toBe(arch);
    expect(hf.unused).toEqual([]);
    const out = mk.noGrad(() => hf.model.forward(ids(ref.input_ids)));
    const dl = maxAbsDiff(out.logits.dataSync(), ref.logits.flat());
    const routers = out.routerLogits.filter((t): t is mk.Tensor => t !== null);
    const refRouters = ref.router_logits;
    if (refRouters) expect(routers.length).toBe(refRouters.length);
    const dr = refRouters ? Math.max(...routers.map((t, l) => maxAbsDiff(t.dataSync(), refRouters[l]!.flat()))) : 0;
    console.log(`${arch}: logits max |diff| ${dl.toExponential(2)}, router logits ${refRouters ? dr.toExponential(2) : '(none in the fixture)'}`);
    expect(dl).toBeLessThanOrEqual(1e-4);
    expect(dr).toBeLessThanOrEqual(1e-4);
  });

  it('greedy generation from the first 8 ids equals transformers exactly', async () => {
    const hf = await loadHfModel(dir);
    const r = generate(hf.model, ref.input_ids.slice(0, 8), { maxNewTokens: ref.greedy_from_first8.length - 8, greedy: true, stopIds: hf.eosTokenIds });
    expect(r.ids).toEqual(ref.greedy_from_first8);
  });

  it('one training step: loss and every gradient within 1e-4 · max(1, max |g|)', async () => {
    const g = JSON.parse(readFileSync(path.join(dir, 'grads.json'), 'utf8')) as GradRef;
    const hf = await loadHfModel(dir);
    const T = g.input_ids.length;
    const targets = [...g.input_ids.slice(1), -100];
    const out = hf.model.loss(ids(g.input_ids), mk.tensor(Int32Array.from(targets), [1, T], 'i32'));
    mk.backward(out.loss);
    // transformers adds router_aux_loss_coef · aux_loss with the coefficient of config.json (the model keeps it
    // from construction), so loss_total = ce + config coef · aux_loss
    expect(Math.abs(out.loss.item() - g.loss_total)).toBeLessThanOrEqual(1e-5);
    const mine = new Map([...hfTensors(hf.model, arch, 'fused', (p) => p.grad)].map((t) => [t.name, t]));
    expect([...mine.keys()].sort()).toEqual([...g.grad_names].sort());
    const refGrads = await Checkpoint.open(path.join(dir, 'grads.safetensors'));
    let worst = 0;
    for (const name of g.grad_names) {
      const want = await refGrads.readF32(name);
      const scale = Math.max(1, ...Array.from(want, Math.abs));
      const d = maxAbsDiff(mine.get(name)!.data, want) / scale;
      worst = Math.max(worst, d);
      expect(d, name).toBeLessThanOrEqual(1e-4);
    }
    await refGrads.close();
    console.log(`${arch}: loss |diff| ${Math.abs(out.loss.item() - g.loss_total).toExponential(2)}, worst gradient ${worst.toExponential(2)} (relative)`);
  });

  it('export → load round-trips every tensor exactly, in both expert layouts', async () => {
    const hf = await loadHfModel(dir);
    for (const layout of ['legacy', 'fused'] as const) {
      const out = path.join(tmp, `${arch}-${layout}`);
      await exportHf(hf.model, arch, out, { layout, baseConfig: hf.raw, copyFrom: dir });
      const back = await loadHfModel(out);
      expect(back.unused).toEqual([]);
      expect(back.config).toEqual(hf.config);
      const a = new Map(hf.model.parameters());
      for (const [n, p] of back.model.parameters()) expect(maxAbsDiff(p.dataSync(), a.get(n)!.dataSync()), n).toBe(0);
      if (layout === 'legacy') {
        // the legacy layout uses exactly the names transformers wrote
        const orig = await Checkpoint.open(path.join(dir, 'model.safetensors'));
        const mineCk = await Checkpoint.open(out);
        expect([...mineCk.names()].sort()).toEqual([...orig.names()].sort());
        await orig.close();
        await mineCk.close();
      }
    }
  });
});

describe('Hugging Face configs', () => {
  const raw = (arch: string): Record<string, unknown> => JSON.parse(readFileSync(fixture(`hf/${arch}/config.json`), 'utf8')) as Record<string, unknown>;

  it('maps each architecture onto the ModelConfig its layers need', () => {
    const q2 = fromHfConfig(raw('qwen2_moe')).config;
    expect([q2.qkvBias, q2.sharedWidth, q2.sharedGate, q2.renormalize, q2.qkNorm]).toEqual([true, 48, true, false, 'none']);
    const q3 = fromHfConfig(raw('qwen3_moe')).config;
    expect([q3.qkNorm, q3.headDim, q3.renormalize, q3.experts]).toEqual(['head', 16, true, 8]);
    const ol = fromHfConfig(raw('olmoe')).config;
    expect([ol.qkNorm, ol.padTokenId, ol.renormalize, ol.auxLossCoef]).toEqual(['full', 1, false, 0.01]);
    const mx = fromHfConfig(raw('mixtral')).config;
    expect([mx.expertWidth, mx.renormalize, mx.headDim, mx.balanceLoss]).toEqual([48, true, 16, 'global']);
  });

  it('reads the v4 style (rope_theta, no rope_parameters) like the v5 style', () => {
    const v5 = raw('qwen3_moe');
    const v4 = { ...v5, rope_theta: 1e6 } as Record<string, unknown>;
    delete v4.rope_parameters;
    expect(fromHfConfig(v4).config.ropeTheta).toBe(1e6);
    expect(fromHfConfig(v5).config.ropeTheta).toBe(10000);
  });

  it('decoder_sparse_step and mlp_only_layers make dense layers of intermediate_size', () => {
    const c = fromHfConfig({ ...raw('qwen2_moe'), num_hidden_layers: 4, decoder_sparse_step: 2, mlp_only_layers: [3] }).config;
    expect(c.denseLayers).toEqual([0, 2, 3]);
    expect(c.denseLayerWidth).toBe(96);
    const m = new mk.MoELM({ ...c, seed: 1 });
    expect(m.layers.map((l) => l.mlp.constructor.name)).toEqual(['SwiGLU', 'MoEBlock', 'SwiGLU', 'SwiGLU']);
    // and the export keeps them
    const back = fromHfConfig(toHfConfig(c, 'qwen2_moe', raw('qwen2_moe'))).config;
    expect(back).toEqual(c);
  });

  it('sliding windows: Mixtral sliding_window, Qwen use_sliding_window with layer_types', () => {
    expect(fromHfConfig({ ...raw('mixtral'), sliding_window: 4 }).config.slidingWindow).toBe(4);
    const q = fromHfConfig({ ...raw('qwen2_moe'), use_sliding_window: true, sliding_window: 8, layer_types: ['full_attention', 'sliding_attention'] }).config;
    expect([q.slidingWindow, q.slidingLayers]).toEqual([8, [1]]);
    const m = new mk.MoELM(q);
    expect(m.layers.map((l) => l.selfAttn.window)).toEqual([0, 8]);
  });

  it('rejects what it cannot run, naming the key and value', () => {
    expect(() => fromHfConfig({ ...raw('mixtral'), model_type: 'dbrx' })).toThrow(/model_type "dbrx" is not supported \(expected one of mixtral, qwen2_moe, qwen3_moe, olmoe, /);
    expect(() => fromHfConfig({ ...raw('mixtral'), hidden_act: 'gelu' })).toThrow(/hidden_act "gelu"/);
    expect(() => fromHfConfig({ ...raw('mixtral'), rope_parameters: { rope_theta: 1e4, rope_type: 'llama3', factor: 8 } })).toThrow(/rope type "llama3" is not supported \(expected "default" or "yarn"\)/);
    expect(() => fromHfConfig({ ...raw('mixtral'), hidden_size: '64' })).toThrow(/"hidden_size" = "64": expected a non-negative integer/);
    const noExperts = raw('olmoe');
    delete noExperts.num_experts;
    expect(() => fromHfConfig(noExperts)).toThrow(/"num_experts" \(or "num_local_experts"\) is missing/);
  });

  it('a missing tensor or a wrong shape is an error naming the tensor', async () => {
    const src = path.dirname(fixture('hf/olmoe/config.json'));
    const dir = path.join(tmp, 'broken');
    const hf = await loadHfModel(src);
    const tensors = [...hfTensors(hf.model, 'olmoe')].filter((t) => t.name !== 'model.layers.1.mlp.experts.3.up_proj.weight');
    const { encodeSafetensors } = await import('../../src/io/safetensors.js');
    await import('node:fs').then((fs) => fs.mkdirSync(dir, { recursive: true }));
    copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
    writeFileSync(path.join(dir, 'model.safetensors'), encodeSafetensors(tensors.map((t) => ({ ...t, dtype: 'F32' as const }))));
    await expect(loadHfModel(dir)).rejects.toThrow(/no tensor "model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight"/);
    const wrong = [...hfTensors(hf.model, 'olmoe')].map((t) => (t.name === 'model.norm.weight' ? { ...t, shape: [32], data: t.data.subarray(0, 32) } : t));
    writeFileSync(path.join(dir, 'model.safetensors'), encodeSafetensors(wrong.map((t) => ({ ...t, dtype: 'F32' as const }))));
    await expect(loadHfModel(dir)).rejects.toThrow(/"model\.norm\.weight" has shape \[32\], expected \[64\]/);
  });

  it('reads sharded checkpoints and F16/BF16 weights', async () => {
    const src = path.dirname(fixture('hf/qwen3_moe/config.json'));
    const hf = await loadHfModel(src);
    const ref = JSON.parse(readFileSync(path.join(src, 'reference.json'), 'utf8')) as Reference;
    const want = mk.noGrad(() => hf.model.forward(ids(ref.input_ids)).logits.dataSync());
    const sharded = path.join(tmp, 'sharded');
    const files = await exportHf(hf.model, 'qwen3_moe', sharded, { baseConfig: hf.raw, maxShardBytes: 64 * 1024 });
    expect(files.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(3);
    const back = await loadHfModel(sharded);
    expect(maxAbsDiff(mk.noGrad(() => back.model.forward(ids(ref.input_ids)).logits.dataSync()), want)).toBe(0);
    for (const dtype of ['F16', 'BF16'] as const) {
      const d = path.join(tmp, dtype);
      await exportHf(hf.model, 'qwen3_moe', d, { baseConfig: hf.raw, dtype });
      expect(readHfConfig(d).raw.dtype).toBe(dtype === 'F16' ? 'float16' : 'bfloat16');
      const m = await loadHfModel(d);
      const diff = maxAbsDiff(mk.noGrad(() => m.model.forward(ids(ref.input_ids)).logits.dataSync()), want);
      console.log(`qwen3_moe stored as ${dtype}: logits max |diff| ${diff.toExponential(2)} vs F32`);
      expect(diff).toBeGreaterThan(0);
      expect(diff).toBeLessThan(dtype === 'F16' ? 0.01 : 0.05);
    }
  });
});
