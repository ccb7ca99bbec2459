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
import { ids, maxAbsDiff } from '../helpers/compare.js';
import { fixture } from '../helpers/fixtures.js';
import { fixtureDir, gradParity, greedyParity, logitsParity, readReference } from '../helpers/hf-parity.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'moekit-hf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await mk.setBackend('js');
});

describe.each(HF_ARCHS)('%s fixture vs transformers', (arch) => {
  const dir = fixtureDir(arch);
  const ref = readReference(dir);

  it('logits (training and inference forward) and router logits within 1e-4; every checkpoint tensor used', async () => {
    const hf = await loadHfModel(dir);
    expect(hf.arch).toBe(arch);
    expect(hf.unused).toEqual([]);
    const d = await logitsParity(hf.model, ref);
    console.log(`${arch}: logits max |diff| ${d.logits.toExponential(2)}, router logits ${d.routerLogits === null ? '(none in the fixture)' : d.routerLogits.toExponential(2)}`);
  });

  it('greedy generation from the first 8 ids equals transformers exactly', async () => {
    await greedyParity(await loadHfModel(dir), ref);
  });

  it('one training step: loss and every gradient within 1e-4 · max(1, max |g|)', async () => {
    const d = await gradParity(await loadHfModel(dir), dir);
    console.log(`${arch}: loss |diff| ${d.loss.toExponential(2)}, worst gradient ${d.grads.toExponential(2)} (relative)`);
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
    const src = fixtureDir('olmoe');
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
    const src = fixtureDir('qwen3_moe');
    const hf = await loadHfModel(src);
    const ref = readReference(src);
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
