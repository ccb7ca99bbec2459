// A trained run is a model directory: train → generate → export end to end; export refuses to change the model
// silently (a selection bias the target cannot hold, a feature it lacks) and the export reloads with equal logits;
// --format gguf writes a llama.cpp file.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { loadModelDir } from '../../src/models/dir.js';
import { selectionBiases } from '../../src/models/hf/fit.js';
import { readGgufHeader } from '../../src/io/gguf.js';
import { tempDir } from '../helpers/tmp.js';

/** Runs the CLI (asynchronously, so the test worker stays responsive): exit status, stdout and stderr. */
const run = (args: string[]): Promise<{ status: number; stdout: string; stderr: string }> => new Promise((resolve) => {
  execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
    resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
  });
});
const cli = async (args: string[]): Promise<string> => {
  const r = await run(args);
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
};

const tmp = tempDir('moekit-export-');
const runDir = path.join(tmp, 'run');
beforeAll(async () => {
  await mk.setBackend('js');
  await cli(['train', '--preset', 'tiny', '--steps', '30', '--docs', '20', '--backend', 'js', '--out', runDir]);
}, 120_000);

/** logits of a loaded model for a fixed sequence */
const logitsOf = (m: mk.MoELM): Float32Array => mk.noGrad(() => Float32Array.from(m.forward(mk.tensor(Int32Array.from([3, 17, 42, 99, 250, 7, 7, 123]), [1, 8], 'i32'), { aux: false }).logits.dataSync()));
const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

