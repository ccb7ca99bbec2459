// moekit analyse: routing statistics of a trace (moekit .safetensors, NumPy .npy, Megatron-LM .jsonl) as tables or one JSON object.
import path from 'node:path';
import type { Command } from 'commander';
import { readTrace } from '../trace/format.js';
import { readNpyTrace } from '../trace/npy.js';
import { readMegatronJsonl } from '../trace/megatron.js';
import { analyse, DEFAULT_BATCHES, DEFAULT_HOT, reportJson, topPairs, type AnalyseReport } from '../trace/analyse.js';
import type { RoutingTrace } from '../trace/types.js';
import { writeFileAtomic } from '../io/safetensors.js';
import { checkWritableFile } from '../io/outputs.js';
import { analyseHtml } from './analyse-report.js';
import { planSection } from './plan-report.js';
import { readPlanFile } from '../plan/plan-file.js';
import { intOption } from './args.js';

export interface AnalyseFlags {
  experts?: string;
  batches?: string;
  hot?: string;
  json?: boolean;
  ridge?: string;
}

/**
 * Rows per expert from which moekit-wasm's grouped GEMM reaches 90% of its best throughput (the ridge point), measured
 * with `npm run bench:grouped -- --moe 128x128x8 --rows 1,2,…,512` on a 2-core AMD EPYC, 2 threads (docs/ROUTING.md).
 * Below it an expert's GEMM is too short to be compute-bound. `--ridge` sets another machine's value.
 */
export const DEFAULT_RIDGE_ROWS = 64;

/** --ridge: a positive number of rows per expert. */
export function parseRidge(v: string | undefined): number {
  if (v === undefined) return DEFAULT_RIDGE_ROWS;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new Error(`--ridge must be a positive number of rows per expert, got "${v}"`);
  return n;
}

/** --experts: a positive integer up to 32768 (ids are stored as int16). */
export function parseExperts(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isInteger(n) || n < 1 || n > 32768) throw new Error(`--experts must be an integer from 1 to 32768, got "${v}"`);
  return n;
}

