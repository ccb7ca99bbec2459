// moekit adapters: the wasm runtime's matmul / groupedMatmul kernels, and the js reference backend's Matmul op.
import { WasmRuntime } from '../../src/backend/wasm/runtime.js';
import { groupedMatmul, matmul } from '../../src/backend/wasm/kernels.js';
import { JsBackend } from '../../src/backend/js/index.js';
import { Op } from '../../src/tensor/ops.js';
import type { GemmEngine, GemmProblem, Prepared } from './types.js';

/** Host data of one grouped-matmul problem: x (T, K) rows sorted by expert, w (E, K, N), offsets (E + 1). */
export interface GroupedProblem {
  readonly T: number;
  readonly K: number;
  readonly N: number;
  readonly E: number;
  readonly x: Float32Array;
  readonly w: Float32Array;
  readonly offsets: Int32Array;
}

export class MoekitWasm implements GemmEngine {
  private constructor(readonly rt: WasmRuntime, readonly threads: number, readonly note?: string) {}

  static async create(threads: number): Promise<MoekitWasm> {
    const rt = await WasmRuntime.create({ threads });
    return new MoekitWasm(rt, rt.threads, rt.relaxed ? 'relaxed-simd build' : 'plain simd128 build');
  }

  private upload(data: Float32Array | Int32Array): number {
    const ptr = this.rt.alloc(data.byteLength);
    if (data instanceof Float32Array) this.rt.f32(ptr, data.length).set(data);
    else this.rt.i32(ptr, data.length).set(data);
    return ptr;
  }

  prepareGemm(p: GemmProblem): Promise<Prepared> {
    const { rt } = this;
    const a = this.upload(p.a), b = this.upload(p.b), c = rt.alloc(p.M * p.N * 4);
    const params = {
      a, b, c, bias: 0, M: p.M, N: p.N, K: p.K, transA: false, transB: false, accumulate: false,
      batch: 1, strideA: 0, strideB: 0, strideC: 0,
    };
    const run = (): void => matmul(rt, params);
    return Promise.resolve({
      run,
      output: () => { rt.f32(c, p.M * p.N).fill(NaN); run(); return rt.f32(c, p.M * p.N).slice(); },
      dispose: () => { rt.free(a); rt.free(b); rt.free(c); },
    });
  }

  /** y (T, N) = per-expert x_e · W_e with moekit's groupedMatmul kernel. */
  prepareGrouped(g: GroupedProblem): Prepared {
    const { rt } = this;
    const x = this.upload(g.x), w = this.upload(g.w), offsets = this.upload(g.offsets), y = rt.alloc(g.T * g.N * 4);
    const params = { x, w, y, offsets, E: g.E, K: g.K, N: g.N, transW: false };
    const run = (): void => groupedMatmul(rt, params);
    return {
      run,
      output: () => { rt.f32(y, g.T * g.N).fill(NaN); run(); return rt.f32(y, g.T * g.N).slice(); },
      dispose: () => { rt.free(x); rt.free(w); rt.free(offsets); rt.free(y); },
    };
  }

  close(): Promise<void> {
    this.rt.dispose();
    return Promise.resolve();
  }
}

/** The js backend (plain TypeScript, float64 accumulation): single-threaded by design. */
export class MoekitJs implements GemmEngine {
  readonly threads = 1;
  readonly note = 'js reference backend: single-threaded by design';
  private readonly be = new JsBackend();

  prepareGemm(p: GemmProblem): Promise<Prepared> {
    const { be } = this;
    const a = be.allocate('f32', p.a.length), b = be.allocate('f32', p.b.length);
    be.write(a, p.a);
    be.write(b, p.b);
    const inputs = [{ id: a, shape: [p.M, p.K], dtype: 'f32' as const }, { id: b, shape: [p.K, p.N], dtype: 'f32' as const }];
    const outputs = [{ shape: [p.M, p.N], dtype: 'f32' as const }];
    const once = (): number => be.run(Op.Matmul, inputs, { transA: false, transB: false }, outputs)[0]!;
    return Promise.resolve({
      run: () => { be.free(once()); },
      output: () => {
        const id = once();
        const data = be.readSync(id);
        be.free(id);
        if (!(data instanceof Float32Array)) throw new Error('js backend returned non-f32 data');
        return data;
      },
      dispose: () => { be.free(a); be.free(b); },
    });
  }

  close(): Promise<void> {
    return this.be.dispose();
  }
}
