// moekit bench paper: the reproduction benchmark of the clustered-experts paper (docs/PAPER_RESULTS.md).
import type { Command } from 'commander';
import { PAPER_PRESETS, paperBench, type PaperResult } from './paper/experiment.js';
import os from 'node:os';
import { checkWritableDir, checkWritableFile, fsErrorWords } from '../io/outputs.js';
import { setBackend } from '../backend/registry.js';
import { getBackend } from '../tensor/engine.js';
import { intOption } from './args.js';
import { paperHtml } from './paper/report.js';
import { writeFileAtomic } from '../io/safetensors.js';
import { registerBenchServe } from './bench-serve.js';

const kib = (v: number): string => `${(v / 1024).toFixed(0)} KiB`;

const FIELDS: [string, string, (v: number) => string][] = [
  ['ppl', 'valid ppl', (v) => v.toFixed(2)],
  ['ppl_wikitext', 'WikiText ppl', (v) => v.toFixed(2)],
  ['accuracy', 'genre acc', (v) => `${(v * 100).toFixed(1)}%`],
  ['accuracy_sst2', 'SST-2 acc', (v) => `${(v * 100).toFixed(1)}%`],
  ['accuracy_mrpc', 'MRPC acc', (v) => `${(v * 100).toFixed(1)}%`],
  ['params_total', 'params', (v) => `${(v / 1e6).toFixed(3)}M`],
  ['params_expert', 'expert params', (v) => `${(v / 1e6).toFixed(3)}M`],
  ['params_active', 'active params', (v) => `${(v / 1e6).toFixed(3)}M`],
  ['train_tokens_per_s', 'train tok/s', (v) => v.toFixed(0)],
  ['prefill_tokens_per_s', 'prefill tok/s', (v) => v.toFixed(0)],
  ['decode_tokens_per_s', 'decode tok/s', (v) => v.toFixed(1)],
  ['load_variance', 'load variance', (v) => v.toExponential(2)],
  ['imbalance', 'max/mean load', (v) => v.toFixed(2)],
  ['cross_group_fraction', 'cross-group', (v) => `${(v * 100).toFixed(1)}%`],
  ['peak_expert_bytes', 'peak expert bytes', kib],
];

/** The result as Markdown: one row per model (mean ± std over seeds), then the claims. */
export function paperMarkdown(r: PaperResult): string {
  const names = Object.keys(r.models).filter((n) => Object.keys(r.models[n]!).length > 0);
  const cols = FIELDS.filter(([k]) => names.some((n) => (r.models[n] as Record<string, unknown>)[k] !== undefined));
  const cell = (n: string, k: string, f: (v: number) => string): string => {
    const a = (r.models[n] as Record<string, { mean: number; std: number } | undefined>)[k];
    if (!a || !Number.isFinite(a.mean)) return '—';
    return r.seeds > 1 && a.std > 0 ? `${f(a.mean)} ± ${f(a.std)}` : f(a.mean);
  };
  const c = r.models.clustered as Record<string, { mean: number; std: number } | undefined> | undefined;
  const inf = c?.ppl_int4 && c.int4_expert_bytes && c.offload_budget_bytes ? [
    '',
    '| clustered inference form | FP32 | FP16 bases + INT4 factors | offloaded (INT4) |',
    '|---|---|---|---|',
    `| valid ppl | ${cell('clustered', 'ppl', (v) => v.toFixed(2))} | ${cell('clustered', 'ppl_int4', (v) => v.toFixed(2))} (${((c.ppl_int4.mean / c.ppl!.mean - 1) * 100).toFixed(2)}%) | same weights |`,
    `| expert bytes | ${cell('clustered', 'expert_bytes_fp32', kib)} | ${cell('clustered', 'int4_expert_bytes', kib)} | peak ${cell('clustered', 'peak_expert_bytes', kib)} resident (budget ${cell('clustered', 'offload_budget_bytes', kib)}) |`,
    `| unit loads / stall | — | — | ${cell('clustered', 'offload_loads', (v) => v.toFixed(0))} loads, ${cell('clustered', 'offload_stall_ms', (v) => `${v.toFixed(0)} ms`)} |`,
    `| prefill tok/s | ${cell('clustered', 'prefill_tokens_per_s', (v) => v.toFixed(0))} | ${cell('clustered', 'prefill_tokens_per_s_int4', (v) => v.toFixed(0))} (fused kernel, all resident) | — |`,
    `| decode tok/s | ${cell('clustered', 'decode_tokens_per_s', (v) => v.toFixed(1))} | ${cell('clustered', 'decode_tokens_per_s_int4', (v) => v.toFixed(1))} (fused kernel, all resident) | ${cell('clustered', 'offload_decode_tokens_per_s', (v) => v.toFixed(1))} |`,
  ] : [];
  const lines = [
    `| model | ${cols.map(([, h]) => h).join(' | ')} |`,
    `|---|${cols.map(() => '---').join('|')}|`,
    ...names.map((n) => `| ${n} | ${cols.map(([k, , f]) => cell(n, k, f)).join(' | ')} |`),
    ...inf,
    '',
    '| claim (clustered vs standard MoE) | target | measured | holds |',
    '|---|---|---|---|',
    ...r.claims.map((c) => `| ${c.claim} | ${c.target} | ${c.measured} | ${c.pass ? 'yes' : '**no**'} |`),
  ];
  return lines.join('\n');
}

