// The webgpu backend against the js reference, op by op, on the same random cases as the wasm parity suite.
// Runs on any WebGPU adapter: Dawn through the `webgpu` package, in CI on SwiftShader (Debian chromium ships the
// driver, libvulkan1 the loader; VK_ICD_FILENAMES points at /usr/lib/chromium/vk_swiftshader_icd.json, set here
// when unset and the file exists). Without an adapter the suite is skipped with the reason printed, unless
// MOEKIT_REQUIRE_WEBGPU=1 (CI), where a missing adapter fails. Ops without a WGSL kernel yet are skipped by name.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { Op } from '../../src/tensor/ops.js';
import type { Backend } from '../../src/backend/backend.js';
import { WebGpuBackend } from '../../src/backend/webgpu/index.js';
import { KERNELS } from '../../src/backend/webgpu/kernels.js';
import { CASES, type OpCase } from '../helpers/cases.js';
import { allocTyped } from '../../src/tensor/dtype.js';
import type { GradcheckInput } from '../../src/tensor/gradcheck.js';
import { relErr } from '../helpers/compare.js';

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
