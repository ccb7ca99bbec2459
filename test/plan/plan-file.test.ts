// Plan files: moekit's JSON round trip, SGLang's expert-location JSON, and each malformed plan rejected with a message
// that names the field, the value and what was expected.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSglangExpertLocation } from '../../src/plan/engines.js';
import { eplb } from '../../src/plan/eplb.js';
import { parsePlan, readPlanFile, writePlanFile } from '../../src/plan/plan-file.js';
import { craft, craftPlan } from '../../src/plan/craft.js';
import type { Plan } from '../../src/plan/types.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('moekit-plan-file-');
const loads = [
  [90, 10, 5, 5, 40, 3, 2, 1],
  [1, 1, 1, 1, 1, 1, 1, 100],
];
const plan = eplb(loads, { replicas: 12, groups: 4, nodes: 2, gpus: 4 });
const clone = (): Plan => JSON.parse(JSON.stringify(plan)) as Plan;

describe('writePlanFile / readPlanFile', () => {
  it('round-trips a plan through moekit’s JSON, one layer row per line', async () => {
    const f = path.join(dir, 'plan.json');
    await writePlanFile(f, plan, 'moekit');
    expect(readPlanFile(f)).toEqual(plan);
    const text = readFileSync(f, 'utf8');
    expect(text).toContain(`    ${JSON.stringify(plan.phy2log[1])}`);
    expect(Object.keys(JSON.parse(text) as object)).toEqual(['policy', 'gpus', 'nodes', 'groups', 'replicas', 'phy2log', 'log2phy', 'logcnt']);
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('overwrites an existing file whole', async () => {
    const f = path.join(dir, 'over.json');
    writeFileSync(f, 'x'.repeat(100_000));
    await writePlanFile(f, plan, 'moekit');
    expect(readPlanFile(f)).toEqual(plan);
  });

  it('writes SGLang’s form: only physical_to_logical_map, which moekit’s reader names as such', async () => {
    const f = path.join(dir, 'expert_location.json');
    await writePlanFile(f, plan, 'sglang');
    const obj = JSON.parse(readFileSync(f, 'utf8')) as { physical_to_logical_map: number[][] };
    expect(Object.keys(obj)).toEqual(['physical_to_logical_map']);
    expect(obj.physical_to_logical_map).toEqual(plan.phy2log);
    expect(() => checkSglangExpertLocation(obj, { experts: 8, numLayers: 2, epSize: 4 })).not.toThrow();
    expect(() => readPlanFile(f)).toThrow(/SGLang's expert-location format \(physical_to_logical_map\), not a moekit plan/);
  });

  it('writes SGLang’s form at the model’s layer ids', async () => {
    const f = path.join(dir, 'expert_location_dense.json');
    await writePlanFile(f, plan, 'sglang', { sglang: { numLayers: 3, layers: [1, 2] } });
    const obj = JSON.parse(readFileSync(f, 'utf8')) as { physical_to_logical_map: number[][] };
    expect(obj.physical_to_logical_map).toHaveLength(3);
    expect(obj.physical_to_logical_map.slice(1)).toEqual(plan.phy2log);
  });

  it('refuses to write a broken plan and leaves no file', async () => {
    const bad = clone();
    bad.logcnt[0]![0]! += 1;
    const f = path.join(dir, 'never.json');
    await expect(writePlanFile(f, bad, 'moekit')).rejects.toThrow(/plan to write: logcnt\[0\]\[0\]/);
    await expect(writePlanFile(f, plan, 'csv' as 'moekit')).rejects.toThrow(/plan format "csv": expected 'moekit' or 'sglang'/);
    const noExt = path.join(dir, 'expert_location');
    await expect(writePlanFile(noExt, plan, 'sglang')).rejects.toThrow(/only when it ends in \.json/);
    expect(existsSync(noExt)).toBe(false);
    expect(existsSync(f)).toBe(false);
  });

  it('round-trips a plan whose layers differ in slots (CRAFT budgets), which SGLang’s single count cannot take', async () => {
    const c = craftPlan(craft(loads, 1, { gpus: 4, maxExtra: 1 }), 8, { gpus: 4 });
    expect(c.phy2log.map((r) => r.length)).toEqual([8, 12]); // the extra slot goes to the layer it helps most (expert 7's 100)
    const f = path.join(dir, 'craft.json');
    await writePlanFile(f, c, 'moekit');
    expect(readPlanFile(f)).toEqual(c);
    await expect(writePlanFile(path.join(dir, 'craft-sglang.json'), c, 'sglang')).rejects.toThrow('plan layer 0 has 8 slots and others 12: SGLang takes one --ep-num-redundant-experts for every layer');
  });

  it('names the file when it is not JSON', () => {
    const f = path.join(dir, 'broken.json');
    writeFileSync(f, '{"policy": "global",');
    expect(() => readPlanFile(f)).toThrow(new RegExp(`${f.replace(/[.\\/]/g, '\\$&')}: not JSON .*expected a moekit plan`));
  });

  it('accepts fields beyond the plan’s (later versions may add some) and drops them', () => {
    expect(parsePlan({ ...clone(), note: 'made on Tuesday' })).toEqual(plan);
  });
});

// Each malformed case: a change to a valid plan and the message it must give.
const cases: [string, (p: Record<string, unknown> & Plan) => unknown, RegExp][] = [
  ['not an object', () => [1, 2, 3], /plan: expected a JSON object \(a moekit plan\), got \[1,2,3\]/],
  ['a missing field', (p) => { delete (p as Partial<Plan>).log2phy; return p; }, /plan: no log2phy field/],
  ['an empty policy', (p) => ({ ...p, policy: '' }), /plan: policy = ""; expected a non-empty string/],
  ['zero gpus', (p) => ({ ...p, gpus: 0 }), /plan: gpus = 0; expected a positive integer/],
  ['fractional replicas', (p) => ({ ...p, replicas: 12.5 }), /plan: replicas = 12\.5; expected a positive integer/],
  ['gpus not a multiple of nodes', (p) => ({ ...p, nodes: 3 }), /plan: gpus = 4 is not a multiple of nodes = 3/],
  ['replicas not a multiple of gpus', (p) => ({ ...p, gpus: 8, nodes: 1 }), /plan: replicas = 12 is not a multiple of gpus = 8/],
  ['a layer with the wrong slot count', (p) => { p.phy2log[1]!.push(0); return p; }, /plan: phy2log\[1\] has 13 slots; expected replicas = 12, or fewer for a layer with a smaller budget \(a multiple of gpus = 4, at least the \d+ experts\)/],
  ['a slot holding an expert ≥ E', (p) => { p.phy2log[0]![5] = 8; return p; }, /plan: phy2log\[0\]\[5\] = 8; expected an integer in \[0, 8\)/],
  ['a negative slot entry', (p) => { p.phy2log[0]![5] = -1; return p; }, /plan: phy2log\[0\]\[5\] = -1; expected an integer in \[0, 8\)/],
  ['a non-integer slot entry', (p) => { p.phy2log[0]![5] = 1.5; return p; }, /plan: phy2log\[0\]\[5\] = 1\.5; expected an integer/],
  ['a phy2log layer that is not an array', (p) => { (p.phy2log as unknown[])[1] = 'none'; return p; }, /plan: phy2log\[1\] = "none"; expected an array of 12 integers/],
  ['an expert without a slot', (p) => {
    const slots = p.phy2log[0]!;
    const e = slots[0]!, other = slots.find((x) => x !== e)!;
    p.phy2log[0] = slots.map((x) => (x === e ? other : x));
    return p;
  }, /plan: phy2log\[0\] has no slot holding expert \d; expected every expert in at least one slot/],
  ['logcnt out of step with phy2log', (p) => { p.logcnt[1]![3]! += 1; return p; }, /plan: logcnt\[1\]\[3\] = \d+, but phy2log\[1\] holds expert 3 in \d+ slot\(s\); expected them equal/],
  ['logcnt with a zero', (p) => { p.logcnt[1]![3] = 0; return p; }, /plan: logcnt\[1\]\[3\] = 0; expected an integer in \[1, 13\)/],
  ['logcnt with the wrong width', (p) => { p.logcnt[1]!.pop(); return p; }, /plan: logcnt\[1\] has 7 entries; expected 8/],
  ['empty logcnt', (p) => ({ ...p, logcnt: [] }), /plan: logcnt = \[\]; expected a non-empty \[layers\]\[experts\] array/],
  ['layer counts that differ', (p) => { p.phy2log.pop(); return p; }, /plan: phy2log has 1 layers; expected 2 like logcnt/],
  ['log2phy with a missing layer', (p) => { p.log2phy.pop(); return p; }, /plan: log2phy has 1 layers; expected 2 like logcnt/],
  ['log2phy with a missing expert', (p) => { p.log2phy[0]!.pop(); return p; }, /plan: log2phy\[0\] has 7 experts; expected 8/],
  ['log2phy rows not maxcount wide', (p) => { p.log2phy[0]![2]!.push(-1); return p; }, /plan: log2phy\[0\]\[2\] has \d+ entries; expected \d+/],
  ['log2phy pointing at another expert’s slot', (p) => {
    const row = p.log2phy[0]![0]!;
    const wrong = p.phy2log[0]!.findIndex((e) => e !== 0);
    row[0] = wrong;
    return p;
  }, /plan: log2phy\[0\]\[0\]\[0\] = \d+, but phy2log\[0\]\[\d+\] = [1-7]; expected the slot to hold expert 0/],
  ['log2phy with a slot out of range', (p) => { p.log2phy[0]![0]![0] = 12; return p; }, /plan: log2phy\[0\]\[0\]\[0\] = 12; expected an integer in \[-1, 12\)/],
  ['log2phy listing a slot twice', (p) => {
    const e = p.logcnt[0]!.findIndex((n) => n >= 2);
    const row = p.log2phy[0]![e]!;
    row[1] = row[0]!;
    return p;
  }, /plan: log2phy\[0\]\[\d\] lists slot \d+ twice/],
  ['log2phy padding where a slot belongs', (p) => {
    const e = p.logcnt[0]!.findIndex((n) => n >= 2);
    p.log2phy[0]![e]![1] = -1;
    return p;
  }, /plan: log2phy\[0\]\[\d\]\[1\] = −1; expected a slot, the expert has \d/],
  ['log2phy with a slot in the padding', (p) => {
    const e = p.logcnt[0]!.findIndex((n) => n === 1);
    p.log2phy[0]![e]![1] = p.log2phy[0]![e]![0]!;
    return p;
  }, /plan: log2phy\[0\]\[\d\]\[1\] = \d+; expected −1 padding after the expert's 1 slot\(s\)/],
];

describe('parsePlan rejects', () => {
  it('has a plan with a replicated and a single expert in layer 0 (the cases below need both)', () => {
    expect(plan.logcnt[0]!.some((n) => n >= 2) && plan.logcnt[0]!.some((n) => n === 1)).toBe(true);
  });
  it.each(cases)('%s', (_name, mutate, re) => {
    expect(() => parsePlan(mutate(clone() as Record<string, unknown> & Plan))).toThrow(re);
  });
  it.each(cases.slice(1, 6))('%s, naming the file when read from one', (name, mutate, re) => {
    const f = path.join(dir, `${name.replace(/\W+/g, '-')}.json`);
    writeFileSync(f, JSON.stringify(mutate(clone() as Record<string, unknown> & Plan)));
    expect(() => readPlanFile(f)).toThrow(new RegExp(`^${f.replace(/[.\\/]/g, '\\$&')}: ${re.source.replace(/^plan: /, '')}`));
  });
});
