// MoE grouped-matmul benchmark driver: moekit groupedMatmul vs its dense matmul of equal FLOPs vs per-expert peer loops.
import { Command } from 'commander';
import { BASELINE, cell, legends, machineHeader, Notes, parseList, parseThreads, renderTable, runJobs } from './common.js';
import { parseMoeDims, ZIPF_S } from './engines/moe-problem.js';
import type { ResultRow } from './engines/types.js';

const CASES = ['uniform', 'skewed', 'dense'] as const;
const GROUPED_ENGINES = ['moekit-wasm', 'tfjs-wasm', 'ort-node'];

interface Opts { threads: string; engines: string; cases?: string; moe: string; rows?: string; json?: boolean; minTime: number; waitIdle: number; out?: string; rounds: number }

function table(rows: ResultRow[], cases: string[], threads: number[], engines: string[]): string[] {
  const get = (e: string, c: string, t: number): ResultRow | undefined => rows.find((r) => r.engine === e && r.case === c && r.threads === t);
  const notes = new Notes();
  const peers = engines.filter((e) => e !== BASELINE);
  const withBase = engines.includes(BASELINE);
  const headers = ['case', 'thr', ...engines, ...(withBase ? ['moekit vs dense', ...peers.map((p) => `${p}/moekit`)] : [])];
  const body: string[][] = [];
  for (const c of cases) {
    for (const t of threads) {
      const cells = engines.map((e) => cell(get(e, c, t), notes, `${e}, ${t} thr`));
      const base = get(BASELINE, c, t)?.gflops ?? null;
      const dense = get(BASELINE, 'dense', t)?.gflops ?? null;
      const vsDense = c === 'dense' ? '100%' : base !== null && dense !== null ? `${((100 * base) / dense).toFixed(0)}%` : '—';
      const ratios = peers.map((p) => {
        const g = get(p, c, t)?.gflops ?? null;
        return g !== null && base !== null ? `${(g / base).toFixed(2)}×` : '—';
      });
      body.push([c, String(t), ...cells, ...(withBase ? [vsDense, ...ratios] : [])]);
    }
  }
  const out = [renderTable(headers, body)];
  const ridge = ridgeLines(rows, cases, threads, engines);
  if (ridge.length) out.push('', ...ridge);
  const marks = legends(rows);
  if (marks.length) out.push('', ...marks);
  const counts = [...new Set(rows.filter((r) => r.gflops !== null && r.note?.startsWith('rows/expert')).map((r) => `${r.case}: ${r.note}`))];
  if (counts.length) out.push('', ...counts);
  const n = notes.render();
  if (n.length) out.push('', ...n);
  return out;
}

/** Share of the sweep's best throughput that counts as compute-bound. */
const RIDGE_SHARE = 0.9;

/**
 * The ridge point of a rows-per-expert sweep: the smallest M whose GFLOP/s reaches RIDGE_SHARE of the best measured in
 * the sweep — below it, an expert's segment is too short for the grouped GEMM to be compute-bound. (Very large M can
 * fall off again when the rows outgrow the caches; that is not a segment-length effect, so the first crossing counts.)
 */
export function ridgePoint(points: { rows: number; gflops: number }[]): { rows: number; best: number } | null {
  const p = [...points].sort((a, b) => a.rows - b.rows);
  if (p.length < 2) return null;
  const best = Math.max(...p.map((x) => x.gflops));
  return { rows: p.find((x) => x.gflops >= RIDGE_SHARE * best)!.rows, best };
}

function ridgeLines(rows: ResultRow[], cases: string[], threads: number[], engines: string[]): string[] {
  const sweep = cases.map((c) => /^rows=(\d+)$/.exec(c)).filter((m): m is RegExpExecArray => m !== null);
  if (sweep.length < 2) return [];
  const out: string[] = [];
  for (const e of engines) {
    for (const t of threads) {
      const pts = sweep.flatMap((m) => {
        const r = rows.find((x) => x.engine === e && x.threads === t && x.case === m[0]);
        return r?.gflops != null ? [{ rows: Number(m[1]), gflops: r.gflops }] : [];
      });
      const r = ridgePoint(pts);
      if (r) out.push(`ridge point, ${e} ${t} thr: ${r.rows} rows/expert first reach ${RIDGE_SHARE * 100}% of the sweep's best (${r.best.toFixed(1)} GFLOP/s)`);
    }
  }
  return out;
}

