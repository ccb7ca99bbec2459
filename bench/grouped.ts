// MoE grouped-matmul benchmark driver: moekit groupedMatmul vs its dense matmul of equal FLOPs vs per-expert peer loops.
import { Command } from 'commander';
import { BASELINE, cell, legends, machineHeader, Notes, parseList, parseThreads, renderTable, runJobs } from './common.js';
import { DEFAULT_MOE, ZIPF_S } from './engines/moe-problem.js';
import type { ResultRow } from './engines/types.js';

const CASES = ['uniform', 'skewed', 'dense'] as const;
const GROUPED_ENGINES = ['moekit-wasm', 'tfjs-wasm', 'ort-node'];

interface Opts { threads: string; engines: string; cases: string; json?: boolean; minTime: number; waitIdle: number; out?: string; rounds: number }

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
  const marks = legends(rows);
  if (marks.length) out.push('', ...marks);
  const counts = [...new Set(rows.filter((r) => r.gflops !== null && r.note?.startsWith('rows/expert')).map((r) => `${r.case}: ${r.note}`))];
  if (counts.length) out.push('', ...counts);
  const n = notes.render();
  if (n.length) out.push('', ...n);
  return out;
}

async function main(): Promise<void> {
  const opts = new Command()
    .name('bench:grouped')
    .description('grouped matmul of one MoE layer (T=512, H=512, I=1024, E=16, top-2): GFLOP/s per routing case')
    .option('--threads <list>', 'thread counts', '1,2')
    .option('--engines <list>', `engines (${GROUPED_ENGINES.join(',')})`, GROUPED_ENGINES.join(','))
    .option('--cases <list>', `cases (${CASES.join(',')})`, CASES.join(','))
    .option('--json', 'print one JSON object per line instead of a table')
    .option('--min-time <s>', 'seconds of timed calls per measurement', Number, 1)
    .option('--rounds <n>', 'run everything n times over (interleaved) and keep each configuration\'s best round', Number, 1)
    .option('--out <file>', 'also write the JSON lines to this file')
    .option('--wait-idle <s>', 'before each measurement, wait up to s seconds for other processes to leave the CPUs idle; re-measure once if they did not', Number, 0)
    .parse()
    .opts<Opts>();
  const threads = parseThreads(opts.threads);
  const engines = parseList(opts.engines);
  const cases = parseList(opts.cases);
  if (!(opts.minTime > 0)) throw new Error('--min-time must be positive');
  if (!(Number.isInteger(opts.rounds) && opts.rounds >= 1)) throw new Error('--rounds must be a positive integer');
  const m = DEFAULT_MOE;
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
    bench: 'grouped', engines, threads, itemArgs: ['--cases', cases.join(',')],
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
