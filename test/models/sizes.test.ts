// Config size limits: real large MoEs pass; absurd sizes are refused before allocation, naming the key (moekit's in
// moekit configs, config.json's in Hugging Face configs).
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { parseConfig } from '../../src/models/config.js';
import { fromHfConfig } from '../../src/models/hf/config.js';
import { loadHfModel } from '../../src/models/hf/load.js';
import { loadModelDir } from '../../src/models/dir.js';
import { MoELM } from '../../src/models/moe-lm.js';
import { allocationProblem, approxParams, sizeProblem } from '../../src/models/sizes.js';
import { fixture } from '../helpers/fixtures.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'moekit-sizes-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await mk.setBackend('js');
});

/** DeepSeek-V3 (config.json of deepseek-ai/DeepSeek-V3) in moekit's keys. */
const deepseekV3 = {
  vocabSize: 129280, hidden: 7168, layers: 61, heads: 128, kvHeads: 128, headDim: 192, maxSeqLen: 163840, experts: 256, topK: 8,
  expertWidth: 2048, router: 'sigmoid-group', groups: 8, topGroups: 4, sharedWidth: 2048, denseLayers: [0, 1, 2], denseLayerWidth: 18432, tieEmbeddings: false,
} as const;
const mixtralRaw = (): Record<string, unknown> => JSON.parse(readFileSync(fixture('hf/mixtral/config.json'), 'utf8')) as Record<string, unknown>;

