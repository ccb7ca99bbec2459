// ONNX Runtime adapters: onnxruntime-web (wasm EP) and onnxruntime-node (native CPU EP) running a one-node MatMul model.
import type { InferenceSession, Tensor } from 'onnxruntime-web';
import { matmulModel } from './onnx-model.js';
import type { GroupedProblem } from './moekit.js';
import type { GemmEngine, GemmProblem, Prepared } from './types.js';

/** The part of either package's module that the adapter uses (both re-export onnxruntime-common's types). */
interface OrtModule {
  InferenceSession: { create(model: Uint8Array, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => Tensor;
}

function f32(t: Tensor | undefined): Float32Array {
  const d = t?.data;
  if (!(d instanceof Float32Array)) throw new Error('onnxruntime returned no float32 output');
  return d;
}

export class OrtEngine implements GemmEngine {
  private readonly sessions: InferenceSession[] = [];

  private constructor(
    private readonly ort: OrtModule,
    private readonly options: InferenceSession.SessionOptions,
    readonly threads: number,
    readonly note?: string,
  ) {}

  /** onnxruntime-web: env.wasm.numThreads must be set before the first session; its threads are worker_threads here. */
  static async web(threads: number): Promise<OrtEngine> {
    const ort = await import('onnxruntime-web');
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.proxy = false;
    ort.env.logLevel = 'error';
    return new OrtEngine(ort, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' }, threads);
  }

  /** onnxruntime-node: native CPU EP with intraOpNumThreads, sequential execution, no spinning between calls. */
  static async node(threads: number): Promise<OrtEngine> {
    const ort = await import('onnxruntime-node');
    return new OrtEngine(ort, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    }, threads);
  }

  private async session(M: number | string, K: number, N: number): Promise<InferenceSession> {
    const s = await this.ort.InferenceSession.create(matmulModel(M, K, N), this.options);
    this.sessions.push(s);
    return s;
  }

  async prepareGemm(p: GemmProblem): Promise<Prepared> {
    const s = await this.session(p.M, p.K, p.N);
    const feeds = { A: new this.ort.Tensor('float32', p.a, [p.M, p.K]), B: new this.ort.Tensor('float32', p.b, [p.K, p.N]) };
    // Each run returns a fresh host output tensor (ORT copies C out; that copy is part of the timed call).
    return {
      run: async () => { await s.run(feeds); },
      output: async () => f32((await s.run(feeds))['Y']).slice(),
      dispose: () => this.drop(s),
    };
  }

  /** Per-expert loop with a dynamic-M MatMul session: one run per non-empty expert, outputs copied into y. */
  async prepareGrouped(g: GroupedProblem): Promise<Prepared> {
    const s = await this.session('M', g.K, g.N);
    const y = new Float32Array(g.T * g.N);
    const feeds: { A: Tensor; B: Tensor; r0: number }[] = [];
    for (let e = 0; e < g.E; e++) {
      const r0 = g.offsets[e]!, r1 = g.offsets[e + 1]!;
      if (r1 === r0) continue;
      feeds.push({
        A: new this.ort.Tensor('float32', g.x.subarray(r0 * g.K, r1 * g.K), [r1 - r0, g.K]),
        B: new this.ort.Tensor('float32', g.w.subarray(e * g.K * g.N, (e + 1) * g.K * g.N), [g.K, g.N]),
        r0,
      });
    }
    const run = async (): Promise<void> => {
      for (const f of feeds) y.set(f32((await s.run({ A: f.A, B: f.B }))['Y']), f.r0 * g.N);
    };
    return { run, output: async () => { y.fill(NaN); await run(); return y.slice(); }, dispose: () => this.drop(s) };
  }

  private async drop(s: InferenceSession): Promise<void> {
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
    await s.release();
  }

  async close(): Promise<void> {
    for (const s of this.sessions.splice(0)) await s.release().catch(() => undefined);
  }
}
