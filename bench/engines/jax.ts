// jax-js adapter: @jax-js/jax on its wasm device (np.matmul, forced with blockUntilReady).
import { defaultDevice, init, numpy as np } from '@jax-js/jax';
import type { GemmEngine, GemmProblem, Prepared } from './types.js';

export class JaxWasm implements GemmEngine {
  private constructor(readonly threads: number) {}

  /**
   * jax-js only parallelises through a pool of *web* Workers (globalThis.Worker + SharedArrayBuffer); Node 20 has
   * no global Worker, so its wasm device runs every kernel on the calling thread. More than 1 thread is refused.
   */
  static async create(threads: number): Promise<JaxWasm> {
    const hasWebWorker = typeof (globalThis as { Worker?: unknown }).Worker === 'function';
    if (threads > 1 && !hasWebWorker) {
      throw new Error('jax-js: its wasm worker pool needs the web Worker global, which Node 20 lacks; it runs 1 thread only');
    }
    // init() with no argument probes WebGPU through `navigator`, which Node 20 does not define.
    const devices = await init('wasm');
    if (!devices.includes('wasm')) throw new Error(`jax-js: wasm device unavailable (got ${devices.join(', ')})`);
    defaultDevice('wasm');
    return new JaxWasm(hasWebWorker ? threads : 1);
  }

  prepareGemm(p: GemmProblem): Promise<Prepared> {
    const a = np.array(p.a).reshape([p.M, p.K]);
    const b = np.array(p.b).reshape([p.K, p.N]);
    return Promise.resolve({
      // .ref keeps a and b alive across calls (jax-js functions consume their arguments).
      run: async () => {
        const c = np.matmul(a.ref, b.ref);
        await c.blockUntilReady();
        c.dispose();
      },
      output: () => {
        const d = np.matmul(a.ref, b.ref).dataSync();
        if (!(d instanceof Float32Array)) throw new Error('jax-js returned non-f32 data');
        return d;
      },
      dispose: () => { a.dispose(); b.dispose(); },
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
