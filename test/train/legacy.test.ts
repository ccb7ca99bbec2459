// Files written by an earlier release keep working: its run directory resumes (with a warning that the data could
// not be checked) and its compressed moekit model directory loads and gives finite logits.
import { cpSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { loadModelDir } from '../../src/models/dir.js';
import { train, type StepMetrics } from '../../src/train/loop.js';
import { tempDir } from '../helpers/tmp.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');

beforeAll(async () => {
  await mk.setBackend('js');
});

describe('legacy run directory (test/fixtures/legacy-run)', () => {
  it('resumes from its step-4 checkpoint, warning that the data selection could not be checked', async () => {
    const out = path.join(tempDir('moekit-legacy-'), 'run');
    cpSync(path.join(fixtures, 'legacy-run'), out, { recursive: true });
    const state = JSON.parse(readFileSync(path.join(out, 'checkpoints', 'step-4', 'state.json'), 'utf8')) as { config: mk.ModelConfig; seed: number; batch: number; seqLen: number };
    expect(state).not.toHaveProperty('data');
    const rng = new mk.Rng(1);
    const tokens = Int32Array.from({ length: 2000 }, () => rng.int(state.config.vocabSize));
    const warnings: string[] = [];
    const r = await train({ config: mk.parseConfig(state.config), tokens, steps: 6, batch: state.batch, seqLen: state.seqLen, seed: state.seed, out, resume: true, onWarning: (m) => warnings.push(m) });
    expect(r.startStep).toBe(4);
    expect(r.metrics.map((m) => m.step)).toEqual([5, 6]);
    expect(warnings).toEqual([`${out}/checkpoints/step-4 was written by an earlier moekit that did not record data (docs, tokenizer, token stream); these could not be checked against this run`]);
    const logged = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as StepMetrics).step);
    expect(logged).toEqual([1, 2, 3, 4, 5, 6]);
    // the settings it did record are still enforced
    await expect(train({ config: mk.parseConfig(state.config), tokens, steps: 8, batch: state.batch + 1, seqLen: state.seqLen, out, resume: true, onWarning: () => {} })).rejects.toThrow(`batch (--batch): ${state.batch} in the checkpoint, ${state.batch + 1} now`);
  });
});

describe('legacy moekit model directory (test/fixtures/legacy-model)', () => {
  it('loads with loadModelDir (clustered, tokenizer) and gives finite logits', async () => {
    const m = await loadModelDir(path.join(fixtures, 'legacy-model'));
    expect(m.kind).toBe('moekit');
    expect(m.config.ffn).toBe('clustered');
    expect(m.tokenizer).not.toBeNull();
    const ids = m.tokenizer!.encode('The jury said it did find');
    const logits = mk.noGrad(() => mk.tidy(() => Array.from(m.model.forward(mk.tensor(Int32Array.from(ids), [1, ids.length], 'i32')).logits.dataSync())));
    expect(logits).toHaveLength(ids.length * m.config.vocabSize);
    expect(logits.every(Number.isFinite)).toBe(true);
    m.model.dispose();
  });
});
