// Brown corpus tests: loader (tags stripped, plain text), genre names vs CONTENTS, split, genre task.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BROWN_GENRES,
  brownDir,
  brownGenreTask,
  detokenize,
  loadBrown,
  splitBrown,
  stripTag,
  type BrownDoc,
} from '../../src/io/brown.js';

let docs: BrownDoc[];
beforeAll(() => {
  docs = loadBrown();
});

describe('loadBrown', () => {
  it('reads 500 documents in 15 genres', () => {
    expect(docs.length).toBe(500);
    expect(new Set(docs.map((d) => d.genre)).size).toBe(15);
    expect(docs[0]!.id).toBe('ca01');
    expect(docs[499]!.id).toBe('cr09');
    expect(docs.filter((d) => d.genre === 'j').length).toBe(80);
  });

  it('restores ca01 as plain text', () => {
    expect(docs[0]!.genreName).toBe('press: reportage');
    expect(docs[0]!.text.startsWith(
      'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.\n\nThe jury further said in term-end presentments that the City Executive Committee, which had over-all charge of the election, "deserves the praise and thanks of the City of Atlanta" for the manner',
    )).toBe(true);
  });

  it('leaves no tags, no Brown quote tokens and no space before punctuation', () => {
    const all = docs.map((d) => d.text).join('\n');
    expect(all).not.toMatch(/\w\/(at|nn|np|nns|vbd|jj|cc)(-tl|-hl)?(\s|$)/m);
    expect(all).not.toContain('``');
    expect(all).not.toMatch(/(^|\s)''(\s|$)/m); // 12'' (inches) is a word, '' alone a quote token
    expect(all).not.toMatch(/\w [.,;:?!)](\s|$)/m);
    expect(all.split(/\s+/).length).toBeGreaterThan(900_000);
  });

  it('strips only the last /tag of a token', () => {
    expect(stripTag('and/or/cc')).toBe('and/or');
    expect(stripTag('1/2/cd')).toBe('1/2');
    expect(stripTag('//in')).toBe('/');
    expect(stripTag("Georgia's/np$")).toBe("Georgia's");
    expect(stripTag('did/dod*')).toBe('did');
    expect(detokenize(['He', 'said', '(', 'quietly', ')', '``', 'no', "''", '.'])).toBe('He said (quietly) "no".');
  });

  it('names the genres as the package CONTENTS does', () => {
    const contents = readFileSync(join(brownDir(), 'CONTENTS'), 'latin1');
    for (const g of BROWN_GENRES) {
      const re = new RegExp(`^${g.letter.toUpperCase()}[.:] (.*)$`, 'm');
      expect(re.exec(contents)?.[1]?.trim().toLowerCase()).toBe(g.name);
    }
  });

  it('names the directory and the missing file when the corpus is absent', () => {
    expect(() => loadBrown('/no/such/dir')).toThrow('brown: /no/such/dir has no file ca01');
  });
});

describe('splitBrown', () => {
  it('is deterministic, disjoint, complete, and has every genre in every split', () => {
    const a = splitBrown(docs, { valid: 0.1, test: 0.1 });
    const b = splitBrown([...docs].reverse(), { valid: 0.1, test: 0.1 });
    const ids = (x: BrownDoc[]) => x.map((d) => d.id).sort();
    for (const k of ['train', 'valid', 'test'] as const) expect(ids(a[k])).toEqual(ids(b[k]));
    const all = [...a.train, ...a.valid, ...a.test].map((d) => d.id);
    expect(new Set(all).size).toBe(500);
    expect(all.length).toBe(500);
    for (const k of ['train', 'valid', 'test'] as const) expect(new Set(a[k].map((d) => d.genre)).size).toBe(15);
    expect(a.valid.length).toBeGreaterThanOrEqual(45);
    expect(a.valid.length).toBeLessThanOrEqual(60);
    expect(a.test.length).toBe(a.valid.length);
  });

  it('rejects impossible fractions and too-small genres', () => {
    expect(() => splitBrown(docs, { valid: 0.6, test: 0.5 })).toThrow('valid=0.6 test=0.5');
    expect(() => splitBrown(docs, { valid: 0.45, test: 0.45 })).toThrow('genre "m" has 6 files');
  });
});

describe('brownGenreTask', () => {
  it('gives deterministic, roughly balanced rows with all 15 labels', () => {
    const { train, test } = splitBrown(docs);
    const rows = brownGenreTask(train);
    expect(brownGenreTask(train)).toEqual(rows);
    const counts = new Array<number>(15).fill(0);
    for (const r of rows) counts[r.label]!++;
    expect(counts.every((c) => c > 0)).toBe(true);
    expect(Math.max(...counts)).toBeLessThanOrEqual(2 * Math.min(...counts));
    expect(rows.every((r) => r.text.split(' ').length >= 20)).toBe(true);
    const testRows = brownGenreTask(test);
    expect(new Set(testRows.map((r) => r.label)).size).toBe(15);
    const trainTexts = new Set(rows.map((r) => r.text));
    expect(testRows.filter((r) => trainTexts.has(r.text)).length).toBeLessThan(5);
  });

  it('is learnable: naive Bayes on train words beats chance (1/15) on test by 3x', () => {
    const { train, test } = splitBrown(docs);
    const tr = brownGenreTask(train);
    const te = brownGenreTask(test);
    const words = (t: string) => t.toLowerCase().match(/[a-z']+/g) ?? [];
    const counts = Array.from({ length: 15 }, () => new Map<string, number>());
    const totals = new Array<number>(15).fill(0);
    const priors = new Array<number>(15).fill(0);
    const vocab = new Set<string>();
    for (const r of tr) {
      priors[r.label]!++;
      for (const w of words(r.text)) {
        counts[r.label]!.set(w, (counts[r.label]!.get(w) ?? 0) + 1);
        totals[r.label]!++;
        vocab.add(w);
      }
    }
    let correct = 0;
    for (const r of te) {
      let best = -1;
      let bestScore = -Infinity;
      for (let g = 0; g < 15; g++) {
        let score = Math.log(priors[g]!);
        for (const w of words(r.text)) score += Math.log(((counts[g]!.get(w) ?? 0) + 1) / (totals[g]! + vocab.size));
        if (score > bestScore) [best, bestScore] = [g, score];
      }
      if (best === r.label) correct++;
    }
    expect(correct / te.length).toBeGreaterThan(3 / 15);
  });
});
