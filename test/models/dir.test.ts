// Model directories with damaged weights: a NaN or Infinity in any tensor (Hugging Face layout, sharded or not, or a
// moekit.json directory) is refused at load, naming the file, the tensor, how many and the first index.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { loadModelDir, saveModelDir } from '../../src/models/dir.js';
import { loadHfModel } from '../../src/models/hf/load.js';
import { exportHf } from '../../src/models/hf/export.js';
import { MoELM } from '../../src/models/moe-lm.js';
import { fixture } from '../helpers/fixtures.js';
import { poke } from '../helpers/poke.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'moekit-dir-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await mk.setBackend('js');
});

describe('non-finite weights in model directories', () => {
  it('Hugging Face layout (mixtral fixture): a NaN in one expert tensor is refused naming the tensor and the file', async () => {
    const dir = path.join(tmp, 'mixtral-nan');
    mkdirSync(dir);
    const src = path.dirname(fixture('hf/mixtral/config.json'));
    for (const f of ['config.json', 'generation_config.json', 'model.safetensors']) copyFileSync(path.join(src, f), path.join(dir, f));
    const file = path.join(dir, 'model.safetensors');
    const name = 'model.layers.1.block_sparse_moe.experts.5.w2.weight';
    await poke(file, name, 17);
    const msg = `safetensors: ${file}: tensor "${name}" (F32 [64, 48]) has 1 non-finite value (NaN or ±Infinity) among 3072, the first at flat index 17 (NaN)`;
    await expect(loadHfModel(dir)).rejects.toThrow(msg);
    await expect(loadModelDir(dir)).rejects.toThrow(msg);
    // Infinity in a norm weight too
    copyFileSync(path.join(src, 'model.safetensors'), file);
    await poke(file, 'model.norm.weight', 0, Number.NEGATIVE_INFINITY);
    await expect(loadModelDir(dir)).rejects.toThrow(`tensor "model.norm.weight" (F32 [64]) has 1 non-finite value (NaN or ±Infinity) among 64, the first at flat index 0 (-Infinity)`);
  });

  it('sharded and F16 / BF16 checkpoints: the shard holding the tensor is named', async () => {
    const model = new MoELM({ ...mk.PRESETS.tiny, tieEmbeddings: false });
    for (const dtype of ['F16', 'BF16'] as const) {
      const dir = path.join(tmp, `sharded-${dtype}`);
      const files = await exportHf(model, 'mixtral', dir, { dtype, maxShardBytes: 16 * 1024 });
      const shard = files.filter((f) => f.endsWith('.safetensors')).map((f) => (path.isAbsolute(f) ? f : path.join(dir, f))).at(-1)!;
      const f = await SafetensorsFile.open(shard);
      const name = [...f.tensors.keys()].at(-1)!;
      await f.close();
      await poke(shard, name, 2);
      await expect(loadModelDir(dir)).rejects.toThrow(`safetensors: ${shard}: tensor "${name}" (${dtype} [`);
      await expect(loadModelDir(dir)).rejects.toThrow('has 1 non-finite value (NaN or ±Infinity)');
    }
  });

  it('moekit.json directory: a NaN in one parameter is refused naming the tensor and the file', async () => {
    const dir = path.join(tmp, 'moekit-nan');
    const model = new MoELM(mk.PRESETS.tiny);
    await saveModelDir(model, dir);
    expect((await loadModelDir(dir)).kind).toBe('moekit');
    const file = path.join(dir, 'model.safetensors');
    await poke(file, 'model.layers.0.mlp.experts.up_proj', 100);
    await poke(file, 'model.layers.0.mlp.experts.up_proj', 200, Number.POSITIVE_INFINITY);
    await expect(loadModelDir(dir)).rejects.toThrow(`safetensors: ${file}: tensor "model.layers.0.mlp.experts.up_proj" (F32 [4, 32, 32]) has 2 non-finite values (NaN or ±Infinity) among 4096, the first at flat index 100 (NaN)`);
  });
});
