// moekit train end to end on the embedded corpus: the tiny preset lowers the loss by >= 20% within its steps; runs
// never overwrite each other silently, resumes are checked, bad flags and unwritable outputs fail before any work.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';
import { mountReadOnly, unmount } from '../helpers/readonly.js';

/** Runs the CLI (asynchronously, so the test worker stays responsive) and returns exit status, stdout and stderr. */
const run = (args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ status: number; stdout: string; stderr: string }> => new Promise((resolve) => {
  execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
    resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
  });
});
/** Runs the CLI; rejects with its stderr when it fails. */
const cli = async (args: string[]): Promise<string> => {
  const r = await run(args);
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
};
/** Every file under `dir` with the sha256 of its bytes: equal snapshots mean equal contents. */
const snapshot = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort().map((f) => {
  const p = path.join(dir, f);
  return statSync(p).isDirectory() ? `${f}/` : `${f} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
});
const QUICK = ['train', '--preset', 'tiny', '--docs', '5', '--backend', 'js'];

describe('moekit train', () => {
  it('--preset tiny --json: one line per step, a summary, loss down >= 20%, checkpoint and tokenizer written', async () => {
    const out = tempDir('moekit-cli-train-');
    const lines = (await cli(['train', '--preset', 'tiny', '--json', '--out', out])).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const steps = lines.filter((l) => 'step' in l);
    const summary = lines.at(-1)!;
    expect(summary.summary).toBe(true);
    expect(steps).toHaveLength(summary.steps as number);
    for (const k of ['loss', 'tokens_per_s', 'tokens_per_expert', 'load_variance', 'imbalance', 'dropped']) expect(steps[0]).toHaveProperty(k);
    expect(summary.final_loss as number).toBeLessThanOrEqual(0.8 * (summary.first_loss as number));
    expect(existsSync(path.join(out, 'tokenizer.json'))).toBe(true);
    expect(JSON.parse(readFileSync(path.join(out, 'checkpoints', 'latest.json'), 'utf8')).step).toBe(summary.steps);
    expect(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(summary.steps as number);
  });

  it('--clustered with an inline --config: trains clustered experts, regroups on schedule and logs clusters.jsonl', async () => {
    const out = tempDir('moekit-cli-train-cl-');
    const cfg = JSON.stringify({ experts: 8, clusterGroups: 2, clusterRank: 4, clusterEvery: 10, clusterWarmup: 10 });
    const lines = (await cli(['train', '--preset', 'tiny', '--clustered', '--config', cfg, '--steps', '25', '--json', '--out', out])).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.at(-1)!;
    expect(summary.ffn).toBe('clustered');
    const log = readFileSync(path.join(out, 'clusters.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; layer: number; membership: number[][]; intra_similarity: number });
    expect(summary.regroups).toBe(log.length);
    expect([...new Set(log.map((e) => e.step))]).toEqual([10, 20]);
    for (const e of log) {
      expect(e.membership.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(Number.isFinite(e.intra_similarity)).toBe(true);
    }
    expect(lines.find((l) => 'step' in l)).toHaveProperty('cross_group');
  });

  it('names bad options', async () => {
    await expect(cli(['train', '--preset', 'tiny', '--dense', '--clustered'])).rejects.toThrow(/--dense and --clustered exclude each other/);
    await expect(cli(['train', '--preset', 'tiny', '--config', '/nonexistent/c.json'])).rejects.toThrow(/--config \/nonexistent\/c.json: cannot read it \(ENOENT\)/);
    await expect(cli(['train', '--preset', 'tiny', '--config', '{"experts": 8'])).rejects.toThrow(/--config \{"experts": 8: not valid JSON/);
    await expect(cli(['train', '--preset', 'huge'])).rejects.toThrow(/--preset must be one of tiny, small, fine, base, got "huge"/);
    await expect(cli(['train', '--preset', 'tiny', '--steps', 'many'])).rejects.toThrow(/--steps must be a positive integer, got "many"/);
  });

  it('--steps 0 is rejected before any file is written', async () => {
    const out = path.join(tempDir('moekit-cli-train-'), 'run');
    const r = await run([...QUICK, '--steps', '0', '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('--steps must be a positive integer, got "0"');
    expect(r.stderr).not.toContain('training tokens');
    expect(existsSync(out)).toBe(false);
  });

  it('a tokenizer larger than the model vocabulary: the error suggests --config with the tokenizer\'s size', async () => {
    const tok = path.resolve('test/fixtures/legacy-run/tokenizer.json');
    const r = await run([...QUICK, '--steps', '2', '--tokenizer', tok, '--config', '{"vocabSize": 260}']);
    expect(r.stderr).toMatch(/has (\d+) ids but the model's vocabulary is 260 .*; pass --config '\{"vocabSize": \1\}' \(or larger\) to fit this tokenizer/);
  });

  it('without --out nothing is kept: no files in the temp directory, and it says so', async () => {
    const tmp = tempDir('moekit-cli-train-tmpdir-');
    const r = await run([...QUICK, '--steps', '2'], { ...process.env, TMPDIR: tmp });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('output none (no --out: metrics, checkpoints and the tokenizer are not kept)');
    expect(r.stdout).toContain('nothing kept (no --out)');
    expect(readdirSync(tmp).filter((n) => !n.startsWith('tsx-'))).toEqual([]); // tsx-N: the TypeScript loader's own cache
  });
});

describe('moekit train: run directories', () => {
  let done: string;
  let root: string;
  beforeAll(async () => {
    root = tempDir('moekit-cli-train-runs-');
    done = path.join(root, 'k3');
    const r = await run([...QUICK, '--steps', '4', '--checkpoint-every', '2', '--out', done]);
    expect(r.status, r.stderr).toBe(0);
  });

  it('a rerun into --out holding a run is an error saying what is there; nothing changes on disk', async () => {
    const before = snapshot(done);
    const r = await run([...QUICK, '--steps', '2', '--out', done]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${done} holds a run (checkpoints up to step 4, 4 metric lines); nothing was changed. Pass --resume to continue it, --overwrite to move it aside and start afresh, or another --out`);
    expect(snapshot(done)).toEqual(before);
  });

  it('--overwrite moves the old run aside intact and says where', async () => {
    const out = path.join(root, 'again');
    cpSync(done, out, { recursive: true });
    const before = snapshot(out);
    const r = await run([...QUICK, '--steps', '2', '--out', out, '--overwrite']);
    expect(r.status, r.stderr).toBe(0);
    const moved = /moved it to (\S+) \(nothing deleted\)/.exec(r.stderr)?.[1];
    expect(moved).toMatch(new RegExp(`^${out}\\.old-\\d{8}T\\d{6}Z$`));
    expect(snapshot(moved!)).toEqual(before);
    expect(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    expect(existsSync(path.join(out, 'tokenizer.json'))).toBe(true);
  });

  it('--resume with other config, batch, seq-len, seed or data names each field with both values', async () => {
    const before = snapshot(done);
    const r = await run([...QUICK, '--steps', '6', '--out', done, '--resume', '--config', '{"experts": 8}', '--batch', '4', '--seq-len', '16', '--seed', '1', '--docs', '6']);
    expect(r.status).toBe(1);
    for (const named of ['config.experts: 4 in the checkpoint, 8 now', 'batch (--batch): 8 in the checkpoint, 4 now', 'seqLen (--seq-len): 32 in the checkpoint, 16 now', 'seed (--seed): 0 in the checkpoint, 1 now', 'data.docs (--docs): 5 in the checkpoint, 6 now']) {
      expect(r.stderr).toContain(named);
    }
    expect(snapshot(done)).toEqual(before);
  });

  it('--steps below the checkpoint is an error; equal to it is nothing to do', async () => {
    const before = snapshot(done);
    const low = await run([...QUICK, '--steps', '3', '--out', done, '--resume']);
    expect(low.status).toBe(1);
    expect(low.stderr).toContain(`--steps 3 is below the step of ${done}'s latest checkpoint, 4`);
    const same = await run([...QUICK, '--steps', '4', '--out', done, '--resume']);
    expect(same.status).toBe(0);
    expect(same.stderr).toContain(`${done} is already at step 4 (--steps 4): nothing to do`);
    expect(same.stdout).not.toContain('undefined');
    expect(snapshot(done)).toEqual(before);
  });

  it('a run written by the earlier release resumes with a warning that its data could not be checked', async () => {
    const out = path.join(root, 'legacy');
    cpSync('test/fixtures/legacy-run', out, { recursive: true });
    const cfg = JSON.stringify({ vocabSize: 288, hidden: 16, layers: 2, heads: 2, kvHeads: 1, headDim: 8, experts: 4, topK: 2, expertWidth: 16 });
    const r = await run([...QUICK, '--config', cfg, '--steps', '5', '--batch', '4', '--seq-len', '16', '--out', out, '--resume']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: ${out}/checkpoints/step-4 was written by an earlier moekit that did not record data (docs, tokenizer, token stream)`);
    expect(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(5);
  });

  it('--lr 1e6: the message names the checkpoint when there is one and says so when there is none', async () => {
    const none = await run([...QUICK, '--steps', '6', '--lr', '1e6', '--out', path.join(root, 'lr-none')]);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/loss became (NaN|-?Infinity) at step \d+; stopping \(no checkpoint had been written yet \(--checkpoint-every 0: only at the end\), so there is none to resume from\)/);
    expect(none.stderr).not.toContain('untouched');
    const some = await run([...QUICK, '--steps', '6', '--lr', '1e6', '--checkpoint-every', '1', '--out', path.join(root, 'lr-some')]);
    expect(some.status).toBe(1);
    expect(some.stderr).toMatch(new RegExp(`stopping \\(the (last good|latest) checkpoint, ${root}/lr-some/checkpoints/step-(\\d+) \\(step \\2\\), is untouched`));
  });
});

describe('moekit train: unwritable --out fails before any work', () => {
  const root = tempDir('moekit-cli-train-ro-');
  const ro = path.join(root, 'ro');
  const roSkip = mountReadOnly(ro, 'test/cli/train');
  afterAll(() => unmount(ro, roSkip));

  it('--out below a regular file (ENOTDIR)', async () => {
    const file = path.join(root, 'plain.txt');
    writeFileSync(file, 'x');
    const r = await run([...QUICK, '--steps', '2', '--out', path.join(file, 'run')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`--out ${path.join(file, 'run')}: cannot write there (a parent is a file, not a directory (ENOTDIR)`);
    expect(r.stderr).not.toContain('training tokens');
  });

  it.skipIf(roSkip !== null)('--out on a read-only file system (EROFS)', async () => {
    const r = await run([...QUICK, '--steps', '2', '--out', path.join(ro, 'run')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`--out ${path.join(ro, 'run')}: cannot write there (read-only file system (EROFS)`);
    expect(r.stderr).not.toContain('training tokens');
  });
});
