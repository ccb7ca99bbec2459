// The webgpu backend against the js reference, op by op, on the same random cases as the wasm parity suite.
// Runs on any WebGPU adapter: Dawn through the `webgpu` package, in CI on SwiftShader (Debian chromium ships the
// driver, libvulkan1 the loader; VK_ICD_FILENAMES points at /usr/lib/chromium/vk_swiftshader_icd.json, set here
// when unset and the file exists). Without an adapter the suite is skipped with the reason printed, unless
// MOEKIT_REQUIRE_WEBGPU=1 (CI), where a missing adapter fails. Ops without a WGSL kernel yet are skipped by name.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { Op } from '../../src/tensor/ops.js';
import type { Backend } from '../../src/backend/backend.js';
import { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { KERNELS } from '../../src/backend/webgpu/kernels.js';
import { CASES, type OpCase } from '../helpers/cases.js';
import { allocTyped } from '../../src/tensor/dtype.js';
import type { GradcheckInput } from '../../src/backend/gradcheck.js';
import { relErr } from '../helpers/compare.js';
import { fixture } from '../helpers/fixtures.js';
import { HF_ARCHS } from '../../src/models/hf/config.js';
import { loadHfModel } from '../../src/models/hf/load.js';
import { generateAsync } from '../../src/serve/generate.js';
import { train } from '../../src/train/loop.js';
import { parseConfig, tiny } from '../../src/models/config.js';

const SIZES = [1, 3, 17, 129];
const TOL = 1e-5;

function put(backend: Backend, i: GradcheckInput): mk.Tensor {
  const dtype = i.dtype ?? 'f32';
  const data = allocTyped(dtype, i.data.length);
  for (let k = 0; k < i.data.length; k++) data[k] = i.data[k]!;
  return mk.fromTyped(data, i.shape, dtype, backend);
}

let gpu: WebGpuBackend | null = null;
let reason = '';
const reference = new mk.JsBackend();

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
    console.log(`webgpu adapter: ${gpu.adapterInfo}`);
  } catch (e) {
    reason = (e as Error).message;
    if (process.env.MOEKIT_REQUIRE_WEBGPU === '1') throw new Error(`MOEKIT_REQUIRE_WEBGPU=1 but ${reason}`);
    console.warn(`[skip] webgpu: ${reason}`);
  }
}, 60_000);
afterAll(async () => {
  await gpu?.dispose();
});

