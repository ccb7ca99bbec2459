// Hugging Face fixtures on the wasm devices and webgpu: logits, router logits (gpt_oss), greedy generation (KV cache,
// fused inference path) and one training step's gradients against transformers' golden files, for the architectures
// added with latent attention, partial rotary, sigmoid group routing and attention sinks (the js backend runs the same
// checks in hf.test.ts). webgpu runs where an adapter exists (SwiftShader in CI, as webgpu.test.ts sets it up), else is
// skipped with the reason printed.
import { describe, it } from 'vitest';
import { DEVICES, WEBGPU, useDevice } from '../helpers/devices.js';
import { fixtureParity, parityLine } from '../helpers/hf-parity.js';

/** architecture and whether its fixture has router logits */
const ARCHS = [['glm4_moe', false], ['deepseek_v3', false], ['gpt_oss', true]] as const;

describe.each([...DEVICES, WEBGPU])('Hugging Face fixtures on $name', (device) => {
  const dev = useDevice(device);
  for (const [arch, routerLogits] of ARCHS) {
    it(`${arch}: logits${routerLogits ? ' and router logits' : ''} within 1e-4 (training and inference forward), greedy ids exact, gradients within 1e-4 · max(1, max |g|)`, async (ctx) => {
      dev.use(ctx);
      console.log(`${device.name} ${arch}: ${parityLine(await fixtureParity(arch, { routerLogits }))}`);
    }, device === WEBGPU ? 120_000 : 60_000);
  }
});
