// DeepSeek's expert-parallel load balancer (EPLB), computed as its reference does: float32 loads, groups packed to
// nodes, experts replicated within a node by the largest load per replica, replicas packed to GPUs with a balanced
// packing that caps the items per pack. Hierarchical when groups % nodes == 0, global (one group, one node) otherwise.
import { torchSortDescending } from './introsort.js';
import type { Plan } from './types.js';

const f32 = Math.fround;

/** Checks loads are a non-empty [L][E] matrix of finite non-negative numbers; returns L and E. */
export function checkLoads(loads: number[][], what = 'loads'): { L: number; E: number } {
  if (!Array.isArray(loads) || loads.length === 0) throw new Error(`${what}: expected a non-empty [layers][experts] array of numbers`);
  const E = Array.isArray(loads[0]) ? loads[0].length : 0;
  if (E === 0) throw new Error(`${what}: row 0 is not a non-empty array of numbers (expected [layers][experts])`);
  loads.forEach((row, l) => {
    if (!Array.isArray(row) || row.length !== E) throw new Error(`${what}: row ${l} has ${Array.isArray(row) ? row.length : 'no'} entries; expected ${E} like row 0 (every layer has the same experts)`);
    row.forEach((v, e) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${what}: [${l}][${e}] = ${JSON.stringify(v)}; expected a finite number ≥ 0`);
    });
  });
  return { L: loads.length, E };
}

/**
 * Packs n weighted items into `packs` packs of exactly n / packs items each: items by descending weight (tied items in
 * the order the reference's sort leaves them), each into the lightest pack that is not full (the first such on ties). Returns each item's pack and its rank within the pack.
 */
export function balancedPacking(weight: ArrayLike<number>, packs: number): { pack: Int32Array; rank: Int32Array } {
  const n = weight.length;
  if (n % packs !== 0) throw new Error(`balanced packing: ${n} items do not divide into ${packs} packs`);
  const per = n / packs;
  const pack = new Int32Array(n), rank = new Int32Array(n);
  if (per === 1) {
    for (let i = 0; i < n; i++) pack[i] = i;
    return { pack, rank };
  }
  const load = new Float64Array(packs), items = new Int32Array(packs);
  for (const i of torchSortDescending(weight)) {
    let best = -1;
    for (let p = 0; p < packs; p++) if (items[p]! < per && (best < 0 || load[p]! < load[best]!)) best = p;
    pack[i] = best;
    rank[i] = items[best]!;
    load[best] = f32(load[best]! + weight[i]!);
    items[best]!++;
  }
  return { pack, rank };
}

/**
 * Replicates `weight.length` logical experts into `phy` physical ones: each extra replica goes to the expert with the
 * largest load per replica (the first on ties). Returns phy2log, each physical expert's replica rank, and logcnt.
 */
export function replicateExperts(weight: ArrayLike<number>, phy: number): { phy2log: Int32Array; rank: Int32Array; logcnt: Int32Array } {
  const n = weight.length;
  if (phy < n) throw new Error(`replicate: ${phy} physical experts cannot hold ${n} logical ones`);
  const phy2log = new Int32Array(phy), rank = new Int32Array(phy), logcnt = new Int32Array(n).fill(1);
  for (let i = 0; i < n; i++) phy2log[i] = i;
  for (let i = n; i < phy; i++) {
    let best = 0, bestV = -Infinity;
    for (let e = 0; e < n; e++) {
      const v = f32(weight[e]! / logcnt[e]!);
      if (v > bestV) { bestV = v; best = e; }
    }
    phy2log[i] = best;
    rank[i] = logcnt[best]!;
    logcnt[best]!++;
  }
  return { phy2log, rank, logcnt };
}

export interface EplbOptions {
  /** physical experts (replicas) per layer, a multiple of gpus */
  replicas: number;
  /** expert groups (the hierarchical policy packs whole groups to nodes) */
  groups: number;
  /** server nodes (NVLink inside, a slower network between) */
  nodes: number;
  /** GPUs in all, a multiple of nodes */
  gpus: number;
}

/** The rules EPLB's options follow for E experts, as errors naming the value and the rule. */
export function checkEplbOptions(E: number, o: EplbOptions): 'hierarchical' | 'global' {
  for (const k of ['replicas', 'groups', 'nodes', 'gpus'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k} must be a positive integer, got ${o[k]}`);
  }
  if (o.replicas < E) throw new Error(`--replicas ${o.replicas} is fewer than the ${E} experts (each expert needs at least one replica)`);
  if (o.replicas % o.gpus !== 0) throw new Error(`--replicas ${o.replicas} is not a multiple of --gpus ${o.gpus} (every GPU holds the same number of replicas)`);
  if (o.gpus % o.nodes !== 0) throw new Error(`--gpus ${o.gpus} is not a multiple of --nodes ${o.nodes} (every node has the same number of GPUs)`);
  const policy = o.groups % o.nodes === 0 ? 'hierarchical' : 'global';
  if (policy === 'hierarchical' && E % o.groups !== 0) {
    throw new Error(`--groups ${o.groups} does not divide the ${E} experts (the hierarchical policy, used because groups % nodes == 0, packs whole groups of experts)`);
  }
  return policy;
}

/** One layer of the hierarchical policy (the global policy is this with one group and one node). */
function layerPlan(w: Float32Array, R: number, G: number, nodes: number, gpus: number): { phy2log: Int32Array; rank: Int32Array; logcnt: Int32Array } {
  const E = w.length, gs = E / G, gpn = G / nodes, perNode = E / nodes, phyPerNode = R / nodes, phyPerGpu = R / gpus;
  // 1. groups to nodes
  const groupLoad = new Float32Array(G);
  for (let g = 0; g < G; g++) {
    let s = 0;
    for (let j = 0; j < gs; j++) s = f32(s + w[g * gs + j]!);
    groupLoad[g] = s;
  }
  const gp = balancedPacking(groupLoad, nodes);
  const log2mlog = new Int32Array(E), mlog2log = new Int32Array(E);
  for (let g = 0; g < G; g++) {
    for (let j = 0; j < gs; j++) {
      const m = (gp.pack[g]! * gpn + gp.rank[g]!) * gs + j;
      log2mlog[g * gs + j] = m;
      mlog2log[m] = g * gs + j;
    }
  }
  const phy2log = new Int32Array(R), rank = new Int32Array(R), logcnt = new Int32Array(E);
  for (let node = 0; node < nodes; node++) {
    // 2. replicas within the node
    const mw = new Float32Array(perNode);
    for (let i = 0; i < perNode; i++) mw[i] = w[mlog2log[node * perNode + i]!]!;
    const rep = replicateExperts(mw, phyPerNode);
    // 3. replicas to the node's GPUs
    const perPhy = new Float32Array(phyPerNode);
    for (let p = 0; p < phyPerNode; p++) perPhy[p] = f32(mw[rep.phy2log[p]!]! / rep.logcnt[rep.phy2log[p]!]!);
    const pk = balancedPacking(perPhy, gpus / nodes);
    for (let p = 0; p < phyPerNode; p++) {
      const slot = node * phyPerNode + pk.pack[p]! * phyPerGpu + pk.rank[p]!;
      phy2log[slot] = mlog2log[node * perNode + rep.phy2log[p]!]!;
      rank[slot] = rep.rank[p]!;
    }
    for (let i = 0; i < perNode; i++) logcnt[mlog2log[node * perNode + i]!] = rep.logcnt[i]!;
  }
  return { phy2log, rank, logcnt };
}

/** EPLB over all layers: phy2log [L][R], log2phy [L][E][maxcount] (−1 padded), logcnt [L][E]. */
export function eplb(loads: number[][], o: EplbOptions): Plan {
  const { E } = checkLoads(loads);
  const policy = checkEplbOptions(E, o);
  const [G, nodes] = policy === 'hierarchical' ? [o.groups, o.nodes] : [1, 1];
  const layers = loads.map((row) => layerPlan(Float32Array.from(row), o.replicas, G, nodes, o.gpus));
  const maxcount = Math.max(...layers.map((p) => Math.max(...p.logcnt)));
  const log2phy = layers.map((p) => {
    const m = Array.from({ length: E }, () => new Array<number>(maxcount).fill(-1));
    p.phy2log.forEach((e, slot) => { m[e]![p.rank[slot]!] = slot; });
    return m;
  });
  return {
    policy, gpus: o.gpus, nodes: o.nodes, groups: o.groups, replicas: o.replicas,
    phy2log: layers.map((p) => Array.from(p.phy2log)),
    log2phy,
    logcnt: layers.map((p) => Array.from(p.logcnt)),
  };
}
