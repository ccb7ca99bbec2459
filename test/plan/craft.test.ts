// CRAFT's multiple-choice knapsack against brute force on every small case (L ≤ 4, budgets ≤ 8), its objective never
// worse as the budget grows, and the per-layer replica options it chooses from.
import { describe, expect, it } from 'vitest';
import { craft, knapsackMin, layerOptions, type KnapsackItem } from '../../src/plan/craft.js';
import { balance, gpuLoads } from '../../src/plan/metrics.js';

function brute(groups: KnapsackItem[][], budget: number): number | null {
  let best: number | null = null;
  const rec = (g: number, cost: number, value: number): void => {
    if (cost > budget) return;
    if (g === groups.length) {
      if (best === null || value < best) best = value;
      return;
    }
    for (const it of groups[g]!) rec(g + 1, cost + it.cost, value + it.value);
  };
  rec(0, 0, 0);
  return best;
}

let seed = 3;
const rnd = (): number => ((seed = (seed * 48271) % 2147483647) / 2147483647);

describe('knapsackMin', () => {
  it('equals brute force on all small cases: L = 1..4 layers, 1..4 options each, budgets 0..8', () => {
    let cases = 0;
    for (let L = 1; L <= 4; L++) {
      for (let rep = 0; rep < 25; rep++) {
        const groups = Array.from({ length: L }, () => Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => ({ cost: Math.floor(rnd() * 4), value: Math.round(rnd() * 1000) / 10 })));
        let last = Infinity;
        for (let b = 0; b <= 8; b++) {
          const r = knapsackMin(groups, b);
          const want = brute(groups, b);
          if (want === null) expect(r).toBeNull();
          else {
            expect(r!.value).toBeCloseTo(want, 9);
            expect(r!.cost).toBeLessThanOrEqual(b);
            expect(r!.choice.reduce((s, i, g) => s + groups[g]![i]!.value, 0)).toBeCloseTo(want, 9);
            expect(r!.value).toBeLessThanOrEqual(last); // never worse with more budget
            last = r!.value;
          }
          cases++;
        }
      }
    }
    expect(cases).toBe(4 * 25 * 9);
  });
  it('refuses a negative or fractional budget', () => {
    expect(() => knapsackMin([[{ cost: 0, value: 1 }]], -1)).toThrow('budget must be an integer ≥ 0, got -1');
  });
});

describe('craft', () => {
  const loads = [
    [100, 10, 10, 10, 10, 10, 10, 10], // one very hot expert: replicas help a lot
    [20, 20, 20, 20, 20, 20, 20, 20], // balanced: replicas buy nothing
    [60, 50, 5, 5, 5, 5, 5, 5],
  ];
  it('r = 0 is the plain placement; more extra slots never raise a layer’s best max load', () => {
    const opts = layerOptions(loads, { gpus: 4, maxExtra: 3 });
    expect(opts.map((o) => o.map((x) => x.replicas))).toEqual([[8, 12, 16, 20], [8, 12, 16, 20], [8, 12, 16, 20]]);
    // layer 1 is perfectly balanced at every r
    expect(opts[1]!.map((x) => x.balancedness)).toEqual([1, 1, 1, 1]);
    // layer 0 at r = 0: 4 GPUs × 2 experts, EPLB puts 100 with the lightest: max = 110, mean = 50
    expect(opts[0]![0]!.max_load).toBe(110);
  });
  it('spends the budget where it helps, never worse as the budget grows', () => {
    const o = { gpus: 4, maxExtra: 3 };
    const options = layerOptions(loads, o);
    let last = 0;
    for (let b = 0; b <= 8; b++) {
      const c = craft(loads, b, o, options);
      expect(c.cost).toBeLessThanOrEqual(b);
      expect(c.total_balancedness).toBeGreaterThanOrEqual(last - 1e-12);
      last = c.total_balancedness;
      const check = balance(c.phy2log.map((p, l) => gpuLoads([p], [loads[l]!], 4)[0]!));
      expect(c.total_balancedness).toBeCloseTo(check.total_balancedness, 12);
      if (b === 1) expect(c.extra[1]).toBe(0); // never on the balanced layer first
    }
  });
});