async function main(): Promise<void> {
  const opts = new Command()
    .name('bench:grouped')
    .description('grouped matmul of one MoE layer (T=512, H=512, I=1024, E=16, top-2): GFLOP/s per routing case')
    .option('--threads <list>', 'thread counts', '1,2')
    .option('--engines <list>', `engines (${GROUPED_ENGINES.join(',')})`, GROUPED_ENGINES.join(','))
    .option('--cases <list>', `cases (${CASES.join(',')}, or rows=M: every expert gets exactly M rows); default ${CASES.join(',')}`)
    .option('--moe <HxIxE>', 'problem dims: hidden × expert width × experts (T = 512 tokens, top-2 for uniform/skewed)', '512x1024x16')
    .option('--rows <list>', 'rows-per-expert sweep: adds a case rows=M per value, and prints the ridge point (where the grouped GEMM becomes compute-bound)')
    .option('--json', 'print one JSON object per line instead of a table')
    .option('--min-time <s>', 'seconds of timed calls per measurement', Number, 1)
    .option('--rounds <n>', 'run everything n times over (interleaved) and keep each configuration\'s best round', Number, 1)
    .option('--out <file>', 'also write the JSON lines to this file')
    .option('--wait-idle <s>', 'before each measurement, wait up to s seconds for other processes to leave the CPUs idle; re-measure once if they did not', Number, 0)
    .parse()
    .opts<Opts>();
  const threads = parseThreads(opts.threads);
  const engines = parseList(opts.engines);
  const rowsList = opts.rows ? parseList(opts.rows).map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--rows: "${v}" is not a positive integer`);
    return `rows=${n}`;
  }) : [];
  const cases = [...(opts.cases !== undefined ? parseList(opts.cases) : rowsList.length ? [] : [...CASES]), ...rowsList];
  const m = parseMoeDims(opts.moe);
  if (!(opts.minTime > 0)) throw new Error('--min-time must be positive');
  if (!(Number.isInteger(opts.rounds) && opts.rounds >= 1)) throw new Error('--rounds must be a positive integer');
  const rowsPermuted = m.tokens * m.topK;
  if (!opts.json) {
    console.log([
      `MoE grouped matmul, GFLOP/s: T=${m.tokens} tokens, H=${m.hidden}, I=${m.inter}, E=${m.experts}, top-${m.topK} ` +
        `→ ${rowsPermuted} permuted rows · (${m.hidden}×${m.inter}) per expert; dense = one ${rowsPermuted}×${m.hidden}×${m.inter} matmul (same FLOPs)`,
      `routing: uniform (each token picks ${m.topK} distinct experts uniformly), skewed (Zipf weights 1/(e+1)^${ZIPF_S}); fixed seeds`,
      'peers run the per-expert loop: slice each non-empty expert\'s rows, one matmul per expert, results gathered into y',
      ...(opts.rounds > 1 ? [`best of ${opts.rounds} interleaved rounds per cell`] : []),
      ...machineHeader(),
    ].join('\n'));
  }
  const rows = await runJobs({
    bench: 'grouped', engines, threads, itemArgs: ['--cases', cases.join(','), '--moe', opts.moe],
    items: (engine, t, note) => cases.map((c) => ({ engine, case: c, threads: t, gflops: null, note })),
    itemOf: (r) => r.case ?? '',
    minTime: opts.minTime, waitIdle: opts.waitIdle, rounds: opts.rounds, json: opts.json, out: opts.out,
  });
  if (!opts.json) console.log(['', ...table(rows, cases, threads, engines)].join('\n'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
