// Offloading: a clustered model served from an offload file under a resident budget computes exactly what the
// fully resident quantised form computes, never holds more than the budget, loads on demand, and drops idle units.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/node.js';
import { maxAbsDiff } from '../helpers/compare.js';
import { poke } from '../helpers/poke.js';

let dir = '';
beforeAll(async () => {
  await mk.setBackend('js');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moekit-offload-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const cfg = mk.parseConfig({ ...mk.PRESETS.tiny, ffn: 'clustered', experts: 8, clusterGroups: 4, clusterRank: 4, groupTopK: 2 });

function logits(model: mk.MoELM, ids: Int32Array): number[] {
  return mk.noGrad(() => mk.tidy(() => model.forward(mk.tensor(ids, [2, ids.length / 2], 'i32')).logits.toArray() as number[]));
}

describe('ExpertStore', () => {
  it('serves the quantised experts from the file under a budget, with the same logits as the resident form', async () => {
    const model = new mk.MoELM(cfg);
    const rng = new mk.Rng(3);
    const ids = Int32Array.from({ length: 64 }, () => rng.int(cfg.vocabSize));
    // the float32 logits, before any store or quantised form was attached: what every detach must give back
    const fp32 = logits(model, ids);
    const file = path.join(dir, 'experts.safetensors');
    const { unitBytes } = await mk.writeOffloadFile(model, file, { format: 'int4' });
    expect(unitBytes.length).toBe(cfg.layers);
    const total = unitBytes.flat().reduce((a, b) => a + b, 0);
    // reference: the whole quantised form resident
    const blocks = model.clusteredBlocks().map(([, b]) => b);
    const qs = blocks.map((b) => b.f32Experts().toQuantized({ format: 'int4' }));
    const f32 = blocks.map((b, i) => b.setExperts(qs[i]!));
    expect(qs.reduce((a, q) => a + q.bytes.total, 0)).toBe(total);
    const want = logits(model, ids);
    blocks.forEach((b, i) => b.setExperts(f32[i]!));
    for (const q of qs) q.dispose();
    // INT4 moves the logits away from float32, so "back to float32" below is a statement the quantised form would fail
    const int4Gap = maxAbsDiff(want, fp32);
    expect(int4Gap).toBeGreaterThan(1e-4);

    for (const budget of [total, Math.max(...unitBytes.flat()) * 2, Math.max(...unitBytes.flat())]) {
      const store = mk.ExpertStore.open(file, { budgetBytes: budget, idleSteps: 0 });
      store.attach(model);
      const got = logits(model, ids);
      expect(maxAbsDiff(got, want)).toBe(0);
      const s = store.stats;
      expect(s.totalBytes).toBe(total);
      expect(s.peakResidentBytes).toBeLessThanOrEqual(budget);
      expect(s.residentBytes).toBeLessThanOrEqual(budget);
      expect(s.loads).toBeGreaterThanOrEqual(cfg.layers); // every layer routed somewhere
      expect(s.stallMs).toBeGreaterThan(0);
      if (budget === total) expect(s.evictions).toBe(0);
      if (budget < total) expect(s.evictions).toBeGreaterThan(0);
      expect(s.steps).toBe(1);
      store.close();
      // detached: the float32 experts themselves are put back (setExperts returns the very module attach replaced),
      // and the js backend runs the same kernels on the same weights in the same order, so the logits are the saved
      // float32 logits bit for bit (tolerance 0); anything left of the store (a unit, the INT4 path, the forward hook)
      // would show up at the size of int4Gap
      const back = maxAbsDiff(logits(model, ids), fp32);
      console.log(`offload budget ${budget} B: served logits vs resident INT4 max |diff| ${maxAbsDiff(got, want)}, detached vs saved float32 max |diff| ${back} (INT4 vs float32 ${int4Gap.toExponential(2)})`);
      expect(back).toBe(0);
    }
  });

  it('units idle for more than idleSteps forward passes leave; bad budgets and files are named', async () => {
    const model = new mk.MoELM(cfg);
    const file = path.join(dir, 'idle.safetensors');
    const { unitBytes } = await mk.writeOffloadFile(model, file, { format: 'int8' });
    const store = mk.ExpertStore.open(file, { budgetBytes: 1e9, idleSteps: 2 });
    store.attach(model);
    logits(model, Int32Array.from({ length: 32 }, (_, i) => i));
    const loaded = store.resident().length;
    expect(loaded).toBeGreaterThan(0);
    store.tick();
    store.tick();
    expect(store.resident().length).toBe(loaded); // idle for 2 passes: still resident
    store.tick();
    expect(store.resident().length).toBe(0);
    expect(store.stats.idleEvictions).toBe(loaded);
    expect(store.stats.residentBytes).toBe(0);
    store.close();
    const largest = Math.max(...unitBytes.flat());
    expect(() => mk.ExpertStore.open(file, { budgetBytes: largest - 1 })).toThrow(`budgetBytes = ${largest - 1} is below the largest unit (${largest} bytes`);
    expect(() => mk.ExpertStore.open(path.join(dir, 'missing.safetensors'), { budgetBytes: 1e9 })).toThrow('cannot open');
    const plain = path.join(dir, 'plain.safetensors');
    await mk.writeSafetensors(plain, [{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array([1]) }]);
    expect(() => mk.ExpertStore.open(plain, { budgetBytes: 1e9 })).toThrow('is not an offload file');
    await expect(mk.writeOffloadFile(new mk.MoELM(mk.PRESETS.tiny), file)).rejects.toThrow('no clustered MoE layers');
  });
});

describe('ExpertStore non-finite values', () => {
  it('a NaN or Infinity in an offloaded unit is refused when the unit is first loaded, naming the file and the tensor', async () => {
    const model = new mk.MoELM(cfg);
    const G = 4;
    const E = 8;
    const ids = Int32Array.from({ length: 32 }, (_, i) => i);
    // a NaN in every layer-0 gate base: whichever group is routed first, its load fails
    const file = path.join(dir, 'nan-base.safetensors');
    await mk.writeOffloadFile(model, file, { format: 'int4' });
    for (let g = 0; g < G; g++) await poke(file, `layers.0.group.${g}.gate.base`, 5);
    let store = mk.ExpertStore.open(file, { budgetBytes: 1e9 }); // opening reads only the header
    store.attach(model);
    const before = mk.getBackend().bytesInUse();
    expect(() => logits(model, ids)).toThrow(new RegExp(`^ExpertStore: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: tensor "layers\\.0\\.group\\.\\d\\.gate\\.base" \\(F16 \\[32, 32\\]\\) has 1 non-finite value \\(NaN or ±Infinity\\) among 1024, the first at flat index 5 \\(NaN\\)`));
    expect(store.resident()).toEqual([]);
    expect(mk.getBackend().bytesInUse()).toBe(before); // the half-loaded unit was freed
    store.close();
    // an Infinity in the scales of every layer-0 expert's up.b factor
    const file2 = path.join(dir, 'inf-scales.safetensors');
    await mk.writeOffloadFile(model, file2, { format: 'int8' });
    for (let e = 0; e < E; e++) await poke(file2, `layers.0.expert.${e}.up.b.scales`, 3, Number.POSITIVE_INFINITY);
    store = mk.ExpertStore.open(file2, { budgetBytes: 1e9 });
    store.attach(model);
    expect(() => logits(model, ids)).toThrow(/tensor "layers\.0\.expert\.\d\.up\.b\.scales" \(F16 \[32, 1\]\) has 1 non-finite value \(NaN or ±Infinity\) among 32, the first at flat index 3 \(Infinity\)/);
    expect(mk.getBackend().bytesInUse()).toBe(before); // bases and factors read before the bad tensor were freed
    store.close();
  });
});