describe('webgpu backend', () => {
  for (const op of Object.values(Op)) {
    const implemented = KERNELS[op] !== undefined;
    it(`${op} equals js at sizes ${SIZES.join(', ')}`, async (ctx) => {
      if (!gpu) return ctx.skip(reason);
      if (!implemented) return ctx.skip(`${op} has no WGSL kernel yet`);
      const worst: string[] = [];
      for (const n of SIZES) {
        const gen = CASES[op] as (r: mk.Rng, n: number) => OpCase[];
        for (const c of gen(new mk.Rng(31 + n), n)) {
          mk.useBackend(reference);
          const want = mk.tidy(() => mk.run(op, c.inputs.map((i) => put(reference, i)), c.params as never).map((t) => Array.from(t.dataSync())));
          mk.useBackend(gpu);
          const outs = mk.run(op, c.inputs.map((i) => put(gpu!, i)), c.params as never);
          const got = await Promise.all(outs.map(async (t) => Array.from(await t.data())));
          want.forEach((w, k) => {
            const e = relErr(got[k]!, w);
            if (!(e <= TOL)) worst.push(`${c.name} output ${k}: relative error ${e}`);
          });
        }
      }
      mk.useBackend(reference);
      expect(worst).toEqual([]);
    });
  }

  it('Hugging Face fixtures: logits within 1e-3 of transformers, greedy generation exactly (generateAsync)', async (ctx) => {
    if (!gpu) return ctx.skip(reason);
    mk.useBackend(gpu);
    try {
      for (const arch of HF_ARCHS) {
        const dir = path.dirname(fixture(`hf/${arch}/config.json`));
        const ref = JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as { input_ids: number[]; logits: number[][]; greedy_from_first8: number[] };
        const hf = await loadHfModel(dir);
        const ids = mk.tensor(Int32Array.from(ref.input_ids), [1, ref.input_ids.length], 'i32');
        const logits = mk.noGrad(() => hf.model.forward(ids, { aux: false }).logits);
        const got = await logits.data();
        const want = ref.logits.flat();
        let d = 0;
        for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i]! - want[i]!));
        console.log(`webgpu ${arch}: logits max |diff| ${d.toExponential(2)}`);
        expect(d).toBeLessThanOrEqual(1e-3);
        const g = await generateAsync(hf.model, ref.input_ids.slice(0, 8), { maxNewTokens: ref.greedy_from_first8.length - 8, greedy: true, stopIds: hf.eosTokenIds });
        expect(g.ids).toEqual(ref.greedy_from_first8);
        mk.dispose([ids, logits]);
        mk.dispose(hf.model.parameters().map(([, t]) => t));
      }
    } finally {
      mk.useBackend(reference);
    }
  }, 120_000);

  it('training runs on webgpu: the training loop\'s losses and final weights equal the wasm backend\'s', async (ctx) => {
    if (!gpu) return ctx.skip(reason);
    // sigmoid-group routing with a shared gated expert and the aux-loss-free bias update: every MoE path of training
    const cfg = parseConfig({ ...tiny, router: 'sigmoid-group', groups: 2, topGroups: 1, sharedWidth: 16, sharedGate: true });
    const tokens = Int32Array.from({ length: 3000 }, (_, i) => (i * 7919 + (i >> 3)) % cfg.vocabSize);
    const run = async (): Promise<{ losses: number[]; norms: number[]; w: number[] }> => {
      const losses: number[] = [];
      const norms: number[] = [];
      const r = await train({ config: cfg, tokens, steps: 6, batch: 2, seqLen: 16, out: null, onStep: (m) => { losses.push(m.loss); norms.push(m.grad_norm); } });
      const down = r.model.parameters().find(([n]) => n === 'model.layers.1.mlp.experts.down_proj')![1];
      const w = Array.from(await down.data());
      return { losses, norms, w };
    };
    const cpu = await mk.WasmBackend.create({ threads: 1 });
    try {
      mk.useBackend(cpu);
      const want = await run();
      mk.useBackend(gpu);
      const got = await run();
      const d = (a: number[], b: number[]): number => Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
      console.log(`webgpu training: loss max |diff| ${d(got.losses, want.losses).toExponential(2)}, final weights ${d(got.w, want.w).toExponential(2)}`);
      expect(d(got.losses, want.losses)).toBeLessThan(1e-4);
      expect(d(got.norms, want.norms)).toBeLessThan(1e-3);
      expect(d(got.w, want.w)).toBeLessThan(1e-4);
    } finally {
      mk.useBackend(reference);
      await cpu.dispose();
    }
  }, 120_000);

  it('the CLI runs on webgpu: moekit generate --backend webgpu equals transformers, and the process exits', (ctx) => {
    if (!gpu) return ctx.skip(reason);
    const dir = path.dirname(fixture('hf/qwen3_moe/config.json'));
    const ref = JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as { input_ids: number[]; greedy_from_first8: number[] };
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'generate', dir, '--ids', ref.input_ids.slice(0, 8).join(','),
      '--max-new-tokens', String(ref.greedy_from_first8.length - 8), '--greedy', '--json', '--backend', 'webgpu'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ids: number[] }).ids).toEqual(ref.greedy_from_first8);
  }, 130_000);

  it('reads back only when awaited, reuses pooled buffers, and frees what it allocates', async (ctx) => {
    if (!gpu) return ctx.skip(reason);
    mk.useBackend(gpu);
    const before = gpu.bytesInUse();
    const a = mk.tensor(Float32Array.from({ length: 300 }, (_, i) => i / 100), [20, 15]);
    const w = mk.tensor(Float32Array.from({ length: 15 * 7 }, (_, i) => Math.sin(i)), [15, 7]);
    const y = mk.tidy(() => mk.sum(mk.softmax(mk.matmul(a, w), -1), -1)); // (20)
    expect(() => y.dataSync()).toThrow(/reads asynchronously/);
    const v = await y.data();
    v.forEach((x) => expect(Math.abs(x - 1)).toBeLessThan(1e-5));
    mk.dispose([a, w, y]);
    expect(gpu.bytesInUse()).toBe(before);
    mk.useBackend(reference);
  });
});
