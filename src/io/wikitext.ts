// WikiText-103 raw reader: checks the three split files up front, then streams them line by line.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readLines } from './lines.js';

export const WIKITEXT_FILES = { train: 'wiki.train.raw', valid: 'wiki.valid.raw', test: 'wiki.test.raw' } as const;

export interface WikitextArticle {
  /** the top-level heading, e.g. 'Valkyria Chronicles III' */
  title: string;
  /** the article's lines (headings included) joined by '\n', trimmed */
  text: string;
}

export interface WikitextSplit {
  name: 'train' | 'valid' | 'test';
  path: string;
  bytes: number;
  /** raw lines without '\n'; streamed (memory: one 1 MiB chunk + one line), re-iterable */
  lines(): Generator<string, void, undefined>;
  /** non-empty lines with WikiText's leading/trailing space trimmed */
  paragraphs(): Generator<string, void, undefined>;
  /** articles split at top-level ` = Title = ` headings; memory: one article at a time */
  articles(): Generator<WikitextArticle, void, undefined>;
}

export interface Wikitext {
  dir: string;
  train: WikitextSplit;
  valid: WikitextSplit;
  test: WikitextSplit;
}

const TITLE = /^ = ([^=].*[^=]|[^=]) = $/;

function split(name: 'train' | 'valid' | 'test', path: string): WikitextSplit {
  const lines = () => readLines(path);
  return {
    name,
    path,
    bytes: statSync(path).size,
    lines,
    *paragraphs() {
      for (const l of lines()) {
        const t = l.trim();
        if (t.length > 0) yield t;
      }
    },
    *articles() {
      let title: string | null = null;
      let body: string[] = [];
      for (const l of lines()) {
        const m = TITLE.exec(l);
        if (m) {
          if (title !== null) yield { title, text: body.join('\n').trim() };
          title = m[1]!.trim();
          body = [];
        } else if (title !== null && l.trim().length > 0) body.push(l.trim());
      }
      if (title !== null) yield { title, text: body.join('\n').trim() };
    },
  };
}

/**
 * Opens WikiText-103 raw (`wiki.train.raw`, `wiki.valid.raw`, `wiki.test.raw`) in `dir`. Nothing is
 * read yet: each split streams its file on demand, so the 500 MB train file is never one string.
 */
export function loadWikitext(dir: string): Wikitext {
  const expected = Object.values(WIKITEXT_FILES).join(', ');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`wikitext: ${dir} is not a directory (expected one holding ${expected})`);
  }
  const missing = Object.values(WIKITEXT_FILES).filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) {
    throw new Error(`wikitext: ${dir} lacks ${missing.map((f) => join(dir, f)).join(', ')} (expected ${expected})`);
  }
  return {
    dir,
    train: split('train', join(dir, WIKITEXT_FILES.train)),
    valid: split('valid', join(dir, WIKITEXT_FILES.valid)),
    test: split('test', join(dir, WIKITEXT_FILES.test)),
  };
}
