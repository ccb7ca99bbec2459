// moekit info on quantised model directories: MXFP4 blocks count two parameters per byte, scales count none.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { modelDirInfo } from '../../src/cli/info.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { fixture } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/tmp.js';

describe('moekit info on a quantised directory', () => {
  it('reports quant_method, MXFP4 and F8_E4M3 parameters, and leaves scales out of the counts', async () => {
    const dir = path.join(tempDir('moekit-info-quant-'), 'm');
    mkdirSync(dir);
    const config = JSON.parse(readFileSync(fixture('hf/mixtral/config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, quantization_config: { quant_method: 'fp8', weight_block_size: [128, 128] } }));
    await writeSafetensors(path.join(dir, 'model.safetensors'), [
      { name: 'model.layers.0.mlp.experts.gate_up_proj_blocks', dtype: 'U8', shape: [2, 4, 2, 16], data: new Uint8Array(256) },
      { name: 'model.layers.0.mlp.experts.gate_up_proj_scales', dtype: 'U8', shape: [2, 4, 2], data: new Uint8Array(16) },
      { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'F8_E4M3', shape: [8, 8], data: new Uint8Array(64) },
      { name: 'model.layers.0.self_attn.q_proj.weight_scale_inv', dtype: 'F32', shape: [1, 1], data: Float32Array.of(1) },
      { name: 'model.norm.weight', dtype: 'F32', shape: [8], data: new Float32Array(8) },
    ]);
    const r = await modelDirInfo(dir);
    expect(r.quantization).toBe('fp8');
    expect(r.tensors).toBe(5);
    expect(r.dtypes).toEqual({ MXFP4: 2 * 4 * 64, F8_E4M3: 64, F32: 8 });
    expect(r.params.total).toBe(512 + 64 + 8);
    expect(r.params.expert).toBe(512);
  });
});
