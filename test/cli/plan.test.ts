// moekit plan end to end in a child process: EPLB on the shared README case as JSON, on a trace, with --prev (slots
// kept, migration counted), CRAFT under a budget, dynamic replication on a trace; bad input named.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../src/trace/npy.js';
import { cli, cliError } from '../helpers/cli.js';


interface Case { name: string; loads: number[][]; replicas: number; groups: number; nodes: number; gpus: number; phy2log: number[][]; log2phy: number[][][]; logcnt: number[][] }
const readme = (JSON.parse(readFileSync(path.resolve('../shared/fixtures/eplb/cases.json'), 'utf8')) as { cases: Case[] }).cases.find((c) => c.name === 'readme')!;

let dir = '';
let loads = '';
let npy = '';
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-cli-plan-'));
  loads = path.join(dir, 'loads.json');
  writeFileSync(loads, JSON.stringify(readme.loads));
  // 4000 tokens, 2 layers, top-2 of 8 experts; expert 0 hot at layer 0, uniform elsewhere (fixed pattern)
  npy = path.join(dir, 'trace.npy');
  const ids = new Int16Array(4000 * 2 * 2);
  for (let n = 0; n < 4000; n++) {
    ids[n * 4] = n % 3 === 0 ? 0 : 1 + (n % 7);
    ids[n * 4 + 1] = ((n % 7) + 2) % 8 === ids[n * 4] ? 5 : ((n % 7) + 2) % 8;
    ids[n * 4 + 2] = n % 8;
    ids[n * 4 + 3] = (n + 3) % 8;
  }
  writeNpy(npy, ids, [4000, 2, 2], '<i2');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('moekit plan eplb', () => {
  it('--json on the README case gives the reference plan, and --out writes it', () => {
    const out = path.join(dir, 'plan.json');
    const j = JSON.parse(cli(['plan', 'eplb', '--loads', loads, '--replicas', '16', '--groups', '4', '--nodes', '2', '--gpus', '8', '--json', '--out', out])) as Case & { balance: { after: { total_balancedness: number } } };
    expect(j.phy2log).toEqual(readme.phy2log);
    expect(j.log2phy).toEqual(readme.log2phy);
    expect(j.logcnt).toEqual(readme.logcnt);
    expect(j.balance.after.total_balancedness).toBeGreaterThan(0.8);
    const written = JSON.parse(readFileSync(out, 'utf8')) as Case;
    expect(written.phy2log).toEqual(readme.phy2log);
  });
  it('reads a trace, keeps slots against --prev and counts the migration; --max-moves stays within its budget', () => {
    const prev = path.join(dir, 'prev.json');
    cli(['plan', 'eplb', '--loads', npy, '--experts', '8', '--replicas', '12', '--gpus', '4', '--out', prev]);
    const text = cli(['plan', 'eplb', '--loads', npy, '--experts', '8', '--replicas', '12', '--gpus', '4']);
    expect(text).toContain('eplb plan (hierarchical) for 4 GPUs on 1 node(s)'); // groups 1 % nodes 1 == 0
    expect(text).toMatch(/over all layers \(Σ mean \/ Σ max\): [\d.]+ with no replication → [\d.]+/);
    const same = JSON.parse(cli(['plan', 'eplb', '--loads', npy, '--experts', '8', '--replicas', '12', '--gpus', '4', '--prev', prev, '--expert-bytes', '100', '--json'])) as { migration: { copies: number[]; bytes: number } };
    expect(same.migration.copies).toEqual([0, 0]); // the same loads plan the same experts per GPU: nothing moves
    expect(same.migration.bytes).toBe(0);
    const budget = JSON.parse(cli(['plan', 'eplb', '--loads', loads, '--replicas', '16', '--gpus', '8', '--prev', path.join(dir, 'plan.json'), '--max-moves', '3', '--json'])) as { migration: { copies: number[] }; balance: { before: { total_balancedness: number }; after: { total_balancedness: number } } };
    expect(budget.migration.copies.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3);
    expect(budget.balance.after.total_balancedness).toBeGreaterThanOrEqual(budget.balance.before.total_balancedness);
  });
  it('an `analyse --json` report is a loads file: the same plan as from the trace itself', () => {
    const report = path.join(dir, 'analysis.json');
    writeFileSync(report, cli(['analyse', npy, '--experts', '8', '--json']));
    const a = JSON.parse(cli(['plan', 'eplb', '--loads', report, '--replicas', '12', '--gpus', '4', '--json'])) as Case;
    const b = JSON.parse(cli(['plan', 'eplb', '--loads', npy, '--experts', '8', '--replicas', '12', '--gpus', '4', '--json'])) as Case;
    expect(a.phy2log).toEqual(b.phy2log);
    expect(a.log2phy).toEqual(b.log2phy);
  });
  it('--format sglang writes --init-expert-location JSON at the model\'s layer ids and prints the launch flags', () => {
    const out = path.join(dir, 'expert_location.json');
    const text = cli(['plan', 'eplb', '--loads', loads, '--replicas', '16', '--groups', '4', '--nodes', '2', '--gpus', '8', '--format', 'sglang', '--model-layers', '3', '--out', out]);
    expect(text).toContain(`--ep-size 8 --ep-num-redundant-experts 4 --nnodes 2 --init-expert-location ${out}`);
    const j = JSON.parse(readFileSync(out, 'utf8')) as { physical_to_logical_map: number[][] };
    expect(Object.keys(j)).toEqual(['physical_to_logical_map']);
    // a JSON loads file has no layer ids: plan rows 0 and 1 are model layers 0 and 1; layer 2 gets the trivial placement
    expect(j.physical_to_logical_map).toEqual([...readme.phy2log, Array.from({ length: 16 }, (_, p) => p % 12)]);
    expect(cliError(['plan', 'eplb', '--loads', loads, '--replicas', '16', '--gpus', '8', '--prev', out])).toContain('this is SGLang\'s expert-location format');
    expect(cliError(['plan', 'eplb', '--loads', loads, '--replicas', '16', '--gpus', '8', '--format', 'vllm'])).toContain('--format must be moekit or sglang, got "vllm"');
  });
  it('refuses bad input, naming the value and the rule', () => {
    expect(cliError(['plan', 'eplb', '--loads', loads, '--replicas', '15', '--gpus', '8'])).toContain('--replicas 15 is not a multiple of --gpus 8');
    expect(cliError(['plan', 'eplb', '--loads', loads, '--replicas', '16', '--groups', '5', '--nodes', '1', '--gpus', '8'])).toContain('--groups 5 does not divide the 12 experts');
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify([[1, 2, 3], [4, 5]]));
    expect(cliError(['plan', 'eplb', '--loads', bad, '--replicas', '4', '--gpus', '2'])).toContain(`--loads ${bad}: row 1 has 2 entries; expected 3 like row 0`);
    expect(cliError(['plan', 'eplb', '--loads', loads, '--replicas', '16', '--gpus', '8', '--max-moves', '2'])).toContain('--max-moves rebalances a current plan: pass it with --prev PLAN');
  });
});

