// moekit tokenizer train: a byte-level BPE from text files (or the Brown training split) to DIR/tokenizer.json.
import { statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadBrown, splitBrown } from '../io/brown.js';
import { readLines } from '../io/lines.js';
import { checkWritableDir, fsErrorWords } from '../io/outputs.js';
import { saveTokenizerJson, trainBpe } from '../io/tokenizer.js';

export const EOT = '<|endoftext|>';

export interface TokenizerTrainSummary {
  out: string;
  vocab_size: number;
  merges: number;
  requested_vocab: number;
  min_frequency: number;
  /** the text files, or "brown:train" for the embedded corpus */
  sources: string[];
  texts: number;
  seconds: number;
}

interface TokenizerTrainCliOptions {
  vocab: string;
  out: string;
  minFrequency: string;
  json?: boolean;
}

function intOption(name: string, v: string, min: number): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

/** Checks every path up front so a typo fails before any training. */
function checkFiles(files: readonly string[]): void {
  for (const f of files) {
    let isFile: boolean;
    try {
      isFile = statSync(f).isFile();
    } catch {
      throw new Error(`tokenizer train: text file "${f}" does not exist`);
    }
    if (!isFile) throw new Error(`tokenizer train: "${f}" is not a file (expected a UTF-8 text file)`);
  }
}

/** The lines of each file in turn (empty lines skipped), counted into `counter.texts`. */
function* fileLines(files: readonly string[], counter: { texts: number }): Generator<string> {
  for (const f of files) {
    for (const line of readLines(f)) {
      if (line.length === 0) continue;
      counter.texts++;
      yield line;
    }
  }
}

/** Trains and writes `out/tokenizer.json`; the library half of the command. */
export function tokenizerTrain(opts: { files: readonly string[]; vocab: number; out: string; minFrequency: number }): TokenizerTrainSummary {
  checkFiles(opts.files);
  const base = 1 + 256;
  if (opts.vocab < base) throw new Error(`--vocab must be at least ${base} (1 special token + 256 byte symbols), got "${opts.vocab}"`);
  checkWritableDir(opts.out, '--out'); // before training: a read-only or full destination fails now
  const started = performance.now();
  const counter = { texts: 0 };
  let texts: Iterable<string>;
  if (opts.files.length > 0) texts = fileLines(opts.files, counter);
  else {
    const docs = splitBrown(loadBrown()).train.map((d) => d.text);
    counter.texts = docs.length;
    texts = docs;
  }
  const model = trainBpe(texts, { vocabSize: opts.vocab, specialTokens: [EOT], minFrequency: opts.minFrequency });
  const out = path.join(opts.out, 'tokenizer.json');
  try {
    saveTokenizerJson(model, out);
  } catch (e) {
    throw new Error(`tokenizer train: --out ${opts.out}: could not write tokenizer.json (${fsErrorWords(e)}) after training ${model.merges.length} merges`);
  }
  return {
    out,
    vocab_size: model.vocab.size,
    merges: model.merges.length,
    requested_vocab: opts.vocab,
    min_frequency: opts.minFrequency,
    sources: opts.files.length > 0 ? [...opts.files] : ['brown:train'],
    texts: counter.texts,
    seconds: (performance.now() - started) / 1000,
  };
}

export function registerTokenizer(program: Command): void {
  const tok = program.command('tokenizer').description('tokenizer tools');
  tok
    .command('train')
    .description('train a byte-level BPE on text files (line by line), or on the Brown training split when no files are given')
    .argument('[files...]', 'UTF-8 text files (default: the embedded Brown corpus, training split)')
    .requiredOption('--vocab <n>', 'vocabulary size: <|endoftext|> + 256 byte symbols + merges')
    .requiredOption('--out <dir>', 'output directory for tokenizer.json')
    .option('--min-frequency <n>', 'a pair must occur this often to be merged', '2')
    .option('--json', 'print one JSON object')
    .action((files: string[], o: TokenizerTrainCliOptions) => {
      const vocab = intOption('vocab', o.vocab, 1);
      const minFrequency = intOption('min-frequency', o.minFrequency, 1);
      if (!o.json) console.error(`moekit tokenizer train: vocab ${vocab} on ${files.length > 0 ? files.join(', ') : 'the Brown training split'}`);
      const r = tokenizerTrain({ files, vocab, out: o.out, minFrequency });
      if (o.json) console.log(JSON.stringify(r));
      else {
        console.log(`wrote ${r.out}`);
        console.log(`vocab ${r.vocab_size} (requested ${r.requested_vocab}): 1 special + 256 bytes + ${r.merges} merges`);
        if (r.vocab_size < r.requested_vocab) console.log(`stopped early: no pair left occurring at least ${r.min_frequency} times`);
        console.log(`${r.texts} texts in ${r.seconds.toFixed(2)} s`);
      }
    });
}
