// Run directories: what one holds, moving one aside, stale temp checkpoints, torn JSONL logs, resume mismatches.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PRESETS, parseConfig } from '../../src/models/config.js';
import { cleanStaleTemps, describeRun, moveAside, resumeMismatches, truncateJsonl, type RunIdentity } from '../../src/train/rundir.js';
import { tempDir } from '../helpers/tmp.js';

const line = (step: number): string => `${JSON.stringify({ step, loss: 1 / step })}\n`;

describe('describeRun', () => {
  it('an empty or missing directory, or one with other files only, is not a run', () => {
    const d = tempDir('moekit-rundir-');
    expect(describeRun(d).isRun).toBe(false);
    expect(describeRun(path.join(d, 'missing')).isRun).toBe(false);
    writeFileSync(path.join(d, 'tokenizer.json'), '{}');
    expect(describeRun(d).isRun).toBe(false);
  });
  it('summarises checkpoints and metric lines', () => {
    const d = tempDir('moekit-rundir-');
    mkdirSync(path.join(d, 'checkpoints', 'step-1400'), { recursive: true });
    mkdirSync(path.join(d, 'checkpoints', 'step-1500'));
    writeFileSync(path.join(d, 'checkpoints', 'latest.json'), JSON.stringify({ checkpoint: 'step-1500', step: 1500 }));
    writeFileSync(path.join(d, 'metrics.jsonl'), Array.from({ length: 1500 }, (_, i) => line(i + 1)).join(''));
    const c = describeRun(d);
    expect(c).toMatchObject({ isRun: true, checkpoints: [1400, 1500], latestStep: 1500, metricLines: 1500 });
    expect(c.summary).toBe('checkpoints up to step 1500, 1500 metric lines');
  });
});

describe('moveAside', () => {
  it('renames to <dir>.old-<UTC timestamp>, with a suffix when that exists; contents intact', () => {
    const root = tempDir('moekit-rundir-');
    const d = path.join(root, 'k3');
    mkdirSync(d);
    writeFileSync(path.join(d, 'metrics.jsonl'), line(1));
    const when = new Date(Date.UTC(2026, 11, 4, 17, 30, 5));
    const to = moveAside(d, when);
    expect(to).toBe(path.join(root, 'k3.old-20261204T173005Z'));
    expect(readFileSync(path.join(to, 'metrics.jsonl'), 'utf8')).toBe(line(1));
    expect(existsSync(d)).toBe(false);
    mkdirSync(d);
    expect(moveAside(d, when)).toBe(`${to}-2`);
  });
});

describe('cleanStaleTemps', () => {
  it("removes temp checkpoints of dead processes and of this one, keeps a live process's", () => {
    const d = tempDir('moekit-rundir-');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // exited before we look
    const live = process.ppid;
    for (const n of [`.step-60.${dead}.tmp`, `.step-70.${process.pid}.tmp`, `.step-80.${live}.tmp`, 'step-50']) mkdirSync(path.join(d, n));
    writeFileSync(path.join(d, `.step-60.${dead}.tmp`, 'model.safetensors'), 'partial');
    const r = cleanStaleTemps(d);
    expect(r.removed.sort()).toEqual([`.step-60.${dead}.tmp`, `.step-70.${process.pid}.tmp`].sort());
    expect(r.kept).toEqual([`.step-80.${live}.tmp`]);
    expect(readdirSync(d).sort()).toEqual([`.step-80.${live}.tmp`, 'step-50'].sort());
    expect(cleanStaleTemps(path.join(d, 'missing'))).toEqual({ removed: [], kept: [] });
  });
});

describe('truncateJsonl', () => {
  it('keeps lines up to the step; a torn last line is dropped with a warning naming file and line', () => {
    const d = tempDir('moekit-rundir-');
    const f = path.join(d, 'metrics.jsonl');
    writeFileSync(f, `${line(1)}${line(2)}${line(3)}{"step":4,"loss":0.2`);
    const warnings: string[] = [];
    truncateJsonl(f, 2, (m) => warnings.push(m));
    expect(readFileSync(f, 'utf8')).toBe(`${line(1)}${line(2)}`);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`${f}: line 4 is incomplete`);
  });
  it('a corrupt line before the last is an error naming file and line', () => {
    const d = tempDir('moekit-rundir-');
    const f = path.join(d, 'metrics.jsonl');
    const text = `${line(1)}{"step":2,"lo\n${line(3)}`;
    writeFileSync(f, text);
    expect(() => truncateJsonl(f, 3, () => {})).toThrow(`${f}: line 2 is not valid JSON`);
    expect(readFileSync(f, 'utf8')).toBe(text);
  });
});

describe('resumeMismatches', () => {
  const config = PRESETS.tiny;
  const now: RunIdentity = { config, seed: 0, batch: 8, seqLen: 32, accum: 1, data: { tokens: 1000, sha256: 'a'.repeat(64), docs: 40, tokenizer: 'b'.repeat(64) } };
  it('names each mismatched field with both values', () => {
    const saved = { ...now, config: parseConfig({ ...config, experts: 8 }), seed: 1, batch: 4, seqLen: 16, data: { ...now.data, docs: 5, tokens: 900 } };
    const { mismatches, unchecked } = resumeMismatches(saved, now);
    expect(unchecked).toEqual([]);
    expect(mismatches).toEqual([
      'config.experts: 8 in the checkpoint, 4 now',
      'seed (--seed): 1 in the checkpoint, 0 now',
      'batch (--batch): 4 in the checkpoint, 8 now',
      'seqLen (--seq-len): 16 in the checkpoint, 32 now',
      'data.docs (--docs): 5 in the checkpoint, 40 now',
      'data.tokens: 900 in the checkpoint, 1000 now',
    ]);
    expect(resumeMismatches({ ...now, data: { ...now.data, tokenizer: 'c'.repeat(64) } }, now).mismatches).toEqual([`data.tokenizer (tokenizer.json): cccccccccccc… in the checkpoint, bbbbbbbbbbbb… now`]);
  });
  it('identical settings match; a checkpoint without data (an earlier release) reports data as unchecked', () => {
    expect(resumeMismatches({ ...now }, now)).toEqual({ mismatches: [], unchecked: [] });
    const { data: _, ...legacy } = now;
    expect(resumeMismatches(legacy, now)).toEqual({ mismatches: [], unchecked: ['data (docs, tokenizer, token stream)'] });
  });
});
