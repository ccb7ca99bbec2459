// tfjs-wasm adapter: @tensorflow/tfjs-core on the wasm backend, .wasm files located in node_modules.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { GroupedProblem } from './moekit.js';
import type { GemmEngine, GemmProblem, Prepared } from './types.js';

export class TfjsWasm implements GemmEngine {
  private constructor(readonly threads: number, readonly note?: string) {}

  /**
   * tfjs-backend-wasm reports WASM_HAS_MULTITHREAD_SUPPORT = false under Node (tfjs#3830), so it loads the
   * single-threaded SIMD build whatever setThreadsCount says; getThreadsCount() tells what actually runs.
   */
  static async create(threads: number): Promise<TfjsWasm> {
    const req = createRequire(import.meta.url);
    const dir = path.dirname(req.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm'));
    setWasmPaths(dir + path.sep);
    setThreadsCount(threads);
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: wasm backend failed to initialise');
    await tf.ready();
    const actual = getThreadsCount();
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const mt = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    const note = actual < threads
      ? `setThreadsCount(${threads}) ignored: WASM_HAS_MULTITHREAD_SUPPORT=${String(mt)} under Node (tfjs#3830), ` +
        `the single-threaded ${simd ? 'SIMD ' : ''}build runs with getThreadsCount()=${actual}; forcing the flag makes ` +
        `the threaded build fail (its pthread workers use blob: URLs, ERR_WORKER_PATH)`
      : undefined;
    return new TfjsWasm(actual, note);
  }

  prepareGemm(p: GemmProblem): Promise<Prepared> {
    const a = tf.tensor2d(p.a, [p.M, p.K]), b = tf.tensor2d(p.b, [p.K, p.N]);
    return Promise.resolve({
      // The wasm backend executes matMul eagerly and synchronously; no readback is timed.
      run: () => { tf.matMul(a, b).dispose(); },
      output: () => {
        const c = tf.matMul(a, b);
        const d = c.dataSync();
        c.dispose();
        if (!(d instanceof Float32Array)) throw new Error('tfjs returned non-f32 data');
        return d;
      },
      dispose: () => { a.dispose(); b.dispose(); },
    });
  }

  /** Per-expert loop: slice each non-empty expert's rows and matMul them with its weight, then concat. */
  prepareGrouped(g: GroupedProblem): Prepared {
    const x = tf.tensor2d(g.x, [g.T, g.K]);
    const ws: tf.Tensor2D[] = [];
    for (let e = 0; e < g.E; e++) ws.push(tf.tensor2d(g.w.subarray(e * g.K * g.N, (e + 1) * g.K * g.N), [g.K, g.N]));
    const once = (): tf.Tensor => tf.tidy(() => {
      const parts: tf.Tensor2D[] = [];
      for (let e = 0; e < g.E; e++) {
        const r0 = g.offsets[e]!, r1 = g.offsets[e + 1]!;
        if (r1 > r0) parts.push(tf.matMul(tf.slice(x, [r0, 0], [r1 - r0, g.K]), ws[e]!));
      }
      return tf.concat(parts, 0);
    });
    return {
      run: () => { once().dispose(); },
      output: () => {
        const c = once();
        const d = c.dataSync();
        c.dispose();
        if (!(d instanceof Float32Array)) throw new Error('tfjs returned non-f32 data');
        return d;
      },
      dispose: () => { x.dispose(); for (const w of ws) w.dispose(); },
    };
  }

  close(): Promise<void> {
    tf.disposeVariables();
    return Promise.resolve();
  }
}
