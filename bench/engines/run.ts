// Child-process entry: starts one engine at one thread count, checks and times its problems, prints JSON lines.
import { Command } from 'commander';
import { JaxWasm } from './jax.js';
import { startLoadProbe, waitIdle } from './load.js';
import { checkGrouped, describeCounts, makeBalanced, makeGrouped, parseMoeDims } from './moe-problem.js';
import { MoekitJs, MoekitWasm, type GroupedProblem } from './moekit.js';
import { OrtEngine } from './ort.js';
import { TfjsWasm } from './tfjs.js';
import { checkGemm, errorMessage, gflops, makeProblem, measure, type GemmEngine, type Prepared, type ResultRow, type Timing } from './types.js';

/** An engine that can also run the per-expert grouped matmul. */
interface GroupedCapable extends GemmEngine {
  prepareGrouped(g: GroupedProblem): Prepared | Promise<Prepared>;
}

export const ENGINES: Record<string, (threads: number) => Promise<GemmEngine>> = {
  'moekit-wasm': (t) => MoekitWasm.create(t),
  'moekit-js': () => Promise.resolve(new MoekitJs()),
  'tfjs-wasm': (t) => TfjsWasm.create(t),
  'jax-js': (t) => JaxWasm.create(t),
  'ort-web': (t) => OrtEngine.web(t),
  'ort-node': (t) => OrtEngine.node(t),
};

function hasGrouped(e: GemmEngine): e is GroupedCapable {
  return typeof (e as Partial<GroupedCapable>).prepareGrouped === 'function';
}

function emit(row: ResultRow): void {
  process.stdout.write(JSON.stringify(row) + '\n');
}

/** --min-time and --wait-idle, in seconds. */
interface TimingOpts { minTime: number; waitIdle: number }

/**
 * Checks the prepared problem once, then times it; a failure becomes a null row. With --wait-idle, waits for
 * idle CPUs first and re-measures once when other processes kept ≥ 0.5 core busy, keeping the quieter run.
 */
async function timeOne(base: Omit<ResultRow, 'gflops'>, flops: number, prep: () => Prepared | Promise<Prepared>,
  check: (out: Float32Array) => void, opts: TimingOpts, note?: string): Promise<void> {
  const { minTime, waitIdle: idleWait } = opts;
  let p: Prepared | undefined;
  try {
    p = await prep();
    check(await p.output());
    let best: { t: Timing; other: number } | undefined;
    for (let attempt = 0; attempt < (idleWait > 0 ? 2 : 1) && !(best && best.other < 0.5); attempt++) {
      if (idleWait > 0) await waitIdle(idleWait);
      const load = startLoadProbe();
      const t = await measure(() => p!.run(), minTime);
      const other = load();
      if (!best || other < best.other) best = { t, other };
    }
    const t = best!.t, other = +best!.other.toFixed(2);
    emit({ ...base, gflops: +gflops(flops, t.ms).toFixed(3), ms: +t.ms.toFixed(4), reps: t.reps, other, ...(note ? { note } : {}) });
  } catch (e) {
    emit({ ...base, gflops: null, note: errorMessage(e) });
  } finally {
    try { await p?.dispose(); } catch { /* best effort */ }
  }
}

function parseShapes(s: string): [number, number, number][] {
  return s.split(',').map((x) => {
    const d = x.trim().split('x').map(Number);
    if (d.length !== 3 || d.some((v) => !Number.isInteger(v) || v <= 0)) throw new Error(`bad shape "${x}" (want MxKxN)`);
    return d as [number, number, number];
  });
}

async function main(): Promise<void> {
  const opts = new Command()
    .requiredOption('--engine <name>')
    .requiredOption('--threads <n>', 'thread count', Number)
    .option('--bench <kind>', 'gemm | grouped', 'gemm')
    .option('--shapes <list>', 'gemm shapes MxKxN,...', '1024x1024x1024')
    .option('--cases <list>', 'grouped cases: uniform, skewed, dense, rows=M (every expert M rows)', 'uniform,skewed,dense')
    .option('--moe <HxIxE>', 'grouped problem dims', '512x1024x16')
    .option('--min-time <s>', 'seconds per measurement', Number, 1)
    .option('--wait-idle <s>', 'wait up to s seconds for idle CPUs before each measurement', Number, 0)
    .parse()
    .opts<{ engine: string; threads: number; bench: string; shapes: string; cases: string; moe: string; minTime: number; waitIdle: number }>();
  const { engine: name, threads } = opts;
  const factory = ENGINES[name];
  const gemmShapes = opts.bench === 'gemm' ? parseShapes(opts.shapes) : [];
  const cases = opts.bench === 'grouped' ? opts.cases.split(',') : [];
  const nullRows = (note: string): void => {
    for (const shape of gemmShapes) emit({ engine: name, shape, threads, gflops: null, note });
    for (const c of cases) emit({ engine: name, case: c, threads, gflops: null, note });
  };
  if (!factory) { nullRows(`unknown engine (known: ${Object.keys(ENGINES).join(', ')})`); return; }

  let engine: GemmEngine;
  try {
    engine = await factory(threads);
  } catch (e) {
    nullRows(`failed to load: ${errorMessage(e)}`);
    return;
  }
  try {
    if (engine.threads < threads) {
      // Never report a single-threaded number under a multi-threaded label.
      nullRows(engine.note ?? `runs ${engine.threads} thread(s) only`);
      return;
    }
    const note = engine.note;
    for (const shape of gemmShapes) {
      const [M, K, N] = shape;
      const prob = makeProblem(M, K, N);
      await timeOne({ engine: name, shape, threads }, 2 * M * K * N, () => engine.prepareGemm(prob), (c) => checkGemm(prob, c), opts, note);
    }
    const moe = parseMoeDims(opts.moe);
    for (const c of cases) {
      const rowsCase = /^rows=(\d+)$/.exec(c);
      if (rowsCase) {
        const g = makeBalanced(moe, Number(rowsCase[1]));
        if (!hasGrouped(engine) || g.T === 0) { emit({ engine: name, case: c, threads, gflops: null, note: g.T === 0 ? 'no rows' : 'no grouped adapter' }); continue; }
        await timeOne({ engine: name, case: c, threads }, 2 * g.T * g.K * g.N, () => engine.prepareGrouped(g),
          (y) => checkGrouped(g, y), opts);
      } else if (c === 'dense') {
        const g = makeGrouped(moe, 'uniform');
        const prob = makeProblem(g.T, g.K, g.N);
        await timeOne({ engine: name, case: c, threads }, 2 * g.T * g.K * g.N, () => engine.prepareGemm(prob),
          (y) => checkGemm(prob, y), opts, `dense ${g.T}x${g.K}x${g.N}`);
      } else if (c === 'uniform' || c === 'skewed') {
        const g = makeGrouped(moe, c);
        if (!hasGrouped(engine)) { emit({ engine: name, case: c, threads, gflops: null, note: 'no grouped adapter' }); continue; }
        await timeOne({ engine: name, case: c, threads }, 2 * g.T * g.K * g.N, () => engine.prepareGrouped(g),
          (y) => checkGrouped(g, y), opts, `rows/expert ${describeCounts(g)}`);
      } else {
        emit({ engine: name, case: c, threads, gflops: null, note: 'unknown case' });
      }
    }
  } finally {
    await engine.close().catch(() => undefined);
  }
}

main().then(
  () => process.exit(0), // worker pools (ort-web, moekit) must not keep the child alive
  (e: unknown) => { process.stderr.write(`${errorMessage(e)}\n`); process.exit(1); },
);
