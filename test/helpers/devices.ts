// The devices every backend test runs on; each either creates its backend or says why it cannot. useDevice sets one up
// for a describe block.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, type TestContext } from 'vitest';
import * as mk from '../../src/index.js';
import type { Backend } from '../../src/backend/backend.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { WebGpuBackend } from '../../src/backend/webgpu/index.js';

export interface Device {
  name: string;
  /** The backend, or the reason it is unavailable here. */
  create(): Promise<Backend | string>;
}

async function attempt(f: () => Promise<Backend>): Promise<Backend | string> {
  try {
    return await f();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

export const DEVICES: Device[] = [
  { name: 'wasm (2 threads, relaxed SIMD when available)', create: () => attempt(() => WasmBackend.create({ threads: 2 })) },
  { name: 'wasm (1 thread, plain SIMD)', create: () => attempt(() => WasmBackend.create({ threads: 1, relaxedSimd: false })) },
];

/** The js reference backend as a device. */
export const JS: Device = { name: 'js', create: async () => new mk.JsBackend() };

/** WebGPU (Dawn; SwiftShader where Debian's chromium ships it, as test/backend/webgpu.test.ts sets up), or why not. */
export const WEBGPU: Device = {
  name: 'webgpu',
  create: async () => {
    if (process.env.MOEKIT_WEBGPU === '0') return 'MOEKIT_WEBGPU=0';
    const icd = '/usr/lib/chromium/vk_swiftshader_icd.json';
    if (!process.env.VK_ICD_FILENAMES && existsSync(icd)) process.env.VK_ICD_FILENAMES = icd;
    return attempt(() => WebGpuBackend.create());
  },
};

export interface DeviceHandle {
  /** The device's backend; skips the calling test with the reason where the device is unavailable. */
  backend(ctx: TestContext): Backend;
  /** backend(ctx), made the current backend. */
  use(ctx: TestContext): Backend;
}

/**
 * For the enclosing describe block: beforeAll creates the device's backend (or prints `[skip] device NAME: reason`),
 * afterAll makes a js backend current and disposes the device's.
 */
export function useDevice(device: Device): DeviceHandle {
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
  const get = (ctx: TestContext): Backend => backend ?? ctx.skip(reason);
  return {
    backend: get,
    use: (ctx) => {
      const b = get(ctx);
      mk.useBackend(b);
      return b;
    },
  };
}
