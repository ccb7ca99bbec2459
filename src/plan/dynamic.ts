// Libra-style dynamic replication scored on a trace: the tokens are taken in windows; after each window, hot experts
// of the most loaded GPU are copied over redundant replicas on the least loaded GPU (using that window's load), and
// the next window runs on the updated placement. Compared with a static EPLB plan made once from the first window.
import type { RoutingTrace } from '../trace/types.js';
import { eplb, type EplbOptions } from './eplb.js';
import { balance, gpuLoads } from './metrics.js';

/** [L][E] tokens per expert over tokens [from, to) of the trace. */
export function windowLoads(trace: RoutingTrace, E: number, from: number, to: number): number[][] {
  const { L, K, experts } = trace;
  const out = Array.from({ length: L }, () => new Array<number>(E).fill(0));
  for (let n = from; n < to; n++) {
    for (let l = 0; l < L; l++) {
      const base = (n * L + l) * K;
      for (let k = 0; k < K; k++) {
        const e = experts[base + k]!;
        if (e >= 0) out[l]![e]!++;
      }
    }
  }
  return out;
}

/**
 * One Libra step at one layer, in place: up to `copies` times, the hottest expert (load per replica) on the most loaded
 * GPU that the least loaded GPU lacks is copied over that GPU's coldest slot whose expert has another replica; a step
 * is taken only when it lowers the layer's max GPU load. Returns the copies made.
 */
export function libraStep(slots: number[], row: number[], gpus: number, copies: number): number {
  const per = slots.length / gpus;
  let made = 0;
  for (; made < copies; made++) {
    const loads = gpuLoads([slots], [row], gpus)[0]!;
    const max = Math.max(...loads);
    const gMax = loads.indexOf(max), gMin = loads.indexOf(Math.min(...loads));
    if (gMax === gMin) break;
    const cnt = new Map<number, number>();
    for (const e of slots) cnt.set(e, (cnt.get(e) ?? 0) + 1);
    const share = (e: number): number => row[e]! / cnt.get(e)!;
    const onMin = slots.slice(gMin * per, (gMin + 1) * per);
    const hot = slots.slice(gMax * per, (gMax + 1) * per).filter((e) => !onMin.includes(e)).sort((a, b) => share(b) - share(a) || a - b)[0];
    let victim = -1;
    for (let s = gMin * per; s < (gMin + 1) * per; s++) {
      const e = slots[s]!;
      if (cnt.get(e)! >= 2 && (victim < 0 || share(e) < share(slots[victim]!))) victim = s;
    }
    if (hot === undefined || victim < 0) break;
    const old = slots[victim]!;
    slots[victim] = hot;
    if (!(Math.max(...gpuLoads([slots], [row], gpus)[0]!) < max)) {
      slots[victim] = old;
      break;
    }
  }
  return made;
}

export interface DynamicResult {
  window: number;
  windows: number;
  history: number;
  /** Σ over scored windows and layers of mean GPU load / Σ of max (vLLM's balancedness), windows 2..; static is the
   *  initial plan kept throughout */
  static_balancedness: number;
  dynamic_balancedness: number;
  /** the same with an EPLB plan made from each window's own load (the best a per-window rebalance can know) */
  oracle_balancedness: number;
  /** expert copies made by the dynamic policy, in all */
  copies: number;
}

/**
 * Scores a static plan (`initial`, or EPLB planned once on window 1) against Libra-style dynamic replication (starting
 * from the same plan,
 * up to `copies` per layer after every window, deciding on the load of the last `history` windows) on windows 2.. of
 * the trace; the oracle plans each window on its own load.
 */
export function dynamicReplication(trace: RoutingTrace, E: number, o: EplbOptions & { window: number; copies: number; history?: number; initial?: number[][] }): DynamicResult {
  const W = o.window;
  if (!Number.isInteger(W) || W < 1) throw new Error(`--window must be a positive integer of tokens, got ${W}`);
  const windows = Math.floor(trace.N / W);
  if (windows < 2) throw new Error(`the trace has ${trace.N} tokens: fewer than 2 windows of ${W} (one to plan on, one to score)`);
  const H = o.history ?? 1;
  if (!Number.isInteger(H) || H < 1) throw new Error(`--history must be a positive integer of windows, got ${H}`);
  const first = windowLoads(trace, E, 0, W);
  const statics = o.initial ?? eplb(first, o).phy2log;
  if (statics.length !== trace.L) throw new Error(`the initial plan has ${statics.length} layers; the trace has ${trace.L}`);
  const dyn = statics.map((s) => s.slice());
  let copies = 0;
  const sums = { s: [0, 0], d: [0, 0], o: [0, 0] };
  const add = (acc: number[], phy: number[][], loads: number[][]): void => {
    const per = gpuLoads(phy, loads, o.gpus);
    for (const row of per) {
      acc[0]! += row.reduce((a, x) => a + x, 0) / row.length;
      acc[1]! += Math.max(...row);
    }
  };
  const recent = [first]; // the last `history` windows' loads: what the dynamic policy decides on
  for (let w = 1; w < windows; w++) {
    const seen = recent.reduce((acc, x) => acc.map((row, l) => row.map((v, e) => v + x[l]![e]!)));
    dyn.forEach((slots, l) => { copies += libraStep(slots, seen[l]!, o.gpus, o.copies); });
    const cur = windowLoads(trace, E, w * W, (w + 1) * W);
    add(sums.s, statics, cur);
    add(sums.d, dyn, cur);
    add(sums.o, eplb(cur, o).phy2log, cur);
    recent.push(cur);
    if (recent.length > H) recent.shift();
  }
  const ratio = (a: number[]): number => (a[1]! > 0 ? a[0]! / a[1]! : 0);
  return { window: W, windows, history: H, static_balancedness: ratio(sums.s), dynamic_balancedness: ratio(sums.d), oracle_balancedness: ratio(sums.o), copies };
}

/** Balancedness of a placement on given loads (convenience for reports). */
export function scorePlacement(phy2log: number[][], loads: number[][], gpus: number): number {
  return balance(gpuLoads(phy2log, loads, gpus)).total_balancedness;
}
