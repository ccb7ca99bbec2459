// moekit trace: a model directory over JSONL prompts, a text file and Brown valid; the trace holds every token once
// with its sequence id; bad input is refused before or without writing a trace.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/node.js';
import { readTrace } from '../../src/trace/format.js';
import { cli, cliError } from '../helpers/cli.js';


let dir = '';
let modelDir = '';
let tok: mk.LoadedTokenizer;
beforeAll(async () => {
  await mk.setBackend('js');
  dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-cli-trace-'));
  modelDir = path.join(dir, 'model');
  const bpe = mk.trainBpe(mk.splitBrown(mk.loadBrown()).train.slice(0, 20).map((d) => d.text), { vocabSize: 300 });
  const model = new mk.MoELM({ ...mk.PRESETS.tiny, vocabSize: bpe.vocab.size, denseLayers: [0], layers: 3 });
  await mk.saveModelDir(model, modelDir);
  mk.saveTokenizerJson(bpe, path.join(modelDir, 'tokenizer.json'));
  tok = mk.loadTokenizer(path.join(modelDir, 'tokenizer.json'));
  model.dispose();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('moekit trace', () => {
  it('JSONL prompts: one sequence per line, every token once, the MoE layers and their top-k in the metadata', () => {
    const prompts = ['The jury said it did find', 'that many of the', 'Atlanta\'s recent primary election produced no evidence that any irregularities took place.'];
    const data = path.join(dir, 'prompts.jsonl');
    writeFileSync(data, prompts.map((p, i) => JSON.stringify(i === 1 ? { text: p } : { prompt: p })).join('\n') + '\n');
    const out = path.join(dir, 'p.safetensors');
    const s = JSON.parse(cli(['trace', modelDir, '--out', out, '--data', data, '--hidden', '--window', '8', '--backend', 'js', '--json'])) as Record<string, unknown>;
    const lens = prompts.map((p) => tok.encode(p).length);
    expect(s).toMatchObject({ tokens: lens.reduce((a, b) => a + b, 0), sequences: 3, layers: [1, 2], top_k: 2, hidden: 32 });
    const t = readTrace(out);
    expect(t.N).toBe(s.tokens);
    expect(Array.from(t.seq!)).toEqual(lens.flatMap((n, i) => new Array<number>(n).fill(i)));
    expect(Array.from(t.tokens!)).toEqual(prompts.flatMap((p) => tok.encode(p)));
    const E = mk.parseConfig(mk.PRESETS.tiny).experts;
    expect(t.metadata).toMatchObject({ corpus: data, window: '8', experts: String(E), top_k: '2', layers: '[1,2]' });
    expect(t.experts.every((e) => e >= 0 && e < E)).toBe(true);
    expect(t.H).toBe(32);
  });

  it('Brown valid up to --max-tokens, and a plain text file as one sequence', () => {
    const out = path.join(dir, 'b.safetensors');
    const s = JSON.parse(cli(['trace', modelDir, '--out', out, '--max-tokens', '300', '--backend', 'js', '--json'])) as { tokens: number; sequences: number };
    expect(s.tokens).toBe(300);
    const t = readTrace(out);
    expect(t.N).toBe(300);
    expect(t.metadata.corpus).toBe('brown:valid');
    expect(t.hidden).toBeUndefined();
    const text = path.join(dir, 'a.txt');
    writeFileSync(text, 'It is a text file.\nWith two lines.\n');
    const s2 = JSON.parse(cli(['trace', modelDir, '--out', path.join(dir, 't.safetensors'), '--data', text, '--backend', 'js', '--json'])) as { tokens: number; sequences: number };
    expect(s2).toMatchObject({ tokens: tok.encode('It is a text file.\nWith two lines.\n').length, sequences: 1 });
  });

  it('moekit predict on two traces: every predictor per layer pair; speculative gating only with hidden states', () => {
    const a = path.join(dir, 'train.safetensors');
    const b = path.join(dir, 'eval.safetensors');
    cli(['trace', modelDir, '--out', a, '--max-tokens', '400', '--hidden', '--backend', 'js', '--json']);
    cli(['trace', modelDir, '--out', b, '--data', 'brown:test', '--max-tokens', '200', '--hidden', '--backend', 'js', '--json']);
    const r = JSON.parse(cli(['predict', '--train', a, '--eval', b, '--distances', '1', '--backend', 'js', '--json'])) as { speculative: boolean; scores: { predictor: string; from: number; distance: number; layer: number; recall: number; recall2k: number; exact: number; tokens: number }[] };
    expect(r.speculative).toBe(true);
    expect(r.scores.map((s) => s.predictor).sort()).toEqual(['activation matrix', 'frequency', 'path table', 'speculative gating', 'speculative gating + adapter']);
    for (const s of r.scores) {
      expect([s.from, s.distance, s.layer, s.tokens]).toEqual([0, 1, 2, 200]);
      expect(s.recall2k).toBeGreaterThanOrEqual(s.recall);
      expect(s.recall).toBeGreaterThanOrEqual(s.exact);
      expect(s.recall2k).toBeLessThanOrEqual(1);
    }
    // without hidden states: no speculative gating, and no model needed
    const c = path.join(dir, 'nohidden.safetensors');
    cli(['trace', modelDir, '--out', c, '--max-tokens', '100', '--backend', 'js', '--json']);
    const r2 = JSON.parse(cli(['predict', '--train', c, '--eval', c, '--json'])) as { speculative: boolean; scores: unknown[] };
    expect(r2.speculative).toBe(false);
    expect(r2.scores.length).toBe(3);
    expect(cliError(['predict', '--train', a, '--eval', b, '--model', path.join(dir, 'nowhere')])).toContain('speculative gating needs the model');
  });

  it('refuses bad input with the file, line or value, and leaves no trace or part files behind', () => {
    const bad = path.join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "ok"}\n{"prompt": 3}\n');
    const out = path.join(dir, 'never.safetensors');
    expect(cliError(['trace', modelDir, '--out', out, '--data', bad, '--backend', 'js'])).toContain(`${bad}:2: expected {"prompt": "..."} or {"text": "..."}`);
    expect(cliError(['trace', modelDir, '--out', out, '--data', 'brown:dev', '--backend', 'js'])).toContain('--data brown:dev: the split must be train, valid or test');
    expect(cliError(['trace', modelDir, '--out', out, '--window', '100000', '--backend', 'js'])).toContain('--window 100000 exceeds the model\'s maxSeqLen');
    expect(cliError(['trace', modelDir, '--out', out, '--batch', '0', '--backend', 'js'])).toContain('--batch must be a positive integer, got "0"');
    const noTok = path.join(dir, 'notok');
    const m = new mk.MoELM(mk.PRESETS.tiny);
    return mk.saveModelDir(m, noTok).then(() => {
      expect(cliError(['trace', noTok, '--out', out, '--backend', 'js'])).toContain('tokenizer');
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(dir).filter((f) => f.includes('.part') || f.endsWith('.tmp'))).toEqual([]);
    });
  });
});
