// DeepSeek-style Hugging Face configs (glm4_moe, deepseek_v3 and its alias kimi_k2): key mapping, errors naming key and
// value, other sizes (export round trip, KV-cache generation, a training step that leaves the correction bias alone),
// YaRN, and Kimi-K2's tiktoken tokenizer refused by name.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { noTokenizerReason, loadTokenizer } from '../../src/io/tokenizer.js';
import { fromHfConfig, toHfConfig } from '../../src/models/hf/config.js';
import { exportHf } from '../../src/models/hf/export.js';
import { loadHfModel, readHfConfig } from '../../src/models/hf/load.js';
import { hfTensors } from '../../src/models/hf/weights.js';
import { MoELM } from '../../src/models/moe-lm.js';
import { MoEBlock } from '../../src/moe/block.js';
import { MLAttention } from '../../src/nn/mla.js';
import { mscaleOf, yarnRope } from '../../src/nn/yarn.js';
import { generate } from '../../src/serve/generate.js';
import { ids, maxAbsDiff } from '../helpers/compare.js';
import { fixture } from '../helpers/fixtures.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'moekit-hf-deepseek-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await mk.setBackend('js');
});

type Raw = Record<string, unknown>;
const raw = (arch: string): Raw => JSON.parse(readFileSync(fixture(`hf/${arch}/config.json`), 'utf8')) as Raw;

