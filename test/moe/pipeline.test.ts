// The MoE pipeline's routing observer: for every Hugging Face fixture it sees the same routing on js, wasm and webgpu,
// on the composed (training) and fused (inference) paths: expert ids identical, gate weights, router logits and the
// hidden state within 1e-5 of the js composed path. A clustered model's observer works in every experts form (f32,
// quantised, fused, offloaded), and a block run on its own reports layer 0.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import type { HfArch } from '../../src/models/hf/config.js';
import { loadHfModel } from '../../src/models/hf/load.js';
import { ids, maxAbsDiff } from '../helpers/compare.js';
import { DEVICES, JS, WEBGPU, useDevice } from '../helpers/devices.js';
import { fixtureDir, readReference } from '../helpers/hf-parity.js';
import { ExpertStore, writeOffloadFile } from '../../src/node.js';
import { generate } from '../../src/serve/generate.js';

const ARCHS: HfArch[] = ['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'deepseek_v3', 'gpt_oss', 'glm4_moe'];

/** Every MoE layer's routing of the fixture's input on the current backend; `aux` picks the training forward. */
async function record(arch: HfArch, aux: boolean): Promise<mk.RecordedRouting[]> {
  const dir = fixtureDir(arch);
  const hf = await loadHfModel(dir);
  try {
    const rec = new mk.RoutingRecorder({ hidden: true });
    mk.noGrad(() => mk.tidy(() => void hf.model.forward(ids(readReference(dir).input_ids), { observer: rec, aux })));
    return await rec.read();
  } finally {
    hf.model.dispose();
  }
}

/** js composed path, per architecture: the reference every device and path is compared with. */
const reference = new Map<HfArch, mk.RecordedRouting[]>();

function compare(got: mk.RecordedRouting[], want: mk.RecordedRouting[]): { weights: number; logits: number; hidden: number } {
  expect(got.map((e) => e.layer)).toEqual(want.map((e) => e.layer));
  const d = { weights: 0, logits: 0, hidden: 0 };
  got.forEach((e, i) => {
    const w = want[i]!;
    expect([e.T, e.K, e.E]).toEqual([w.T, w.K, w.E]);
    expect(Array.from(e.experts), `layer ${e.layer} expert ids`).toEqual(Array.from(w.experts));
    d.weights = Math.max(d.weights, maxAbsDiff(e.weights, w.weights));
    d.logits = Math.max(d.logits, maxAbsDiff(e.logits, w.logits));
    d.hidden = Math.max(d.hidden, maxAbsDiff(e.hidden!, w.hidden!));
  });
  expect(d.weights).toBeLessThanOrEqual(1e-5);
  expect(d.logits).toBeLessThanOrEqual(1e-5);
  expect(d.hidden).toBeLessThanOrEqual(1e-5);
  return d;
}

describe.each([JS, ...DEVICES, WEBGPU])('routing observer on $name', (device) => {
  const dev = useDevice(device);
  for (const arch of ARCHS) {
    it(`${arch}: the composed and fused paths show the js composed path's routing`, async (ctx) => {
      const be = dev.backend(ctx);
      if (!reference.has(arch)) {
        mk.useBackend(new mk.JsBackend());
        reference.set(arch, await record(arch, true));
      }
      mk.useBackend(be);
      const want = reference.get(arch)!;
      expect(want.length).toBeGreaterThan(0);
      for (const aux of [true, false]) {
        const d = compare(await record(arch, aux), want);
        console.log(`${device.name} ${arch} ${aux ? 'composed' : 'fused'}: ${want.length} MoE layers, ids identical; max |diff| weights ${d.weights.toExponential(2)}, logits ${d.logits.toExponential(2)}, hidden ${d.hidden.toExponential(2)}`);
      }
    }, device === WEBGPU ? 120_000 : 60_000);
  }
});

describe('routing observer on a clustered model, every experts form', () => {
  let dir = '';
  beforeAll(async () => {
    await mk.setBackend('js');
    dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-observer-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('f32 (composed and fused), quantised, fused INT4 and offloaded forms all report every layer; the first layer routes identically', async () => {
    const model = new mk.MoELM({ ...mk.PRESETS.tiny, ffn: 'clustered', clusterGroups: 2, clusterRank: 4, groupTopK: 2 });
    const x = mk.tensor(Int32Array.from({ length: 24 }, (_, i) => (i * 37) % model.cfg.vocabSize), [2, 12], 'i32');
    const run = (aux: boolean): mk.RecordedRouting[] => {
      const rec = new mk.RoutingRecorder();
      mk.noGrad(() => mk.tidy(() => void model.forward(x, { observer: rec, aux })));
      return rec.events();
    };
    const composed = run(true);
    expect(composed.map((e) => e.layer)).toEqual(model.layers.map((_, i) => i));
    expect(composed.every((e) => e.T === 24 && e.K === model.cfg.topK && e.E === model.cfg.experts)).toBe(true);
    const fused = run(false);
    expect(fused.map((e) => Array.from(e.experts))).toEqual(composed.map((e) => Array.from(e.experts)));
    expect(Math.max(...fused.map((e, i) => maxAbsDiff(e.weights, composed[i]!.weights)))).toBeLessThanOrEqual(1e-5);
    const blocks = model.clusteredBlocks().map(([, b]) => b);
    const f32 = blocks.map((b) => b.f32Experts());
    const forms: [string, () => void][] = [
      ['quantized', () => blocks.forEach((b, i) => b.setExperts(f32[i]!.toQuantized({ format: 'int4' })))],
      ['fused int4', () => blocks.forEach((b, i) => b.setExperts(f32[i]!.toQuantized({ format: 'int4' }).toFused()))],
    ];
    for (const [name, swap] of forms) {
      swap();
      for (const aux of [true, false]) {
        const got = run(aux);
        expect(got.map((e) => e.layer), name).toEqual(composed.map((e) => e.layer));
        expect(Array.from(got[0]!.experts), `${name} layer 0`).toEqual(Array.from(composed[0]!.experts));
      }
      blocks.forEach((b, i) => b.setExperts(f32[i]!).dispose());
    }
    const file = path.join(dir, 'experts.safetensors');
    await writeOffloadFile(model, file, { format: 'int4' });
    const store = ExpertStore.open(file, { budgetBytes: 1 << 30, idleSteps: 0 });
    try {
      store.attach(model);
      const got = run(false);
      expect(got.map((e) => e.layer)).toEqual(composed.map((e) => e.layer));
      expect(Array.from(got[0]!.experts)).toEqual(Array.from(composed[0]!.experts));
      // serving: generation shows the prefill and every decode step
      const rec = new mk.RoutingRecorder();
      const g = generate(model, [1, 2, 3, 4], { maxNewTokens: 4, greedy: true, observer: rec });
      const L = model.cfg.layers;
      const steps = rec.events().length / L;
      expect(steps).toBe(g.ids.length - 4);
      expect(rec.events().filter((e) => e.layer === 0).map((e) => e.T)).toEqual([4, ...new Array<number>(steps - 1).fill(1)]);
    } finally {
      store.close();
    }
    expect(blocks.every((b, i) => b.experts === f32[i])).toBe(true);
    model.dispose();
  });

  it('a block run on its own reports layer 0, or the layer it is given', () => {
    const b = new mk.MoEBlock({ hidden: 16, experts: 4, topK: 2, expertWidth: 8 }, new mk.Rng(1));
    const rec = new mk.RoutingRecorder({ hidden: true });
    const x = mk.randn([5, 16], new mk.Rng(2));
    mk.noGrad(() => {
      b.infer(x, { observer: rec });
      b.forward(x, { observer: rec, layer: 3 });
    });
    const [a, c] = rec.events();
    expect([a!.layer, c!.layer]).toEqual([0, 3]);
    expect(Array.from(a!.experts)).toEqual(Array.from(c!.experts));
    expect(Array.from(a!.hidden!)).toEqual(Array.from(x.dataSync()));
    rec.clear();
    expect(rec.events()).toEqual([]);
  });
});
