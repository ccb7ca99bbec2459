// moekit bench paper --preset smoke: the reproduction pipeline end to end (not the claims): every model trained or
// compressed, every field the JSON promises, the claims evaluated, the Markdown tables printed; the --html report
// checked before the run, and the results kept on stdout when the report cannot be written after it. The numbers are
// checked against what they must agree with: means and stds against the per-seed runs, parameter counts against
// freshly built models of the preset, perplexities against the vocabulary size and the run's own training
// cross-entropy, accuracies against the held-out row count, load statistics against the routed counts, the claims
// recomputed from the means.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/node.js';
import { PAPER_PRESETS, spreadSample, type Agg, type PaperResult } from '../../src/cli/paper/experiment.js';
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

/** One model's result for one seed, as the JSON holds it. */
type Run = Record<string, number | null | object>;
/** Fields that are null in a run when they do not apply (the dense model's routing statistics): not aggregated. */
const NULLABLE = new Set(['load_variance', 'imbalance', 'cross_group_fraction']);

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
    const { stdout: res, stderr: log } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'bench', 'paper', '--preset', 'smoke', '--seeds', '2', '--json', '--html', html], { encoding: 'utf8', env: { ...process.env, MOEKIT_BACKEND: 'wasm' }, maxBuffer: 64 << 20 });
    const r = JSON.parse(res.trim().split('\n').at(-1)!) as {
      preset: string;
      note?: string;
      seeds: number;
      steps: number;
      seconds: number;
      models: Record<string, Record<string, number | null>>;
      std: Record<string, Record<string, number | null>>;
      runs: Record<string, Run[]>;
      claims: { claim: string; target: string; measured: string; pass: boolean }[];
    };
    const p = PAPER_PRESETS.smoke;
    // the JSON line: the fields finishPaper writes, in its order (NaN, e.g. a baseline's accuracy, is written as null)
    expect(Object.keys(r)).toEqual(['preset', 'note', 'seeds', 'steps', 'seconds', 'models', 'std', 'runs', 'claims']);
    expect([r.preset, r.seeds, r.steps]).toEqual(['smoke', 2, p.steps]);
    expect(r.note).toBe(SMOKE_NOTE); // smoke says it checks the pipeline, not the claims
    expect(r.note).toContain("not the paper's claims");
    const MODELS = ['dense', 'moe', 'clustered', 'd2', 'mc-smoe', 'hc-smoe'];
    for (const part of [r.models, r.std, r.runs]) expect(Object.keys(part)).toEqual(MODELS);
    for (const name of MODELS) expect(r.runs[name]!.length, name).toBe(2);

    // models and std are the mean and the sample standard deviation over the seeds of every field all runs report
    for (const name of MODELS) {
      const runs = r.runs[name]!;
      const numeric = Object.keys(runs[0]!).filter((f) => runs.every((x) => typeof x[f] === 'number' || (x[f] === null && !NULLABLE.has(f))));
      expect(Object.keys(r.models[name]!).sort(), name).toEqual(numeric.sort());
      expect(Object.keys(r.std[name]!).sort(), name).toEqual(numeric.sort());
      for (const f of numeric) {
        const v = runs.map((x) => x[f] as number | null);
        if (v.includes(null)) { // NaN in a run: NaN mean and std
          expect(r.models[name]![f], `${name}.${f}`).toBeNull();
          continue;
        }
        const mean = (v[0]! + v[1]!) / 2;
        expect(r.models[name]![f], `${name}.${f}`).toBeCloseTo(mean, 9);
        expect(r.std[name]![f], `${name}.${f} std`).toBeCloseTo(Math.abs(v[0]! - v[1]!) / Math.SQRT2, 9);
      }
    }
    for (const name of ['dense', 'moe', 'clustered']) {
      const m = r.models[name]!;
      for (const f of FIELDS) {
        if (name === 'dense' && ['load_variance', 'imbalance', 'cross_group_fraction'].includes(f)) expect(m[f], `${name}.${f}`).toBeUndefined();
        else expect(Number.isFinite(m[f]), `${name}.${f} = ${m[f]}`).toBe(true);
      }
    }

    // parameters: the counts of freshly built models of the preset's configurations (training changes no shapes)
    mk.useBackend(new mk.JsBackend());
    const moeCfg = mk.parseConfig(p.model);
    const build = (cfg: mk.ModelConfig): { total: number; expert: number; active: number; ffnBytes: number } => {
      const m = new mk.MoELM(cfg);
      const c = m.paramCounts();
      const ffnBytes = 4 * m.layers.reduce((a, l) => a + l.mlp.numParams(), 0);
      m.dispose();
      return { ...c, ffnBytes };
    };
    const want = {
      dense: build(mk.denseBaseline(moeCfg)), moe: build(moeCfg),
      clustered: build(mk.parseConfig({ ...p.model, ffn: 'clustered', clusterGroups: p.clusterGroups, clusterRank: p.clusterRank, clusterEvery: p.clusterEvery, clusterWarmup: p.clusterWarmup, clusterDenseWarmup: false })),
    };
    for (const name of ['dense', 'moe', 'clustered'] as const) {
      const m = r.models[name]!;
      expect([m.params_total, m.params_expert, m.params_active], name).toEqual([want[name].total, want[name].expert, want[name].active]);
    }
    const clusteredBudget = moeCfg.layers * mk.clusteredExpertParams(moeCfg.experts, moeCfg.hidden, moeCfg.expertWidth, p.clusterGroups, p.clusterRank);
    expect(r.models.clustered!.params_expert).toBe(clusteredBudget);
    expect(r.models.dense!.params_expert).toBe(0);
    // resident FFN bytes at f32: the dense FFNs, the routed experts, the compressed experts of each baseline
    expect(r.models.dense!.peak_expert_bytes).toBe(want.dense.ffnBytes);
    expect(r.models.moe!.peak_expert_bytes).toBe(4 * want.moe.expert);
    expect(r.models.clustered!.expert_bytes_fp32).toBe(4 * want.clustered.expert);
    for (const b of ['d2', 'mc-smoe', 'hc-smoe']) {
      const m = r.models[b]!;
      expect(m.params_expert, b).toBeLessThanOrEqual(clusteredBudget); // post-training, at no more than the clustered expert budget
      expect(m.params_total, b).toBe(want.moe.total - want.moe.expert + m.params_expert!);
      expect(m.peak_expert_bytes, b).toBe(4 * m.params_expert!);
      for (const f of ['accuracy', 'train_tokens_per_s', 'prefill_tokens_per_s', 'decode_tokens_per_s']) expect(m[f], `${b}.${f} (not measured)`).toBeNull();
    }

    // perplexity: above 1, below the uniform distribution's (the vocabulary size), and within 0.5 nats of the training
    // cross-entropy the same run logged for its last two logged steps (one batch of 4×32 tokens each:
    // a per-token spread of ~2 nats gives ~0.15 nats of sampling noise, plus the train/held-out gap of a 30-step
    // model); the same model's log line and the Markdown table print the same numbers
    const V = moeCfg.vocabSize;
    const ce = new Map<string, number[]>();
    for (const m of log.matchAll(/^ {2}seed (\d+) (\S+)\s+step (\d+)\/(\d+)\s+ce ([\d.]+)/gm)) {
      const k = `${m[2]} ${m[1]}`;
      ce.set(k, [...(ce.get(k) ?? []), Number(m[5])]);
    }
    const valid = Number(/Brown \d+ train \/ (\d+) valid tokens/.exec(log)?.[1]);
    expect(valid).toBe(p.evalTokens);
    // the genre task's held-out rows: the valid split's first maxDocs documents, at most ceil(maxRows / 3) rows
    const genreRows = Math.min(mk.brownGenreTask(mk.splitBrown(mk.loadBrown()).valid.slice(0, p.maxDocs)).length, Math.ceil(p.classify.maxRows / 3));
    for (const name of ['dense', 'moe', 'clustered']) {
      r.runs[name]!.forEach((run, s) => {
        const ppl = run.ppl as number;
        const last = ce.get(`${name} ${s}`)!.slice(-2);
        const gap = Math.abs(Math.log(ppl) - (last[0]! + last[1]!) / 2);
        const correct = (run.accuracy as number) * genreRows;
        console.log(`${name} seed ${s}: valid ppl ${ppl.toFixed(3)} (ln ${Math.log(ppl).toFixed(3)}), last logged training ce ${last.join(', ')} (gap ${gap.toFixed(3)} nats); genre accuracy ${run.accuracy} = ${correct.toFixed(6)} / ${genreRows}`);
        expect(ppl).toBeGreaterThan(1);
        expect(ppl).toBeLessThan(V);
        expect(gap).toBeLessThan(0.5);
        // accuracy: correct rows / held-out rows
        expect(run.accuracy).toBeGreaterThanOrEqual(0);
        expect(run.accuracy).toBeLessThanOrEqual(1);
        expect(Math.abs(correct - Math.round(correct))).toBeLessThan(1e-9);
        expect(log).toContain(`seed ${s} ${name.padEnd(9)} ppl ${ppl.toFixed(2)}  acc ${((run.accuracy as number) * 100).toFixed(1)}%`);
      });
    }
    for (const b of ['d2', 'mc-smoe', 'hc-smoe']) {
      r.runs[b]!.forEach((run, s) => {
        const ppl = run.ppl as number;
        // the standard MoE compressed after training: a model of the same tokens, not one that lost them
        const moePpl = r.runs.moe![s]!.ppl as number;
        console.log(`${b} seed ${s}: ppl ${ppl.toFixed(3)} vs the trained moe's ${moePpl.toFixed(3)} at ${run.params_expert} expert params`);
        expect(ppl).toBeGreaterThan(1);
        expect(ppl).toBeLessThan(V);
        expect(Math.abs(Math.log(ppl / moePpl))).toBeLessThan(0.5);
        expect(log).toContain(`seed ${s} ${b.padEnd(9)} ppl ${ppl.toFixed(2)} at ${run.params_expert} expert params`);
      });
    }
    const cell = (name: string, f: string, fmt: (v: number) => string): string => `${fmt(r.models[name]![f]!)} ± ${fmt(r.std[name]![f]!)}`;
    for (const name of MODELS) expect(log, name).toContain(`| ${name} | ${cell(name, 'ppl', (v) => v.toFixed(2))} |`);

    // routing on the held-out tokens: K slots per token and MoE layer, the load statistics of those counts, the
    // cross-group share a count of tokens; clustered routes within one group (groupTopK 1)
    for (const name of ['moe', 'clustered']) {
      for (const run of r.runs[name]!) {
        const pl = run.per_layer as { load_variance: number[]; imbalance: number[]; cross_group_fraction: number[]; tokens_per_expert: number[][] };
        expect(pl.tokens_per_expert.length).toBe(moeCfg.layers);
        pl.tokens_per_expert.forEach((c, l) => {
          expect(c.length).toBe(moeCfg.experts);
          expect(c.reduce((a, b) => a + b, 0)).toBe(valid * moeCfg.topK);
          const f = c.map((x) => x / (valid * moeCfg.topK));
          expect(pl.load_variance[l]).toBeCloseTo(f.reduce((a, x) => a + (x - 1 / f.length) ** 2, 0) / f.length, 12);
          expect(pl.imbalance[l]).toBeCloseTo(Math.max(...f) * f.length, 12);
          const crossed = pl.cross_group_fraction[l]! * valid;
          expect(Math.abs(crossed - Math.round(crossed))).toBeLessThan(1e-6);
        });
        const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
        expect(run.load_variance).toBeCloseTo(mean(pl.load_variance), 12);
        expect(run.imbalance).toBeCloseTo(mean(pl.imbalance), 12);
        expect(run.cross_group_fraction).toBeCloseTo(mean(pl.cross_group_fraction), 12);
        if (name === 'clustered') expect(pl.cross_group_fraction).toEqual([0, 0]);
        else expect(run.cross_group_fraction).toBeGreaterThan(0); // top-2 of 8 experts in 2 groups: some tokens cross
      }
    }

    // the clustered inference form: INT4 factors and FP16 bases of the same weights give nearly the same perplexity
    // (within 5%: a broken scale or base would move it by far more), in fewer bytes; offloaded under the budget
    const clustered = r.models.clustered! as Record<string, number>;
    for (const run of r.runs.clustered!) {
      const [ppl, int4] = [run.ppl as number, run.ppl_int4 as number];
      console.log(`clustered: ppl ${ppl.toFixed(4)}, INT4 form ${int4.toFixed(4)} (${((int4 / ppl - 1) * 100).toFixed(3)}%), ${run.int4_expert_bytes} vs ${run.expert_bytes_fp32} expert bytes; offloaded peak ${run.peak_expert_bytes} of ${run.offload_budget_bytes}, ${run.offload_loads} loads`);
      expect(Math.abs(Math.log(int4 / ppl))).toBeLessThan(0.05);
      expect(run.int4_expert_bytes).toBeLessThan(run.expert_bytes_fp32 as number);
      expect(run.peak_expert_bytes).toBeLessThanOrEqual(run.offload_budget_bytes as number);
      expect(run.offload_loads).toBeGreaterThan(0);
      expect(Number.isInteger(run.offload_loads)).toBe(true);
    }
    expect(log).toContain(`| valid ppl | ${cell('clustered', 'ppl', (v) => v.toFixed(2))} | ${cell('clustered', 'ppl_int4', (v) => v.toFixed(2))} (${((clustered.ppl_int4! / clustered.ppl! - 1) * 100).toFixed(2)}%) |`);
    // the inference form timed in the fused kernel next to the f32 form
    expect(clustered.decode_tokens_per_s_int4).toBeGreaterThan(0);
    expect(clustered.prefill_tokens_per_s_int4).toBeGreaterThan(0);

    // the claims: each measured value and verdict recomputed from the means above
    const m = (k: string, f: string): number => r.models[k]![f]!;
    const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
    const signed = (x: number): string => `${x >= 0 ? '+' : ''}${pct(x)}`;
    const expertDown = 1 - m('clustered', 'params_expert') / m('moe', 'params_expert');
    const pplUp = m('clustered', 'ppl') / m('moe', 'ppl') - 1;
    const varDown = m('moe', 'load_variance') / m('clustered', 'load_variance');
    const speed = (kind: string, f: string): number => m('clustered', f) / m('moe', `${kind}_tokens_per_s`) - 1;
    const peak = m('clustered', 'peak_expert_bytes') / m('dense', 'peak_expert_bytes');
    const wantClaims = [
      { claim: 'expert parameters', target: '>= 75% fewer', measured: `${pct(expertDown)} fewer (total ${pct(1 - m('clustered', 'params_total') / m('moe', 'params_total'))} fewer)`, pass: expertDown >= 0.75 },
      { claim: 'perplexity', target: 'within +3%', measured: signed(pplUp), pass: pplUp <= 0.03 },
      { claim: 'expert-load variance', target: '>= 3x lower', measured: `${varDown.toFixed(2)}x lower`, pass: varDown >= 3 },
      ...(['prefill', 'decode'] as const).flatMap((kind) => [['f32 weights', `${kind}_tokens_per_s`], ['clustered FP16/INT4', `${kind}_tokens_per_s_int4`]].map(([form, f]) => {
        const up = speed(kind, f!);
        return { claim: `inference ${kind} tokens/s (${form})`, target: '>= +15%', measured: signed(up), pass: up >= 0.15 };
      })),
      { claim: 'peak resident expert bytes', target: "<= dense FFNs'", measured: `${peak.toFixed(2)}x dense`, pass: peak <= 1 },
    ];
    expect(r.claims).toEqual(wantClaims);
    expect(expertDown).toBeCloseTo(1 - clusteredBudget / want.moe.expert, 12);
    for (const c of r.claims) expect(log).toContain(`| ${c.claim} | ${c.target} | ${c.measured} | ${c.pass ? 'yes' : '**no**'} |`);

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
  }, 180_000);

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