describe('glm4_moe and deepseek_v3 configs', () => {
  it('map onto sigmoid group routing, shared experts, first dense layers, partial rotary and latent attention', () => {
    const g = fromHfConfig(raw('glm4_moe')).config;
    expect([g.router, g.groups, g.topGroups, g.routedScale, g.renormalize, g.sharedWidth, g.sharedGate]).toEqual(['sigmoid-group', 2, 1, 2.5, true, 32, false]);
    expect([g.denseLayers, g.denseLayerWidth, g.qkNorm, g.rotaryDim, g.headDim, g.attention, g.ropeInterleaved]).toEqual([[0], 96, 'head', 8, 16, 'gqa', false]);
    // transformers has no balance loss for these and keeps e_score_correction_bias fixed
    expect([g.auxLossCoef, g.zLossCoef, g.biasUpdateRate]).toEqual([0, 0, 0]);
    const d = fromHfConfig(raw('deepseek_v3')).config;
    expect([d.attention, d.headDim, d.rotaryDim, d.vHeadDim, d.kvLoraRank, d.qLoraRank, d.ropeInterleaved, d.kvHeads]).toEqual(['mla', 16, 8, 16, 16, 32, true, 4]);
    expect([d.router, d.groups, d.topGroups, d.routedScale, d.sharedWidth, d.denseLayers, d.biasUpdateRate]).toEqual(['sigmoid-group', 2, 1, 2.5, 32, [0], 0]);
  });

  it('norm_topk_prob false, q_lora_rank null and attention_bias round-trip through toHfConfig', () => {
    const d = fromHfConfig({ ...raw('deepseek_v3'), norm_topk_prob: false, q_lora_rank: null, attention_bias: true, rope_interleave: false }).config;
    expect([d.renormalize, d.qLoraRank, d.qkvBias, d.attnOutBias, d.ropeInterleaved]).toEqual([false, undefined, true, true, false]);
    const out = toHfConfig(d, 'deepseek_v3', raw('deepseek_v3'));
    expect([out.q_lora_rank, out.norm_topk_prob, out.attention_bias, out.head_dim, out.qk_head_dim]).toEqual([null, false, true, 8, 16]);
    expect(fromHfConfig(out).config).toEqual(d);
    const m = new MoELM({ ...d, seed: 1 });
    expect(m.layers[0]!.selfAttn.parameters().map(([n]) => n)).toEqual(['q_proj.weight', 'kv_a_proj_with_mqa.weight', 'kv_a_proj_with_mqa.bias', 'kv_a_layernorm.weight', 'kv_b_proj.weight', 'o_proj.weight', 'o_proj.bias']);
    m.dispose();
    const g = fromHfConfig({ ...raw('glm4_moe'), first_k_dense_replace: 0, n_shared_experts: 2, use_qk_norm: false, attention_bias: true }).config;
    expect([g.denseLayers, g.sharedWidth, g.qkNorm, g.qkvBias, g.attnOutBias]).toEqual([[], 64, 'none', true, false]);
    expect(fromHfConfig(toHfConfig(g, 'glm4_moe', raw('glm4_moe'))).config).toEqual(g);
  });

  it('rejects what it cannot run, naming the key and value', () => {
    const ds = raw('deepseek_v3');
    expect(() => fromHfConfig({ ...ds, scoring_func: 'softmax' })).toThrow(/"scoring_func" = "softmax" is not supported \(expected "sigmoid"/);
    expect(() => fromHfConfig({ ...ds, topk_method: 'greedy' })).toThrow(/"topk_method" = "greedy" is not supported \(expected "noaux_tc"/);
    expect(() => fromHfConfig({ ...ds, num_key_value_heads: 2 })).toThrow(/"num_key_value_heads" = 2 is not supported for deepseek_v3 \(expected num_attention_heads = 4/);
    expect(() => fromHfConfig({ ...ds, qk_head_dim: 20 })).toThrow(/"qk_head_dim" = 20: expected qk_nope_head_dim \+ qk_rope_head_dim = 16/);
    expect(() => fromHfConfig({ ...ds, partial_rotary_factor: 0.5 })).toThrow(/partial_rotary_factor = 0.5 is not supported for deepseek_v3/);
    expect(() => fromHfConfig({ ...ds, kv_lora_rank: 0 })).toThrow(/"kv_lora_rank" = 0: expected a positive integer/);
    const glm = raw('glm4_moe');
    expect(() => fromHfConfig({ ...glm, partial_rotary_factor: 0.4375, rope_parameters: { rope_theta: 1e4, rope_type: 'default' } })).toThrow(/partial_rotary_factor = 0.4375: expected a factor in \(0, 1\] giving an even rotary dim \(head_dim 16 × 0.4375 = 7\)/);
    expect(() => fromHfConfig({ ...glm, n_group: 3 })).toThrow(/"groups" = 3: expected a divisor of experts = 8/);
    const noExperts = { ...glm };
    delete noExperts.n_routed_experts;
    expect(() => fromHfConfig(noExperts)).toThrow(/"n_routed_experts" is missing/);
    // partial rotary stays an error where transformers rotates whole heads
    expect(() => fromHfConfig({ ...raw('qwen3_moe'), partial_rotary_factor: 0.5 })).toThrow(/partial_rotary_factor 0.5 is not supported \(expected 1\)/);
    expect(() => fromHfConfig({ ...ds, model_type: 'deepseek_v2' })).toThrow(/model_type "deepseek_v2" is not supported \(expected one of .*deepseek_v3.*kimi_k2\)/);
    // and an export that the layout cannot hold
    const d = fromHfConfig(ds).config;
    expect(() => toHfConfig({ ...d, denseLayers: [1] }, 'deepseek_v3')).toThrow(/dense layers only as the first k \(first_k_dense_replace\); got denseLayers \[1\]/);
    expect(() => toHfConfig({ ...d, sharedWidth: 48 }, 'deepseek_v3')).toThrow(/sharedWidth 48 is not a multiple of expertWidth 32/);
    expect(() => toHfConfig(d, 'qwen3_moe')).toThrow(/qwen3_moe needs ffn "moe" with router "softmax-topk"/);
    expect(() => toHfConfig(d, 'glm4_moe')).toThrow(/glm4_moe has attention "gqa"/);
  });

  it('YaRN (deepseek rope_scaling): inverse frequencies over qk_rope_head_dim, softmax scale times mscale(factor, mscale_all_dim)²', () => {
    // no transformers reference for this: the formula is checked here against nn/yarn.ts and transformers' definition
    const rope_scaling = { type: 'yarn', factor: 40, mscale: 1.0, mscale_all_dim: 1.0, original_max_position_embeddings: 4, beta_fast: 32, beta_slow: 1 };
    const cfg = fromHfConfig({ ...raw('deepseek_v3'), rope_parameters: undefined, rope_theta: 10000, rope_scaling }).config;
    expect([cfg.ropeType, cfg.ropeFactor, cfg.ropeMscaleAllDim]).toEqual(['yarn', 40, 1]);
    const m = new MoELM({ ...cfg, seed: 1 });
    const attn = m.layers[1]!.selfAttn as MLAttention;
    expect(attn.scale).toBeCloseTo(16 ** -0.5 * mscaleOf(40, 1) ** 2, 12);
    const want = yarnRope({ theta: 10000, dim: 8, factor: 40, originalMaxPos: 4, mscale: 1, mscaleAllDim: 1 });
    expect(maxAbsDiff(attn.buffers().find(([n]) => n === 'inv_freq')![1].dataSync(), want.invFreq)).toBe(0);
    expect(attn.ropeFactor).toBe(1); // mscale / mscale_all_dim
    expect(m.forward(ids([1, 2, 3, 4, 5, 6])).logits.toArray().every(Number.isFinite)).toBe(true);
    m.dispose();
  });
});

/** A config.json of `arch` at other sizes: hidden 96, 3 layers, 6 heads, 16 experts, top-4 in 4 groups (2 kept), 2 shared. */
function otherSizes(arch: 'glm4_moe' | 'deepseek_v3', extra: Raw = {}): Raw {
  const common = {
    hidden_size: 96, num_hidden_layers: 3, num_attention_heads: 6, n_routed_experts: 16, num_experts_per_tok: 4, n_group: 4, topk_group: 2,
    n_shared_experts: 2, moe_intermediate_size: 24, intermediate_size: 80, first_k_dense_replace: 1, routed_scaling_factor: 1.5, max_position_embeddings: 64,
  };
  if (arch === 'glm4_moe') return { ...raw(arch), ...common, num_key_value_heads: 2, head_dim: 20, partial_rotary_factor: 0.5, rope_parameters: { rope_theta: 5e5, rope_type: 'default', partial_rotary_factor: 0.5 }, attention_bias: true, ...extra };
  return { ...raw(arch), ...common, num_key_value_heads: 6, q_lora_rank: 24, kv_lora_rank: 12, qk_nope_head_dim: 6, qk_rope_head_dim: 4, qk_head_dim: 10, head_dim: 4, v_head_dim: 14, ...extra };
}

describe.each([
  ['glm4_moe', otherSizes('glm4_moe')],
  ['deepseek_v3', otherSizes('deepseek_v3')],
  ['deepseek_v3', otherSizes('deepseek_v3', { q_lora_rank: null, rope_interleave: false, norm_topk_prob: false })],
] as const)('%s at other sizes', (arch, cfgJson) => {
  /** A random model of the config with a non-zero correction bias (so selection differs from the weights' scores). */
  const build = (): MoELM => {
    const cfg = fromHfConfig(cfgJson).config;
    const m = new MoELM({ ...cfg, seed: 3, initStd: 0.5 });
    const rng = new mk.Rng(4);
    for (const [n, b] of m.buffers()) if (n.endsWith('e_score_correction_bias')) m.setTensor(n, mk.randn(b.shape, rng, 0.1));
    return m;
  };
  const prompt = [5, 17, 99, 3, 250, 42, 7, 1];

  it('export → load gives identical logits; the training and inference forwards agree', async () => {
    const m = build();
    const dir = path.join(tmp, `${arch}-${String(cfgJson.q_lora_rank)}`);
    await exportHf(m, arch, dir, { baseConfig: cfgJson });
    const back = await loadHfModel(dir);
    expect(back.unused).toEqual([]);
    expect({ ...back.config, seed: 3 }).toEqual(m.cfg);
    const a = mk.noGrad(() => m.forward(ids(prompt)).logits.dataSync());
    expect(maxAbsDiff(mk.noGrad(() => back.model.forward(ids(prompt)).logits.dataSync()), a)).toBe(0);
    expect(maxAbsDiff(mk.noGrad(() => m.forward(ids(prompt), { aux: false }).logits.dataSync()), a)).toBeLessThan(1e-5);
    back.model.dispose();
    m.dispose();
  });

  it('greedy generation with the KV cache equals greedy decoding by full forwards', () => {
    const m = build();
    const g = generate(m, prompt.slice(0, 4), { maxNewTokens: 6, greedy: true });
    const seq = prompt.slice(0, 4);
    for (let s = 0; s < 6; s++) {
      const logits = mk.noGrad(() => m.forward(ids(seq)).logits); // (T, V)
      const last = logits.dataSync().slice((seq.length - 1) * m.cfg.vocabSize);
      seq.push(last.indexOf(Math.max(...last)));
    }
    expect(g.ids).toEqual(seq);
    m.dispose();
  });

  it('a training step gives every parameter a finite gradient and leaves e_score_correction_bias unchanged', () => {
    const m = build();
    const before = m.buffers().filter(([n]) => n.endsWith('e_score_correction_bias')).map(([, b]) => Array.from(b.dataSync()));
    expect(before.length).toBe(2); // layers 1 and 2 (layer 0 is dense)
    const T = prompt.length;
    const out = m.loss(ids(prompt), mk.tensor(Int32Array.from([...prompt.slice(1), -100]), [1, T], 'i32'));
    mk.backward(out.loss);
    for (const [n, p] of m.parameters()) expect(p.grad?.toArray().every(Number.isFinite), n).toBe(true);
    m.updateBiases(out.stats);
    const after = m.buffers().filter(([n]) => n.endsWith('e_score_correction_bias')).map(([, b]) => Array.from(b.dataSync()));
    expect(after).toEqual(before);
    expect(m.layers.map((l) => l.mlp instanceof MoEBlock)).toEqual([false, true, true]);
    m.dispose();
  });
});

describe('kimi_k2 (DeepSeek-V3 layout under its own model_type)', () => {
  it('loads as deepseek_v3, exports as kimi_k2, and names its tiktoken tokenizer as unsupported', async () => {
    const src = path.dirname(fixture('hf/deepseek_v3/config.json'));
    const dir = path.join(tmp, 'kimi');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...raw('deepseek_v3'), model_type: 'kimi_k2', auto_map: { AutoConfig: 'configuration_deepseek.DeepseekV3Config' } }));
    const ref = await loadHfModel(src);
    // with a multi-token-prediction layer after the last decoder layer (num_nextn_predict_layers), which is skipped
    const mtp = { name: 'model.layers.2.eh_proj.weight', shape: [64, 128], data: new Float32Array(64 * 128) };
    writeFileSync(path.join(dir, 'model.safetensors'), encodeSafetensors([...hfTensors(ref.model, 'deepseek_v3'), mtp].map((t) => ({ ...t, dtype: 'F32' as const }))));
    writeFileSync(path.join(dir, 'tiktoken.model'), 'IQ== 0\nIg== 1\n');
    const kimi = await loadHfModel(dir);
    expect([kimi.arch, kimi.raw.model_type, kimi.tokenizer, kimi.unused]).toEqual(['deepseek_v3', 'kimi_k2', null, []]);
    const x = ids([3, 17, 42, 99]);
    expect(maxAbsDiff(mk.noGrad(() => kimi.model.forward(x).logits.dataSync()), mk.noGrad(() => ref.model.forward(x).logits.dataSync()))).toBe(0);
    const out = path.join(tmp, 'kimi-out');
    await exportHf(kimi.model, kimi.arch, out, { baseConfig: kimi.raw });
    const back = readHfConfig(out);
    expect([back.raw.model_type, back.raw.architectures, back.arch]).toEqual(['kimi_k2', ['DeepseekV3ForCausalLM'], 'deepseek_v3']);
    expect(noTokenizerReason(dir)).toMatch(/has a tiktoken tokenizer \(tiktoken\.model, as Kimi-K2 ships\) and no tokenizer\.json/);
    expect(noTokenizerReason(out)).toMatch(/has no tokenizer\.json$/);
    expect(() => loadTokenizer(path.join(dir, 'tiktoken.model'))).toThrow(/tiktoken\.model is a tiktoken BPE file \(Kimi-K2's tokenizer\), which moekit does not read/);
    kimi.model.dispose();
    ref.model.dispose();
  });
});
