// The checkpoint commands end to end on a transformers fixture: the machine interface (logits, generate), compress
// (clustered, d2, merge), eval next to the original, and export back to the Hugging Face layout.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBrown, splitBrown } from '../../src/io/brown.js';
import { saveTokenizerJson, trainBpe } from '../../src/io/tokenizer.js';
import { fixture } from '../helpers/fixtures.js';

const cli = (args: string[]): string => execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'moekit-ckpt-'));
const model = path.join(tmp, 'olmoe');
const src = path.dirname(fixture('hf/olmoe/config.json'));
const ref = JSON.parse(readFileSync(path.join(src, 'reference.json'), 'utf8')) as { input_ids: number[]; logits: number[][]; router_logits: number[][][]; greedy_from_first8: number[] };

const maxDiff = (a: number[][], b: number[][]): number => Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i]![j]!))));

beforeAll(() => {
  // the fixture with a tokenizer whose ids fit its 320-token vocabulary
  cpSync(src, model, { recursive: true });
  const bpe = trainBpe(splitBrown(loadBrown()).train.slice(0, 40).map((d) => d.text), { vocabSize: 320 });
  saveTokenizerJson(bpe, path.join(model, 'tokenizer.json'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('machine interface', () => {
  it('moekit logits --router --json matches transformers within 1e-4', () => {
    const out = JSON.parse(cli(['logits', model, '--ids', ref.input_ids.join(','), '--router', '--json'])) as { logits: number[][]; router_logits: number[][][] };
    expect(out.logits.length).toBe(ref.input_ids.length);
    expect(maxDiff(out.logits, ref.logits)).toBeLessThanOrEqual(1e-4);
    out.router_logits.forEach((l, i) => expect(maxDiff(l, ref.router_logits[i]!)).toBeLessThanOrEqual(1e-4));
  });

  it('moekit generate --ids --greedy --json equals transformers; text prompts stream through the tokenizer', () => {
    const out = JSON.parse(cli(['generate', model, '--ids', ref.input_ids.slice(0, 8).join(','), '--max-new-tokens', '8', '--greedy', '--json'])) as { ids: number[] };
    expect(out.ids).toEqual(ref.greedy_from_first8);
    const t = JSON.parse(cli(['generate', model, '--prompt', 'The jury said', '--max-new-tokens', '5', '--temperature', '0.8', '--top-p', '0.9', '--seed', '3', '--json'])) as { ids: number[]; text: string };
    expect(t.ids.length).toBeGreaterThan(5);
    expect(typeof t.text).toBe('string');
  });

  it('bad ids and options are errors naming the value', () => {
    expect(() => cli(['logits', model, '--ids', '3,x,4'])).toThrow(/--ids must be comma-separated token ids in \[0, 320\), got "3,x,4" \(bad entry "x"\)/);
    expect(() => cli(['logits', model, '--ids', '3,999'])).toThrow(/bad entry "999"/);
    expect(() => cli(['generate', model, '--ids', '1', '--top-p', '1.5'])).toThrow(/--top-p must be in \(0, 1\], got "1.5"/);
    expect(() => cli(['logits', path.join(tmp, 'none'), '--ids', '1'])).toThrow(/none does not exist/);
  });
});

describe('compress, eval, export', () => {
  it('clustered at full rank is lossless: compress → export → logits equal transformers within 1e-4', () => {
    const c = path.join(tmp, 'full');
    const s = JSON.parse(cli(['compress', model, '--method', 'clustered', '--groups', '2', '--rank', '32', '--calib-tokens', '512', '--out', c, '--json'])) as { expert_params_before: number; expert_params_after: number; provenance: { layers: { rel_error: number }[] } };
    expect(s.provenance.layers.every((l) => l.rel_error < 1e-5)).toBe(true);
    const logits = JSON.parse(cli(['logits', c, '--ids', ref.input_ids.join(','), '--json'])) as { logits: number[][] };
    expect(maxDiff(logits.logits, ref.logits)).toBeLessThanOrEqual(1e-4);
    const hf = path.join(tmp, 'full-hf');
    cli(['export', c, '--format', 'hf', '--out', hf]);
    const back = JSON.parse(cli(['logits', hf, '--ids', ref.input_ids.join(','), '--router', '--json'])) as { logits: number[][]; router_logits: number[][][] };
    expect(maxDiff(back.logits, ref.logits)).toBeLessThanOrEqual(1e-4);
    back.router_logits.forEach((l, i) => expect(maxDiff(l, ref.router_logits[i]!)).toBeLessThanOrEqual(1e-4));
    expect(JSON.parse(readFileSync(path.join(hf, 'config.json'), 'utf8')).model_type).toBe('olmoe');
  });

  it('clustered, d2 and merge at rank 4 shrink the experts; eval reports perplexity next to the original', () => {
    const results: Record<string, { ppl: number; orig: number; after: number; before: number }> = {};
    for (const method of ['clustered', 'd2', 'merge']) {
      const c = path.join(tmp, method);
      const s = JSON.parse(cli(['compress', model, '--method', method, '--groups', '2', '--rank', '4', '--calib-tokens', '512', '--out', c, '--json'])) as { expert_params_before: number; expert_params_after: number };
      const e = JSON.parse(cli(['eval', c, '--max-tokens', '600', '--json'])) as { ppl: number; original: { ppl: number } };
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
  });

  it('names what it cannot do', () => {
    expect(() => cli(['compress', model, '--method', 'zip', '--out', path.join(tmp, 'x')])).toThrow(/--method must be one of clustered, d2, merge, mc-smoe, hc-smoe, got "zip"/);
    expect(() => cli(['compress', model, '--groups', '3', '--out', path.join(tmp, 'x')])).toThrow(/--groups 3 must divide the 8 experts/);
    expect(() => cli(['export', path.join(tmp, 'clustered'), '--arch', 'gpt2', '--out', path.join(tmp, 'y')])).toThrow(/--arch must be one of mixtral, qwen2_moe, qwen3_moe, olmoe, got "gpt2"/);
  });
});
