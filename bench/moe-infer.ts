// Inference time of one MoE layer's FFN: the composed training ops vs the fused inference kernels (routeTopK +
// moeFfn / clusteredFfn), for the standard block and the clustered block, next to the FLOP-matched dense SwiGLU.
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import {
  ClusteredMoEBlock, MoEBlock, SwiGLU, Rng, WasmBackend, clusteredExperts, experts, f32Matmuls, indicesAndBins, keep, matmul,
  noGrad, offsetsTensor, permute, randn, route, setBackend, tidy, twoStageRoute, unpermute, type Tensor,
} from '../src/index.js';
import { fmt, machineHeader, parseThreads, progress, renderTable, timeInterleaved } from './common.js';
import { startLoadProbe } from './engines/load.js';

const SHAPES = {
  small: { H: 128, I: 128, E: 16, K: 2, G: 2, r: 4 }, // bench paper --preset small
  base: { H: 512, I: 256, E: 32, K: 2, G: 4, r: 16 }, // bench paper --preset base
} as const;
type Shape = keyof typeof SHAPES;
const MODELS = ['moe composed', 'moe fused', 'clustered composed', 'clustered fused', 'clustered fused FP16/INT4', 'dense'] as const;
type Model = (typeof MODELS)[number];

interface Opts { shape: string; tokens: string; minTime: number; threads: string; json?: boolean; out?: string }
interface Row { bench: 'moe-infer'; shape: Shape; tokens: number; model: Model; threads: number; us: number; tokPerS: number; reps: number; other: number }

async function main(): Promise<void> {
  const opts = new Command()
    .name('bench:moe-infer')
    .description('one MoE FFN layer at inference: composed training ops vs fused kernels, µs per call (median)')
    .option('--shape <name>', `layer shape: ${Object.keys(SHAPES).join(' | ')}`, 'small')
    .option('--tokens <list>', 'token counts T (1 = one decode step)', '1,4,32,128,512')
    .option('--min-time <s>', 'seconds of timed calls per model and T', Number, 1)
    .option('--threads <n>', 'wasm threads', '2')
    .option('--json', 'print one JSON object per line instead of a table')
    .option('--out <file>', 'also write the JSON lines to this file')
    .parse()
    .opts<Opts>();
  if (!(opts.shape in SHAPES)) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}, got "${opts.shape}"`);
  const shape = opts.shape as Shape;
  const { H, I, E, K, G, r } = SHAPES[shape];
  const tokens = parseThreads(opts.tokens);
  const [threads] = parseThreads(opts.threads);
  if (!(opts.minTime > 0)) throw new Error('--min-time must be positive');
  const backend = await WasmBackend.create({ threads: threads! });
  await setBackend(backend);
  const rng = new Rng(7);
  const moe = new MoEBlock({ hidden: H, experts: E, topK: K, expertWidth: I }, rng);
  const cl = new ClusteredMoEBlock({ hidden: H, experts: E, topK: K, expertWidth: I, groups: G, rank: r }, rng);
  const dense = new SwiGLU(H, K * I, rng);
  if (!opts.json) {
    console.log([
      `One FFN layer at inference (noGrad), µs per call (median), wasm backend, ${backend.threads} thread(s); shape "${shape}": H=${H}, E=${E}, top-${K}, I=${I}; clustered G=${G}, r=${r}, k_g=1`,
      'composed: the training ops without the tape (router matmul, softmax/top-k, host binning, gathers, grouped matmuls, scatter-add);',
      'fused: router matmul + routeTopK + moeFfn / clusteredFfn (token-at-a-time GEMVs up to 16 routed slots, grouped GEMMs above);',
      'clustered fused FP16/INT4: the same kernel on the inference form (f16 bases widened in the kernel, INT4 factors dequantised once);',
      `dense: SwiGLU of width K·I = ${K * I} (the same expert FLOPs per token as the standard block). Models interleaved call by call.`,
      ...machineHeader(),
    ].join('\n'));
  }
  const wm = moe.weights;
  const wc = cl.weights;
  const mm = f32Matmuls(wc.experts);
  const q = cl.f32Experts().toQuantized({ format: 'int4' });
  const fp16 = q.toFused(); // FP16 bases, INT4 factors
  q.dispose();
  const f32 = cl.f32Experts();
  const rows: Row[] = [];
  if (opts.out) writeFileSync(opts.out, '');
  for (const T of tokens) {
    const x = keep(noGrad(() => randn([T, H], rng)));
    const calls: Record<Model, () => void> = {
      'moe composed': () => noGrad(() => tidy(() => {
        const rt = route(matmul(x, wm.router, { transB: true }), { kind: 'softmax-topk', K, renormalize: true });
        const bins = indicesAndBins(rt.experts, E);
        unpermute(experts(permute(x, bins), offsetsTensor(bins), wm.experts), bins, rt.weights, T).dataSync();
      })),
      'moe fused': () => noGrad(() => tidy(() => { moe.infer(x).y.dataSync(); })),
      'clustered composed': () => noGrad(() => tidy(() => {
        const rt = twoStageRoute(matmul(x, wc.router, { transB: true }), null, { groups: G, K, groupTopK: 1, renormalize: true });
        clusteredExperts(x, rt.experts, rt.weights, wc.experts, { matmuls: mm }).y.dataSync();
      })),
      'clustered fused': () => noGrad(() => tidy(() => { cl.infer(x).y.dataSync(); })),
      'clustered fused FP16/INT4': () => noGrad(() => tidy(() => {
        cl.setExperts(fp16);
        try {
          cl.infer(x).y.dataSync();
        } finally {
          cl.setExperts(f32);
        }
      })),
      dense: () => noGrad(() => tidy(() => { dense.forward(x).dataSync(); })),
    };
    if (!opts.json) progress(`T=${T}...`);
    const probe = startLoadProbe();
    const res = timeInterleaved(MODELS.map((m) => calls[m]), opts.minTime);
    const other = +probe().toFixed(2);
    MODELS.forEach((model, i) => {
      const { ms, reps } = res[i]!;
      const row: Row = { bench: 'moe-infer', shape, tokens: T, model, threads: backend.threads, us: +(ms * 1000).toFixed(1), tokPerS: Math.round((1000 * T) / ms), reps, other };
      rows.push(row);
      if (opts.json) console.log(JSON.stringify(row));
      if (opts.out) writeFileSync(opts.out, JSON.stringify(row) + '\n', { flag: 'a' });
    });
    (x as Tensor).dispose();
  }
  if (opts.json) return;
  progress('');
  const at = (T: number, m: Model): Row => rows.find((x) => x.tokens === T && x.model === m)!;
  const table = tokens.map((T) => {
    const base = at(T, 'moe composed').us;
    const c = (m: Model): string => `${fmt(at(T, m).us)} (${fmt(base / at(T, m).us, 2)}×)`;
    return [String(T), ...MODELS.map(c), fmt(at(T, 'moe fused').us / at(T, 'clustered fused').us, 2) + '×', fmt(at(T, 'moe composed').other, 2)];
  });
  console.log(renderTable(['T', ...MODELS.map((m) => `${m} µs (speed-up)`), 'clustered vs moe, fused', 'other load'], table));
  console.log('speed-up: moe composed time / this time; "other load": CPU cores other processes kept busy meanwhile.');
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
