// Token streams for training and evaluation: Brown documents (or any texts) encoded and joined by end-of-text.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadBrown, splitBrown, type BrownDoc } from '../io/brown.js';
import { loadTokenizer, saveTokenizerJson, trainBpe, type LoadedTokenizer } from '../io/tokenizer.js';

export const EOT = '<|endoftext|>';

/** Encodes texts and joins them with the end-of-text id (also after the last one). */
export function encodeTexts(tok: LoadedTokenizer, texts: Iterable<string>): Int32Array {
  const eot = tok.tokenId(EOT);
  if (eot === undefined) throw new Error(`corpus: tokenizer ${tok.path} has no "${EOT}" token`);
  const parts: number[][] = [];
  let n = 0;
  for (const t of texts) {
    const ids = tok.encode(t);
    parts.push(ids);
    n += ids.length + 1;
  }
  const out = new Int32Array(n);
  let at = 0;
  for (const ids of parts) {
    out.set(ids, at);
    at += ids.length;
    out[at++] = eot;
  }
  return out;
}

export interface BrownCorpus {
  tokenizer: LoadedTokenizer;
  train: Int32Array;
  valid: Int32Array;
  test: Int32Array;
  docs: { train: BrownDoc[]; valid: BrownDoc[]; test: BrownDoc[] };
}

/** The tokenizer holds more ids than the model's embedding table. */
export class VocabMismatchError extends Error {
  constructor(readonly tokenizerPath: string, readonly tokenizerVocab: number, readonly modelVocab: number) {
    super(`corpus: tokenizer ${tokenizerPath} has ${tokenizerVocab} ids but the model's vocabulary is ${modelVocab} (expected at most ${modelVocab} ids)`);
  }
}

/**
 * The embedded default corpus, tokenized: the deterministic Brown split, a byte-level BPE of `vocabSize`
 * trained on the training documents (saved to `tokenizerPath`) unless that file already exists, and the
 * three splits as token streams. `maxDocs` keeps only the first documents of each split (by id) for quick runs.
 * `tokenizerPath` null: the tokenizer is trained and used but not kept (a private temp file, removed before returning).
 */
export function brownCorpus(opts: { vocabSize: number; tokenizerPath: string | null; maxDocs?: number }): BrownCorpus {
  const split = splitBrown(loadBrown());
  const cap = <T>(docs: T[]): T[] => (opts.maxDocs ? docs.slice(0, opts.maxDocs) : docs);
  const docs = { train: cap(split.train), valid: cap(split.valid), test: cap(split.test) };
  const scratch = opts.tokenizerPath === null ? mkdtempSync(path.join(os.tmpdir(), 'moekit-tok-')) : null;
  try {
    const tokPath = opts.tokenizerPath ?? path.join(scratch!, 'tokenizer.json');
    if (!existsSync(tokPath)) {
      const model = trainBpe(docs.train.map((d) => d.text), { vocabSize: opts.vocabSize, specialTokens: [EOT] });
      saveTokenizerJson(model, tokPath);
    }
    const tokenizer = loadTokenizer(tokPath);
    if (tokenizer.vocabSize > opts.vocabSize) throw new VocabMismatchError(path.resolve(tokPath), tokenizer.vocabSize, opts.vocabSize);
    return {
      tokenizer,
      train: encodeTexts(tokenizer, docs.train.map((d) => d.text)),
      valid: encodeTexts(tokenizer, docs.valid.map((d) => d.text)),
      test: encodeTexts(tokenizer, docs.test.map((d) => d.text)),
      docs,
    };
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}
