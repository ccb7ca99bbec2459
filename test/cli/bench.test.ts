// moekit bench paper --preset smoke: the reproduction pipeline end to end (not the claims): every model trained or
// compressed, every field the JSON promises, the claims evaluated, the Markdown tables printed; the --html report
// checked before the run, and the results kept on stdout when the report cannot be written after it.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spreadSample, type Agg, type PaperResult } from '../../src/cli/paper/experiment.js';
import { finishPaper, SMOKE_NOTE } from '../../src/cli/bench.js';
import { colorScale } from '../../src/cli/paper/report.js';
import { mountReadOnly, unmount } from '../helpers/readonly.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'moekit-bench-'));
const ro = path.join(tmp, 'ro');
const roSkip = mountReadOnly(ro, 'test/cli/bench');
afterAll(() => {
  unmount(ro, roSkip);
  fs.rmSync(tmp, { recursive: true, force: true });
});
const CLI = ['--import', 'tsx', 'src/cli/main.ts', 'bench', 'paper'];

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
    const html = path.join(tmp, 'report.html');
    // asynchronously: a minute-long synchronous child would stall the test worker's RPC with the runner
    const { stdout: res } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'bench', 'paper', '--preset', 'smoke', '--seeds', '2', '--json', '--html', html], { encoding: 'utf8', env: { ...process.env, MOEKIT_BACKEND: 'wasm' }, maxBuffer: 64 << 20 });
    const r = JSON.parse(res.trim().split('\n').at(-1)!) as {
      note?: string;
      seeds: number;
      models: Record<string, Record<string, number>>;
      std: Record<string, Record<string, number>>;
      runs: Record<string, unknown[]>;
      claims: { claim: string; target: string; measured: string; pass: boolean }[];
    };
    expect(r.note).toBe(SMOKE_NOTE); // smoke says it checks the pipeline, not the claims
    expect(r.note).toContain("not the paper's claims");
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
    expect(page).toContain("not the paper&#39;s claims");
    expect(page.match(/paper: \+15%/g)?.length).toBe(1); // the target label drawn once, not once per bar
    // legends list only the models a chart shows: the speed chart all four, the load charts moe and clustered
    const figs = page.split('<figure>').slice(1);
    expect(figs[2]).toContain('>dense</text>');
    for (const f of [figs[3]!, figs[4]!]) {
      expect(f).not.toContain('>dense</text>');
      expect(f).not.toContain('>clustered FP16/INT4</text>');
      expect(f).toContain('>clustered</text>');
    }
  }, 120_000);

  it('rejects a bad preset or seed count with the value named', () => {
    const run = (args: string[]): string => {
      try {
        execFileSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return '';
      } catch (e) {
        return String((e as { stderr?: string }).stderr);
      }
    };
    expect(run(['--preset', 'huge'])).toContain('--preset must be one of smoke, small, base, got "huge"');
    expect(run(['--preset', 'smoke', '--seeds', '0'])).toContain('seeds');
    expect(run(['--preset', 'smoke', '--cluster-bias-rate', '-1'])).toContain('--cluster-bias-rate must be a number >= 0, got "-1"');
    expect(run(['--preset', 'smoke', '--moe-bias-rate', 'x'])).toContain('--moe-bias-rate must be a number >= 0, got "x"');
    expect(run(['--preset', 'smoke', '--rank', '33'])).toContain('--rank 33 must be in [1, 32]: a residual of an H x I = 32 x 32 expert matrix has rank at most min(H, I) = 32');
    expect(run(['--preset', 'smoke', '--groups', '16'])).toContain('--groups 16 must divide the 8 experts (1 <= G <= 8)');
  });

  it('an unwritable --html fails before the run starts (no backend, no training)', () => {
    const run = (args: string[]): string => {
      try {
        execFileSync(process.execPath, [...CLI, '--preset', 'smoke', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return 'succeeded';
      } catch (e) {
        return String((e as { stderr?: string }).stderr);
      }
    };
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, 'x');
    const below = path.join(file, 'sub', 'r.html');
    let e = run(['--html', below]);
    expect(e).toContain(`--html ${below}: cannot write there (a parent is a file, not a directory (ENOTDIR)`);
    expect(e).not.toContain('backend');
    e = run(['--html', tmp]);
    expect(e).toContain(`--html ${tmp}: expected a file path, found a directory`);
    if (roSkip === null) {
      e = run(['--html', path.join(ro, 'reports', 'r.html')]);
      expect(e).toContain('cannot write there (read-only file system (EROFS)');
      expect(e).not.toContain('ENOENT');
      expect(e).not.toContain('backend');
    }
  });

  it('a report that cannot be written after the run: the results still reach stdout, the failure is named, exit code 1', async () => {
    // the destination passes the check, then breaks while the benchmark runs: a read-only mount over it (or, where
    // mount is not permitted, a directory at the report's path)
    const dir = path.join(tmp, 'late');
    fs.mkdirSync(dir);
    const html = path.join(dir, 'report.html');
    const child = spawn(process.execPath, [...CLI, '--preset', 'smoke', '--steps', '2', '--json', '--html', html], { env: { ...process.env, MOEKIT_BACKEND: 'wasm' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let broken: 'ro' | 'dir' | null = null;
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (broken === null && stderr.includes('bench paper: preset')) {
        // the run has started (the check passed long before): break the destination now
        broken = mountReadOnly(dir, 'test/cli/bench late failure') === null ? 'ro' : 'dir';
        if (broken === 'dir') fs.mkdirSync(html);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (broken === 'ro') unmount(dir, null);
    expect(broken, stderr).not.toBeNull();
    expect(code).toBe(1);
    const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as { preset: string; models: Record<string, unknown>; claims: unknown[] };
    expect(r.preset).toBe('smoke');
    expect(Object.keys(r.models)).toContain('clustered');
    expect(r.claims.length).toBeGreaterThan(0);
    expect(stderr).toContain(`--html ${html}: could not write the report (${broken === 'ro' ? 'read-only file system (EROFS)' : 'it is a directory (EISDIR)'}); the results are on stdout above`);
    expect(stderr).toContain('| claim (clustered vs standard MoE) |'); // the tables on stderr too
  }, 120_000);
});

describe('finishPaper', () => {
  const agg = (v: number): Agg => ({ mean: v, std: 0, values: [v] });
  const result: PaperResult = {
    preset: 'small', seeds: 1, steps: 10, configs: {}, seconds: 3, runs: {},
    models: { moe: { ppl: agg(20), prefill_tokens_per_s: agg(100), decode_tokens_per_s: agg(10) }, clustered: { ppl: agg(21), prefill_tokens_per_s: agg(120), decode_tokens_per_s: agg(12) } },
    claims: [{ claim: 'perplexity', target: 'within +3%', measured: '+5.0%', pass: false }],
  };
  const sinks = (fail?: string) => {
    const s = { out: [] as string[], err: [] as string[], written: [] as string[] };
    return {
      s,
      sinks: {
        out: (x: string) => void s.out.push(x), err: (x: string) => void s.err.push(x),
        write: async (file: string) => {
          if (fail) throw Object.assign(new Error(`${fail}: write ${file}`), { code: fail });
          s.written.push(file);
        },
      },
    };
  };

  it('prints the results before writing; a full disk is reported in words and returns false', async () => {
    const { s, sinks: k } = sinks('ENOSPC');
    expect(await finishPaper(result, { json: true, html: '/x/r.html' }, k)).toBe(false);
    expect(JSON.parse(s.out.join('\n')).claims[0].measured).toBe('+5.0%');
    expect(s.err.at(-1)).toBe('moekit: --html /x/r.html: could not write the report (no space left on device (ENOSPC)); the results are on stdout above');
    const t = sinks('EROFS');
    expect(await finishPaper(result, { html: '/x/r.html' }, t.sinks)).toBe(false);
    expect(t.s.out.join('\n')).toContain('| perplexity | within +3% | +5.0% | **no** |');
    expect(t.s.err.at(-1)).toContain('(read-only file system (EROFS))');
  });

  it('writes the report after the results, and only smoke carries the note', async () => {
    const { s, sinks: k } = sinks();
    expect(await finishPaper(result, { json: true, html: '/x/r.html' }, k)).toBe(true);
    expect(s.written).toEqual(['/x/r.html']);
    expect(JSON.parse(s.out[0]!).note).toBeUndefined();
    const smoke = sinks();
    await finishPaper({ ...result, preset: 'smoke' }, {}, smoke.sinks);
    expect(smoke.s.out.join('\n')).toContain(`note: ${SMOKE_NOTE}`);
  });

  it('colorScale keeps each model\'s color and lists only the models shown', () => {
    expect(colorScale(['clustered', 'moe'])).toEqual({ domain: ['moe', 'clustered'], range: ['#f58518', '#4c78a8'] });
    expect(colorScale(['dense', 'moe', 'clustered', 'clustered FP16/INT4']).domain).toEqual(['dense', 'moe', 'clustered', 'clustered FP16/INT4']);
  });
});
