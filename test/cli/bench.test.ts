// moekit bench paper --preset smoke: the reproduction pipeline end to end (not the claims): every model trained or
// compressed, every field the JSON promises, the claims evaluated, the Markdown tables printed.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spreadSample } from '../../src/eval/paper.js';

const FIELDS = ['ppl', 'accuracy', 'params_total', 'params_expert', 'params_active', 'train_tokens_per_s', 'prefill_tokens_per_s', 'decode_tokens_per_s', 'load_variance', 'imbalance', 'cross_group_fraction', 'peak_expert_bytes'];

describe('spreadSample', () => {
  it('takes evenly spaced chunks over the whole split, first and last included', () => {
    const ids = Int32Array.from({ length: 1000 }, (_, i) => i);
    const s = spreadSample(ids, 100, 20);
    expect(s.length).toBe(100);
    expect(Array.from(s.subarray(0, 3))).toEqual([0, 1, 2]);
    expect(s[99]).toBe(999); // the last chunk ends at the split's end
    for (let c = 0; c < 5; c++) expect(s[c * 20 + 19]! - s[c * 20]!).toBe(19); // contiguous inside a chunk
    expect(spreadSample(ids, 2000, 20)).toBe(ids); // shorter than asked: all of it
    expect(spreadSample(ids, 10, 20).length).toBe(10);
  });
});

describe('moekit bench paper', () => {
  it('--preset smoke --json reports dense, moe, clustered and the post-training baselines', async () => {
    const html = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'moekit-bench-')), 'report.html');
    // asynchronously: a minute-long synchronous child would stall the test worker's RPC with the runner
    const { stdout: res } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'bench', 'paper', '--preset', 'smoke', '--seeds', '2', '--json', '--html', html], { encoding: 'utf8', env: { ...process.env, MOEKIT_BACKEND: 'wasm' }, maxBuffer: 64 << 20 });
    const r = JSON.parse(res.trim().split('\n').at(-1)!) as {
      seeds: number;
      models: Record<string, Record<string, number>>;
      std: Record<string, Record<string, number>>;
      runs: Record<string, unknown[]>;
      claims: { claim: string; target: string; measured: string; pass: boolean }[];
    };
    expect(Object.keys(r.models)).toEqual(['dense', 'moe', 'clustered', 'd2', 'mc-smoe', 'hc-smoe']);
    for (const name of ['dense', 'moe', 'clustered']) {
      const m = r.models[name]!;
      for (const f of FIELDS) {
        if (name === 'dense' && ['load_variance', 'imbalance', 'cross_group_fraction'].includes(f)) expect(m[f], `${name}.${f}`).toBeUndefined();
        else expect(Number.isFinite(m[f]), `${name}.${f} = ${m[f]}`).toBe(true);
      }
      expect(r.runs[name]!.length).toBe(2);
      expect(m.ppl).toBeGreaterThan(1);
      expect(m.accuracy).toBeGreaterThanOrEqual(0);
      expect(m.accuracy).toBeLessThanOrEqual(1);
    }
    const { moe, clustered, dense } = r.models as Record<string, Record<string, number>>;
    expect(clustered!.params_expert).toBeLessThan(moe!.params_expert);
    expect(clustered!.cross_group_fraction).toBe(0); // one group per token (groupTopK 1)
    expect(dense!.params_expert).toBe(0);
    // the inference form and offloading were measured
    expect(clustered!.ppl_int4).toBeGreaterThan(1);
    expect(clustered!.int4_expert_bytes).toBeLessThan(clustered!.expert_bytes_fp32!);
    expect(clustered!.peak_expert_bytes).toBeLessThanOrEqual(clustered!.offload_budget_bytes!);
    expect(clustered!.offload_loads).toBeGreaterThan(0);
    // the inference form timed in the fused kernel next to the f32 form
    expect(clustered!.decode_tokens_per_s_int4).toBeGreaterThan(0);
    expect(clustered!.prefill_tokens_per_s_int4).toBeGreaterThan(0);
    // baselines: post-training, at no more than the clustered expert budget
    for (const b of ['d2', 'mc-smoe', 'hc-smoe']) {
      expect(r.models[b]!.ppl).toBeGreaterThan(1);
      expect(r.models[b]!.params_expert).toBeLessThanOrEqual(clustered!.params_expert!);
    }
    expect(r.claims.map((c) => c.claim)).toEqual([
      'expert parameters', 'perplexity', 'expert-load variance',
      'inference prefill tokens/s (f32 weights)', 'inference prefill tokens/s (clustered FP16/INT4)',
      'inference decode tokens/s (f32 weights)', 'inference decode tokens/s (clustered FP16/INT4)', 'peak resident expert bytes',
    ]);
    for (const c of r.claims) expect(typeof c.pass).toBe('boolean');
    // the HTML report: the claims table and the charts as inline SVG, one per figure
    const page = fs.readFileSync(html, 'utf8');
    expect(page).toContain('<th>claim (clustered vs standard MoE)</th>');
    for (const c of r.claims) expect(page).toContain(`<td>${c.claim}</td>`);
    expect(page.match(/<figure><svg /g)?.length).toBe(5); // perplexity, parameters, speed, load variance, load profile
    expect(page).not.toContain('<script');
  }, 120_000);

  it('rejects a bad preset or seed count with the value named', () => {
    const run = (args: string[]): string => {
      try {
        execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'bench', 'paper', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return '';
      } catch (e) {
        return String((e as { stderr?: string }).stderr);
      }
    };
    expect(run(['--preset', 'huge'])).toContain('--preset must be one of smoke, small, base, got "huge"');
    expect(run(['--preset', 'smoke', '--seeds', '0'])).toContain('seeds');
    expect(run(['--preset', 'smoke', '--cluster-bias-rate', '-1'])).toContain('--cluster-bias-rate must be a number >= 0, got "-1"');
    expect(run(['--preset', 'smoke', '--moe-bias-rate', 'x'])).toContain('--moe-bias-rate must be a number >= 0, got "x"');
    expect(run(['--preset', 'smoke', '--html', '/nonexistent-dir/r.html'])).toContain('--html /nonexistent-dir/r.html: directory /nonexistent-dir does not exist');
  });
});
