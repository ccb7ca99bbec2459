// fp32 GEMM benchmark driver: every engine × thread count in its own child process, one after another; JSON lines or a table.
import { Command } from 'commander';
import { ALL_ENGINES, BASELINE, cell, legends, machineHeader, Notes, parseList, parseThreads, renderTable, runJobs } from './common.js';
import type { ResultRow } from './engines/types.js';

const DEFAULT_SHAPES = '1x1024x4096,64x512x1024,512x512x1024,1024x1024x1024,2048x768x3072';

interface Opts { shapes: string; threads: string; engines: string; json?: boolean; minTime: number; waitIdle: number; out?: string; rounds: number }

type Shape = [number, number, number];
const shapeKey = (s: readonly number[]): string => s.join('x');

function parseShapes(s: string): Shape[] {
  return parseList(s).map((x) => {
    const d = x.split('x').map(Number);
    if (d.length !== 3 || d.some((v) => !Number.isInteger(v) || v <= 0)) throw new Error(`--shapes: bad shape "${x}" (want MxKxN)`);
    return d as Shape;
  });
}

function table(rows: ResultRow[], shapes: Shape[], threads: number[], engines: string[]): string[] {
  const get = (e: string, s: Shape, t: number): ResultRow | undefined =>
    rows.find((r) => r.engine === e && r.threads === t && r.shape && shapeKey(r.shape) === shapeKey(s));
  const notes = new Notes();
  const peers = engines.filter((e) => e !== BASELINE);
  const withBase = engines.includes(BASELINE);
  const headers = ['M×K×N', 'thr', ...engines, ...(withBase ? peers.map((p) => `${p}/moekit`) : [])];
  const body: string[][] = [];
  for (const s of shapes) {
    for (const t of threads) {
      const cells = engines.map((e) => cell(get(e, s, t), notes, `${e}, ${t} thr`));
      const base = get(BASELINE, s, t)?.gflops ?? null;
      const ratios = withBase ? peers.map((p) => {
        const g = get(p, s, t)?.gflops ?? null;
        return g !== null && base !== null ? `${(g / base).toFixed(2)}×` : '—';
      }) : [];
      body.push([shapeKey(s), String(t), ...cells, ...ratios]);
    }
  }
  const out = [renderTable(headers, body)];
  // Thread scaling, measured: GFLOP/s at t threads over GFLOP/s at the smallest thread count.
  const t0 = threads[0]!;
  if (threads.length > 1) {
    const sh = ['M×K×N', ...threads.slice(1).flatMap((t) => engines.map((e) => `${e} ${t}/${t0}`))];
    const sb = shapes.map((s) => [shapeKey(s), ...threads.slice(1).flatMap((t) => engines.map((e) => {
      const a = get(e, s, t0)?.gflops ?? null, b = get(e, s, t)?.gflops ?? null;
      return a !== null && b !== null ? `${(b / a).toFixed(2)}×` : '—';
    }))]);
    out.push('', 'Thread scaling (GFLOP/s ratio, same shape):', renderTable(sh, sb));
  }
  const marks = legends(rows);
  if (marks.length) out.push('', ...marks);
  const engineNotes = [...new Set(rows.filter((r) => r.gflops !== null && r.note).map((r) => `${r.engine}: ${r.note}`))];
  if (engineNotes.length) out.push('', ...engineNotes);
  const n = notes.render();
  if (n.length) out.push('', ...n);
  return out;
}

async function main(): Promise<void> {
  const opts = new Command()
    .name('bench:gemm')
    .description('fp32 GEMM C(M,N) = A(M,K)·B(K,N) across engines, GFLOP/s (median per-call time after warm-up)')
    .option('--shapes <list>', 'comma-separated MxKxN', DEFAULT_SHAPES)
    .option('--threads <list>', 'thread counts', '1,2')
    .option('--engines <list>', `engines (${ALL_ENGINES.join(',')})`, ALL_ENGINES.join(','))
    .option('--json', 'print one JSON object per line instead of a table')
    .option('--min-time <s>', 'seconds of timed calls per measurement', Number, 1)
    .option('--rounds <n>', 'run everything n times over (interleaved) and keep each configuration\'s best round', Number, 1)
    .option('--out <file>', 'also write the JSON lines to this file')
    .option('--wait-idle <s>', 'before each measurement, wait up to s seconds for other processes to leave the CPUs idle; re-measure once if they did not', Number, 0)
    .parse()
    .opts<Opts>();
  const shapes = parseShapes(opts.shapes);
  const threads = parseThreads(opts.threads);
  const engines = parseList(opts.engines);
  if (!(opts.minTime > 0)) throw new Error('--min-time must be positive');
  if (!(Number.isInteger(opts.rounds) && opts.rounds >= 1)) throw new Error('--rounds must be a positive integer');
  const header = machineHeader();
  if (!opts.json) {
    const best = opts.rounds > 1 ? `; best of ${opts.rounds} interleaved rounds` : '';
    console.log([`fp32 GEMM, GFLOP/s (2·M·N·K / median call time; each engine in its own process, run one at a time${best})`, ...header].join('\n'));
  }
  const rows = await runJobs({
    bench: 'gemm', engines, threads, itemArgs: ['--shapes', shapes.map(shapeKey).join(',')],
    items: (engine, t, note) => shapes.map((shape) => ({ engine, shape, threads: t, gflops: null, note })),
    itemOf: (r) => (r.shape ? shapeKey(r.shape) : ''),
    minTime: opts.minTime, waitIdle: opts.waitIdle, rounds: opts.rounds, json: opts.json, out: opts.out,
  });
  if (!opts.json) console.log(['', ...table(rows, shapes, threads, engines)].join('\n'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
