// MoE grouped-matmul benchmark driver: moekit groupedMatmul vs its dense matmul of equal FLOPs vs per-expert peer loops.
import { appendFileSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { BASELINE, BUSY, BUSY_LEGEND, cell, machineHeader, Notes, parseList, parseThreads, progress, renderTable, runChild } from './common.js';
import { DEFAULT_MOE, ZIPF_S } from './engines/moe-problem.js';
import type { ResultRow } from './engines/types.js';

const CASES = ['uniform', 'skewed', 'dense'] as const;
const GROUPED_ENGINES = ['moekit-wasm', 'tfjs-wasm', 'ort-node'];

interface Opts { threads: string; engines: string; cases: string; json?: boolean; minTime: number; waitIdle: number; out?: string }

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
  if (rows.some((r) => (r.other ?? 0) >= BUSY)) out.push('', BUSY_LEGEND);
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
    .option('--out <file>', 'also write the JSON lines to this file')
    .option('--wait-idle <s>', 'before each measurement, wait up to s seconds for other processes to leave the CPUs idle; re-measure once if they did not', Number, 0)
    .parse()
    .opts<Opts>();
  const threads = parseThreads(opts.threads);
  const engines = parseList(opts.engines);
  const cases = parseList(opts.cases);
  if (!(opts.minTime > 0)) throw new Error('--min-time must be positive');
  const m = DEFAULT_MOE;
  const rowsPermuted = m.tokens * m.topK;
  if (!opts.json) {
    console.log([
      `MoE grouped matmul, GFLOP/s: T=${m.tokens} tokens, H=${m.hidden}, I=${m.inter}, E=${m.experts}, top-${m.topK} ` +
        `→ ${rowsPermuted} permuted rows · (${m.hidden}×${m.inter}) per expert; dense = one ${rowsPermuted}×${m.hidden}×${m.inter} matmul (same FLOPs)`,
      `routing: uniform (each token picks ${m.topK} distinct experts uniformly), skewed (Zipf weights 1/(e+1)^${ZIPF_S}); fixed seeds`,
      'peers run the per-expert loop: slice each non-empty expert\'s rows, one matmul per expert, results gathered into y',
      ...machineHeader(),
    ].join('\n'));
  }
  const rows: ResultRow[] = [];
  if (opts.out) writeFileSync(opts.out, '');
  const record = (r: ResultRow): void => {
    if (opts.json) console.log(JSON.stringify(r));
    if (opts.out) appendFileSync(opts.out, JSON.stringify(r) + '\n');
  };
  const jobs = engines.flatMap((e) => threads.map((t) => [e, t] as const));
  let i = 0;
  for (const [engine, t] of jobs) {
    if (!opts.json) progress(`[${++i}/${jobs.length}] ${engine}, ${t} thread(s)...`);
    const got: ResultRow[] = [];
    const crash = await runChild(['--bench', 'grouped', '--engine', engine, '--threads', String(t), '--cases', cases.join(','),
      '--min-time', String(opts.minTime), '--wait-idle', String(opts.waitIdle)], (r) => { got.push(r); record(r); });
    for (const c of cases) {
      if (got.some((r) => r.case === c)) continue;
      const r: ResultRow = { engine, case: c, threads: t, gflops: null, note: crash ?? 'no result' };
      got.push(r);
      record(r);
    }
    rows.push(...got);
  }
  if (!opts.json) console.log(['', ...table(rows, cases, threads, engines)].join('\n'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
