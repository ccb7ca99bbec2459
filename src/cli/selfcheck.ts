// moekit selfcheck: which backends run here, hot ops on wasm against the js oracle, and a quick GEMM rate.
import os from 'node:os';
import { JsBackend } from '../backend/js/index.js';
import { WasmBackend } from '../backend/wasm/index.js';
import * as T from '../tensor/api.js';
import { envThreads, tidy, useBackend } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

export interface SelfcheckResult {
  machine: { cpu: string; cores: number; node: string };
  wasm: { threads: number; pool: 'chunked' | 'static'; relaxedSimd: boolean };
  ops: { op: string; maxRelDiff: number; ok: boolean }[];
  gemm: { engine: string; shape: [number, number, number]; threads: number; gflops: number }[];
}

type Build = () => Tensor;

/** Representative ops, each built from the same random data on any backend. */
function probes(): [string, Build][] {
  const r = (shape: number[], seed: number): number[] => {
    const g = new Rng(seed);
    return Array.from({ length: shape.reduce((a, c) => a * c, 1) }, () => g.normal());
  };
  const t = (shape: number[], seed: number): Tensor => T.tensor(r(shape, seed), shape);
  const off = [0, 40, 40, 97, 150, 200];
  return [
    ['matmul 129x257x65', () => T.matmul(t([129, 257], 1), t([257, 65], 2))],
    ['matmul transB + bias', () => T.matmul(t([17, 64], 3), t([33, 64], 4), { transB: true, bias: t([33], 5) })],
    ['grouped_matmul (empty group)', () => T.groupedMatmul(t([200, 48], 6), t([5, 48, 40], 7), T.tensor(off, [6], 'i32'))],
    ['quant_matmul int4', () => {
      const q = T.quantize(t([40, 64], 8), 'int4', 32);
      return T.quantMatmul(t([9, 64], 9), q.data, q.scales, 'int4', 32);
    }],
    ['attention causal GQA', () => T.attention(t([2, 17, 4, 16], 10), t([2, 17, 2, 16], 11), t([2, 17, 2, 16], 12))],
    ['softmax', () => T.softmax(t([33, 129], 13))],
    ['rms_norm', () => T.rmsNorm(t([33, 96], 14), t([96], 15))],
    ['cross_entropy', () => T.crossEntropy(t([31, 50], 16), T.tensor(Array.from({ length: 31 }, (_, i) => (i * 7) % 50), [31], 'i32'))],
  ];
}

function gflops(M: number, K: number, N: number, minSeconds: number): number {
  const rng = new Rng(0);
  return tidy(() => {
    const a = T.randn([M, K], rng);
    const b = T.randn([K, N], rng);
    tidy(() => T.matmul(a, b)); // warm-up
    let calls = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < minSeconds * 1000) {
      tidy(() => T.matmul(a, b));
      calls++;
      elapsed = performance.now() - start;
    }
    return (2 * M * K * N * calls) / (elapsed / 1000) / 1e9;
  });
}

export async function selfcheck(opts: { seconds?: number } = {}): Promise<SelfcheckResult> {
  const seconds = opts.seconds ?? 0.5;
  const js = new JsBackend();
  const wasm = await WasmBackend.create(envThreads()); // MOEKIT_THREADS, else every core
  const ops: SelfcheckResult['ops'] = [];
  for (const [name, build] of probes()) {
    useBackend(js);
    const want = tidy(() => build().dataSync());
    useBackend(wasm);
    const got = tidy(() => build().dataSync());
    let scale = 1;
    for (const v of want) scale = Math.max(scale, Math.abs(v));
    let diff = 0;
    for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i]! - want[i]!) / scale);
    ops.push({ op: name, maxRelDiff: diff, ok: diff <= 1e-5 });
  }
  const gemm: SelfcheckResult['gemm'] = [];
  const shape: [number, number, number] = [512, 512, 1024];
  const single = await WasmBackend.create({ threads: 1 });
  for (const [engine, b, threads] of [['moekit-wasm', single, 1], ['moekit-wasm', wasm, wasm.threads], ['moekit-js', js, 1]] as const) {
    useBackend(b);
    gemm.push({ engine, shape, threads, gflops: gflops(...shape, engine === 'moekit-js' ? Math.min(seconds, 0.3) : seconds) });
  }
  const result: SelfcheckResult = {
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), node: process.version },
    wasm: { threads: wasm.threads, pool: wasm.pool, relaxedSimd: wasm.relaxedSimd },
    ops,
    gemm,
  };
  await single.dispose();
  await wasm.dispose();
  return result;
}
