// moekit train end to end on the embedded corpus: the tiny preset lowers the loss by >= 20% within its steps.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const cli = (args: string[]): string => execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8' });

describe('moekit train', () => {
  it('--preset tiny --json: one line per step, a summary, loss down >= 20%, checkpoint and tokenizer written', () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'moekit-cli-train-'));
    const lines = cli(['train', '--preset', 'tiny', '--json', '--out', out]).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
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

  it('--clustered with --config: trains clustered experts, regroups on schedule and logs clusters.jsonl', () => {
    const out = mkdtempSync(path.join(os.tmpdir(), 'moekit-cli-train-cl-'));
    const cfg = path.join(out, 'config.json');
    writeFileSync(cfg, JSON.stringify({ experts: 8, clusterGroups: 2, clusterRank: 4, clusterEvery: 10, clusterWarmup: 10 }));
    const lines = cli(['train', '--preset', 'tiny', '--clustered', '--config', cfg, '--steps', '25', '--json', '--out', out]).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
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

  it('names bad options', () => {
    expect(() => cli(['train', '--preset', 'tiny', '--dense', '--clustered'])).toThrow(/--dense and --clustered exclude each other/);
    expect(() => cli(['train', '--preset', 'tiny', '--config', '/nonexistent/c.json'])).toThrow(/--config \/nonexistent\/c.json: cannot read it \(ENOENT\)/);
    expect(() => cli(['train', '--preset', 'huge'])).toThrow(/--preset must be one of tiny, small, base, got "huge"/);
    expect(() => cli(['train', '--preset', 'tiny', '--steps', 'many'])).toThrow(/--steps must be a non-negative integer, got "many"/);
  });
});
