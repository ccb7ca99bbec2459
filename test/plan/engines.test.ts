// SGLang's expert-location forms: the map a plan becomes (checked against the format SGLang's
// python/sglang/srt/eplb/expert_location.py reads), the launch flags it fixes, and the logical_count loads.
import { describe, expect, it } from 'vitest';
import { eplb } from '../../src/plan/eplb.js';
import {
  checkSglangExpertLocation, firstKDenseLayout, planExperts, sglangExpertLocation, sglangFlags, sglangLaunchArgs, sglangLoads,
} from '../../src/plan/engines.js';

// 3 MoE layers × 8 experts, skewed differently per layer
const loads = [
  [90, 10, 5, 5, 40, 3, 2, 1],
  [1, 1, 1, 1, 1, 1, 1, 100],
  [10, 20, 30, 40, 50, 60, 70, 80],
];
const plan = eplb(loads, { replicas: 12, groups: 4, nodes: 2, gpus: 4 });
const E = 8;

/** What SGLang derives from the map (_compute_logical_to_all_physical_map): each logical expert's slots, in slot order. */
function logicalToAllPhysical(map: number[][], experts: number): number[][][] {
  return map.map((row) => {
    const out = Array.from({ length: experts }, () => [] as number[]);
    row.forEach((e, p) => out[e]!.push(p));
    return out;
  });
}

describe('sglangExpertLocation', () => {
  it('is a JSON object with exactly the key physical_to_logical_map, [layers][replicas] of experts', () => {
    const loc = sglangExpertLocation(plan);
    const back = JSON.parse(JSON.stringify(loc)) as Record<string, unknown>;
    expect(Object.keys(back)).toEqual(['physical_to_logical_map']);
    const map = back.physical_to_logical_map as number[][];
    expect(map).toHaveLength(3);
    for (const row of map) {
      expect(row).toHaveLength(12);
      for (const e of row) expect(Number.isInteger(e) && e >= 0 && e < E).toBe(true);
    }
    expect(map).toEqual(plan.phy2log);
    expect(checkSglangExpertLocation(back, { experts: E, numLayers: 3, epSize: 4 })).toEqual({ layers: 3, physical: 12, redundant: 4 });
  });

  it('gives every logical expert at least one slot, and SGLang derives the plan’s log2phy and logcnt from it', () => {
    const derived = logicalToAllPhysical(sglangExpertLocation(plan).physical_to_logical_map, E);
    derived.forEach((layer, l) => layer.forEach((slots, e) => {
      expect(slots.length).toBeGreaterThanOrEqual(1);
      expect(slots.length).toBe(plan.logcnt[l]![e]);
      expect(slots).toEqual(plan.log2phy[l]![e]!.filter((s) => s >= 0).sort((a, b) => a - b));
    }));
  });

  it('puts slot p on rank p // (physical / ep_size), the same GPUs as the plan', () => {
    const map = sglangExpertLocation(plan).physical_to_logical_map;
    const local = 12 / sglangFlags(plan).epSize;
    for (let g = 0; g < 4; g++) expect(map[0]!.slice(g * local, (g + 1) * local)).toEqual(plan.phy2log[0]!.slice(g * 3, g * 3 + 3));
  });

  it('copies rows (mutating the export leaves the plan alone)', () => {
    const before = plan.phy2log[0]![0]!;
    sglangExpertLocation(plan).physical_to_logical_map[0]![0] = before === 7 ? 6 : 7;
    expect(plan.phy2log[0]![0]).toBe(before);
  });

  it('places plan rows at the model’s layer ids and fills the other layers with SGLang’s trivial map', () => {
    const layout = firstKDenseLayout(5, 2);
    expect(layout).toEqual({ numLayers: 5, layers: [2, 3, 4] });
    const map = sglangExpertLocation(plan, layout).physical_to_logical_map;
    expect(map).toHaveLength(5);
    const trivial = Array.from({ length: 12 }, (_, p) => p % E);
    expect(map[0]).toEqual(trivial);
    expect(map[1]).toEqual(trivial);
    expect(map.slice(2)).toEqual(plan.phy2log);
    expect(() => checkSglangExpertLocation({ physical_to_logical_map: map }, { experts: E, numLayers: 5, epSize: 4 })).not.toThrow();
    const sparse = sglangExpertLocation(plan, { numLayers: 6, layers: [1, 3, 5] }).physical_to_logical_map;
    expect([sparse[1], sparse[3], sparse[5]]).toEqual(plan.phy2log);
    expect(sparse[0]).toEqual(trivial);
  });

  it('rejects layouts that do not fit the plan', () => {
    expect(() => sglangExpertLocation(plan, { numLayers: 5, layers: [2, 3] })).toThrow(/layout\.layers has 2 entries; expected 3/);
    expect(() => sglangExpertLocation(plan, { numLayers: 5, layers: [2, 2, 3] })).toThrow(/layout\.layers\[1\] = 2 is not above/);
    expect(() => sglangExpertLocation(plan, { numLayers: 4, layers: [2, 3, 4] })).toThrow(/layout\.layers\[2\] = 4; expected an integer in \[0, 4\)/);
    expect(() => sglangExpertLocation(plan, { numLayers: 0, layers: [0, 1, 2] })).toThrow(/numLayers must be a positive integer/);
    expect(() => firstKDenseLayout(3, 3)).toThrow(/firstKDense must be an integer in \[0, 3\)/);
  });
});

