// moekit eval: perplexity of a trained checkpoint (sliding window) on Brown's validation/test split or a text file.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { perplexity, unigramPerplexity } from '../eval/perplexity.js';
import { loadBrown, splitBrown } from '../io/brown.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { loadModelDir } from '../models/dir.js';
import { parseConfig } from '../models/config.js';
import { MoELM } from '../models/moe-lm.js';
import { setBackend } from '../backend/registry.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { encodeTexts } from '../train/corpus.js';
import { LOAD_DTYPE_HELP, intOption, loadDtypeOption } from './args.js';
import { resolveCheckpoint } from './info.js';

interface EvalCliOptions {
  split: string;
  text?: string;
  tokenizer?: string;
  window?: string;
  stride?: string;
  maxTokens: string;
  backend: string;
  json?: boolean;
  loadDtype?: string;
}

/** The tokenizer a run was trained with: --tokenizer, else tokenizer.json in the run directory above the checkpoint. */
function findTokenizer(run: string, ckpt: string, given?: string): string {
  const candidates = given ? [given] : [path.join(run, 'tokenizer.json'), path.join(ckpt, '..', '..', 'tokenizer.json'), path.join(ckpt, '..', 'tokenizer.json')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`eval: no tokenizer.json found (looked at ${candidates.join(', ')}); pass --tokenizer`);
  return found;
}

/** Perplexity of a model directory (Hugging Face or moekit) and, for a compressed one, of the model it came from. */
async function evalModelDir(dir: string, o: EvalCliOptions): Promise<void> {
  await setBackend(o.backend);
  const m = await loadModelDir(dir, { loadDtype: loadDtypeOption(o.loadDtype) });
  const tok = o.tokenizer ? loadTokenizer(o.tokenizer) : m.tokenizer;
  if (!tok) throw new Error(`eval: ${dir} has no tokenizer.json; pass --tokenizer`);
  let ids: Int32Array;
  if (o.text) {
    if (!existsSync(o.text)) throw new Error(`eval: text file ${o.text} does not exist`);
    ids = encodeTexts(tok, [readFileSync(o.text, 'utf8')]);
  } else ids = encodeTexts(tok, splitBrown(loadBrown())[o.split as 'valid' | 'test'].map((d) => d.text));
  const bad = ids.find((id) => id >= m.config.vocabSize);
  if (bad !== undefined) throw new Error(`eval: the tokenizer produced id ${bad}, outside the model's vocabulary of ${m.config.vocabSize}`);
  const window = intOption('window', o.window, Math.min(m.config.maxSeqLen, 512), 1);
  const stride = intOption('stride', o.stride, Math.max(1, Math.floor(window / 2)), 1);
  const scored = ids.subarray(0, Math.min(intOption('max-tokens', o.maxTokens, 40000, 1), ids.length));
  const r = perplexity(m.model, scored, { window, stride, batch: 8 });
  const data = o.text ?? `brown:${o.split}`;
  const source = (m.info.source as { dir?: string } | undefined)?.dir;
  let original: { dir: string; ppl: number; nll: number } | null = null;
  if (m.kind === 'moekit' && source && existsSync(source)) {
    const src = await loadModelDir(source, { loadDtype: loadDtypeOption(o.loadDtype) });
    const ro = perplexity(src.model, scored, { window, stride, batch: 8 });
    original = { dir: source, ppl: ro.ppl, nll: ro.nll };
    src.model.dispose();
  }
  const result = { model: dir, data, window, stride, tokens: r.tokens, nll: r.nll, ppl: r.ppl, original };
  if (o.json) console.log(JSON.stringify(result));
  else {
    console.log(`${dir} on ${data}: perplexity ${r.ppl.toFixed(3)} (nll ${r.nll.toFixed(4)} nats/token over ${r.tokens} tokens; window ${window}, stride ${stride})`);
    if (original) console.log(`original ${original.dir}: perplexity ${original.ppl.toFixed(3)} (${((r.ppl / original.ppl - 1) * 100).toFixed(2)}% change)`);
  }
  m.model.dispose();
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('perplexity of a trained model (sliding window) on Brown valid/test or a text file')
    .argument('<run>', 'a training output directory, a checkpoint directory, a step-N directory, or a model directory (Hugging Face or moekit)')
    .option('--split <name>', 'Brown split: valid | test', 'valid')
    .option('--text <file>', 'evaluate on this UTF-8 text file instead of Brown')
    .option('--tokenizer <file>', 'tokenizer.json (default: the one saved with the run)')
    .option('--window <n>', 'tokens per window (default: the model maxSeqLen)')
    .option('--stride <n>', 'window advance (default: window / 2)')
    .option('--max-tokens <n>', 'score at most this many tokens', '40000')
    .option('--load-dtype <d>', LOAD_DTYPE_HELP, 'auto')
    .option('--backend <name>', 'js | wasm', 'wasm')
    .option('--json', 'print one JSON object')
    .action(async (run: string, o: EvalCliOptions) => {
      if (o.split !== 'valid' && o.split !== 'test') throw new Error(`--split must be valid or test, got "${o.split}"`);
      if (existsSync(path.join(run, 'moekit.json')) || existsSync(path.join(run, 'config.json'))) {
        await evalModelDir(run, o);
        return;
      }
      const ckpt = resolveCheckpoint(run);
      const state = JSON.parse(readFileSync(path.join(ckpt, 'state.json'), 'utf8')) as { step: number; config?: unknown };
      if (!state.config) throw new Error(`eval: ${path.join(ckpt, 'state.json')} has no "config"`);
      const config = parseConfig(state.config);
      const window = intOption('window', o.window, config.maxSeqLen, 1);
      const stride = intOption('stride', o.stride, Math.max(1, Math.floor(window / 2)), 1);
      const maxTokens = intOption('max-tokens', o.maxTokens, 40000, 1);
      await setBackend(o.backend);
      const model = new MoELM(config);
      const buffers = model.selectionBiasBuffers();
      await loadCheckpoint(ckpt, [...model.parameters(), ...buffers], null);
      const tok = loadTokenizer(findTokenizer(run, ckpt, o.tokenizer));
      let ids: Int32Array;
      let unigram: number | null = null;
      if (o.text) {
        if (!existsSync(o.text)) throw new Error(`eval: text file ${o.text} does not exist`);
        ids = encodeTexts(tok, [readFileSync(o.text, 'utf8')]);
      } else {
        const split = splitBrown(loadBrown());
        ids = encodeTexts(tok, split[o.split].map((d) => d.text));
        unigram = unigramPerplexity(encodeTexts(tok, split.train.map((d) => d.text)), ids.subarray(0, maxTokens), config.vocabSize).ppl;
      }
      const scored = ids.subarray(0, Math.min(maxTokens, ids.length));
      const r = perplexity(model, scored, { window, stride, batch: 8 });
      const result = { checkpoint: ckpt, step: state.step, data: o.text ?? `brown:${o.split}`, window, stride, tokens: r.tokens, nll: r.nll, ppl: r.ppl, unigram_ppl: unigram };
      if (o.json) console.log(JSON.stringify(result));
      else {
        console.log(`${result.data}: perplexity ${r.ppl.toFixed(2)} (nll ${r.nll.toFixed(4)} nats/token over ${r.tokens} tokens; window ${window}, stride ${stride}) at step ${state.step}`);
        if (unigram !== null) console.log(`unigram baseline (add-one, Brown train): ${unigram.toFixed(2)}`);
      }
      model.dispose();
    });
}
