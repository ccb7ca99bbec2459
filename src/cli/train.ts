// moekit train: trains an MoE (or dense) language model on the Brown corpus and reports per-step metrics.
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import type { Command } from 'commander';
import { PRESETS, denseBaseline, parseConfig, type ModelConfig, type PresetName } from '../models/config.js';
import { setBackend } from '../tensor/engine.js';
import { brownCorpus } from '../train/corpus.js';
import { train } from '../train/loop.js';
import { intOption, numOption } from './args.js';
import { createProgress } from './progress.js';

/** Per-preset run lengths (the model sizes live in the presets): tiny is for CI, small is the main job. */
export const RUN_DEFAULTS: { [P in PresetName]: { steps: number; batch: number; seqLen: number; lr: number; maxDocs?: number } } = {
  tiny: { steps: 60, batch: 8, seqLen: 32, lr: 1e-2, maxDocs: 40 },
  small: { steps: 400, batch: 8, seqLen: 128, lr: 3e-3 },
  base: { steps: 20000, batch: 16, seqLen: 512, lr: 1e-3 },
};

/** The preset, overridden by --config's JSON, then --clustered / --dense. */
function modelConfig(preset: ModelConfig, o: TrainCliOptions): ModelConfig {
  let overrides: Record<string, unknown> = {};
  if (o.config) {
    let text: string;
    try {
      text = readFileSync(o.config, 'utf8');
    } catch (e) {
      throw new Error(`--config ${o.config}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    try {
      overrides = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`--config ${o.config}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides)) throw new Error(`--config ${o.config}: expected a JSON object of config keys`);
  }
  const cfg = parseConfig({ ...preset, ...overrides, ...(o.clustered ? { ffn: 'clustered' } : {}) });
  return o.dense ? denseBaseline(cfg) : cfg;
}

interface TrainCliOptions {
  preset: string;
  config?: string;
  clustered?: boolean;
  steps?: string;
  batch?: string;
  seqLen?: string;
  lr?: string;
  seed: string;
  out?: string;
  resume?: boolean;
  json?: boolean;
  dense?: boolean;
  backend: string;
  docs?: string;
  tokenizer?: string;
  checkpointEvery: string;
  logEvery?: string;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train an MoE language model on the embedded Brown corpus (metrics per step, checkpoints, resume)')
    .option('--preset <name>', 'model size: tiny | small | base', 'small')
    .option('--steps <n>', 'optimizer steps (default by preset)')
    .option('--batch <n>', 'sequences per step')
    .option('--seq-len <n>', 'tokens per sequence')
    .option('--lr <x>', 'peak learning rate')
    .option('--seed <n>', 'batch sampling seed', '0')
    .option('--out <dir>', 'output directory: metrics.jsonl, tokenizer.json, checkpoints/')
    .option('--resume', 'continue from the latest checkpoint in --out')
    .option('--config <file>', 'JSON object of model config keys overriding the preset (e.g. {"experts": 16, "clusterRank": 8})')
    .option('--clustered', 'clustered experts (shared bases + low-rank residuals, two-stage routing, regrouping): ffn "clustered"')
    .option('--dense', 'train the FLOP-matched dense baseline instead of the MoE')
    .option('--json', 'one JSON line per logged step and a final summary line')
    .option('--backend <name>', 'js | wasm | webgpu', 'wasm')
    .option('--docs <n>', 'use only the first n Brown documents of each split')
    .option('--tokenizer <file>', 'an existing tokenizer.json (default: train one into --out)')
    .option('--checkpoint-every <n>', 'steps between checkpoints (0: only at the end)', '0')
    .option('--log-every <n>', 'steps between printed lines (default: every step with --json, every 10th otherwise)')
    .action(async (o: TrainCliOptions) => {
      if (!(o.preset in PRESETS)) throw new Error(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got "${o.preset}"`);
      const preset = o.preset as PresetName;
      const d = RUN_DEFAULTS[preset];
      if (o.dense && o.clustered) throw new Error('--dense and --clustered exclude each other');
      const config = modelConfig(PRESETS[preset], o);
      const steps = intOption('steps', o.steps, d.steps);
      const batch = intOption('batch', o.batch, d.batch);
      const seqLen = intOption('seq-len', o.seqLen, d.seqLen);
      const lr = numOption('lr', o.lr, d.lr);
      const seed = intOption('seed', o.seed, 0);
      const logEvery = Math.max(1, intOption('log-every', o.logEvery, o.json ? 1 : 10));
      if (o.resume && !o.out) throw new Error('--resume needs --out (the directory holding checkpoints/)');
      await setBackend(o.backend);
      const out = o.out ?? path.join(os.tmpdir(), `moekit-train-${process.pid}`);
      mkdirSync(out, { recursive: true });
      const maxDocs = o.docs !== undefined ? intOption('docs', o.docs, 0) : d.maxDocs;
      const corpus = brownCorpus({ vocabSize: config.vocabSize, tokenizerPath: o.tokenizer ?? path.join(out, 'tokenizer.json'), ...(maxDocs ? { maxDocs } : {}) });
      if (!o.json) console.error(`moekit train: ${preset}${o.dense ? ' (dense baseline)' : config.ffn === 'clustered' ? ' (clustered experts)' : ''}, ${corpus.train.length} training tokens, ${steps} steps of ${batch}×${seqLen}, backend ${o.backend}, output ${out}`);
      const progress = createProgress({ total: steps, unit: 'step', json: o.json ?? false, label: 'train' });
      let seen = 0;
      const r = await train({
        config, tokens: corpus.train, steps, batch, seqLen, lr, seed, out: o.out ?? null, resume: o.resume ?? false,
        checkpointEvery: intOption('checkpoint-every', o.checkpointEvery, 0),
        onStep: (m) => {
          seen += m.tokens;
          progress.update(m.step, { tokens: seen, loss: m.ce });
          if (m.step % logEvery !== 0 && m.step !== steps) return;
          if (o.json) console.log(JSON.stringify(m));
          else console.log(`step ${m.step}/${steps}  loss ${m.loss.toFixed(4)}  ce ${m.ce.toFixed(4)}  lr ${m.lr.toExponential(2)}  ${Math.round(m.tokens_per_s)} tok/s  imbalance ${m.imbalance.map((x) => x.toFixed(2)).join(' ')}`);
        },
      });
      progress.stop();
      const first = r.metrics[0];
      const last = r.metrics.at(-1);
      const counts = r.model.paramCounts();
      const summary = {
        summary: true, preset, dense: o.dense ?? false, ffn: config.ffn, regroups: r.regroups.length, steps, start_step: r.startStep, seconds: r.seconds,
        first_loss: first?.ce ?? null, final_loss: last?.ce ?? null,
        tokens_per_s: r.metrics.length ? r.metrics.reduce((a, m) => a + m.tokens, 0) / r.seconds : null,
        params_total: counts.total, params_expert: counts.expert, params_active: counts.active, out: o.out ?? null,
      };
      if (o.json) console.log(JSON.stringify(summary));
      else console.log(`done: ce ${summary.first_loss?.toFixed(4)} → ${summary.final_loss?.toFixed(4)} in ${r.seconds.toFixed(1)} s; params ${counts.total} (active ${counts.active})`);
    });
}
