// moekit eval on a checkpoint trained by moekit train: perplexity on Brown and on a text file, errors naming paths.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';

const cli = (args: string[]): string => execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8' });
const run = tempDir('moekit-eval-');

beforeAll(() => {
  cli(['train', '--preset', 'tiny', '--steps', '30', '--out', run, '--json']);
});

describe('moekit eval', () => {
  it('scores Brown valid with the run tokenizer and reports the unigram baseline', () => {
    const r = JSON.parse(cli(['eval', run, '--max-tokens', '3000', '--json'])) as { step: number; ppl: number; tokens: number; unigram_ppl: number; window: number; stride: number };
    expect(r.step).toBe(30);
    expect(r.tokens).toBe(2999);
    expect(r.window).toBe(64);
    expect(r.stride).toBe(32);
    expect(Number.isFinite(r.ppl) && r.ppl > 1).toBe(true);
    expect(r.ppl).toBeLessThan(320); // better than uniform over the vocabulary
    expect(r.unigram_ppl).toBeGreaterThan(1);
  });

  it('scores a text file, and names a missing run', () => {
    const file = path.join(run, 'sample.txt');
    writeFileSync(file, 'The jury said the election was conducted fairly and well. '.repeat(20));
    const r = JSON.parse(cli(['eval', run, '--text', file, '--json'])) as { data: string; ppl: number; unigram_ppl: number | null };
    expect(r.data).toBe(file);
    expect(r.unigram_ppl).toBeNull();
    expect(r.ppl).toBeGreaterThan(1);
    expect(() => cli(['eval', path.join(run, 'nope')])).toThrow(/nope does not exist/);
  });
});
