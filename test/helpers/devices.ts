// The devices every backend test runs on; each either creates its backend or says why it cannot.
import type { Backend } from '../../src/backend/backend.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';

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
