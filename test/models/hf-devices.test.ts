// Hugging Face fixtures on the wasm devices and webgpu: logits, greedy generation (KV cache, fused inference path) and one
// training step's gradients against transformers' golden files, for the architectures added with latent attention,
// partial rotary and sigmoid group routing (the js backend runs the same checks in hf.test.ts). webgpu runs where an
// adapter exists (SwiftShader in CI, as webgpu.test.ts sets it up), else is skipped with the reason printed.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import type { Backend } from '../../src/backend/backend.js';
import { Checkpoint, loadHfModel } from '../../src/models/hf/load.js';
import { hfTensors } from '../../src/models/hf/weights.js';
import { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { generate, generateAsync } from '../../src/serve/generate.js';
import { DEVICES } from '../helpers/devices.js';
import { fixture } from '../helpers/fixtures.js';

const ARCHS = ['glm4_moe', 'deepseek_v3'] as const;

interface Reference {
  input_ids: number[];
  logits: number[][];
  greedy_from_first8: number[];
}

const ids = (xs: readonly number[]): mk.Tensor => mk.tensor(Int32Array.from(xs), [1, xs.length], 'i32');
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe.each(DEVICES)('Hugging Face fixtures on $name', (device) => {
  let backend: Backend | null = null;
  let reason = '';
  beforeAll(async () => {
    const r = await device.create();
    if (typeof r === 'string') {
      reason = r;
      console.warn(`[skip] device ${device.name}: ${r}`);
    } else backend = r;
  });
  afterAll(async () => {
    mk.useBackend(new mk.JsBackend());
    await backend?.dispose();
  });

  for (const arch of ARCHS) it(`${arch}: logits within 1e-4, greedy ids exact, gradients within 1e-4 · max(1, max |g|)`, async (ctx) => {
    if (!backend) return ctx.skip(reason);
    mk.useBackend(backend);
    const dir = path.dirname(fixture(`hf/${arch}/config.json`));
    const ref = JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;
    const hf = await loadHfModel(dir);
    // training forward (aux on) and the inference forward (aux off: fused expert kernels) both
    const dl = Math.max(...[true, false].map((aux) => maxAbsDiff(mk.noGrad(() => hf.model.forward(ids(ref.input_ids), { aux }).logits.dataSync()), ref.logits.flat())));
    expect(dl).toBeLessThanOrEqual(1e-4);
    const g = generate(hf.model, ref.input_ids.slice(0, 8), { maxNewTokens: ref.greedy_from_first8.length - 8, greedy: true, stopIds: hf.eosTokenIds });
    expect(g.ids).toEqual(ref.greedy_from_first8);

    const gr = JSON.parse(readFileSync(path.join(dir, 'grads.json'), 'utf8')) as { input_ids: number[]; loss_total: number; grad_names: string[] };
    const T = gr.input_ids.length;
    const out = hf.model.loss(ids(gr.input_ids), mk.tensor(Int32Array.from([...gr.input_ids.slice(1), -100]), [1, T], 'i32'));
    mk.backward(out.loss);
    expect(Math.abs(out.loss.item() - gr.loss_total)).toBeLessThanOrEqual(1e-5);
    const mine = new Map([...hfTensors(hf.model, arch, 'fused', (p) => p.grad)].map((t) => [t.name, t]));
    expect([...mine.keys()].sort()).toEqual([...gr.grad_names].sort());
    const refGrads = await Checkpoint.open(path.join(dir, 'grads.safetensors'));
    let worst = 0;
    for (const name of gr.grad_names) {
      const want = await refGrads.readF32(name);
      const d = maxAbsDiff(mine.get(name)!.data, want) / Math.max(1, ...Array.from(want, Math.abs));
      worst = Math.max(worst, d);
      expect(d, name).toBeLessThanOrEqual(1e-4);
    }
    await refGrads.close();
    console.log(`${device.name} ${arch}: logits max |diff| ${dl.toExponential(2)}, greedy exact, worst gradient ${worst.toExponential(2)} (relative)`);
    hf.model.dispose();
  }, 60_000);
});

describe('Hugging Face fixtures on webgpu', () => {
  let gpu: WebGpuBackend | null = null;
  let reason = '';
  const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
  beforeAll(async () => {
    if (process.env.MOEKIT_WEBGPU === '0') {
      reason = 'MOEKIT_WEBGPU=0';
      console.warn(`[skip] webgpu: ${reason}`);
      return;
    }
    if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER)) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
    try {
      gpu = await WebGpuBackend.create();
    } catch (e) {
      reason = (e as Error).message;
      console.warn(`[skip] webgpu: ${reason}`);
    }
  }, 60_000);
  afterAll(async () => {
    mk.useBackend(new mk.JsBackend());
    await gpu?.dispose();
  });

  for (const arch of ARCHS) it(`${arch}: logits within 1e-4, greedy ids exact (generateAsync), gradients within 1e-4 · max(1, max |g|)`, async (ctx) => {
    if (!gpu) return ctx.skip(reason);
    const js = new mk.JsBackend();
    mk.useBackend(gpu);
    try {
      const dir = path.dirname(fixture(`hf/${arch}/config.json`));
      const ref = JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;
      const hf = await loadHfModel(dir);
      let dl = 0;
      for (const aux of [true, false]) dl = Math.max(dl, maxAbsDiff(await mk.noGrad(() => hf.model.forward(ids(ref.input_ids), { aux }).logits).data(), ref.logits.flat()));
      expect(dl).toBeLessThanOrEqual(1e-4);
      const g = await generateAsync(hf.model, ref.input_ids.slice(0, 8), { maxNewTokens: ref.greedy_from_first8.length - 8, greedy: true, stopIds: hf.eosTokenIds });
      expect(g.ids).toEqual(ref.greedy_from_first8);

      const gr = JSON.parse(readFileSync(path.join(dir, 'grads.json'), 'utf8')) as { input_ids: number[]; loss_total: number; grad_names: string[] };
      const T = gr.input_ids.length;
      const out = hf.model.loss(ids(gr.input_ids), mk.tensor(Int32Array.from([...gr.input_ids.slice(1), -100]), [1, T], 'i32'));
      mk.backward(out.loss);
      expect(Math.abs((await out.loss.data())[0]! - gr.loss_total)).toBeLessThanOrEqual(1e-5);
      // read every gradient from the device, then name them as transformers does (hfTensors reads synchronously: js copies)
      const grads = new Map<mk.Tensor, Float32Array>();
      for (const [, p] of hf.model.parameters()) if (p.grad) grads.set(p, Float32Array.from(await p.grad.data()));
      mk.useBackend(js);
      const mine = new Map([...hfTensors(hf.model, arch, 'fused', (p) => (grads.has(p) ? mk.tensor(grads.get(p)!, p.shape) : null))].map((t) => [t.name, t]));
      expect([...mine.keys()].sort()).toEqual([...gr.grad_names].sort());
      const refGrads = await Checkpoint.open(path.join(dir, 'grads.safetensors'));
      let worst = 0;
      for (const name of gr.grad_names) {
        const want = await refGrads.readF32(name);
        const d = maxAbsDiff(mine.get(name)!.data, want) / Math.max(1, ...Array.from(want, Math.abs));
        worst = Math.max(worst, d);
        expect(d, name).toBeLessThanOrEqual(1e-4);
      }
      await refGrads.close();
      console.log(`webgpu ${arch}: logits max |diff| ${dl.toExponential(2)}, greedy exact, worst gradient ${worst.toExponential(2)} (relative)`);
    } finally {
      mk.useBackend(js);
    }
  }, 120_000);
});