/** Where `finishPaper` prints and writes (a seam for tests). */
export interface PaperSinks {
  out: (s: string) => void;
  err: (s: string) => void;
  write: (file: string, text: string) => Promise<void>;
}

const SINKS: PaperSinks = { out: (s) => console.log(s), err: (s) => console.error(s), write: writeFileAtomic };

/** The line `--preset smoke` adds to its text and JSON output. */
export const SMOKE_NOTE = 'preset smoke checks that the pipeline runs end to end, not the paper\'s claims: a tiny model trained for a few steps, so the claims below are no evidence either way (--preset small measures them)';

/**
 * The end of `bench paper`: the results go to stdout first (the JSON line, or the tables), then the HTML report is
 * written. A failed write is reported in words on stderr after the results are out, and the function returns false
 * (the command then exits non-zero): a long run's numbers are never lost to a full or read-only disk.
 */
export async function finishPaper(r: PaperResult, o: { html?: string; json?: boolean }, sinks: PaperSinks = SINKS): Promise<boolean> {
  const note = r.preset === 'smoke' ? SMOKE_NOTE : undefined;
  if (o.json) {
    const models = Object.fromEntries(Object.entries(r.models).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([f, a]) => [f, a.mean]))]));
    const stds = Object.fromEntries(Object.entries(r.models).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).map(([f, a]) => [f, a.std]))]));
    sinks.err(`\n${paperMarkdown(r)}`); // the table too, on stderr
    if (note) sinks.err(`\nnote: ${note}`);
    sinks.out(JSON.stringify({ preset: r.preset, ...(note ? { note } : {}), seeds: r.seeds, steps: r.steps, seconds: r.seconds, models, std: stds, runs: r.runs, claims: r.claims }));
  } else {
    sinks.out(`\nmoekit bench paper --preset ${r.preset} --seeds ${r.seeds} (${r.steps} steps per model, ${r.seconds.toFixed(0)} s)\n`);
    if (note) sinks.out(`note: ${note}\n`);
    sinks.out(paperMarkdown(r));
  }
  if (!o.html) return true;
  try {
    await sinks.write(o.html, await paperHtml(r, paperMarkdown(r), note));
  } catch (e) {
    sinks.err(`moekit: --html ${o.html}: could not write the report (${fsErrorWords(e)}); the results are on stdout above`);
    return false;
  }
  sinks.err(`wrote ${o.html}`);
  return true;
}