/** --batches: comma-separated positive integers ("1,8,32,128"). */
export function parseBatches(v: string | undefined): number[] {
  if (v === undefined) return DEFAULT_BATCHES;
  const parts = v.split(',').map((s) => s.trim());
  const out = parts.map(Number);
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p)) || out.some((b) => b < 1)) {
    throw new Error(`--batches must be comma-separated positive integers such as 1,8,32,128, got "${v}"`);
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/** --hot: a positive number (an expert is hot when its count exceeds hot · mean). */
export function parseHot(v: string | undefined): number {
  if (v === undefined) return DEFAULT_HOT;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new Error(`--hot must be a positive number, got "${v}"`);
  return n;
}

/** Reads a trace by its extension: .npy, .jsonl (Megatron-LM router trace) or .safetensors (moekit trace). */
export function loadTrace(file: string, experts: number | undefined): RoutingTrace {
  const ext = path.extname(file).toLowerCase();
  let trace: RoutingTrace;
  if (ext === '.npy') trace = readNpyTrace(file, { experts });
  else if (ext === '.jsonl') trace = readMegatronJsonl(file, { experts });
  else if (ext === '.safetensors') trace = readTrace(file);
  else throw new Error(`analyse: ${file}: unknown trace format "${ext}" (expected .safetensors from moekit trace, .npy [N, L, K] or a Megatron-LM router trace .jsonl)`);
  trace.metadata.source ??= file;
  return trace;
}

/** Reads, checks and analyses a trace with the command's flags. */
export function analyseFile(file: string, flags: AnalyseFlags): AnalyseReport {
  const experts = parseExperts(flags.experts);
  const batches = parseBatches(flags.batches);
  const hot = parseHot(flags.hot);
  const trace = loadTrace(file, experts);
  if (trace.E === null && experts === undefined) {
    throw new Error(`analyse: ${file} does not say how many experts each layer has; pass --experts E`);
  }
  if (trace.E !== null && experts !== undefined && trace.E !== experts) {
    throw new Error(`analyse: ${file} has E = ${trace.E} experts per layer but --experts is ${experts}`);
  }
  return analyse(trace, { experts, batches, hot });
}

const f = (x: number, d = 2): string => x.toFixed(d);

/** The report as readable tables: loads per layer, the activated-experts curve, per-sequence loads. */
export function printReport(r: AnalyseReport, hot: number, ridge = DEFAULT_RIDGE_ROWS): void {
  const t = r.trace;
  console.log(`trace ${t.source} (${t.format}): N = ${t.N} tokens, L = ${t.L} layers, top-${t.K} of E = ${t.E} experts`);
  console.log(`\nload per layer (hot: count > ${hot} x mean; entropy max log2(E) = ${f(Math.log2(t.E))} bits)`);
  console.log(`  ${'layer'.padStart(5)} ${'routed'.padStart(10)} ${'max/mean'.padStart(8)} ${'cv'.padStart(6)} ${'gini'.padStart(6)} ${'entropy'.padStart(8)}  hot experts`);
  for (const l of r.layers) {
    const hotText = l.hot.length > 8 ? `${l.hot.slice(0, 8).join(' ')} … (${l.hot.length})` : l.hot.join(' ') || '-';
    console.log(`  ${String(l.layer).padStart(5)} ${String(l.total).padStart(10)} ${f(l.max_over_mean).padStart(8)} ${f(l.cv).padStart(6)} ${f(l.gini, 3).padStart(6)} ${f(l.entropy_bits).padStart(8)}  ${hotText}`);
  }
  if (r.activated.length) {
    console.log('\nactivated experts per batch of B consecutive tokens (mean over batches; min..max over layers)');
    console.log(`  ${'B'.padStart(6)} ${'batches'.padStart(8)} ${'uniform'.padStart(8)} ${'mean'.padStart(8)} ${'min..max'.padStart(16)} ${'slots/expert'.padStart(12)}`);
    for (const a of r.activated) {
      const u = a.mean_unique;
      const mean = u.reduce((x, y) => x + y, 0) / (u.length || 1);
      const range = `${f(Math.min(...u), 1)}..${f(Math.max(...u), 1)}`;
      const tpe = a.tokens_per_expert.reduce((x, y) => x + y, 0) / (u.length || 1);
      console.log(`  ${String(a.batch).padStart(6)} ${String(a.batches).padStart(8)} ${f(a.theory_uniform, 1).padStart(8)} ${f(mean, 1).padStart(8)} ${range.padStart(16)} ${f(tpe).padStart(12)}`);
    }
    const reach = r.activated.find((a) => Math.min(...a.tokens_per_expert) >= ridge);
    console.log(`  grouped GEMM compute-bound from ${ridge} rows per expert (--ridge): ${reach ? `reached at every layer from B = ${reach.batch}` : 'no batch size here reaches it at every layer'}`);
  }
  if (r.coactivation && r.transitions) {
    const EE = t.E * t.E;
    console.log('\nmost frequent pairs: experts chosen together by a token, and expert at this layer -> expert at the next');
    console.log(`  ${'layer'.padStart(5)} ${'pair (tokens)'.padEnd(22)} to next layer (slot pairs)`);
    r.layers.forEach((l, i) => {
      const [co] = topPairs(r.coactivation!, i * EE, t.E, 1, true);
      const [tr] = i + 1 < t.L ? topPairs(r.transitions!, i * EE, t.E, 1, false) : [];
      const coText = co ? `${co.a} + ${co.b} (${co.count})` : '-';
      const trText = tr ? `${tr.a} -> ${tr.b} (${tr.count}) into layer ${r.layers[i + 1]!.layer}` : '-';
      console.log(`  ${String(l.layer).padStart(5)} ${coText.padEnd(22)} ${trText}`);
    });
  }
  const s = r.sequences;
  if (s) {
    console.log(`\nper sequence: ${s.count} sequences, ${f(s.tokens_mean, 1)} tokens each on average; mean over sequences and layers: max/mean ${f(s.mean_max_over_mean)}, cv ${f(s.mean_cv)}`);
  } else console.log('\nper sequence: the trace has no sequence ids');
}

export function registerAnalyse(program: Command): void {
  program
    .command('analyse')
    .description('routing statistics of a trace: expert load per layer (max/mean, cv, Gini, entropy, hot experts), activated experts per batch size, per-sequence load, co-activation and layer-to-layer transitions')
    .argument('<trace>', 'a moekit trace (.safetensors), a NumPy array of expert ids [N, L, K] (.npy) or a Megatron-LM router trace (.jsonl)')
    .option('--experts <E>', 'experts per layer (required for .npy and .jsonl, which do not record it)')
    .option('--batches <list>', 'batch sizes for the activated-experts curve, comma-separated', DEFAULT_BATCHES.join(','))
    .option('--hot <c>', 'an expert is hot when its count exceeds c x mean', String(DEFAULT_HOT))
    .option('--json', 'print one JSON object')
    .option('--ridge <rows>', 'rows per expert from which the grouped GEMM is compute-bound, shown next to slots per activated expert (measure yours with npm run bench:grouped -- --rows)', String(DEFAULT_RIDGE_ROWS))
    .option('--html <file>', 'also write a self-contained HTML report: load heatmap, activated-experts curves, co-activation and transitions')
    .option('--plan <file>', 'with --html: a page for this moekit plan on the trace: per-GPU load before and after, slots per layer')
    .option('--prev <file>', 'with --plan: the current plan (before = it), and the expert copies moving from it costs')
    .option('--expert-bytes <b>', 'with --prev: bytes of one expert, for the migration in bytes')
    .action(async (file: string, o: AnalyseFlags & { html?: string; plan?: string; prev?: string; expertBytes?: string }) => {
      if (o.html) checkWritableFile(o.html, '--html');
      if ((o.plan || o.prev) && !o.html) throw new Error('--plan and --prev add a page to the HTML report: pass --html FILE too');
      if (o.prev && !o.plan) throw new Error('--prev compares against --plan PLAN: pass it too');
      const plan = o.plan ? readPlanFile(o.plan) : undefined;
      const prev = o.prev ? readPlanFile(o.prev) : undefined;
      const expertBytes = intOption('expert-bytes', o.expertBytes, 0, 1);
      const ridge = parseRidge(o.ridge);
      const r = analyseFile(file, o);
      if (o.json) console.log(JSON.stringify({ ...reportJson(r), gemm_ridge_rows: ridge }));
      else printReport(r, parseHot(o.hot), ridge);
      if (o.html) {
        const page = plan ? await planSection({ plan, planFile: o.plan!, loads: r.layers.map((l) => l.counts), prev, prevFile: o.prev, expertBytes }) : '';
        await writeFileAtomic(o.html, await analyseHtml(r, file, ridge, page));
        if (!o.json) console.log(`\nHTML report: ${o.html}`);
      }
    });
}
