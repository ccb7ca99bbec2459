// Every Hugging Face architecture traces: the fixtures (random weights) through traceModel, read back with the MoE
// layers the config declares, every id in range, and the same experts the model's routing observer reports.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import type { HfArch } from '../../src/models/hf/config.js';
import { loadHfModel } from '../../src/models/hf/load.js';
import { TraceWriter, readTrace } from '../../src/trace/format.js';
import { traceModel, traceShape } from '../../src/trace/record.js';
import { fixtureDir, readReference } from '../helpers/hf-parity.js';

const ARCHS: HfArch[] = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v3', 'gpt_oss', 'glm4_moe'];
let dir = '';
beforeAll(async () => {
  await mk.setBackend('js');
  dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-trace-hf-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tracing the Hugging Face fixtures', () => {
  for (const arch of ARCHS) {
    it(`${arch}`, async () => {
      const fx = fixtureDir(arch);
      const ids = Int32Array.from(readReference(fx).input_ids);
      const hf = await loadHfModel(fx);
      try {
        const shape = traceShape(hf.model, true);
        const moeLayers = hf.model.layers.flatMap((l, i) => (l.mlp instanceof mk.SwiGLU ? [] : [i]));
        expect(shape.layers).toEqual(moeLayers);
        const file = path.join(dir, `${arch}.safetensors`);
        const w = new TraceWriter(file, shape, { model: fx });
        await traceModel(hf.model, [ids], w, { window: ids.length, batch: 1, hidden: true });
        w.finish();
        const t = readTrace(file);
        expect([t.N, t.L, t.K, t.E]).toEqual([ids.length, moeLayers.length, hf.config.topK, hf.config.experts]);
        expect(t.experts.every((e) => e >= 0 && e < hf.config.experts)).toBe(true);
        const rec = new mk.RoutingRecorder();
        mk.noGrad(() => mk.tidy(() => void hf.model.forward(mk.tensor(ids, [1, ids.length], 'i32'), { aux: false, observer: rec })));
        const want = rec.events();
        for (let l = 0; l < t.L; l++) for (let n = 0; n < t.N; n++) for (let k = 0; k < t.K; k++) expect(t.experts[(n * t.L + l) * t.K + k]).toBe(want[l]!.experts[n * t.K + k]);
        console.log(`${arch}: ${t.N} tokens, MoE layers ${JSON.stringify(t.layers)}, top-${t.K} of ${t.E}, hidden ${t.H}`);
      } finally {
        hf.model.dispose();
      }
    });
  }
});
