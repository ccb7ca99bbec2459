// moekit tokenizer train end to end: runs the CLI in a child process, then loads what it wrote.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';
import { mountReadOnly, unmount } from '../helpers/readonly.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';

const tmp = tempDir('moekit-tok-cli-out-');
const ro = path.join(tmp, 'ro');
const roSkip = mountReadOnly(ro, 'test/cli/tokenizer');
afterAll(() => unmount(ro, roSkip)); // registered after tempDir's removal hook, so it runs first (hooks run in reverse)

const run = (args: string[]): string =>
  execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Runs a command expected to fail; returns its exit status and stderr. */
function fail(args: string[]): { status: number | null; stderr: string } {
  try {
    run(args);
  } catch (e) {
    const err = e as { status: number | null; stderr: string };
    return { status: err.status, stderr: err.stderr };
  }
  throw new Error(`moekit ${args.join(' ')} succeeded; expected an error`);
}

const text = Array.from({ length: 40 }, (_, i) => `the quick brown fox ${i % 5} jumps over the lazy dog, then the dog sleeps.`).join('\n') + '\n';

describe('moekit tokenizer train', () => {
  it('--json trains on a text file; tokenizer.json loads with the requested vocabulary and round-trips text', () => {
    const dir = tempDir('moekit-tok-cli-');
    const file = path.join(dir, 'corpus.txt');
    writeFileSync(file, text);
    const out = path.join(dir, 'tok');
    const stdout = run(['tokenizer', 'train', file, '--vocab', '280', '--out', out, '--json']);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as { out: string; vocab_size: number; merges: number; texts: number; seconds: number; sources: string[] };
    expect(r.out).toBe(path.join(out, 'tokenizer.json'));
    expect(r.vocab_size).toBe(280);
    expect(r.merges).toBe(280 - 257);
    expect(r.texts).toBe(40);
    expect(r.sources).toEqual([file]);
    expect(r.seconds).toBeGreaterThanOrEqual(0);
    const tok = loadTokenizer(r.out);
    expect(tok.vocabSize).toBe(280);
    expect(tok.tokenId('<|endoftext|>')).toBe(0);
    const s = 'the lazy dog jumps';
    const ids = tok.encode(s);
    expect(ids.length).toBeLessThan(s.length);
    expect(tok.decode(ids)).toBe(s);
  });

  it('prints a readable summary without --json', () => {
    const dir = tempDir('moekit-tok-cli-');
    const file = path.join(dir, 'corpus.txt');
    writeFileSync(file, text);
    const stdout = run(['tokenizer', 'train', file, '--vocab', '270', '--out', dir]);
    expect(stdout).toContain('vocab 270 (requested 270)');
    expect(stdout).toContain('13 merges');
  });

  it('rejects a bad --vocab, a too-small --vocab, a bad --min-frequency and a missing file, naming them', () => {
    const dir = tempDir('moekit-tok-cli-');
    const file = path.join(dir, 'corpus.txt');
    writeFileSync(file, text);
    let r = fail(['tokenizer', 'train', file, '--vocab', 'lots', '--out', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--vocab must be an integer >= 1, got "lots"/);
    r = fail(['tokenizer', 'train', file, '--vocab', '100', '--out', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--vocab must be at least 257 .*got "100"/);
    r = fail(['tokenizer', 'train', file, '--vocab', '300', '--min-frequency', '0', '--out', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--min-frequency must be an integer >= 1, got "0"/);
    const missing = path.join(dir, 'nope.txt');
    r = fail(['tokenizer', 'train', file, missing, '--vocab', '300', '--out', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`text file "${missing}" does not exist`);
  });
});

describe('moekit tokenizer train destinations', () => {
  it('an --out below a regular file fails before training, in words (ENOTDIR)', () => {
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, 'x');
    const out = path.join(file, 'tok');
    // no text files: training would run on the whole Brown split, so a quick failure means no training happened
    const r = fail(['tokenizer', 'train', '--vocab', '4096', '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`--out ${out}: cannot write there (a parent is a file, not a directory (ENOTDIR)`);
  });

  it.skipIf(roSkip !== null)('a read-only --out says read-only (EROFS), not ENOENT', () => {
    const out = path.join(ro, 'tok');
    const r = fail(['tokenizer', 'train', '--vocab', '4096', '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`--out ${out}: cannot write there (read-only file system (EROFS) at ${ro})`);
    expect(r.stderr).not.toContain('ENOENT');
  });
});
