// Moving between placements: slots kept where an expert stays on its GPU, copies and bytes counted by hand, a budgeted
// rebalance that never exceeds its budget nor raises the max load, and Libra-style dynamic replication on a trace.
import { describe, expect, it } from 'vitest';
import { budgetedRebalance, migrationCost, preserveSlots } from '../../src/plan/migrate.js';
import { dynamicReplication, libraStep, windowLoads } from '../../src/plan/dynamic.js';
import { balance, gpuLoads } from '../../src/plan/metrics.js';
import type { RoutingTrace } from '../../src/trace/types.js';

describe('preserveSlots and migrationCost', () => {
  // 2 GPUs × 3 slots. Old: GPU 0 [0 1 2], GPU 1 [3 4 5]. New: GPU 0 {2, 0, 5}, GPU 1 {3, 1, 4}
  const prev = [[0, 1, 2, 3, 4, 5]];
  const next = [[2, 0, 5, 3, 1, 4]];
  it('keeps experts that stay on a GPU in their old slots', () => {
    // GPU 0 keeps 0 in slot 0 and 2 in slot 2; 5 goes to slot 1. GPU 1 keeps 3 (slot 3) and 4 (slot 4); 1 to slot 5.
    expect(preserveSlots(prev, next, 2)).toEqual([[0, 5, 2, 3, 4, 1]]);
  });
  it('counts copies onto GPUs that lacked the expert, in bytes', () => {
    const kept = preserveSlots(prev, next, 2);
    const m = migrationCost(prev, kept, 2, 1000);
    expect(m.copies).toEqual([2]); // 5 onto GPU 0, 1 onto GPU 1
    expect(m.changed_slots).toEqual([2]);
    expect(m.bytes).toBe(2000);
    // without preservation the same experts per GPU rewrite more slots but copy the same experts
    const raw = migrationCost(prev, next, 2, 1000);
    expect(raw.copies).toEqual([2]);
    expect(raw.changed_slots).toEqual([5]); // every slot but slot 3
  });
});

describe('budgetedRebalance', () => {
  // 2 GPUs × 3 slots, 4 experts, experts 2 and 3 have two replicas each; expert 0 is hot and alone on GPU 0
  const loads = [[90, 10, 20, 20]];
  const current = [[0, 2, 3, 1, 2, 3]];
  it('copies the hot expert over a redundant replica, within the budget, lowering the max', () => {
    const before = Math.max(...gpuLoads(current, loads, 2)[0]!); // GPU 0: 90 + 10 + 10 = 110; GPU 1: 10 + 10 + 10 = 30
    expect(before).toBe(110);
    const r = budgetedRebalance(current, loads, 2, 1);
    expect(r.moves).toBe(1);
    const after = Math.max(...gpuLoads(r.phy2log, loads, 2)[0]!);
    // a copy of 0 on GPU 1 over a replica of 2 or 3: GPU 0 = 45 + 20 + 10 = 75 (expert 2 or 3 now alone there)
    expect(after).toBe(75);
    expect(migrationCost(current, r.phy2log, 2, 1).copies).toEqual([1]);
  });
  it('a zero budget changes nothing; a large one never raises the max', () => {
    expect(budgetedRebalance(current, loads, 2, 0).phy2log).toEqual(current);
    const r = budgetedRebalance(current, loads, 2, 10);
    expect(Math.max(...gpuLoads(r.phy2log, loads, 2)[0]!)).toBeLessThanOrEqual(75);
    expect(new Set(r.phy2log[0]).size).toBe(4); // every expert still placed
  });
});

describe('dynamic replication', () => {
  it('libraStep copies the hottest expert of the busiest GPU over the coldest redundant slot of the idlest', () => {
    const slots = [0, 1, 2, 3, 1, 2]; // GPU 0 [0 1 2], GPU 1 [3 1 2]
    const row = [60, 10, 10, 10]; // GPU 0 = 60 + 5 + 5 = 70, GPU 1 = 10 + 5 + 5 = 20
    expect(libraStep(slots, row, 2, 1)).toBe(1);
    // expert 0 replaces a replica of 1 on GPU 1 (1 and 2 tie at 5; the first slot wins): GPU 0 = 30 + 10 + 5, GPU 1 = 10 + 30 + 5
    expect(slots).toEqual([0, 1, 2, 3, 0, 2]);
    expect(gpuLoads([slots], [row], 2)[0]).toEqual([45, 45]);
  });
  it('on a trace whose hot expert moves, dynamic beats static and is bounded by the per-window oracle', () => {
    // 4 experts, top-1, 1 layer; window 1: expert 0 hot; windows 2–4: expert 3 hot
    const ids: number[] = [];
    const hot = (h: number, n: number): void => { for (let i = 0; i < n; i++) ids.push(i % 4 === 0 ? (i / 4) % 4 : h); };
    hot(0, 40); hot(3, 40); hot(3, 40); hot(3, 40);
    const trace: RoutingTrace = { N: ids.length, L: 1, K: 1, E: 4, experts: Int16Array.from(ids), layers: [0], metadata: {} };
    expect(windowLoads(trace, 4, 0, 40)[0]![0]).toBeGreaterThan(30);
    const r = dynamicReplication(trace, 4, { replicas: 6, groups: 1, nodes: 1, gpus: 2, window: 40, copies: 1 });
    expect(r.windows).toBe(4);
    expect(r.dynamic_balancedness).toBeGreaterThan(r.static_balancedness);
    expect(r.oracle_balancedness).toBeGreaterThanOrEqual(r.dynamic_balancedness - 1e-12);
    expect(r.copies).toBeGreaterThan(0);
    expect(balance([[1, 1]]).total_balancedness).toBe(1);
  });
  it('refuses a trace with fewer than two windows', () => {
    const trace: RoutingTrace = { N: 10, L: 1, K: 1, E: 2, experts: new Int16Array(10), layers: [0], metadata: {} };
    expect(() => dynamicReplication(trace, 2, { replicas: 2, groups: 1, nodes: 1, gpus: 2, window: 8, copies: 1 })).toThrow('fewer than 2 windows of 8');
  });
});
