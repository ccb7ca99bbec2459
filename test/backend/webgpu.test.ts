// The webgpu backend against the js reference, op by op, on the same random cases as the wasm parity suite, and the
// Hugging Face fixtures through the shared parity checks (test/helpers/hf-parity.ts) that js and the wasm devices run.
// The device is the shared WEBGPU of test/helpers/devices.ts: Dawn through the `webgpu` package, in CI on SwiftShader
// (Debian chromium ships the driver, libvulkan1 the loader; VK_ICD_FILENAMES points at
// /usr/lib/chromium/vk_swiftshader_icd.json, set there when unset and the file exists). Without an adapter the suite is
// skipped with the reason printed, unless MOEKIT_REQUIRE_WEBGPU=1 (CI), where a missing adapter fails. Ops without a
// WGSL kernel yet are skipped by name.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, type TestContext } from 'vitest';
import * as mk from '../../src/index.js';
import { Op } from '../../src/tensor/ops.js';
import type { Backend } from '../../src/backend/backend.js';
import { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { KERNELS } from '../../src/backend/webgpu/kernels.js';
import { CASES, type OpCase } from '../helpers/cases.js';
import { allocTyped } from '../../src/tensor/dtype.js';
import type { GradcheckInput } from '../../src/backend/gradcheck.js';
import { relErr } from '../helpers/compare.js';
import { WEBGPU, useDevice, type Device } from '../helpers/devices.js';
import { fixture } from '../helpers/fixtures.js';
import { fixtureParity, parityLine } from '../helpers/hf-parity.js';
import { HF_ARCHS, type HfArch } from '../../src/models/hf/config.js';
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

const reference = new mk.JsBackend();

/** The shared webgpu device, which must exist where MOEKIT_REQUIRE_WEBGPU=1 (unless MOEKIT_WEBGPU=0 turns it off). */
const REQUIRED_WEBGPU: Device = {
  name: WEBGPU.name,
  create: async () => {
    const r = await WEBGPU.create();
    if (typeof r === 'string') {
      if (process.env.MOEKIT_REQUIRE_WEBGPU === '1' && process.env.MOEKIT_WEBGPU !== '0') throw new Error(`MOEKIT_REQUIRE_WEBGPU=1 but ${r}`);
    } else console.log(`webgpu adapter: ${(r as WebGpuBackend).adapterInfo}`);
    return r;
  },
};
const dev = useDevice(REQUIRED_WEBGPU);
const gpuOf = (ctx: TestContext): WebGpuBackend => dev.backend(ctx) as WebGpuBackend;

/** hf-devices.test.ts runs these on every device, webgpu included; the others are run on webgpu here. */
const ON_DEVICES_ELSEWHERE: readonly HfArch[] = ['glm4_moe', 'deepseek_v3', 'gpt_oss'];

describe('webgpu backend', () => {
  for (const op of Object.values(Op)) {
    const implemented = KERNELS[op] !== undefined;
    it(`${op} equals js at sizes ${SIZES.join(', ')}`, async (ctx) => {
      const gpu = gpuOf(ctx);
      if (!implemented) return ctx.skip(`${op} has no WGSL kernel yet`);
      const worst: string[] = [];
      for (const n of SIZES) {
        const gen = CASES[op] as (r: mk.Rng, n: number) => OpCase[];
        for (const c of gen(new mk.Rng(31 + n), n)) {
          mk.useBackend(reference);
          const want = mk.tidy(() => mk.run(op, c.inputs.map((i) => put(reference, i)), c.params as never).map((t) => Array.from(t.dataSync())));
          mk.useBackend(gpu);
          const outs = mk.run(op, c.inputs.map((i) => put(gpu, i)), c.params as never);
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

  // the shared checks of every device: logits (training and inference forward) and router logits within 1e-4 of
  // transformers, greedy ids exact (generateAsync: reads awaited), one training step's loss within 1e-5 and gradients
  // within 1e-4 · max(1, max |g|)
  for (const arch of HF_ARCHS.filter((a) => !ON_DEVICES_ELSEWHERE.includes(a))) {
    it(`Hugging Face fixture ${arch}: logits within 1e-4 (training and inference forward), greedy ids exact, gradients within 1e-4 · max(1, max |g|)`, async (ctx) => {
      dev.use(ctx);
      try {
        console.log(`webgpu ${arch}: ${parityLine(await fixtureParity(arch))}`);
      } finally {
        mk.useBackend(reference);
      }
    }, 120_000);
  }

  it('training runs on webgpu: the training loop\'s losses and final weights equal the wasm backend\'s', async (ctx) => {
    const gpu = gpuOf(ctx);
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
    gpuOf(ctx);
    const dir = path.dirname(fixture('hf/qwen3_moe/config.json'));
    const ref = JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as { input_ids: number[]; greedy_from_first8: number[] };
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'generate', dir, '--ids', ref.input_ids.slice(0, 8).join(','),
      '--max-new-tokens', String(ref.greedy_from_first8.length - 8), '--greedy', '--json', '--backend', 'webgpu'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ids: number[] }).ids).toEqual(ref.greedy_from_first8);
  }, 130_000);

  it('assignRange writes a range in place, between dispatches, as the KV pool does', async (ctx) => {
    const gpu = gpuOf(ctx);
    mk.useBackend(gpu);
    const pool = mk.tensor(new Float32Array(12), [4, 3]);
    const rows = mk.tidy(() => mk.add(mk.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]), 10)); // computed on the device
    mk.assignRange(pool, 3, rows); // rows 1..2
    mk.assignRange(pool, 9, rows, 3, 3); // row 3 from the second row
    const doubled = mk.mul(pool, 2); // a dispatch after the copies sees them
    expect(Array.from(await doubled.data())).toEqual([0, 0, 0, 22, 24, 26, 28, 30, 32, 28, 30, 32]);
    mk.dispose([pool, rows, doubled]);
    mk.useBackend(reference);
  });

  it('reads back only when awaited, reuses pooled buffers, and frees what it allocates', async (ctx) => {
    const gpu = gpuOf(ctx);
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
