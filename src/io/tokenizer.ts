// Byte-level BPE (GPT-2 style): a hand-written trainer, a Hugging Face tokenizer.json writer, and a loader.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { writeFileAtomicSync } from './atomic.js';

/** GPT-2's pre-tokenizer: contractions, letter runs, digit runs, other runs, whitespace. */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** A trained byte-level BPE model: ids 0.. are specials, then the 256 byte symbols, then one per merge. */
export interface BpeModel {
  /** token string (byte-level alphabet) -> id, dense 0..size-1 */
  vocab: Map<string, number>;
  /** merges in rank order: [left, right], producing left + right */
  merges: Array<[string, string]>;
  /** special tokens, ids 0..specialTokens.length-1 */
  specialTokens: string[];
}

export interface TrainBpeOptions {
  /** total vocabulary size including specials and the 256 byte symbols; an upper bound (training stops early if pairs run out) */
  vocabSize: number;
  /** default ['<|endoftext|>']; never split, never learned from */
  specialTokens?: string[];
  /** a pair must occur at least this many times to be merged (default 2) */
  minFrequency?: number;
}

/** GPT-2's reversible byte -> printable unicode char mapping (bytes_to_unicode). */
export function bytesToUnicode(): string[] {
  const out: string[] = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return out;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Max-heap of (count, pair key); ties go to the smaller key (lexicographically smaller id pair), as in HF's trainer. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size(): number {
    return this.counts.length;
  }
  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!, cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }
  private swap(i: number, j: number): void {
    const c = this.counts[i]!, k = this.keys[i]!;
    this.counts[i] = this.counts[j]!;
    this.keys[i] = this.keys[j]!;
    this.counts[j] = c;
    this.keys[j] = k;
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): { count: number; key: number } {
    const top = { count: this.counts[0]!, key: this.keys[0]! };
    const lastC = this.counts.pop()!, lastK = this.keys.pop()!;
    if (this.counts.length > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < this.counts.length && this.above(l, m)) m = l;
        if (r < this.counts.length && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

const SHIFT = 2 ** 21; // pair key = left * SHIFT + right; ids < 2^21, keys < 2^42 (exact in a double)

/**
 * Trains a byte-level BPE on `texts`. Words are counted once (pre-tokenized with GPT2_PATTERN,
 * special tokens split out first); merges then update pair counts incrementally, touching only the
 * words that contain the merged pair, with a lazy max-heap to pick the most frequent pair.
 */
export function trainBpe(texts: Iterable<string>, opts: TrainBpeOptions): BpeModel {
  const specialTokens = opts.specialTokens ?? ['<|endoftext|>'];
  const minFrequency = opts.minFrequency ?? 2;
  const base = specialTokens.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < base || opts.vocabSize >= SHIFT) {
    throw new Error(
      `trainBpe: vocabSize ${opts.vocabSize} must be an integer in [${base}, ${SHIFT}) (specials + 256 byte symbols at least)`,
    );
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new Error(`trainBpe: minFrequency ${minFrequency} must be an integer >= 1`);
  }
  if (new Set(specialTokens).size !== specialTokens.length) {
    throw new Error(`trainBpe: specialTokens ${JSON.stringify(specialTokens)} contains duplicates`);
  }
  const byteChars = bytesToUnicode();
  const alphabet = [...byteChars].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  const tokens: string[] = [...specialTokens, ...alphabet];
  const byteId = new Int32Array(256);
  for (let b = 0; b < 256; b++) byteId[b] = specialTokens.length + alphabet.indexOf(byteChars[b]!);

  // 1. Count pre-tokenized words (keyed by their raw text).
  const wordCounts = new Map<string, number>();
  const splitter =
    specialTokens.length > 0 ? new RegExp(specialTokens.map(escapeRegex).join('|'), 'g') : null;
  for (const text of texts) {
    const parts = splitter ? text.split(splitter) : [text];
    for (const part of parts) {
      for (const m of part.matchAll(GPT2_PATTERN)) {
        const w = m[0];
        wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
      }
    }
  }

  // 2. Words as symbol-id arrays; initial pair counts and pair -> words index.
  const encoder = new TextEncoder();
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [w, c] of wordCounts) {
    words.push(Array.from(encoder.encode(w), (b) => byteId[b]!));
    freqs.push(c);
  }
  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  for (let wi = 0; wi < words.length; wi++) {
    const s = words[wi]!, f = freqs[wi]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const k = s[i]! * SHIFT + s[i + 1]!;
      pairCount.set(k, (pairCount.get(k) ?? 0) + f);
      let set = where.get(k);
      if (!set) where.set(k, (set = new Set()));
      set.add(wi);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  // 3. Merge loop.
  const merges: Array<[string, string]> = [];
  while (tokens.length < opts.vocabSize && heap.size > 0) {
    const top = heap.pop();
    const actual = pairCount.get(top.key) ?? 0;
    if (actual !== top.count) {
      if (actual > 0) heap.push(actual, top.key); // stale entry: counts only ever decrease
      continue;
    }
    if (actual < minFrequency) break;
    const a = Math.floor(top.key / SHIFT), b = top.key % SHIFT;
    const c = tokens.length;
    tokens.push(tokens[a]! + tokens[b]!);
    merges.push([tokens[a]!, tokens[b]!]);
    const fresh = new Set<number>();
    for (const wi of where.get(top.key)!) {
      const s = words[wi]!, f = freqs[wi]!;
      let found = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) found = true;
      if (!found) continue;
      for (let i = 0; i + 1 < s.length; i++) {
        const k = s[i]! * SHIFT + s[i + 1]!;
        pairCount.set(k, pairCount.get(k)! - f);
      }
      const out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(c);
          i++;
        } else out.push(s[i]!);
      }
      words[wi] = out;
      for (let i = 0; i + 1 < out.length; i++) {
        const k = out[i]! * SHIFT + out[i + 1]!;
        pairCount.set(k, (pairCount.get(k) ?? 0) + f);
        if (out[i] === c || out[i + 1] === c) fresh.add(k);
        let set = where.get(k);
        if (!set) where.set(k, (set = new Set()));
        set.add(wi);
      }
    }
    where.delete(top.key);
    pairCount.delete(top.key);
    for (const k of fresh) {
      const n = pairCount.get(k)!;
      if (n > 0) heap.push(n, k);
    }
  }
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!vocab.has(t)) vocab.set(t, i);
  });
  return { vocab, merges, specialTokens };
}