describe('a training run as a model directory', () => {
  it('train --out leaves a run that generate, logits and info take (latest checkpoint or a step-N)', async () => {
    expect(existsSync(path.join(runDir, 'tokenizer.json'))).toBe(true);
    const g = JSON.parse(await cli(['generate', runDir, '--prompt', 'The jury', '--max-new-tokens', '6', '--backend', 'js', '--json'])) as { ids: number[]; text: string };
    expect(typeof g.text).toBe('string');
    expect(g.ids.length).toBeGreaterThan(6); // the encoded prompt and 6 new tokens (a run has no eos to stop at)
    const step = path.join(runDir, 'checkpoints', 'step-30');
    const a = JSON.parse(await cli(['logits', runDir, '--ids', '3,17,42', '--backend', 'js', '--json'])) as { logits: number[][] };
    const b = JSON.parse(await cli(['logits', step, '--ids', '3,17,42', '--backend', 'js', '--json'])) as { logits: number[][] };
    expect(b.logits).toEqual(a.logits);
    const m = await loadModelDir(step);
    expect(m.kind).toBe('run');
    expect(m.info.step).toBe(30);
    expect(m.tokenizer).not.toBeNull();
    m.model.dispose();
  }, 120_000);

  it('export without --drop-bias refuses with the routing-change figure and writes nothing', async () => {
    const out = path.join(tmp, 'refused');
    const r = await run(['export', runDir, '--arch', 'mixtral', '--out', out, '--backend', 'js']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/selection bias .* mixtral cannot hold: dropping it changes [\d,]+ of [\d,]+ routing decisions \(\d+\.\d+%.*on [\d,]+ tokens of Brown valid.*--drop-bias/);
    const changed = Number(/changes ([\d,]+) of/.exec(r.stderr)![1]!.replace(/,/g, ''));
    expect(changed).toBeGreaterThan(0);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  }, 120_000);

  it('export --arch mixtral --drop-bias reloads with the logits of the model without its bias', async () => {
    const out = path.join(tmp, 'hf');
    await cli(['export', runDir, '--arch', 'mixtral', '--drop-bias', '--out', out, '--backend', 'js']);
    expect(existsSync(path.join(out, 'tokenizer.json'))).toBe(true);
    const exported = await loadModelDir(out);
    expect(exported.kind).toBe('hf');
    expect(exported.arch).toBe('mixtral');
    const trained = await loadModelDir(runDir);
    const { biases, maxAbs } = selectionBiases(trained.model);
    expect(maxAbs).toBeGreaterThan(0);
    const withBias = logitsOf(trained.model);
    for (const [n, b] of biases) mk.noGrad(() => trained.model.setTensor(n, mk.tensor(new Float32Array(b.length), [b.length])));
    const d = maxDiff(logitsOf(exported.model), logitsOf(trained.model));
    console.log(`run -> mixtral export: logits max |diff| ${d.toExponential(2)} vs the run without its bias; ${maxDiff(withBias, logitsOf(trained.model)).toExponential(2)} with it`);
    expect(d).toBeLessThanOrEqual(1e-6);
    const g = JSON.parse(await cli(['generate', out, '--prompt', 'The jury', '--max-new-tokens', '4', '--backend', 'js', '--json'])) as { ids: number[] };
    expect(g.ids.length).toBeGreaterThan(4);
    trained.model.dispose();
    exported.model.dispose();
  }, 120_000);

  it('export refuses an architecture the model does not match, naming the feature', async () => {
    const out = path.join(tmp, 'q3');
    const r = await run(['export', runDir, '--arch', 'qwen3_moe', '--drop-bias', '--out', out, '--backend', 'js']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('does not fit qwen3_moe');
    expect(r.stderr).toContain('qkNorm "none" (qwen3_moe always has per-head q/k norms');
    const o = await run(['export', runDir, '--arch', 'olmoe', '--drop-bias', '--out', out, '--backend', 'js']);
    expect(o.stderr).toContain('qkNorm "none" (olmoe always has full-width q/k norms');
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  }, 120_000);

  it('export --format gguf writes the run as a llama.cpp llama file with its vocabulary; bad flags are refused', async () => {
    const file = path.join(tmp, 'run.gguf');
    const r = JSON.parse(await cli(['export', runDir, '--format', 'gguf', '--dtype', 'Q8_0', '--drop-bias', '--out', file, '--backend', 'js', '--json'])) as { arch: string; gguf_arch: string; bytes: number; tokenizer: boolean };
    expect(r).toMatchObject({ arch: 'mixtral', gguf_arch: 'llama', tokenizer: true });
    const h = readGgufHeader(file);
    expect(h.tensors.reduce((a, t) => Math.max(a, t.offset + t.bytes), 0)).toBeLessThanOrEqual(r.bytes);
    expect(h.metadata['general.architecture']).toBe('llama');
    expect(h.metadata['general.file_type']).toBe(7); // MOSTLY_Q8_0
    const bad = async (args: string[], msg: string): Promise<void> => {
      const b = await run(['export', runDir, '--format', 'gguf', '--drop-bias', '--backend', 'js', ...args]);
      expect(b.status).not.toBe(0);
      expect(b.stderr).toContain(msg);
    };
    await bad(['--out', path.join(tmp, 'x.gguf'), '--dtype', 'Q5_K'], '--dtype must be one of F32, F16, BF16, Q8_0, Q4_0 for --format gguf, got "Q5_K"');
    await bad(['--out', path.join(tmp, 'x.bin')], 'expected a file name ending in .gguf');
    await bad(['--out', path.join(tmp, 'nowhere', 'x.gguf')], 'does not exist');
    await bad(['--out', path.join(tmp, 'x.gguf'), '--arch', 'gpt_oss'], '--arch for --format gguf must be one of mixtral (llama), qwen3_moe (qwen3moe), qwen2_moe (qwen2moe), olmoe (olmoe), got "gpt_oss"');
    expect(existsSync(path.join(tmp, 'x.gguf'))).toBe(false);
  }, 120_000);

  it('a --tokenizer given to train is kept in the run', async () => {
    const other = path.join(tmp, 'run2');
    await cli(['train', '--preset', 'tiny', '--steps', '2', '--docs', '20', '--backend', 'js', '--tokenizer', path.join(runDir, 'tokenizer.json'), '--out', other]);
    expect(readFileSync(path.join(other, 'tokenizer.json'), 'utf8')).toBe(readFileSync(path.join(runDir, 'tokenizer.json'), 'utf8'));
  }, 120_000);
});
