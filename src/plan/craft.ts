// Per-layer replica budgets (CRAFT): what r extra replica slots per GPU buy at each layer, and the choice of r per layer
// under a memory budget as a multiple-choice knapsack solved exactly by dynamic programming. The objective is vLLM's
// summed balancedness Σ_l mean_l / Σ_l max_l; Σ mean is fixed by the loads, so maximising it is minimising Σ_l max_l.
import { eplb } from './eplb.js';
import { balance, gpuLoads } from './metrics.js';
import type { Plan } from './types.js';

export interface CraftOptions {
  gpus: number;
  /** groups and nodes as EPLB takes them (default 1 and 1: the global policy) */
  groups?: number;
  nodes?: number;
  /** the largest number of extra slots per GPU tried at a layer */
  maxExtra: number;
}

/** One layer's options: r extra slots per GPU → replicas, its EPLB plan's max GPU load and balancedness. */
export interface LayerOption {
  extra: number;
  replicas: number;
  max_load: number;
  balancedness: number;
  phy2log: number[];
}

/** Slots per GPU with no extra replicas: ⌈E / gpus⌉ (EPLB needs replicas ≥ E and a multiple of gpus). */
export function baseSlots(E: number, gpus: number): number {
  return Math.ceil(E / gpus);
}

/** For every layer and r = 0..maxExtra: EPLB with (baseSlots + r) · gpus replicas on that layer's loads alone. */
export function layerOptions(loads: number[][], o: CraftOptions): LayerOption[][] {
  if (!Number.isInteger(o.maxExtra) || o.maxExtra < 0) throw new Error(`max extra slots per GPU must be an integer ≥ 0, got ${o.maxExtra}`);
  const E = loads[0]?.length ?? 0;
  const s0 = baseSlots(E, o.gpus);
  return loads.map((row) => Array.from({ length: o.maxExtra + 1 }, (_, r) => {
    const replicas = (s0 + r) * o.gpus;
    const p = eplb([row], { replicas, groups: o.groups ?? 1, nodes: o.nodes ?? 1, gpus: o.gpus });
    const per = gpuLoads(p.phy2log, [row], o.gpus)[0]!;
    return { extra: r, replicas, max_load: Math.max(...per), balancedness: balance([per]).balancedness[0]!, phy2log: p.phy2log[0]! };
  }));
}

export interface KnapsackItem {
  cost: number;
  value: number;
}

/**
 * Multiple-choice knapsack, exact: one item from every group, total cost ≤ budget, minimal total value (ties: the
 * lower cost, then the earlier items). Costs are non-negative integers. Returns the chosen index per group, or null
 * when even the cheapest items exceed the budget.
 */
export function knapsackMin(groups: KnapsackItem[][], budget: number): { choice: number[]; value: number; cost: number } | null {
  if (!Number.isInteger(budget) || budget < 0) throw new Error(`budget must be an integer ≥ 0, got ${budget}`);
  const B = budget;
  // best[b] = minimal value over the groups so far with total cost exactly b (Infinity when impossible)
  let best = new Float64Array(B + 1).fill(Infinity);
  best[0] = 0;
  const pick: Int32Array[] = [];
  for (const [gi, items] of groups.entries()) {
    if (items.length === 0) throw new Error(`knapsack: group ${gi} has no items`);
    const next = new Float64Array(B + 1).fill(Infinity);
    const from = new Int32Array(B + 1).fill(-1);
    for (let b = 0; b <= B; b++) {
      if (best[b] === Infinity) continue;
      items.forEach((it, i) => {
        if (!Number.isInteger(it.cost) || it.cost < 0) throw new Error(`knapsack: group ${gi} item ${i} has cost ${it.cost}; expected an integer ≥ 0`);
        const c = b + it.cost;
        if (c > B) return;
        const v = best[b]! + it.value;
        if (v < next[c]!) { next[c] = v; from[c] = i; }
      });
    }
    pick.push(from);
    best = next;
  }
  let end = -1;
  for (let b = 0; b <= B; b++) if (best[b]! < Infinity && (end < 0 || best[b]! < best[end]!)) end = b;
  if (end < 0) return null;
  const choice = new Array<number>(groups.length);
  let b = end;
  for (let g = groups.length - 1; g >= 0; g--) {
    const i = pick[g]![b]!;
    choice[g] = i;
    b -= groups[g]![i]!.cost;
  }
  return { choice, value: best[end]!, cost: end };
}

export interface CraftPlan {
  /** extra slots per GPU chosen at each layer */
  extra: number[];
  /** replicas per layer */
  replicas: number[];
  /** extra slots per GPU in all (≤ the budget) */
  cost: number;
  /** per-layer EPLB placements with the chosen replicas */
  phy2log: number[][];
  /** Σ mean / Σ max over the layers, and per layer */
  total_balancedness: number;
  balancedness: number[];
}

/**
 * CRAFT: choose r extra slots per GPU at every layer, Σ r ≤ budget (a per-GPU memory budget in expert slots), to
 * maximise the summed balancedness. Exact (dynamic programming over the budget), so the result never gets worse as
 * the budget grows.
 */
export function craft(loads: number[][], budget: number, o: CraftOptions, options = layerOptions(loads, o)): CraftPlan {
  const groups = options.map((opts) => opts.map((x) => ({ cost: x.extra, value: x.max_load })));
  const r = knapsackMin(groups, budget)!;
  const chosen = r.choice.map((i, l) => options[l]![i]!);
  const perGpu = chosen.map((c, l) => gpuLoads([c.phy2log], [loads[l]!], o.gpus)[0]!);
  const b = balance(perGpu);
  return {
    extra: chosen.map((c) => c.extra),
    replicas: chosen.map((c) => c.replicas),
    cost: r.cost,
    phy2log: chosen.map((c) => c.phy2log),
    total_balancedness: b.total_balancedness,
    balancedness: b.balancedness,
  };
}

/** A CRAFT result as a Plan (layers may differ in replicas; log2phy and logcnt rebuilt from phy2log). */
export function craftPlan(c: CraftPlan, E: number, o: Pick<CraftOptions, 'gpus' | 'groups' | 'nodes'>): Plan {
  return planFromPhy2log(c.phy2log, E, { policy: 'craft', gpus: o.gpus, nodes: o.nodes ?? 1, groups: o.groups ?? 1 });
}

/** A Plan from phy2log alone: logcnt counts slots, log2phy lists each expert's slots in slot order, −1 padded. */
export function planFromPhy2log(phy2log: number[][], E: number, meta: { policy: string; gpus: number; nodes: number; groups: number }): Plan {
  const logcnt = phy2log.map((slots) => {
    const c = new Array<number>(E).fill(0);
    for (const e of slots) c[e]!++;
    return c;
  });
  const maxcount = Math.max(1, ...logcnt.flat());
  const log2phy = phy2log.map((slots) => {
    const m = Array.from({ length: E }, () => new Array<number>(maxcount).fill(-1));
    const k = new Array<number>(E).fill(0);
    slots.forEach((e, s) => { m[e]![k[e]!++] = s; });
    return m;
  });
  return { ...meta, replicas: Math.max(...phy2log.map((s) => s.length)), phy2log, log2phy, logcnt };
}
