// DeepSeek's EPLB against its reference's outputs: the shared 9 cases and 8 more of other shapes (scripts/eplb-cases.py),
// matched exactly (phy2log, log2phy, logcnt); the packing and replication steps on hand-checked inputs; bad options.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { balancedPacking, eplb, replicateExperts } from '../../src/plan/eplb.js';
import { introsort } from '../../src/plan/introsort.js';

interface Case { name: string; loads: number[][]; replicas: number; groups: number; nodes: number; gpus: number; policy: string; phy2log: number[][]; log2phy: number[][][]; logcnt: number[][] }
const load = (f: string): Case[] => (JSON.parse(readFileSync(f, 'utf8')) as { cases: Case[] }).cases;
const shared = load(path.resolve('../shared/fixtures/eplb/cases.json'));
const extra = load(path.resolve('test/fixtures/eplb-extra.json'));

describe('eplb matches the reference exactly', () => {
  for (const c of [...shared, ...extra]) {
    it(`${c.name}: ${c.loads.length} layers, E ${c.loads[0]!.length}, ${c.replicas} replicas, ${c.groups} groups, ${c.nodes} nodes, ${c.gpus} GPUs (${c.policy})`, () => {
      const p = eplb(c.loads, c);
      expect(p.policy).toBe(c.policy);
      expect(p.phy2log).toEqual(c.phy2log);
      expect(p.logcnt).toEqual(c.logcnt);
      expect(p.log2phy).toEqual(c.log2phy);
    });
  }
  it('covers both policies and the tie order of replicated experts', () => {
    const all = [...shared, ...extra];
    expect(all.filter((c) => c.policy === 'global').length).toBeGreaterThanOrEqual(3);
    // cases where replicas of one expert tie in load per replica and land on different GPUs
    expect(all.some((c) => c.logcnt.some((row) => row.some((n) => n >= 3)))).toBe(true);
  });
});

describe('eplb steps', () => {
  it('balanced packing: heaviest first into the lightest pack that is not full', () => {
    // weights 9 7 6 5 4 1 into 2 packs of 3: 9→A, 7→B, 6→B (13), 5→A (14), 4→B (17), 1→A (15)
    const { pack, rank } = balancedPacking([9, 7, 6, 5, 4, 1], 2);
    expect(Array.from(pack)).toEqual([0, 1, 1, 0, 1, 0]);
    expect(Array.from(rank)).toEqual([0, 0, 1, 1, 2, 2]);
  });
  it('replication: each extra replica to the largest load per replica', () => {
    // loads 10 4 3: replica 4 → expert 0 (10), replica 5 → expert 0 again (5 > 4), replica 6 → expert 1 (4 > 3.33)
    const r = replicateExperts([10, 4, 3], 6);
    expect(Array.from(r.phy2log)).toEqual([0, 1, 2, 0, 0, 1]);
    expect(Array.from(r.rank)).toEqual([0, 0, 0, 1, 2, 1]);
    expect(Array.from(r.logcnt)).toEqual([3, 2, 1]);
  });
  it('introsort sorts (the tie order is what the fixtures check)', () => {
    let s = 5;
    const rnd = (): number => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (const n of [0, 1, 5, 16, 17, 100, 1000]) {
      const a = Array.from({ length: n }, () => Math.floor(rnd() * 50));
      expect(introsort(a.slice(), (x, y) => x < y)).toEqual(a.slice().sort((x, y) => x - y));
    }
  });
});

describe('eplb refuses bad input, naming the value and the rule', () => {
  const loads = [[1, 2, 3, 4, 5, 6, 7, 8]];
  it('replicas not a multiple of GPUs', () => {
    expect(() => eplb(loads, { replicas: 10, groups: 4, nodes: 2, gpus: 4 })).toThrow('--replicas 10 is not a multiple of --gpus 4');
  });
  it('groups not dividing experts under the hierarchical policy, and fine under the global one', () => {
    expect(() => eplb(loads, { replicas: 8, groups: 6, nodes: 2, gpus: 4 })).toThrow('--groups 6 does not divide the 8 experts (the hierarchical policy, used because groups % nodes == 0');
    expect(eplb(loads, { replicas: 8, groups: 3, nodes: 2, gpus: 4 }).policy).toBe('global');
  });
  it('fewer replicas than experts, GPUs not a multiple of nodes', () => {
    expect(() => eplb(loads, { replicas: 4, groups: 1, nodes: 1, gpus: 4 })).toThrow('--replicas 4 is fewer than the 8 experts');
    expect(() => eplb(loads, { replicas: 9, groups: 1, nodes: 2, gpus: 3 })).toThrow('--gpus 3 is not a multiple of --nodes 2');
  });
  it('loads of the wrong shape', () => {
    expect(() => eplb([[1, 2], [3]], { replicas: 2, groups: 1, nodes: 1, gpus: 1 })).toThrow('loads: row 1 has 1 entries; expected 2 like row 0');
    expect(() => eplb([[1, -2]], { replicas: 2, groups: 1, nodes: 1, gpus: 1 })).toThrow('loads: [0][1] = -2; expected a finite number ≥ 0');
    expect(() => eplb([], { replicas: 2, groups: 1, nodes: 1, gpus: 1 })).toThrow('expected a non-empty [layers][experts] array');
  });
});