/** A bias step γ: a finite number >= 0. */
function rate(name: string, v: string): number {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || x < 0) throw new Error(`--${name} must be a number >= 0, got "${v}"`);
  return x;
}

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks');
  registerBenchServe(bench);
  bench
    .command('paper')
    .description('reproduce the clustered-experts paper: dense, standard MoE and clustered MoE trained on the same tokens, plus post-training baselines')
    .option('--preset <name>', `${Object.keys(PAPER_PRESETS).join(' | ')}`, 'small')
    .option('--seeds <n>', 'seeds per model (mean ± std)', '1')
    .option('--steps <n>', 'optimizer steps per model (default by preset)')
    .option('--wikitext <dir>', 'WikiText-103 directory (wiki.valid.raw): also report its validation perplexity')
    .option('--glue <dir>', 'GLUE directory (SST-2/, MRPC/): also report SST-2 and MRPC accuracy')
    .option('--groups <n>', 'clustered: expert groups G (default by preset)')
    .option('--rank <n>', 'clustered: residual rank r (default by preset)')
    .option('--group-top-k <n>', 'clustered: groups per token k_g (default 1)')
    .option('--no-dense-warmup', 'clustered: train in compressed form from step 0 (default: full experts until the first clustering, which compresses them)')
    .option('--cluster-bias-rate <γ>', 'clustered: aux-loss-free selection-bias step per training step (default by preset; 0 = off)')
    .option('--moe-bias-rate <γ>', 'standard MoE: the same balancing (ablation; default 0, the Switch-style baseline)')
    .option('--offload-budget <bytes>', 'resident expert bytes for the offloaded clustered model (default: half of its INT4 form)')
    .option('--html <file>', 'also write an HTML report with charts (perplexity, parameters, speed, expert load)')
    .option('--json', 'print one final JSON object')
    .action(async (o: { preset: string; seeds: string; steps?: string; wikitext?: string; glue?: string; offloadBudget?: string; groups?: string; rank?: string; groupTopK?: string; denseWarmup?: boolean; clusterBiasRate?: string; moeBiasRate?: string; html?: string; json?: boolean }) => {
      if (!(o.preset in PAPER_PRESETS)) throw new Error(`--preset must be one of ${Object.keys(PAPER_PRESETS).join(', ')}, got "${o.preset}"`);
      const seeds = intOption('seeds', o.seeds, 1, 1);
      const steps = o.steps === undefined ? undefined : intOption('steps', o.steps, 1, 1);
      const offloadBudget = o.offloadBudget === undefined ? undefined : intOption('offload-budget', o.offloadBudget, 1, 1);
      // a report that cannot be written fails now, not after the run
      if (o.html) checkWritableFile(o.html, '--html');
      // the tokenizer cache and the clustered model's offload file (written after training) go to the temp directory
      checkWritableDir(os.tmpdir(), 'bench paper: temporary directory (TMPDIR)');
      await setBackend(process.env.MOEKIT_BACKEND || 'wasm');
      const log = (s: string): void => void console.error(s);
      log(`backend ${getBackend().name}`);
      const r = await paperBench({
        preset: o.preset as keyof typeof PAPER_PRESETS, seeds, log,
        ...(steps === undefined ? {} : { steps }), ...(o.wikitext ? { wikitext: o.wikitext } : {}), ...(o.glue ? { glue: o.glue } : {}),
        ...(offloadBudget === undefined ? {} : { offloadBudget }),
        ...(o.groups === undefined ? {} : { clusterGroups: intOption('groups', o.groups, 1, 1) }),
        ...(o.rank === undefined ? {} : { clusterRank: intOption('rank', o.rank, 1, 1) }),
        ...(o.groupTopK === undefined ? {} : { groupTopK: intOption('group-top-k', o.groupTopK, 1, 1) }),
        denseWarmup: o.denseWarmup !== false,
        ...(o.clusterBiasRate === undefined ? {} : { clusterBiasRate: rate('cluster-bias-rate', o.clusterBiasRate) }),
        ...(o.moeBiasRate === undefined ? {} : { moeBiasRate: rate('moe-bias-rate', o.moeBiasRate) }),
      });
      if (!(await finishPaper(r, o))) process.exitCode = 1;
    });
}
