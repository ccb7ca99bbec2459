// WikiText reader tests: missing dir/files named, streamed lines, paragraphs, articles; chunked line reader.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readLines } from '../../src/io/lines.js';
import { loadWikitext } from '../../src/io/wikitext.js';

const root = mkdtempSync(join(tmpdir(), 'moekit-wiki-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TRAIN = [
  ' ',
  ' = Valkyria Chronicles III = ',
  ' ',
  ' Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing video game . ',
  ' ',
  ' = = Gameplay = = ',
  ' ',
  ' The game plays like its predecessors . ',
  ' = Tower Building of the Little Rock Arsenal = ',
  ' ',
  ' The Tower Building is a building in Little Rock , Arkansas . ',
  '',
].join('\n');

function makeDir(name: string, files: Record<string, string>): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  for (const [f, t] of Object.entries(files)) writeFileSync(join(d, f), t);
  return d;
}

describe('loadWikitext', () => {
  it('streams lines, paragraphs and articles of each split', () => {
    const d = makeDir('ok', { 'wiki.train.raw': TRAIN, 'wiki.valid.raw': ' = V = \n valid text . \n', 'wiki.test.raw': '' });
    const w = loadWikitext(d);
    expect(w.train.path).toBe(join(d, 'wiki.train.raw'));
    expect(w.train.bytes).toBe(Buffer.byteLength(TRAIN));
    expect([...w.train.lines()]).toEqual(TRAIN.split('\n').slice(0, -1));
    expect([...w.train.paragraphs()][1]).toBe('Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing video game .');
    const arts = [...w.train.articles()];
    expect(arts.map((a) => a.title)).toEqual(['Valkyria Chronicles III', 'Tower Building of the Little Rock Arsenal']);
    expect(arts[0]!.text).toContain('= = Gameplay = =');
    expect(arts[0]!.text).toContain('The game plays like its predecessors .');
    expect(arts[1]!.text).toBe('The Tower Building is a building in Little Rock , Arkansas .');
    expect([...w.valid.articles()]).toEqual([{ title: 'V', text: 'valid text .' }]);
    expect([...w.test.lines()]).toEqual([]);
    // re-iterable: a second pass reads the file again
    expect([...w.train.lines()].length).toBe(11);
  });

  it('names a missing directory and the expected files', () => {
    const d = join(root, 'nope');
    expect(() => loadWikitext(d)).toThrow(`wikitext: ${d} is not a directory (expected one holding wiki.train.raw, wiki.valid.raw, wiki.test.raw)`);
  });

  it('names each missing file with its path', () => {
    const d = makeDir('partial', { 'wiki.train.raw': TRAIN });
    expect(() => loadWikitext(d)).toThrow(
      `wikitext: ${d} lacks ${join(d, 'wiki.valid.raw')}, ${join(d, 'wiki.test.raw')} (expected wiki.train.raw, wiki.valid.raw, wiki.test.raw)`,
    );
  });
});

describe('readLines', () => {
  it('splits lines correctly across chunk boundaries, including multi-byte characters', () => {
    const lines = ['東京 🙂 naïve', '', 'x'.repeat(37), 'café\r', 'last'];
    const p = join(root, 'chunks.txt');
    writeFileSync(p, '\ufeff' + lines.join('\n'));
    const want = lines.map((l) => l.replace(/\r$/, ''));
    for (const chunk of [1, 2, 3, 5, 7, 64, 1 << 20]) expect([...readLines(p, chunk)]).toEqual(want);
  });
});
