// Moving from one placement to another: keep an expert in its old slot when it stays on the same GPU (as vLLM's
// rearrangement does), count what a new placement costs in expert copies and bytes, and rebalance under a budget of
// copies starting from the current placement.
import { gpuLoads } from './metrics.js';

/**
 * New placement with slots preserved: on every GPU, an expert the GPU held before and still holds keeps its old slot;
 * the GPU's other new experts fill its remaining slots in their order in `next`. The multiset of experts per GPU is
 * `next`'s; only the order within a GPU changes.
 */
export function preserveSlots(prev: number[][], next: number[][], gpus: number): number[][] {
  if (prev.length !== next.length) throw new Error(`the old plan has ${prev.length} layers, the new one ${next.length}`);
  return next.map((slots, l) => {
    const old = prev[l]!;
    if (old.length !== slots.length) return slots.slice(); // a different slot count: nothing to preserve
    const per = slots.length / gpus;
    const out = new Array<number>(slots.length).fill(-1);
    for (let g = 0; g < gpus; g++) {
      const want = new Map<number, number>();
      for (let s = g * per; s < (g + 1) * per; s++) want.set(slots[s]!, (want.get(slots[s]!) ?? 0) + 1);
      for (let s = g * per; s < (g + 1) * per; s++) {
        const e = old[s]!;
        const n = want.get(e) ?? 0;
        if (n > 0) { out[s] = e; want.set(e, n - 1); }
      }
      let s = g * per;
      for (const [e, n] of want) {
        for (let i = 0; i < n; i++) {
          while (out[s] !== -1) s++;
          out[s] = e;
        }
      }
    }
    return out;
  });
}

export interface Migration {
  /** per layer: expert copies onto a GPU that did not hold that expert */
  copies: number[];
  /** per layer: slots whose expert changed (a copy, or a rearrangement inside a GPU) */
  changed_slots: number[];
  /** Σ copies × expert bytes */
  bytes: number;
}

/** What going from `prev` to `next` costs: copies of experts onto GPUs that lacked them, in bytes. */
export function migrationCost(prev: number[][], next: number[][], gpus: number, expertBytes: number): Migration {
  const copies: number[] = [], changed: number[] = [];
  next.forEach((slots, l) => {
    const old = prev[l]!;
    const per = slots.length / gpus, perOld = old.length / gpus;
    let c = 0, ch = 0;
    for (let g = 0; g < gpus; g++) {
      const had = new Set(old.slice(g * perOld, (g + 1) * perOld));
      const seen = new Set<number>();
      for (let s = g * per; s < (g + 1) * per; s++) {
        const e = slots[s]!;
        if (old[s] !== e) ch++;
        if (!had.has(e) && !seen.has(e)) c++;
        seen.add(e);
      }
    }
    copies.push(c);
    changed.push(ch);
  });
  return { copies, changed_slots: changed, bytes: copies.reduce((a, b) => a + b, 0) * expertBytes };
}

interface Move { layer: number; slots: [number, number][]; copies: number; gain: number }

/** The layer's max GPU load after rewriting the given (slot, expert) pairs. */
function maxAfter(slots: number[], row: number[], gpus: number, rewrite: [number, number][]): number {
  const s = slots.slice();
  for (const [i, e] of rewrite) s[i] = e;
  return Math.max(...gpuLoads([s], [row], gpus)[0]!);
}

/** The best single move at one layer: a new replica of a hot expert over a redundant slot, or a swap between GPUs. */
function bestMove(layer: number, slots: number[], row: number[], gpus: number): Move | null {
  const per = slots.length / gpus;
  const loads = gpuLoads([slots], [row], gpus)[0]!;
  const max = Math.max(...loads);
  const gMax = loads.indexOf(max);
  const cnt = new Map<number, number>();
  for (const e of slots) cnt.set(e, (cnt.get(e) ?? 0) + 1);
  let best: Move | null = null;
  const consider = (rewrite: [number, number][], copies: number): void => {
    const gain = max - maxAfter(slots, row, gpus, rewrite);
    // gain per copy, so a swap (two copies) must buy twice as much as one new replica
    if (gain > 1e-9 * Math.max(1, max) && (!best || gain / copies > best.gain / best.copies)) best = { layer, slots: rewrite, copies, gain };
  };
  const hot = [...new Set(slots.slice(gMax * per, (gMax + 1) * per))];
  for (let t = 0; t < slots.length; t++) {
    const g = Math.floor(t / per);
    if (g === gMax) continue;
    const x = slots[t]!;
    const onG = new Set(slots.slice(g * per, (g + 1) * per));
    for (const y of hot) {
      if (onG.has(y)) continue;
      if (cnt.get(x)! >= 2) consider([[t, y]], 1); // replace a redundant replica with a copy of a hot expert
      for (let s = gMax * per; s < (gMax + 1) * per; s++) {
        if (slots[s] === y && !new Set(slots.slice(gMax * per, (gMax + 1) * per)).has(x)) consider([[t, y], [s, x]], 2); // swap
      }
    }
  }
  return best;
}

/**
 * Rebalances the current placement with at most `maxMoves` expert copies in all (over all layers): each step takes
 * the move with the largest drop of a layer's max GPU load per copy, and stops when no move helps. Slot counts and
 * every expert's presence are kept.
 */
export function budgetedRebalance(current: number[][], loads: number[][], gpus: number, maxMoves: number): { phy2log: number[][]; moves: number } {
  if (!Number.isInteger(maxMoves) || maxMoves < 0) throw new Error(`--max-moves must be an integer ≥ 0, got ${maxMoves}`);
  const plan = current.map((s) => s.slice());
  let used = 0;
  const cache = new Map<number, Move | null>();
  for (;;) {
    let best: Move | null = null;
    for (let l = 0; l < plan.length; l++) {
      if (!cache.has(l)) cache.set(l, bestMove(l, plan[l]!, loads[l]!, gpus));
      const m = cache.get(l)!;
      if (m && used + m.copies <= maxMoves && (!best || m.gain / m.copies > best.gain / best.copies)) best = m;
    }
    if (!best) break;
    for (const [s, e] of best.slots) plan[best.layer]![s] = e;
    used += best.copies;
    cache.delete(best.layer);
  }
  return { phy2log: plan, moves: used };
}