describe('moekit plan craft and dynamic', () => {
  it('craft spends at most its budget and never does worse than none', () => {
    const none = JSON.parse(cli(['plan', 'craft', '--loads', npy, '--experts', '8', '--gpus', '4', '--budget', '0', '--json'])) as { craft: { spent: number }; balance: { after: { total_balancedness: number } } };
    const some = JSON.parse(cli(['plan', 'craft', '--loads', npy, '--experts', '8', '--gpus', '4', '--budget', '2', '--json'])) as typeof none & { replicas_per_layer: number[] };
    expect(none.craft.spent).toBe(0);
    expect(some.craft.spent).toBeLessThanOrEqual(2);
    expect(some.balance.after.total_balancedness).toBeGreaterThanOrEqual(none.balance.after.total_balancedness);
    expect(cliError(['plan', 'craft', '--loads', npy, '--experts', '8', '--gpus', '4'])).toContain('give --budget SLOTS, or --budget-bytes B with --expert-bytes B');
  });
  it('dynamic scores static, dynamic and per-window EPLB on the trace', () => {
    const j = JSON.parse(cli(['plan', 'dynamic', npy, '--experts', '8', '--gpus', '4', '--replicas', '12', '--window', '500', '--json'])) as { windows: number; static_balancedness: number; dynamic_balancedness: number; oracle_balancedness: number };
    expect(j.windows).toBe(8);
    for (const k of ['static_balancedness', 'dynamic_balancedness', 'oracle_balancedness'] as const) expect(j[k]).toBeGreaterThan(0.5);
  });
});
