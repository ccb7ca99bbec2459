// moekit train: trains an MoE (or dense) language model on the Brown corpus and reports per-step metrics.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomicSync } from '../io/atomic.js';
import { checkWritableDir } from '../io/outputs.js';
import { PRESETS, denseBaseline, parseConfig, type ModelConfig, type PresetName } from '../models/config.js';
import { setBackend } from '../backend/registry.js';
import { brownCorpus, VocabMismatchError, type BrownCorpus } from '../train/corpus.js';
import { train } from '../train/loop.js';
import { describeRun, hashFile, moveAside, occupiedError } from '../train/rundir.js';
import { intOption, numOption } from './args.js';
import { createProgress } from './progress.js';

/** Per-preset run lengths (the model sizes live in the presets): tiny is for CI, small is the main job. */
export const RUN_DEFAULTS: { [P in PresetName]: { steps: number; batch: number; seqLen: number; lr: number; maxDocs?: number } } = {
  tiny: { steps: 60, batch: 8, seqLen: 32, lr: 1e-2, maxDocs: 40 },
  small: { steps: 400, batch: 8, seqLen: 128, lr: 3e-3 },
  fine: { steps: 400, batch: 8, seqLen: 128, lr: 3e-3 },
  base: { steps: 20000, batch: 16, seqLen: 512, lr: 1e-3 },
};

