// GPU benchmark of the webgpu backend, for a machine with a GPU (../shared/device: an H100 with Dawn on NVIDIA's
// Vulkan driver). Prints one JSON line per measurement; bench/gpu_reference.py measures PyTorch on the same shapes
// in the same command, and `--compare FILE` renders both as one table.
//   fp32 GEMM at n³ (TFLOP/s), the MoE block forward at H=2048, I=768, E=128, K=8 for several T (µs per call, the
//   inference path: router matmul + routeTopK + moeFfn), and training tokens/s of the `base` preset.
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { MoEBlock, PRESETS, Rng, WebGpuBackend, keep, matmul, noGrad, parseConfig, randn, tidy, useBackend } from '../src/index.js';
import { train } from '../src/train/loop.js';
import { fmt, median, renderTable } from './common.js';

interface Opts { gemm: string; moeTokens: string; trainSteps: number; reps: number; quick?: boolean; compare?: string }
interface Row { bench: 'gpu'; engine: 'moekit-webgpu' | 'pytorch'; what: 'gemm' | 'moe-block' | 'train'; size: number; value: number; unit: string; adapter?: string }

const list = (s: string): number[] => s.split(',').map((x) => Number(x.trim())).filter((x) => Number.isInteger(x) && x > 0);

/** Median wall time of `reps` calls of f, each finished on the device (flush) before the clock stops. */
async function timeGpu(gpu: WebGpuBackend, f: () => void, reps: number): Promise<number> {
  f();
  await gpu.flush(); // warm-up: pipelines compiled, buffers pooled
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    await gpu.flush();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

async function main(): Promise<void> {
  const o = new Command()
    .name('bench:gpu')
    .description('webgpu backend on a GPU: fp32 GEMM, MoE block forward, training tokens/s (JSON lines)')
    .option('--gemm <list>', 'GEMM sizes n (n×n×n)', '1024,4096,8192')
    .option('--moe-tokens <list>', 'tokens per MoE block call', '1,32,512,4096')
    .option('--train-steps <n>', 'training steps of the base preset (0 = skip)', Number, 10)
    .option('--reps <n>', 'timed calls per measurement', Number, 10)
    .option('--quick', 'small shapes (a smoke run on a software adapter)')
    .option('--compare <file>', 'render a table from JSON lines of this script and gpu_reference.py, then exit')
    .parse()
    .opts<Opts>();
  if (o.compare) return compare(o.compare);
  const gpu = await WebGpuBackend.create();
  useBackend(gpu);
  const emit = (r: Omit<Row, 'bench' | 'engine' | 'adapter'>): void => console.log(JSON.stringify({ bench: 'gpu', engine: 'moekit-webgpu', adapter: gpu.adapterInfo, ...r }));
  const rng = new Rng(1);
  for (const n of o.quick ? [128] : list(o.gemm)) {
    const a = keep(randn([n, n], rng));
    const b = keep(randn([n, n], rng));
    const ms = await timeGpu(gpu, () => tidy(() => { matmul(a, b); }), o.reps);
    emit({ what: 'gemm', size: n, value: (2 * n ** 3) / (ms * 1e9), unit: 'TFLOP/s' });
    a.dispose();
    b.dispose();
  }
  const shape = o.quick ? { hidden: 64, experts: 8, topK: 2, expertWidth: 32 } : { hidden: 2048, experts: 128, topK: 8, expertWidth: 768 };
  const block = new MoEBlock({ ...shape, renormalize: true }, rng);
  for (const T of o.quick ? [1, 32] : list(o.moeTokens)) {
    const x = keep(noGrad(() => randn([T, shape.hidden], rng)));
    const ms = await timeGpu(gpu, () => noGrad(() => tidy(() => { block.infer(x); })), o.reps);
    emit({ what: 'moe-block', size: T, value: ms * 1000, unit: 'µs' });
    x.dispose();
  }
  if (o.trainSteps > 0) {
    const cfg = parseConfig(o.quick ? PRESETS.tiny : PRESETS.base);
    const seqLen = Math.min(o.quick ? 32 : 512, cfg.maxSeqLen);
    const batch = o.quick ? 2 : 8;
    const tokens = Int32Array.from({ length: batch * seqLen * (o.trainSteps + 4) }, (_, i) => (i * 7919) % cfg.vocabSize);
    const r = await train({ config: cfg, tokens, steps: o.trainSteps, batch, seqLen, out: null });
    const steady = r.metrics.slice(Math.min(2, r.metrics.length - 1)); // the first steps compile pipelines
    emit({ what: 'train', size: batch * seqLen, value: median(steady.map((m) => m.tokens_per_s)), unit: 'tok/s' });
    r.model.dispose();
  }
  await gpu.dispose();
}

/** One table from this script's rows and gpu_reference.py's (same `what`/`size` keys). */
function compare(file: string): void {
  const rows = readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Row).filter((r) => r.bench === 'gpu');
  const keys = [...new Set(rows.map((r) => `${r.what}|${r.size}`))];
  const cell = (r: Row | undefined): string => (r ? `${fmt(r.value, r.unit === 'µs' ? 0 : 2)} ${r.unit}` : '—');
  const table = keys.map((k) => {
    const [what, size] = k.split('|') as [string, string];
    const m = rows.find((r) => r.engine === 'moekit-webgpu' && `${r.what}|${r.size}` === k);
    const t = rows.find((r) => r.engine === 'pytorch' && `${r.what}|${r.size}` === k);
    const ratio = m && t ? (m.unit === 'µs' ? t.value / m.value : m.value / t.value) : null;
    return [what, size, cell(m), cell(t), ratio === null ? '—' : `${fmt(ratio, 2)}×`];
  });
  console.log(renderTable(['what', 'size', 'moekit webgpu', 'PyTorch', 'moekit / PyTorch (speed)'], table));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
