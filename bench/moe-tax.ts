// The "MoE tax": wall time of one MoE block vs its FLOP-matched dense SwiGLU FFN, forward and forward+backward.
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import {
  backward, groupedMatmul, indicesAndBins, matmul, MoEBlock, mul, noGrad, offsetsTensor, permute, randn, Rng, route, setBackend, gather, reshape, scatterAdd, tensor,
  silu, sum, SwiGLU, tidy, variable, keep, WasmBackend, zeroGrad, add, type Tensor,
} from '../src/index.js';
import { fmt, machineHeader, parseThreads, progress, renderTable, timeInterleaved } from './common.js';
import { startLoadProbe, waitIdle } from './engines/load.js';

const H = 512, E = 8, K = 2, I = 512;
const DENSE_I = K * I;
type Model = 'moe' | 'dense';
type Pass = 'fwd' | 'fwd+bwd';
const MODELS: Model[] = ['dense', 'moe'];
const PASSES: Pass[] = ['fwd', 'fwd+bwd'];

interface Opts { tokens: string; minTime: number; threads: string; json?: boolean; out?: string; waitIdle: number; breakdown: boolean }

interface Row { bench: 'moe-tax'; tokens: number; model: Model; pass: Pass; threads: number; ms: number; tokPerS: number; reps: number; other: number }

/** The stages of `moe()` (src/moe/block.ts) for softmax-topk, dropless, no shared expert, timed one by one (forward only). */
const STAGES = ['router', 'bins (host)', 'permute', 'experts (grouped mm)', 'unpermute: weight', 'unpermute: scatter-add', 'aux loss'] as const;
function stagedForward(block: MoEBlock, x: Tensor, acc: number[]): void {
  const w = block.weights;
  let t = performance.now();
  const lap = (i: number): void => {
    const now = performance.now();
    acc[i]! += now - t;
    t = now;
  };
  noGrad(() => tidy(() => {
    const logits = matmul(x, w.router, { transB: true });
    const r = route(logits, { kind: 'softmax-topk', K, renormalize: true, groups: 1, topGroups: 1, routedScale: 1 });
    lap(0);
    const bins = indicesAndBins(r.experts, E);
    const offsets = offsetsTensor(bins);
    lap(1);
    const xs = permute(x, bins);
    lap(2);
    const g = groupedMatmul(xs, w.experts.gate, offsets);
    const u = groupedMatmul(xs, w.experts.up, offsets);
    const ys = groupedMatmul(mul(silu(g), u), w.experts.down, offsets);
    lap(3);
    // unpermute (src/moe/dispatch.ts), in its two steps: scale each row by its routing weight, scatter-add to tokens
    const N = bins.order.length;
    const scaled = mul(ys, gather(reshape(r.weights, [r.weights.size, 1]), tensor(bins.order, [N], 'i32')));
    lap(4);
    scatterAdd(scaled, tensor(bins.tokens, [N], 'i32'), x.shape[0]!);
    lap(5);
    add(mul(r.aux.switch, 1e-2), mul(r.aux.z, 1e-3));
    lap(6);
  }));
}

/** Op categories of the per-op profile of one fwd+bwd call. */
const CATS = ['matmul', 'grouped mm', 'row-bcast mul + row sum', 'gather/scatter (js)', 'other ops', 'host glue'] as const;
const HOST = CATS.length - 1;
function category(op: string, inShapes: string[], outRank: number): number {
  if (op === 'matmul') return 0;
  if (op.startsWith('grouped_matmul')) return 1; // forward/dX and the weight gradient
  // the routing-weight scaling of unpermute, (N, H) · (N, 1), and its backward reduction (N, H) -> (N)
  if (op === 'mul' && inShapes.length === 2 && inShapes[0] !== inShapes[1]) return 2;
  if (op === 'sum' && outRank === 1) return 2;
  if (op === 'gather' || op === 'scatter_add' || op === 'take_along' || op === 'scatter_along') return 3;
  return 4;
}

/**
 * Wraps backend.run to add each op's time to its category while `on` is set. Host glue = wall time minus the ops:
 * autograd bookkeeping, tidy, tensor creation, host binning. Adds a few µs per op, so it runs after the timed calls.
 */
function installProfiler(backend: WasmBackend): { acc: number[]; on: boolean } {
  const prof = { acc: CATS.map(() => 0), on: false };
  const orig = backend.run.bind(backend);
  (backend as { run: WasmBackend['run'] }).run = ((op, inputs, params, outputs) => {
    if (!prof.on) return orig(op, inputs, params, outputs);
    const t0 = performance.now();
    const ids = orig(op, inputs, params, outputs);
    const shapes = inputs.map((x) => ('shape' in x ? (x.shape as readonly number[]).join('x') : ''));
    prof.acc[category(op, shapes, outputs[0]?.shape.length ?? 0)]! += performance.now() - t0;
    return ids;
  }) as WasmBackend['run'];
  return prof;
}