/** --config's value: an inline JSON object (starts with "{") or the path of a JSON file holding one. */
export function configOverrides(arg: string): Record<string, unknown> {
  const inline = arg.trimStart().startsWith('{');
  const what = `--config ${arg}`;
  let text = arg;
  if (!inline) {
    try {
      text = readFileSync(arg, 'utf8');
    } catch (e) {
      throw new Error(`${what}: cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)}); expected a JSON file or an inline object such as '{"experts": 16}'`);
    }
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${what}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: expected a JSON object of config keys, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`);
  return v as Record<string, unknown>;
}

/** The preset, overridden by --config's JSON, then --clustered / --dense. */
function modelConfig(preset: ModelConfig, o: TrainCliOptions): ModelConfig {
  const overrides = o.config ? configOverrides(o.config) : {};
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
  overwrite?: boolean;
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
    .option('--preset <name>', 'model size: tiny | small | fine (small with 64 experts of width 32, top-8) | base', 'small')
    .option('--steps <n>', 'optimizer steps (default by preset); with --resume, the total to reach')
    .option('--batch <n>', 'sequences per step')
    .option('--seq-len <n>', 'tokens per sequence')
    .option('--lr <x>', 'peak learning rate')
    .option('--seed <n>', 'batch sampling seed', '0')
    .option('--out <dir>', 'run directory: metrics.jsonl, tokenizer.json, checkpoints/ (without it nothing is kept)')
    .option('--resume', 'continue the run in --out from its latest checkpoint (same config, batch, seq-len, seed and data)')
    .option('--overwrite', 'when --out already holds a run, move it aside to <out>.old-<timestamp> and start afresh')
    .option('--config <json|file>', 'model config keys overriding the preset: inline JSON (\'{"experts": 16, "clusterRank": 8}\') or a JSON file')
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
      if (o.resume && o.overwrite) throw new Error('--resume and --overwrite exclude each other (continue the run in --out, or move it aside)');
      if (o.resume && !o.out) throw new Error('--resume needs --out (the directory holding checkpoints/)');
      if (o.overwrite && !o.out) throw new Error('--overwrite needs --out (the directory whose run is moved aside)');
      // every flag is checked before anything is read or written
      const config = modelConfig(PRESETS[preset], o);
      const steps = intOption('steps', o.steps, d.steps, 1);
      const batch = intOption('batch', o.batch, d.batch, 1);
      const seqLen = intOption('seq-len', o.seqLen, d.seqLen, 1);
      if (seqLen > config.maxSeqLen) throw new Error(`--seq-len ${seqLen} exceeds the model's maxSeqLen ${config.maxSeqLen}`);
      const lr = numOption('lr', o.lr, d.lr);
      const seed = intOption('seed', o.seed, 0);
      const checkpointEvery = intOption('checkpoint-every', o.checkpointEvery, 0);
      const logEvery = Math.max(1, intOption('log-every', o.logEvery, o.json ? 1 : 10));
      const maxDocs = o.docs !== undefined ? intOption('docs', o.docs, 0, 1) : d.maxDocs;
      let tokenizerPath = o.tokenizer ?? (o.out ? path.join(o.out, 'tokenizer.json') : null);
      const note = (s: string): void => console.error(`moekit train: ${s}`);
      if (o.out) {
        if (o.resume && !existsSync(o.out)) throw new Error(`--resume: ${o.out} does not exist (expected the run directory holding checkpoints/)`);
        checkWritableDir(o.out, '--out');
        const held = describeRun(o.out);
        if (o.resume) {
          const at = held.latestStep;
          if (at === null) throw new Error(`--resume: ${path.join(o.out, 'checkpoints')} holds no checkpoint (${o.out}: ${held.summary}); start without --resume${held.isRun ? ' and with --overwrite' : ''}`);
          if (steps < at) throw new Error(`--steps ${steps} is below the step of ${o.out}'s latest checkpoint, ${at}: --steps is the total to reach, so pass more than ${at} to continue (or --out elsewhere for a shorter run)`);
          if (steps === at) {
            note(`${o.out} is already at step ${at} (--steps ${steps}): nothing to do; pass a larger --steps to train on`);
            if (o.json) console.log(JSON.stringify({ summary: true, up_to_date: true, preset, steps, start_step: at, out: o.out }));
            return;
          }
        } else if (held.isRun) {
          if (!o.overwrite) throw occupiedError(o.out, held);
          const old = path.resolve(o.out);
          const moved = moveAside(o.out);
          mkdirSync(o.out, { recursive: true });
          note(`${o.out} held a run (${held.summary}); moved it to ${moved} (nothing deleted)`);
          // a --tokenizer inside the old run moved with it
          if (o.tokenizer && !path.relative(old, path.resolve(o.tokenizer)).startsWith('..')) tokenizerPath = path.join(moved, path.relative(old, path.resolve(o.tokenizer)));
          else if (!o.tokenizer) tokenizerPath = path.join(o.out, 'tokenizer.json');
        }
      }
      await setBackend(o.backend);
      let corpus: BrownCorpus;
      try {
        corpus = brownCorpus({ vocabSize: config.vocabSize, tokenizerPath, ...(maxDocs ? { maxDocs } : {}) });
      } catch (e) {
        if (!(e instanceof VocabMismatchError)) throw e;
        throw new Error(`${e.message}; pass --config '{"vocabSize": ${e.tokenizerVocab}}' (or larger) to fit this tokenizer, or another --tokenizer${o.tokenizer ? '' : ' (or an --out without tokenizer.json, which trains a new one)'}`);
      }
      // the run is a model directory: its tokenizer lives in it, also one given with --tokenizer
      if (o.out && tokenizerPath) {
        const inRun = path.join(o.out, 'tokenizer.json');
        if (path.resolve(tokenizerPath) !== path.resolve(inRun) && !(o.resume && existsSync(inRun))) writeFileAtomicSync(inRun, readFileSync(tokenizerPath));
      }
      const data = { corpus: 'brown', docs: maxDocs ?? null, ...(tokenizerPath ? { tokenizer: hashFile(tokenizerPath) } : {}) };
      const where = o.out ?? 'none (no --out: metrics, checkpoints and the tokenizer are not kept)';
      if (!o.json) note(`${preset}${o.dense ? ' (dense baseline)' : config.ffn === 'clustered' ? ' (clustered experts)' : ''}, ${corpus.train.length} training tokens, ${steps} steps of ${batch}×${seqLen}, backend ${o.backend}, output ${where}`);
      const progress = createProgress({ total: steps, unit: 'step', json: o.json ?? false, label: 'train' });
      let seen = 0;
      const r = await train({
        config, tokens: corpus.train, steps, batch, seqLen, lr, seed, out: o.out ?? null, resume: o.resume ?? false, overwrite: o.overwrite ?? false, data, checkpointEvery,
        onWarning: (msg) => console.error(`moekit train: warning: ${msg}`),
        onStep: (m) => {
          seen += m.tokens;
          progress.update(m.step, { tokens: seen, loss: m.ce });
          if (m.step % logEvery !== 0 && m.step !== steps) return;
          if (o.json) console.log(JSON.stringify(m));
          else console.log(`step ${m.step}/${steps}  loss ${m.loss.toFixed(4)}  ce ${m.ce.toFixed(4)}  lr ${m.lr.toExponential(2)}  ${Math.round(m.tokens_per_s)} tok/s  imbalance ${m.imbalance.map((x) => x.toFixed(2)).join(' ')}`);
        },
      }).finally(() => progress.stop());
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
      else if (first && last) console.log(`done: ce ${first.ce.toFixed(4)} → ${last.ce.toFixed(4)} in ${r.seconds.toFixed(1)} s; params ${counts.total} (active ${counts.active})${o.out ? `; run in ${o.out}` : '; nothing kept (no --out)'}`);
      else console.log(`done: nothing to train (already at step ${r.startStep})`);
    });
}