describe('sglangFlags / sglangLaunchArgs', () => {
  it('fixes --ep-size to the GPUs and --ep-num-redundant-experts to slots − experts', () => {
    expect(planExperts(plan)).toBe(8);
    expect(sglangFlags(plan)).toEqual({ epSize: 4, epNumRedundantExperts: 4, nnodes: 2 });
    expect(sglangLaunchArgs(plan, 'loc.json')).toEqual([
      '--ep-size', '4', '--ep-num-redundant-experts', '4', '--nnodes', '2', '--init-expert-location', 'loc.json',
    ]);
    const noRedundant = eplb(loads, { replicas: 8, groups: 4, nodes: 1, gpus: 4 });
    expect(sglangFlags(noRedundant).epNumRedundantExperts).toBe(0);
  });
});

describe('checkSglangExpertLocation', () => {
  const ok = { physical_to_logical_map: [[0, 1, 2, 3, 0, 1], [3, 2, 1, 0, 3, 3]] };
  it('accepts the documented form, including SGLang’s own trivial map (p mod E)', () => {
    expect(checkSglangExpertLocation(ok, { experts: 4, numLayers: 2, epSize: 2 })).toEqual({ layers: 2, physical: 6, redundant: 2 });
    const trivial = { physical_to_logical_map: [Array.from({ length: 6 }, (_, p) => p % 4)] };
    expect(() => checkSglangExpertLocation(trivial, { experts: 4, epSize: 3 })).not.toThrow();
  });
  it.each([
    ['not an object', [1, 2], { experts: 4 }, /expected a JSON object/],
    ['the counts form', { logical_count: [[1, 2]] }, { experts: 4 }, /no physical_to_logical_map key/],
    ['extra keys', { ...ok, gpus: 2 }, { experts: 4 }, /extra keys \["gpus"\].*keyword arguments/],
    ['empty map', { physical_to_logical_map: [] }, { experts: 4 }, /non-empty/],
    ['wrong layer count', ok, { experts: 4, numLayers: 3 }, /has 2 layers; expected 3 \(num_hidden_layers/],
    ['fewer slots than experts', ok, { experts: 7 }, /6 physical experts per layer, fewer than the 7 logical/],
    ['slots not divisible by ep size', ok, { experts: 4, epSize: 4 }, /6 physical experts do not divide over --ep-size 4/],
    ['ragged rows', { physical_to_logical_map: [[0, 1, 2, 3], [0, 1, 2]] }, { experts: 4 }, /\[1\] has 3 entries; expected 4/],
    ['expert out of range', { physical_to_logical_map: [[0, 1, 2, 4]] }, { experts: 4 }, /\[0\]\[3\] = 4; expected an integer in \[0, 4\)/],
    ['negative (padding) entry', { physical_to_logical_map: [[0, 1, 2, -1]] }, { experts: 4 }, /\[0\]\[3\] = -1/],
    ['non-integer entry', { physical_to_logical_map: [[0, 1, 2, 1.5]] }, { experts: 4 }, /= 1\.5; expected an integer/],
    ['an expert without a slot', { physical_to_logical_map: [[0, 1, 2, 3], [0, 1, 1, 3]] }, { experts: 4 }, /layer 1 has no slot for logical expert 2/],
  ])('rejects %s', (_name, obj, o, re) => {
    expect(() => checkSglangExpertLocation(obj, o)).toThrow(re);
  });
});

describe('sglangLoads', () => {
  it('reads [layers][experts] counts and picks the MoE layers’ rows', () => {
    const counts = { logical_count: [[0, 0, 0, 0], [5, 1, 0, 2], [3, 3, 3, 3]] };
    expect(sglangLoads(counts)).toEqual(counts.logical_count);
    expect(sglangLoads(counts, [1, 2])).toEqual([[5, 1, 0, 2], [3, 3, 3, 3]]);
  });
  it('sums [steps][layers][experts] over steps (as SGLang’s rebalance does)', () => {
    const counts = { logical_count: [[[1, 2], [0, 1]], [[3, 0], [4, 4]]] };
    expect(sglangLoads(counts)).toEqual([[4, 2], [4, 5]]);
  });
  it('gives loads EPLB plans from, and that plan round-trips through the SGLang check', () => {
    const l = sglangLoads({ logical_count: [[0, 0, 0, 0], ...loads.map((r) => r.slice(0, 4))] }, [1, 2, 3]);
    const p = eplb(l, { replicas: 6, groups: 1, nodes: 1, gpus: 2 });
    const map = sglangExpertLocation(p, { numLayers: 4, layers: [1, 2, 3] });
    expect(checkSglangExpertLocation(map, { experts: 4, numLayers: 4, epSize: 2 }).redundant).toBe(2);
  });
  it.each([
    ['no key', { counts: [[1]] }, undefined, /with a logical_count key/],
    ['negative count', { logical_count: [[1, -1]] }, undefined, /logical_count\[0\]\[1\] = -1; expected a count ≥ 0/],
    ['ragged rows', { logical_count: [[1, 2], [1]] }, undefined, /logical_count\[1\] has 1 entries; expected 2/],
    ['steps of different shapes', { logical_count: [[[1, 2]], [[1, 2], [3, 4]]] }, undefined, /logical_count\[1\] is 2×2; expected 1×2/],
    ['layer out of range', { logical_count: [[1, 2]] }, [1], /layers\[0\] = 1; expected an integer in \[0, 1\)/],
  ])('rejects %s', (_name, obj, layers, re) => {
    expect(() => sglangLoads(obj, layers)).toThrow(re);
  });
});
