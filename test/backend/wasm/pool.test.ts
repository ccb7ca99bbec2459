// The chunked worker pool: the same bits whatever the thread count or pool, and no stall on a descheduled worker.
import { afterAll, describe, expect, it } from 'vitest';
import * as mk from '../../../src/index.js';
import { WasmRuntime } from '../../../src/backend/wasm/runtime.js';
import * as K from '../../../src/backend/wasm/kernels.js';
import { train } from '../../../src/train/loop.js';

const backends: mk.WasmBackend[] = [];
afterAll(async () => {
  for (const b of backends) await b.dispose();
});

/** A learnable token stream (a repeated pseudo-random motif). */
function stream(vocab: number): Int32Array {
  const rng = new mk.Rng(11);
  const motif = Array.from({ length: 89 }, () => rng.int(vocab));
  return Int32Array.from({ length: 6000 }, (_, i) => motif[i % motif.length]!);
}

/** Trains a few steps on `backend`; returns every parameter's bits, the losses and the inference logits' bits. */
async function run(backend: mk.WasmBackend, cfg: mk.ModelConfig): Promise<{ params: Map<string, Uint32Array>; losses: number[]; logits: Uint32Array }> {
  mk.useBackend(backend);
  const r = await train({ config: cfg, tokens: stream(cfg.vocabSize), steps: 4, batch: 8, seqLen: 64, lr: 1e-2, seed: 2, out: null });
  const params = new Map<string, Uint32Array>();
  for (const [n, p] of r.model.parameters()) params.set(n, new Uint32Array(Float32Array.from(p.dataSync()).buffer));
  const ids = mk.tensor(stream(cfg.vocabSize).slice(0, 128), [2, 64], 'i32');
  // the fused inference kernels (routeTopK, moeFfn / clusteredFfn) on a prefill-sized batch
  const logits = mk.noGrad(() => mk.tidy(() => Float32Array.from(r.model.forward(ids, { aux: false }).logits.dataSync())));
  r.model.dispose();
  return { params, losses: r.metrics.map((m) => m.loss), logits: new Uint32Array(logits.buffer) };
}

function expectSameBits(a: Awaited<ReturnType<typeof run>>, b: Awaited<ReturnType<typeof run>>, what: string): void {
  expect(b.losses, what).toEqual(a.losses);
  let differing = 0;
  for (const [n, bits] of a.params) {
    const other = b.params.get(n)!;
    for (let i = 0; i < bits.length; i++) if (bits[i] !== other[i]) differing++;
  }
  expect(differing, `${what}: parameter values that differ in any bit`).toBe(0);
  expect(b.logits.every((v, i) => v === a.logits[i]), `${what}: inference logits`).toBe(true);
}

describe('chunked worker pool', () => {
  const configs: [string, mk.ModelConfig][] = [
    ['moe', mk.parseConfig({ ...mk.PRESETS.tiny, experts: 8, topK: 2 })],
    ['clustered', mk.parseConfig({ ...mk.PRESETS.tiny, experts: 8, topK: 2, ffn: 'clustered', clusterGroups: 2, clusterRank: 4, clusterEvery: 2, clusterWarmup: 2 })],
  ];
  for (const [name, cfg] of configs) {
    it(`${name}: training with 1, 2 and 3 threads (chunked) and 2 threads (static pool) gives bit-identical weights and logits`, async () => {
      const make = async (threads: number, pool: 'chunked' | 'static'): Promise<mk.WasmBackend> => {
        const b = await mk.WasmBackend.create({ threads, pool });
        backends.push(b);
        return b;
      };
      const one = await run(await make(1, 'chunked'), cfg);
      for (const [threads, pool] of [[2, 'chunked'], [3, 'chunked'], [2, 'static']] as const) {
        expectSameBits(one, await run(await make(threads, pool), cfg), `${threads} threads, ${pool} pool vs 1 thread`);
      }
    });
  }

  it('finishes ops without a descheduled worker (chunked), while the static pool waits for it', async () => {
    const M = 96, N = 256, Kd = 128;
    const timeOps = async (pool: 'chunked' | 'static', n: number): Promise<number> => {
      const rt = await WasmRuntime.create({ threads: 2, pool });
      try {
        const a = rt.alloc(M * Kd * 4), b = rt.alloc(Kd * N * 4), c = rt.alloc(M * N * 4);
        rt.f32(a, M * Kd).fill(1);
        rt.f32(b, Kd * N).fill(0.5);
        K.matmul(rt, { a, b, c, M, N, K: Kd }); // the worker is up and spinning
        rt.stallWorkers(400);
        const t0 = performance.now();
        for (let i = 0; i < n; i++) {
          rt.f32(c, M * N).fill(-1);
          K.matmul(rt, { a, b, c, M, N, K: Kd, chunks: 8 });
          if (rt.f32(c, M * N).some((v) => v !== 64)) throw new Error(`${pool}: op ${i} computed a wrong product`);
        }
        return performance.now() - t0;
      } finally {
        rt.dispose();
      }
    };
    // 20 ops of a few µs each: the chunked pool does them on the main thread while the worker sleeps
    expect(await timeOps('chunked', 20)).toBeLessThan(300);
    // the static pool cannot finish its first op until the stalled worker wakes
    expect(await timeOps('static', 1)).toBeGreaterThanOrEqual(300);
  });

  it('rejects a bad pool name and chunk count', async () => {
    await expect(WasmRuntime.create({ threads: 1, pool: 'dynamic' as 'static' })).rejects.toThrow(/pool must be "chunked" or "static", got "dynamic"/);
    const rt = await WasmRuntime.create({ threads: 1 });
    expect(() => rt.parallel('nn_sum_rows', [0, 0, 0, 0], 0)).toThrow(/nchunks must be in \[1, 1023\], got 0/);
    rt.dispose();
  });
});