async function main(): Promise<void> {
  const opts = new Command()
    .name('bench:moe-tax')
    .description(`MoE tax: MoE block (H=${H}, E=${E}, top-${K}, I=${I}) vs FLOP-matched dense SwiGLU (width ${DENSE_I}), ms per call`)
    .option('--tokens <list>', 'token counts T', '64,512,2048')
    .option('--min-time <s>', 'seconds of timed calls per measurement', Number, 1)
    .option('--threads <n>', 'wasm threads', '2')
    .option('--json', 'print one JSON object per line (per T, model, pass) instead of a table')
    .option('--out <file>', 'also write the JSON lines to this file')
    .option('--wait-idle <s>', 'before each T, wait up to s seconds for other processes to leave the CPUs idle', Number, 0)
    .option('--no-breakdown', 'skip the per-stage timing of the MoE forward')
    .parse()
    .opts<Opts>();
  const tokens = parseThreads(opts.tokens); // positive integers
  const [threads] = parseThreads(opts.threads);
  if (!(opts.minTime > 0)) throw new Error('--min-time must be positive');
  const backend = await WasmBackend.create({ threads: threads! });
  await setBackend(backend);
  const prof = installProfiler(backend);

  const rng = new Rng(1234);
  const moeBlock = new MoEBlock({ hidden: H, experts: E, topK: K, expertWidth: I, router: 'softmax-topk' }, rng);
  const dense = new SwiGLU(H, DENSE_I, rng);
  const params = { moe: moeBlock.parameters().map(([, p]) => p), dense: dense.parameters().map(([, p]) => p) };
  const moeParams = params.moe.reduce((s, p) => s + p.size, 0);
  const denseParams = params.dense.reduce((s, p) => s + p.size, 0);

  if (!opts.json) {
    console.log([
      `MoE tax: one MoE block vs the FLOP-matched dense SwiGLU FFN, ms per call (median), wasm backend, ${backend.threads} thread(s)`,
      `moe: MoEBlock H=${H}, E=${E}, top-${K}, expert width I=${I}, softmax-topk router, dropless (${(moeParams / 1e6).toFixed(2)} M params): ` +
        'router matmul + softmax/top-k, host binning, permute, 3 grouped matmuls, unpermute, Switch + z aux losses',
      `dense: SwiGLU H=${H}, width K·I=${DENSE_I} (${(denseParams / 1e6).toFixed(2)} M params): the same expert FLOPs per token`,
      'fwd: forward under noGrad (inference: the experts run as the fused moeFfn kernel, the aux losses are still computed); fwd+bwd: forward with the tape, loss = sum(y·r) (+ aux loss for moe), backward to every',
      'parameter and to x, then zeroGrad; every call inside tidy. Models interleaved call by call per (T, pass).',
      ...machineHeader(),
    ].join('\n'));
  }
  if (opts.out) writeFileSync(opts.out, '');
  const rows: Row[] = [];
  const stageRows: { tokens: number; ms: number[]; total: number }[] = [];
  const opProfiles: { tokens: number; model: Model; wall: number; ms: number[] }[] = [];
  for (const T of tokens) {
    if (opts.waitIdle > 0) await waitIdle(opts.waitIdle);
    const x = variable(noGrad(() => randn([T, H], rng)));
    const r = keep(noGrad(() => randn([T, H], rng)));
    const calls: Record<Pass, Record<Model, () => void>> = {
      fwd: {
        moe: () => noGrad(() => tidy(() => { moeBlock.forward(x).aux.loss.item(); })),
        dense: () => noGrad(() => tidy(() => { dense.forward(x).dataSync(); })),
      },
      'fwd+bwd': {
        moe: () => {
          tidy(() => {
            const out = moeBlock.forward(x);
            backward(add(sum(mul(out.y, r)), out.aux.loss));
          });
          params.moe[0]!.grad!.dataSync();
          zeroGrad([...params.moe, x]);
        },
        dense: () => {
          tidy(() => backward(sum(mul(dense.forward(x), r))));
          params.dense[0]!.grad!.dataSync();
          zeroGrad([...params.dense, x]);
        },
      },
    };
    for (const pass of PASSES) {
      if (!opts.json) progress(`T=${T}, ${pass}...`);
      const probe = startLoadProbe();
      const res = timeInterleaved(MODELS.map((m) => calls[pass][m]), opts.minTime);
      const other = +probe().toFixed(2);
      MODELS.forEach((model, i) => {
        const { ms, reps } = res[i]!;
        const row: Row = { bench: 'moe-tax', tokens: T, model, pass, threads: backend.threads, ms: +ms.toFixed(3), tokPerS: Math.round((1000 * T) / ms), reps, other };
        rows.push(row);
        if (opts.json) console.log(JSON.stringify(row));
        if (opts.out) writeFileSync(opts.out, JSON.stringify(row) + '\n', { flag: 'a' });
      });
    }
    if (opts.breakdown) {
      const acc = STAGES.map(() => 0);
      let n = 0;
      stagedForward(moeBlock, x, acc.map(() => 0)); // warm-up
      const t0 = performance.now();
      while (n < 3 || performance.now() - t0 < 1000 * opts.minTime) {
        stagedForward(moeBlock, x, acc);
        n++;
      }
      const ms = acc.map((a) => a / n);
      stageRows.push({ tokens: T, ms, total: ms.reduce((a, b) => a + b, 0) });
      const line = { bench: 'moe-tax-stages', tokens: T, threads: backend.threads, reps: n, ...Object.fromEntries(STAGES.map((s, i) => [s, +ms[i]!.toFixed(3)])) };
      if (opts.json) console.log(JSON.stringify(line));
      if (opts.out) writeFileSync(opts.out, JSON.stringify(line) + '\n', { flag: 'a' });
    }
    if (opts.breakdown) {
      for (const model of MODELS) {
        const f = calls['fwd+bwd'][model];
        f(); // warm-up
        prof.acc.fill(0);
        let n = 0;
        const t0 = performance.now();
        prof.on = true;
        while (n < 3 || performance.now() - t0 < 500 * opts.minTime) {
          f();
          n++;
        }
        prof.on = false;
        const wall = (performance.now() - t0) / n;
        const ms = prof.acc.map((a) => a / n);
        ms[HOST] = Math.max(0, wall - ms.reduce((a, b) => a + b, 0));
        opProfiles.push({ tokens: T, model, wall, ms });
        const line = { bench: 'moe-tax-ops', tokens: T, model, pass: 'fwd+bwd', threads: backend.threads, reps: n, wall: +wall.toFixed(3), ...Object.fromEntries(CATS.map((c, i) => [c, +ms[i]!.toFixed(3)])) };
        if (opts.json) console.log(JSON.stringify(line));
        if (opts.out) writeFileSync(opts.out, JSON.stringify(line) + '\n', { flag: 'a' });
      }
    }
    zeroGrad([x]);
    x.dispose();
    r.dispose();
  }

  if (!opts.json) {
    const get = (T: number, m: Model, p: Pass): Row => rows.find((r) => r.tokens === T && r.model === m && r.pass === p)!;
    const star = (r: Row): string => (r.other >= 0.5 ? '*' : '');
    const body = tokens.flatMap((T) => PASSES.map((p) => {
      const d = get(T, 'dense', p), m = get(T, 'moe', p);
      return [String(T), p, `${fmt(d.ms, 2)}${star(d)}`, `${fmt(m.ms, 2)}${star(m)}`, `${(m.ms / d.ms).toFixed(2)}×`,
        String(d.tokPerS), String(m.tokPerS)];
    }));
    const out = ['', renderTable(['T', 'pass', 'dense ms', 'moe ms', 'MoE tax', 'dense tok/s', 'moe tok/s'], body)];
    if (rows.some((r) => r.other >= 0.5)) out.push('', '* measured while other processes kept ≥ 0.5 core busy on average (shared 2-core machine)');
    if (stageRows.length) {
      out.push('', 'Where the MoE forward goes (ms per call, mean of separately timed stages, noGrad):', '');
      out.push(renderTable(['T', ...STAGES, 'sum', 'dense fwd'], stageRows.map((s) => [
        String(s.tokens), ...s.ms.map((v) => `${v.toFixed(2)} (${((100 * v) / s.total).toFixed(0)}%)`), s.total.toFixed(2),
        fmt(get(s.tokens, 'dense', 'fwd').ms, 2),
      ])));
    }
    if (opProfiles.length) {
      out.push('', 'Where fwd+bwd goes, per op category (ms per call, mean; the backend\'s run() timed per op, separately from the table above):', '');
      out.push(renderTable(['T', 'model', ...CATS, 'wall'], opProfiles.map((p) => [
        String(p.tokens), p.model, ...p.ms.map((v) => `${v.toFixed(1)} (${((100 * v) / p.wall).toFixed(0)}%)`), p.wall.toFixed(1),
      ])));
    }
    console.log(out.join('\n'));
  }
  await backend.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : String(e));
  process.exit(1);
}).then(() => process.exit(0));