/** The Hugging Face tokenizer.json object for a trained model (layout of `tokenizers`' ByteLevel BPE). */
export function tokenizerJson(model: BpeModel): Record<string, unknown> {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: model.specialTokens.map((content) => ({
      id: model.vocab.get(content)!,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: { ...byteLevel, add_prefix_space: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(model.vocab),
      merges: model.merges,
    },
  };
}

/** Writes `model` as a Hugging Face tokenizer.json at `path` (atomically: temp file + rename). */
export function saveTokenizerJson(model: BpeModel, path: string): void {
  writeFileAtomicSync(path, JSON.stringify(tokenizerJson(model), null, 2) + '\n');
}

/** A loaded tokenizer: encode never adds special tokens; decode keeps them, does no space clean-up, and maps [] to ''. */
export interface LoadedTokenizer {
  readonly path: string;
  /** largest id in the vocabulary (added tokens included) + 1: the embedding table size */
  readonly vocabSize: number;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** id of a token string (e.g. '<|endoftext|>'), or undefined if it is not in the vocabulary */
  tokenId(token: string): number | undefined;
}

/**
 * Loads any Hugging Face `tokenizer.json` with @huggingface/tokenizers. A `tokenizer_config.json`
 * beside it is used when present.
 */
export function loadTokenizer(path: string): LoadedTokenizer {
  if (!existsSync(path)) throw new Error(`tokenizer: ${path} does not exist (expected a Hugging Face tokenizer.json)`);
  if (/(^|[\\/])tiktoken\.model$|\.tiktoken$/.test(path)) throw new Error(`tokenizer: ${path} is a tiktoken BPE file (Kimi-K2's tokenizer), which moekit does not read (expected a Hugging Face tokenizer.json)`);
  const json = parseJsonFile(path);
  const cfgPath = join(dirname(path), 'tokenizer_config.json');
  const config = existsSync(cfgPath) ? parseJsonFile(cfgPath) : {};
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, config);
  } catch (err) {
    throw new Error(`tokenizer: ${path} is not a tokenizer.json @huggingface/tokenizers can load: ${(err as Error).message}`);
  }
  let maxId = -1;
  for (const id of tok.get_vocab(true).values()) if (id > maxId) maxId = id;
  return {
    path,
    vocabSize: maxId + 1,
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => (ids.length === 0 ? '' : tok.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false })),
    tokenId: (token) => tok.token_to_id(token),
  };
}

/**
 * Why a model directory has no tokenizer moekit can use, in words for an error: no tokenizer.json at all, or a
 * tokenizer moekit does not read (Kimi-K2 ships tiktoken.model with tokenization_kimi.py instead of tokenizer.json).
 */
export function noTokenizerReason(dir: string): string {
  if (existsSync(join(dir, 'tiktoken.model'))) {
    return `${dir} has a tiktoken tokenizer (tiktoken.model, as Kimi-K2 ships) and no tokenizer.json; moekit reads only Hugging Face tokenizer.json files`;
  }
  return `${dir} has no tokenizer.json`;
}

function parseJsonFile(path: string): object {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`tokenizer: ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`tokenizer: ${path}: expected a JSON object`);
  return v;
}
