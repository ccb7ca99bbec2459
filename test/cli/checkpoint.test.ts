// The checkpoint commands end to end on a transformers fixture: the machine interface (logits, generate), compress
// (clustered, d2, merge), eval next to the original, and export back to the Hugging Face layout.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBrown, splitBrown } from '../../src/io/brown.js';
import { saveTokenizerJson, trainBpe } from '../../src/io/tokenizer.js';
import { fixture } from '../helpers/fixtures.js';
import { mountReadOnly, unmount } from '../helpers/readonly.js';

// asynchronously: a long synchronous child would stall the test worker's RPC with the runner
const cli = async (args: string[]): Promise<string> => (await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })).stdout;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'moekit-ckpt-'));
const model = path.join(tmp, 'olmoe');
const src = path.dirname(fixture('hf/olmoe/config.json'));
const ref = JSON.parse(readFileSync(path.join(src, 'reference.json'), 'utf8')) as { input_ids: number[]; logits: number[][]; router_logits: number[][][]; greedy_from_first8: number[] };

/** stderr of a command expected to fail */
const fails = async (args: string[]): Promise<string> => {
  try {
    await cli(args);
  } catch (e) {
    return String((e as { stderr?: string }).stderr);
  }
  throw new Error(`moekit ${args.join(' ')} succeeded; expected an error`);
};
const ro = path.join(tmp, 'ro');
const roSkip = mountReadOnly(ro, 'test/cli/checkpoint');

const maxDiff = (a: number[][], b: number[][]): number => Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i]![j]!))));

beforeAll(() => {
  // the fixture with a tokenizer whose ids fit its 320-token vocabulary
  cpSync(src, model, { recursive: true });
  const bpe = trainBpe(splitBrown(loadBrown()).train.slice(0, 40).map((d) => d.text), { vocabSize: 320 });
  saveTokenizerJson(bpe, path.join(model, 'tokenizer.json'));
});
afterAll(() => {
  unmount(ro, roSkip);
  rmSync(tmp, { recursive: true, force: true });
});

describe('machine interface', () => {
  it('moekit logits --router --json matches transformers within 1e-4', async () => {
    const out = JSON.parse(await cli(['logits', model, '--ids', ref.input_ids.join(','), '--router', '--json'])) as { logits: number[][]; router_logits: number[][][] };
    expect(out.logits.length).toBe(ref.input_ids.length);
    expect(maxDiff(out.logits, ref.logits)).toBeLessThanOrEqual(1e-4);
    out.router_logits.forEach((l, i) => expect(maxDiff(l, ref.router_logits[i]!)).toBeLessThanOrEqual(1e-4));
  });

  it('moekit generate --ids --greedy --json equals transformers; text prompts stream through the tokenizer', async () => {
    const out = JSON.parse(await cli(['generate', model, '--ids', ref.input_ids.slice(0, 8).join(','), '--max-new-tokens', '8', '--greedy', '--json'])) as { ids: number[] };
    expect(out.ids).toEqual(ref.greedy_from_first8);
    const t = JSON.parse(await cli(['generate', model, '--prompt', 'The jury said', '--max-new-tokens', '5', '--temperature', '0.8', '--top-p', '0.9', '--seed', '3', '--json'])) as { ids: number[]; text: string };
    expect(t.ids.length).toBeGreaterThan(5);
    expect(typeof t.text).toBe('string');
  });

  it('bad ids and options are errors naming the value', async () => {
    await expect(cli(['logits', model, '--ids', '3,x,4'])).rejects.toThrow(/--ids must be comma-separated token ids in \[0, 320\), got "3,x,4" \(bad entry "x"\)/);
    await expect(cli(['logits', model, '--ids', '3,999'])).rejects.toThrow(/bad entry "999"/);
    await expect(cli(['generate', model, '--ids', '1', '--top-p', '1.5'])).rejects.toThrow(/--top-p must be in \(0, 1\], got "1.5"/);
    await expect(cli(['logits', path.join(tmp, 'none'), '--ids', '1'])).rejects.toThrow(/none does not exist/);
  });
});

