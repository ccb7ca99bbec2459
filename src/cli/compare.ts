// moekit compare (the main job, `npm start`): trains an MoE LM and its FLOP-matched dense baseline on Brown
// with the same tokens, then compares validation perplexity, parameters, speed and expert load.
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { perplexity, unigramPerplexity } from '../eval/perplexity.js';
import { PRESETS, denseBaseline, type ModelConfig, type PresetName } from '../models/config.js';
import { setBackend } from '../backend/registry.js';
import { getBackend } from '../tensor/engine.js';
import { brownCorpus } from '../train/corpus.js';
import { train, type StepMetrics } from '../train/loop.js';
import { intOption } from './args.js';
import { RUN_DEFAULTS } from './train.js';

export interface CompareRow {
  model: string;
  valid_ppl: number;
  params_total: number;
  params_active: number;
  train_tokens_per_s: number;
  /** mean over MoE layers and the last 20% of steps (null for dense) */
  load_variance: number | null;
  imbalance: number | null;
  final_train_ce: number;
  seconds: number;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

function loadSummary(metrics: StepMetrics[]): { variance: number | null; imbalance: number | null } {
  const tail = metrics.slice(Math.floor(metrics.length * 0.8));
  if (tail.length === 0 || tail[0]!.load_variance.length === 0) return { variance: null, imbalance: null };
  return { variance: mean(tail.map((m) => mean(m.load_variance))), imbalance: mean(tail.map((m) => mean(m.imbalance))) };
}

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description('the main job: train the MoE preset and its FLOP-matched dense baseline on Brown and compare them')
    .option('--preset <name>', 'tiny | small | fine | base', 'small')
    .option('--steps <n>', 'optimizer steps per model (default by preset)')
    .option('--eval-tokens <n>', 'validation tokens scored', '40000')
    .option('--json', 'print one JSON object')
    .action(async (o: { preset: string; steps?: string; evalTokens: string; json?: boolean }) => {
      if (!(o.preset in PRESETS)) throw new Error(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got "${o.preset}"`);
      const preset = o.preset as PresetName;
      const d = RUN_DEFAULTS[preset];
      const steps = intOption('steps', o.steps, d.steps, 1);
      const evalTokens = intOption('eval-tokens', o.evalTokens, 40000, 2);
      await setBackend(process.env.MOEKIT_BACKEND || 'wasm');
      const moe = PRESETS[preset];
      // the tokenizer is cached between runs: in MOEKIT_CACHE_DIR when set, else the system temp directory
      const tokPath = path.join(process.env.MOEKIT_CACHE_DIR || os.tmpdir(), `moekit-compare-${preset}-${moe.vocabSize}-${d.maxDocs ?? 'all'}.tokenizer.json`);
      const corpus = brownCorpus({ vocabSize: moe.vocabSize, tokenizerPath: tokPath, ...(d.maxDocs ? { maxDocs: d.maxDocs } : {}) });
      const valid = corpus.valid.subarray(0, Math.min(evalTokens, corpus.valid.length));
      const log = (s: string): void => {
        if (!o.json) console.error(s);
      };
      log(`moekit compare: preset ${preset}, Brown ${corpus.train.length} training / ${valid.length} validation tokens, ${steps} steps of ${d.batch}×${d.seqLen}, backend ${getBackend().name}`);
      const rows: CompareRow[] = [];
      for (const [name, config] of [['moe', moe], ['dense', denseBaseline(moe)]] as [string, ModelConfig][]) {
        const r = await train({
          config, tokens: corpus.train, steps, batch: d.batch, seqLen: d.seqLen, lr: d.lr, out: null,
          onStep: (m) => {
            if (m.step % Math.max(1, Math.floor(steps / 10)) === 0) log(`  ${name} step ${m.step}/${steps}  ce ${m.ce.toFixed(3)}  ${Math.round(m.tokens_per_s)} tok/s`);
          },
        });
        const ppl = perplexity(r.model, valid, { window: d.seqLen, stride: Math.max(1, d.seqLen / 2), batch: 8 });
        const counts = r.model.paramCounts();
        const load = loadSummary(r.metrics);
        rows.push({
          model: name, valid_ppl: ppl.ppl, params_total: counts.total, params_active: counts.active,
          train_tokens_per_s: r.metrics.reduce((a, m) => a + m.tokens, 0) / r.seconds,
          load_variance: load.variance, imbalance: load.imbalance, final_train_ce: r.metrics.at(-1)!.ce, seconds: r.seconds,
        });
        r.model.dispose();
      }
      const unigram = unigramPerplexity(corpus.train, valid, moe.vocabSize).ppl;
      if (o.json) {
        console.log(JSON.stringify({ preset, steps, unigram_ppl: unigram, models: Object.fromEntries(rows.map((r) => [r.model, r])) }));
        return;
      }
      const fmt = (v: number | null, digits = 2): string => (v === null ? '—' : v.toFixed(digits));
      console.log(`\n| model | valid ppl | params | active params | train tok/s | load variance | max/mean load |`);
      console.log(`|---|---|---|---|---|---|---|`);
      for (const r of rows) {
        console.log(`| ${r.model} | ${fmt(r.valid_ppl)} | ${r.params_total} | ${r.params_active} | ${Math.round(r.train_tokens_per_s)} | ${r.load_variance === null ? '—' : r.load_variance.toExponential(2)} | ${fmt(r.imbalance)} |`);
      }
      console.log(`| unigram baseline | ${fmt(unigram)} | | | | | |`);
    });
}
