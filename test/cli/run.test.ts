// moekit logits / generate end to end in a child process: non-finite logits are errors (never "0,0,0,0"), prompts are
// validated before anything is printed, and option errors name their option.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { parseConfig } from '../../src/models/config.js';
import { saveModelDir } from '../../src/models/dir.js';
import { MoELM } from '../../src/models/moe-lm.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { fixture } from '../helpers/fixtures.js';

/** Runs the CLI; returns exit status, stdout and stderr. */
function moekit(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const root = mkdtempSync(path.join(os.tmpdir(), 'moekit-run-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const ok = path.join(root, 'ok'); // tiny, vocab 320, no tokenizer
const overflow = path.join(root, 'overflow'); // tiny whose final norm weight (3e38, finite) makes activations overflow
const overflowTok = path.join(root, 'overflow-tok'); // the same at vocab 2048 with the fixture tokenizer
const smallVocabTok = path.join(root, 'small-vocab-tok'); // vocab 320 with a 2048-token tokenizer
const tokFile = fixture('hf/tokenizer/tokenizer.json');

beforeAll(async () => {
  await mk.setBackend('js');
  const save = async (dir: string, vocabSize: number, normWeight: number | null, tok: boolean): Promise<void> => {
    const m = new MoELM(parseConfig({ ...mk.PRESETS.tiny, vocabSize, seed: 1 }));
    if (normWeight !== null) mk.noGrad(() => m.setTensor('model.norm.weight', mk.tensor(new Float32Array(32).fill(normWeight), [32])));
    await saveModelDir(m, dir);
    if (tok) copyFileSync(tokFile, path.join(dir, 'tokenizer.json'));
    m.dispose();
  };
  await save(ok, 320, null, false);
  await save(overflow, 320, 3e38, false);
  await save(overflowTok, 2048, 3e38, true);
  await save(smallVocabTok, 320, null, true);
});

describe('moekit logits / generate on non-finite logits', () => {
  it('logits exits 1 naming the position and token id instead of printing NaN; finite logits still print', () => {
    const bad = moekit(['logits', overflow, '--ids', '1,2,3', '--backend', 'js', '--json']);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^moekit: logits: the model produced non-finite logits: \d+ of 960 values are NaN or ±Infinity, the first at position 0, token id \d+ \((NaN|-?Infinity)\); expected finite logits \(likely non-finite weights, or activations overflowing\)/);
    const good = moekit(['logits', ok, '--ids', '1,2,3', '--backend', 'js', '--json']);
    expect(good.status).toBe(0);
    expect((JSON.parse(good.stdout) as { logits: number[][] }).logits.length).toBe(3);
  }, 60_000);

  it('generate stops with an error naming the step and position, never emitting made-up tokens', () => {
    const r = moekit(['generate', overflow, '--ids', '1,2,3', '--max-new-tokens', '4', '--backend', 'js']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe(''); // not "1,2,3,0,0,0,0"
    expect(r.stderr).toContain('moekit: generate: the model produced non-finite logits at step 0 (position 2)');
    expect(r.stderr).toContain('likely non-finite weights, or activations overflowing');
    // streaming text: the prompt line is ended before the error
    const t = moekit(['generate', overflowTok, '--prompt', 'The', '--max-new-tokens', '3', '--backend', 'js']);
    expect(t.status).toBe(1);
    expect(t.stdout).toBe('The\n');
    expect(t.stderr).toContain('non-finite logits at step 0');
  }, 60_000);
});

describe('moekit generate validates before printing', () => {
  it('a prompt the model cannot take (ids out of range, too long, no tokenizer) prints nothing on stdout', () => {
    const ids = loadTokenizer(tokFile).encode('The quick brown fox jumps over the lazy dog');
    const big = ids.find((id) => id >= 320);
    expect(big).toBeDefined();
    let r = moekit(['generate', smallVocabTok, '--prompt', 'The quick brown fox jumps over the lazy dog', '--backend', 'js']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`generate: prompt token ${big} is not an id in [0, 320)`);
    r = moekit(['generate', overflowTok, '--prompt', 'the '.repeat(100), '--backend', 'js']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/generate: the prompt has \d+ tokens, more than maxSeqLen 64/);
    r = moekit(['generate', ok, '--prompt', 'hello', '--backend', 'js']);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('has no tokenizer.json; pass --ids instead of --prompt');
    r = moekit(['generate', ok, '--ids', '', '--backend', 'js']);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('--ids must be comma-separated token ids in [0, 320), got "" (bad entry "")');
  }, 90_000);

  it('--stop errors name --stop', () => {
    const r = moekit(['generate', ok, '--ids', '1,2', '--stop', '1,999', '--backend', 'js']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('moekit: --stop must be comma-separated token ids in [0, 320), got "1,999" (bad entry "999")');
    const g = moekit(['generate', ok, '--ids', '1,2', '--stop', '5', '--max-new-tokens', '3', '--backend', 'js']);
    expect(g.status).toBe(0);
    expect(g.stdout).toMatch(/^1,2(,\d+){1,3}\n$/);
  }, 60_000);
});
