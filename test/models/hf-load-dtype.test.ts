// Loading a BF16 checkpoint keeps its Linear and routed-expert weights in bf16 (loadDtype 'auto') or widens them
// (loadDtype 'f32'): same logits within 1e-4, same greedy ids, half the parameter bytes; upcast and re-export.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { loadHfModel, type HfModel } from '../../src/models/hf/load.js';
import { exportHf } from '../../src/models/hf/export.js';
import { hfTensors } from '../../src/models/hf/weights.js';
import { generate } from '../../src/serve/generate.js';
import { ids, maxAbsDiff } from '../helpers/compare.js';
import { DEVICES, JS, useDevice } from '../helpers/devices.js';
import { fixture } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/tmp.js';

const CASES = [
  { arch: 'mixtral', layout: 'legacy' },
  { arch: 'qwen3_moe', layout: 'fused' },
  { arch: 'qwen2_moe', layout: 'legacy' }, // shared expert + its gate
  { arch: 'gpt_oss', layout: 'fused' }, // experts (E, H, 2I) with gate/up interleaved, with biases
  { arch: 'deepseek_v3', layout: 'legacy' }, // MLA projections, shared experts, a dense first layer
] as const;

/** The BF16 export of a fixture, written once per case (on the js backend). */
const bf16Dirs = new Map<string, string>();
async function bf16Dir(arch: string, layout: 'legacy' | 'fused'): Promise<string> {
  const have = bf16Dirs.get(arch);
  if (have) return have;
  const src = path.dirname(fixture(`hf/${arch}/config.json`));
  const hf = await loadHfModel(src, { loadDtype: 'f32' });
  const out = tempDir(`moekit-bf16-${arch}-`);
  await exportHf(hf.model, hf.arch, out, { dtype: 'BF16', layout, baseConfig: hf.raw });
  hf.model.dispose();
  bf16Dirs.set(arch, out);
  return out;
}

describe.each([JS, ...DEVICES])('loadDtype on $name', (device) => {
  const dev = useDevice(device);

  for (const { arch, layout } of CASES) it(`${arch} (${layout} BF16): kept bf16 and f32 loads agree; half the bytes`, async (ctx) => {
    const backend = dev.backend(ctx);
    mk.useBackend(new mk.JsBackend());
    const dir = await bf16Dir(arch, layout);
    mk.useBackend(backend);
    const ref = JSON.parse(readFileSync(path.join(path.dirname(fixture(`hf/${arch}/config.json`)), 'reference.json'), 'utf8')) as { input_ids: number[]; greedy_from_first8: number[] };
    const kept: HfModel = await loadHfModel(dir);
    const wide: HfModel = await loadHfModel(dir, { loadDtype: 'f32' });
    try {
      const dtypes = new Map(kept.model.parameters().map(([n, p]) => [n, p.dtype]));
      for (const [n, d] of dtypes) {
        const linear = /(_proj|_proj_with_mqa|^lm_head)\.weight$/.test(n) || /\.mlp\.experts\.(gate|up|down)_proj$/.test(n);
        expect(`${n}: ${d}`).toBe(`${n}: ${linear ? 'bf16' : 'f32'}`);
      }
      for (const [, p] of wide.model.parameters()) expect(p.dtype).toBe('f32');
      const kb = kept.model.paramBytes();
      const wb = wide.model.paramBytes();
      console.log(`${arch} on ${device.name}: parameter bytes kept ${kb} vs f32 ${wb} (${(kb / wb).toFixed(3)})`);
      // the Linear and expert weights take exactly half; the whole model (tiny fixtures: f32 embeddings and norms
      // weigh in) a little over half
      const sub = (m: mk.MoELM): number => m.parameters().filter(([n]) => dtypes.get(n) === 'bf16').reduce((s, [, p]) => s + p.size * (p.dtype === 'f32' ? 4 : 2), 0);
      expect(sub(kept.model) / sub(wide.model)).toBe(0.5);
      expect(kb / wb).toBeLessThan(0.6);

      // inference (aux off: segmented expert path) and the training-form forward (aux on) without gradients
      for (const aux of [false, true]) {
        const a = mk.noGrad(() => kept.model.forward(ids(ref.input_ids), { aux }).logits.dataSync());
        const b = mk.noGrad(() => wide.model.forward(ids(ref.input_ids), { aux }).logits.dataSync());
        const d = maxAbsDiff(a, b);
        console.log(`${arch} on ${device.name}: max |logits kept bf16 - f32 load| (aux ${aux}) = ${d.toExponential(2)}`);
        expect(d).toBeLessThanOrEqual(1e-4);
      }
      const prompt = ref.input_ids.slice(0, 8);
      const n = ref.greedy_from_first8.length - 8;
      const g1 = generate(kept.model, prompt, { maxNewTokens: n, greedy: true, stopIds: kept.eosTokenIds });
      const g2 = generate(wide.model, prompt, { maxNewTokens: n, greedy: true, stopIds: wide.eosTokenIds });
      expect(g1.ids).toEqual(g2.ids);

      // export of the kept model equals the export of the f32 load, tensor by tensor
      const we = new Map([...hfTensors(wide.model, wide.arch)].map((t) => [t.name, t]));
      for (const t of hfTensors(kept.model, kept.arch)) {
        const w = we.get(t.name)!;
        expect(t.shape).toEqual(w.shape);
        expect(maxAbsDiff(t.data, w.data)).toBe(0);
      }

      // upcast: everything f32 in the f32 layout, equal to the f32 load
      const up = kept.model.upcast();
      expect(up.tensors).toBeGreaterThan(0);
      expect(up.bytes).toBe(wb - kb); // the bf16 bytes: kb = half + rest, wb = 2·half + rest
      const wp = new Map(wide.model.parameters());
      for (const [n, p] of kept.model.parameters()) {
        expect(p.dtype).toBe('f32');
        expect(maxAbsDiff(p.dataSync(), wp.get(n)!.dataSync())).toBe(0);
      }
      expect(kept.model.upcast()).toEqual({ tensors: 0, bytes: 0 });
    } finally {
      kept.model.dispose();
      wide.model.dispose();
    }
  });
});

describe('training through kept bf16 weights', () => {
  it('is refused with the way out (their gradient would be lost); after upcast() every parameter gets one', async () => {
    await mk.setBackend('js');
    const kept = await loadHfModel(await bf16Dir('mixtral', 'legacy'));
    const x = ids([3, 17, 42, 99]);
    expect(() => kept.model.loss(x, x)).toThrow(/bf16 Linear weight \(\d+ x \d+\) was kept in its storage dtype, which has no gradient.*model\.upcast\(\), or load with loadDtype 'f32'/);
    mk.noGrad(() => kept.model.forward(x, { aux: false })); // inference is fine
    expect(kept.model.upcast().tensors).toBeGreaterThan(0);
    const l = kept.model.loss(x, x);
    mk.backward(l.loss);
    expect(kept.model.parameters().filter(([, p]) => !p.grad).map(([n]) => n)).toEqual([]);
    kept.model.dispose();
  });
});