describe('config size limits', () => {
  it('real large MoEs pass (DeepSeek-V3, Kimi K2, Qwen3-235B, Mixtral 8x22B), with their parameter counts about right', () => {
    const ds = parseConfig(deepseekV3);
    expect(sizeProblem(ds)).toBeNull();
    expect(allocationProblem(ds)).toBeNull(); // its stacked experts (3.8e9 elements) fit one typed array
    const p = approxParams(ds).total;
    expect(p).toBeGreaterThan(6e11); // 671B (MLA attention is smaller than the GQA moekit models, hence the margin)
    expect(p).toBeLessThan(8e11);
    expect(sizeProblem(parseConfig({ ...deepseekV3, experts: 384, vocabSize: 163840, heads: 64, kvHeads: 64, groups: 1, topGroups: 1 }))).toBeNull();
    const qwen = fromHfConfig({
      model_type: 'qwen3_moe', vocab_size: 151936, hidden_size: 4096, num_hidden_layers: 94, num_attention_heads: 64, num_key_value_heads: 4, head_dim: 128,
      num_experts: 128, num_experts_per_tok: 8, moe_intermediate_size: 1536, intermediate_size: 12288, max_position_embeddings: 40960,
    });
    expect(qwen.config.experts).toBe(128);
    const mixtral = fromHfConfig({ ...mixtralRaw(), vocab_size: 32768, hidden_size: 6144, num_hidden_layers: 56, num_attention_heads: 48, num_key_value_heads: 8, head_dim: 128, intermediate_size: 16384, max_position_embeddings: 65536 });
    expect(mixtral.config.hidden).toBe(6144);
  });

  it.each([
    [{ vocabSize: 1e12 }, 'ModelConfig: vocabSize 1000000000000 gives an embedding of 5.1e14 elements (vocabSize 1000000000000 × hidden 512), above the limit of 2^37 (1.4e11) elements per tensor'],
    [{ hidden: 1e9 }, 'ModelConfig: hidden 1000000000 gives an embedding of 3.2e13 elements'],
    [{ experts: 1e7, topK: 2 }, 'ModelConfig: experts 10000000 gives a fused expert tensor [E, 2I, H] of 1.0e13 elements (2 × experts 10000000 × expertWidth 1024 × hidden 512)'],
    [{ expertWidth: 1e10 }, 'ModelConfig: expertWidth 10000000000 gives a fused expert tensor'],
    [{ heads: 1e9, kvHeads: 1 }, 'ModelConfig: heads 1000000000 gives a query projection of 3.3e13 elements'],
    [{ sharedWidth: 1e12 }, 'ModelConfig: sharedWidth 1000000000000 gives a shared expert matrix'],
    [{ ffn: 'dense', denseWidth: 1e12 }, 'ModelConfig: denseWidth 1000000000000 gives a dense FFN matrix'],
    [{ layers: 1e9 }, 'ModelConfig: layers 1000000000 × about 1.4e7 parameters per layer (+ embeddings) gives about 1.4e16 parameters, above the limit of 2^44 (1.8e13) parameters per model'],
    [{ maxSeqLen: 1e12 }, 'ModelConfig: maxSeqLen 1000000000000 is above the limit of 2^31-1 positions (token positions are int32)'],
  ])('moekit config %j is refused naming the key', (over, msg) => {
    expect(() => parseConfig(over)).toThrow(msg);
    expect(() => new MoELM(over as mk.ModelConfigInput)).toThrow(msg);
  });

  it('a size that passes the limits but no typed array can hold is refused before allocation, naming the key', () => {
    const c = parseConfig({ vocabSize: 10_000_000, hidden: 4096 });
    expect(() => new MoELM(c)).toThrow(
      'MoELM: vocabSize 10000000 gives an embedding of 4.1e10 elements (vocabSize 10000000 × hidden 4096), above the limit of 2^32 (4.3e9) elements one typed array holds',
    );
  });

  it('config.json: huge sizes name the Hugging Face key (fromHfConfig, loadHfModel, loadModelDir)', async () => {
    expect(() => fromHfConfig({ ...mixtralRaw(), vocab_size: 1e12 })).toThrow(
      'config.json: vocab_size 1000000000000 gives an embedding of 6.4e13 elements (vocab_size 1000000000000 × hidden_size 64), above the limit of 2^37 (1.4e11) elements per tensor',
    );
    expect(() => fromHfConfig({ ...mixtralRaw(), num_local_experts: 1e9 })).toThrow('config.json: num_local_experts 1000000000 gives a fused expert tensor');
    expect(() => fromHfConfig({ ...mixtralRaw(), max_position_embeddings: 1e12 })).toThrow('config.json: max_position_embeddings 1000000000000 is above the limit of 2^31-1 positions');
    expect(() => fromHfConfig({ ...mixtralRaw(), num_hidden_layers: 1e9 })).toThrow('config.json: num_hidden_layers 1000000000 × about');
    const qwen = { model_type: 'qwen2_moe', vocab_size: 320, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 1e10, intermediate_size: 64 };
    expect(() => fromHfConfig(qwen)).toThrow('config.json: moe_intermediate_size 10000000000 gives a fused expert tensor');
    expect(() => fromHfConfig({ ...qwen, moe_intermediate_size: 32, shared_expert_intermediate_size: 1e12 })).toThrow('config.json: shared_expert_intermediate_size 1000000000000 gives a shared expert matrix');

    const dir = path.join(tmp, 'mixtral-huge-vocab');
    mkdirSync(dir);
    copyFileSync(fixture('hf/mixtral/model.safetensors'), path.join(dir, 'model.safetensors'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...mixtralRaw(), vocab_size: 1e12 }));
    await expect(loadHfModel(dir)).rejects.toThrow(`${path.join(dir, 'config.json')}: vocab_size 1000000000000 gives an embedding of 6.4e13 elements`);
    await expect(loadModelDir(dir)).rejects.toThrow('vocab_size 1000000000000');
    // passes the limits, but one typed array cannot hold the embedding: still named by its config.json key
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...mixtralRaw(), vocab_size: 100_000_000 }));
    await expect(loadHfModel(dir)).rejects.toThrow(`${path.join(dir, 'config.json')}: vocab_size 100000000 gives an embedding of 6.4e9 elements (vocab_size 100000000 × hidden_size 64), above the limit of 2^32`);
  });

  it('moekit.json: huge sizes name the moekit key', async () => {
    const dir = path.join(tmp, 'moekit-huge');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'moekit.json'), JSON.stringify({ format: 'moekit-model', version: 1, config: { ...mk.PRESETS.tiny, vocabSize: 1e12 } }));
    await expect(loadModelDir(dir)).rejects.toThrow(`${path.join(dir, 'moekit.json')}: "config": ModelConfig: vocabSize 1000000000000 gives an embedding of 3.2e13 elements (vocabSize 1000000000000 × hidden 32)`);
  });
});