describe('compress, eval, export', () => {
  it('clustered at full rank is lossless: compress → export → logits equal transformers within 1e-4', async () => {
    const c = path.join(tmp, 'full');
    const s = JSON.parse(await cli(['compress', model, '--method', 'clustered', '--groups', '2', '--rank', '32', '--allow-larger', '--calib-tokens', '512', '--out', c, '--json'])) as { expert_params_before: number; expert_params_after: number; provenance: { layers: { rel_error: number }[] } };
    expect(s.provenance.layers.every((l) => l.rel_error < 1e-5)).toBe(true);
    const logits = JSON.parse(await cli(['logits', c, '--ids', ref.input_ids.join(','), '--json'])) as { logits: number[][] };
    expect(maxDiff(logits.logits, ref.logits)).toBeLessThanOrEqual(1e-4);
    const hf = path.join(tmp, 'full-hf');
    await cli(['export', c, '--format', 'hf', '--out', hf]);
    const back = JSON.parse(await cli(['logits', hf, '--ids', ref.input_ids.join(','), '--router', '--json'])) as { logits: number[][]; router_logits: number[][][] };
    expect(maxDiff(back.logits, ref.logits)).toBeLessThanOrEqual(1e-4);
    back.router_logits.forEach((l, i) => expect(maxDiff(l, ref.router_logits[i]!)).toBeLessThanOrEqual(1e-4));
    expect(JSON.parse(readFileSync(path.join(hf, 'config.json'), 'utf8')).model_type).toBe('olmoe');
  });

  it('clustered, d2 and merge at rank 4 shrink the experts; eval reports perplexity next to the original', async () => {
    const results: Record<string, { ppl: number; orig: number; after: number; before: number }> = {};
    for (const method of ['clustered', 'd2', 'merge']) {
      const c = path.join(tmp, method);
      const s = JSON.parse(await cli(['compress', model, '--method', method, '--groups', '2', '--rank', '4', '--calib-tokens', '512', '--out', c, '--json'])) as { expert_params_before: number; expert_params_after: number };
      const e = JSON.parse(await cli(['eval', c, '--max-tokens', '600', '--json'])) as { ppl: number; original: { ppl: number } };
      results[method] = { ppl: e.ppl, orig: e.original.ppl, after: s.expert_params_after, before: s.expert_params_before };
    }
    const r = results.clustered!;
    // E=8, H=64, I=32: per layer 2 bases + 8 rank-4 pairs per matrix = 3·(2·2048 + 8·4·96) vs 3·8·2048
    expect(r.before).toBe(2 * 3 * 8 * 64 * 32);
    expect(r.after).toBe(2 * 3 * (2 * 64 * 32 + 8 * 4 * 96));
    for (const [m, x] of Object.entries(results)) {
      expect(x.after, m).toBeLessThanOrEqual(r.after);
      expect(Number.isFinite(x.ppl) && x.ppl > 1, m).toBe(true);
      expect(x.ppl, m).not.toBe(x.orig);
    }
  }, 300_000); // six CLI runs: minutes on a busy 2-core machine

  it('names what it cannot do', async () => {
    await expect(cli(['compress', model, '--method', 'zip', '--out', path.join(tmp, 'x')])).rejects.toThrow(/--method must be one of clustered, d2, merge, mc-smoe, hc-smoe, got "zip"/);
    await expect(cli(['compress', model, '--groups', '3', '--out', path.join(tmp, 'x')])).rejects.toThrow(/--groups 3 must divide the 8 experts/);
    await expect(cli(['compress', model, '--groups', '16', '--out', path.join(tmp, 'x')])).rejects.toThrow(/--groups 16 must divide the 8 experts \(1 <= G <= 8\)/);
    await expect(cli(['export', path.join(tmp, 'clustered'), '--arch', 'gpt2', '--out', path.join(tmp, 'y')])).rejects.toThrow(/--arch must be one of mixtral, qwen2_moe, qwen3_moe, olmoe, .*got "gpt2"/);
  });
});

describe('bounds and destinations, checked before any work', () => {
  it('--rank above min(H, I) is refused with the reason; so is a result larger than the input', async () => {
    // olmoe fixture: H = 64, I = 32
    expect(await fails(['compress', model, '--rank', '100000', '--out', path.join(tmp, 'big')])).toContain(
      '--rank 100000 is above 32: an expert matrix is hidden x expert width = 64 x 32, so its residual has rank at most min(H, I) = 32');
    // G = 2 bases + 8 rank-r residuals vs 8 experts: break-even at r = (8 - 2)·64·32 / (8·96) = 16
    const e = await fails(['compress', model, '--groups', '2', '--rank', '17', '--out', path.join(tmp, 'big')]);
    expect(e).toContain('--groups 2 --rank 17 would store 51,456 expert parameters per layer, 4.7% more than the 49,152 the model has');
    expect(e).toContain('with --groups 2 the rank must be at most 16 for the result not to be larger');
    expect(await fails(['compress', model, '--groups', '8', '--rank', '1', '--out', path.join(tmp, 'big')])).toContain('no rank keeps them from growing with --groups 8; use fewer groups');
    expect(await fails(['compress', model, '--groups', '2', '--group-top-k', '3', '--out', path.join(tmp, 'big')])).toContain('--group-top-k 3 must be at most --groups 2');
    expect(existsSync(path.join(tmp, 'big', 'model.safetensors'))).toBe(false);
  });

  it('an unwritable --out fails before the model is even read (compress, export)', async () => {
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, 'x');
    const missingModel = path.join(tmp, 'no-such-model'); // were the model read first, this would be the error
    for (const cmd of [['compress', missingModel], ['export', missingModel, '--format', 'hf']]) {
      const e = await fails([...cmd, '--out', path.join(file, 'out')]);
      expect(e, cmd[0]).toContain(`--out ${path.join(file, 'out')}: cannot write there (a parent is a file, not a directory (ENOTDIR)`);
      expect(e, cmd[0]).not.toContain('does not exist');
    }
    expect(await fails(['compress', model, '--out', model])).toContain(`--out ${model} is the model directory itself`);
  });

  it.skipIf(roSkip !== null)('a read-only --out says read-only, not ENOENT (compress, export)', async () => {
    for (const cmd of [['compress', model], ['export', model, '--format', 'hf']]) {
      const out = path.join(ro, 'deep', 'out');
      const e = await fails([...cmd, '--out', out]);
      expect(e, cmd[0]).toContain(`--out ${out}: cannot write there (read-only file system (EROFS) at ${ro})`);
      expect(e, cmd[0]).not.toContain('ENOENT');
    }
  });
});
