// Expert-parallel dispatch of a batch of traced tokens under a placement plan, as DeepEP lays it out: each token's K
// logical experts become physical slots (a replicated expert's replica chosen by token index), slots become ranks
// (GPUs) and ranks nodes. `dispatchLayout` returns what DeepEP's get_dispatch_layout returns; `countStep` counts, per
// GPU, the rows each computes, the slots it activates and the token copies it sends and receives over NVLink and RDMA.
import type { RoutingTrace } from '../trace/types.js';
import type { Plan } from './types.js';

/** Where the plan's GPUs sit: R slots per layer, R / gpus per GPU, gpusPerNode GPUs per node. */
export interface Topology {
  gpus: number;
  nodes: number;
  gpusPerNode: number;
  /** physical slots per layer */
  slots: number;
  slotsPerGpu: number;
}

/**
 * The topology of `plan` on nodes of `gpusPerNode` GPUs (the hardware's; fewer GPUs than that make one node). A plan
 * made for several nodes must have that many GPUs per node, since its packing assumed them.
 */
export function topology(plan: Plan, gpusPerNode: number): Topology {
  const { gpus, replicas } = plan;
  if (!Number.isInteger(gpus) || gpus < 1) throw new Error(`plan: gpus ${gpus} must be a positive integer`);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas % gpus !== 0) throw new Error(`plan: replicas ${replicas} must be a positive multiple of gpus ${gpus}`);
  const gpn = Math.min(gpusPerNode, gpus);
  if (gpus % gpn !== 0) throw new Error(`plan: ${gpus} GPUs do not fill nodes of ${gpusPerNode} GPUs (gpus_per_node); expected a multiple of ${gpusPerNode}`);
  const nodes = gpus / gpn;
  if (plan.nodes > 1 && plan.nodes !== nodes) throw new Error(`plan: made for ${plan.nodes} nodes of ${gpus / plan.nodes} GPUs, but gpus_per_node ${gpusPerNode} makes ${nodes} node${nodes > 1 ? 's' : ''}; set gpus_per_node to ${gpus / plan.nodes}`);
  return { gpus, nodes, gpusPerNode: gpn, slots: replicas, slotsPerGpu: replicas / gpus };
}

/**
 * Checks the plan against the trace: one row per traced layer, E experts, every slot's expert in [0, E), every
 * expert's log2phy list holding logcnt[l][e] ≥ 1 slots that hold it.
 */
export function checkPlan(plan: Plan, trace: RoutingTrace): void {
  const { L } = trace;
  const E = trace.E;
  if (typeof plan !== 'object' || plan === null) throw new Error('plan: expected a JSON object (policy, gpus, nodes, groups, replicas, phy2log, log2phy, logcnt)');
  for (const k of ['gpus', 'nodes', 'replicas'] as const) {
    if (!Number.isInteger(plan[k]) || plan[k] < 1) throw new Error(`plan: ${k} = ${JSON.stringify(plan[k])}; expected a positive integer`);
  }
  if (E === null) throw new Error('trace: the number of experts E is unknown; pass --experts E');
  for (const [name, v] of [['phy2log', plan.phy2log], ['log2phy', plan.log2phy], ['logcnt', plan.logcnt]] as const) {
    if (!Array.isArray(v) || v.length !== L) throw new Error(`plan: ${name} has ${Array.isArray(v) ? v.length : 'no'} layers but the trace has L = ${L}`);
  }
  for (let l = 0; l < L; l++) {
    const p2l = plan.phy2log[l]!, l2p = plan.log2phy[l]!, cnt = plan.logcnt[l]!;
    if (!Array.isArray(p2l) || p2l.length !== plan.replicas) throw new Error(`plan: phy2log[${l}] has ${Array.isArray(p2l) ? p2l.length : 'no'} slots; expected replicas = ${plan.replicas}`);
    if (!Array.isArray(cnt) || cnt.length !== E) throw new Error(`plan: logcnt[${l}] has ${Array.isArray(cnt) ? cnt.length : 'no'} experts but the trace has E = ${E}`);
    if (!Array.isArray(l2p) || l2p.length !== E) throw new Error(`plan: log2phy[${l}] has ${Array.isArray(l2p) ? l2p.length : 'no'} experts but the trace has E = ${E}`);
    p2l.forEach((e, s) => {
      if (!Number.isInteger(e) || e < 0 || e >= E) throw new Error(`plan: phy2log[${l}][${s}] = ${JSON.stringify(e)}; expected an expert in [0, ${E})`);
    });
    for (let e = 0; e < E; e++) {
      const c = cnt[e]!, list = l2p[e]!;
      if (!Number.isInteger(c) || c < 1) throw new Error(`plan: logcnt[${l}][${e}] = ${JSON.stringify(c)}; expected an integer ≥ 1 (every expert needs a slot)`);
      if (!Array.isArray(list) || list.length < c) throw new Error(`plan: log2phy[${l}][${e}] lists ${Array.isArray(list) ? list.length : 'no'} slots; expected at least logcnt = ${c}`);
      for (let i = 0; i < c; i++) {
        const s = list[i]!;
        if (!Number.isInteger(s) || s < 0 || s >= plan.replicas || p2l[s] !== e) throw new Error(`plan: log2phy[${l}][${e}][${i}] = ${JSON.stringify(s)} is not a slot holding expert ${e} (phy2log[${l}] disagrees)`);
      }
    }
  }
}

/**
 * Physical slots of `tokens` at layer l, [b·K], −1 for empty slots. Replica rule: token n (its index in the trace)
 * uses replica n mod logcnt[l][e] of expert e, i.e. slot log2phy[l][e][n mod logcnt[l][e]].
 */
export function physicalIds(trace: RoutingTrace, plan: Plan, l: number, tokens: ArrayLike<number>): Int32Array {
  const { L, K } = trace;
  const out = new Int32Array(tokens.length * K);
  for (let i = 0; i < tokens.length; i++) {
    const n = tokens[i]!;
    for (let k = 0; k < K; k++) {
      const e = trace.experts[(n * L + l) * K + k]!;
      out[i * K + k] = e < 0 ? -1 : plan.log2phy[l]![e]![n % plan.logcnt[l]![e]!]!;
    }
  }
  return out;
}

/** What DeepEP's get_dispatch_layout returns for one rank's tokens (physical expert ids [b][K], −1 = none). */
export interface DispatchLayout {
  /** [gpus] tokens sent to each rank (a token counts once per rank however many of its experts are there) */
  num_tokens_per_rank: number[];
  /** [nodes] tokens sent to each node (the RDMA rank with the same GPU index); null on one node, as DeepEP */
  num_tokens_per_rdma_rank: number[] | null;
  /** [slots] tokens sent to each physical expert */
  num_tokens_per_expert: number[];
  /** [b][gpus] whether a token goes to a rank */
  is_token_in_rank: boolean[][];
}

export function dispatchLayout(topk: Int32Array, K: number, topo: Topology): DispatchLayout {
  const b = topk.length / K;
  const perRank = new Array<number>(topo.gpus).fill(0);
  const perNode = new Array<number>(topo.nodes).fill(0);
  const perExpert = new Array<number>(topo.slots).fill(0);
  const inRank: boolean[][] = [];
  for (let t = 0; t < b; t++) {
    const ranks = new Array<boolean>(topo.gpus).fill(false);
    const nodes = new Set<number>();
    for (let k = 0; k < K; k++) {
      const p = topk[t * K + k]!;
      if (p < 0) continue;
      if (p >= topo.slots) throw new Error(`dispatch layout: physical expert ${p} outside [0, ${topo.slots})`);
      perExpert[p]!++;
      const r = Math.floor(p / topo.slotsPerGpu);
      ranks[r] = true;
      nodes.add(Math.floor(r / topo.gpusPerNode));
    }
    ranks.forEach((x, r) => { if (x) perRank[r]!++; });
    for (const n of nodes) perNode[n]!++;
    inRank.push(ranks);
  }
  return { num_tokens_per_rank: perRank, num_tokens_per_rdma_rank: topo.nodes > 1 ? perNode : null, num_tokens_per_expert: perExpert, is_token_in_rank: inRank };
}

/** Per-GPU counts of one step at one layer (token copies; multiply by bytes per token for bytes). */
export interface StepCounts {
  /** [gpus] token-expert rows each GPU computes */
  rows: Float64Array;
  /** [gpus] slots with at least one token */
  active: Float64Array;
  /** [gpus] dispatch token copies sent / received over NVLink */
  nvlSend: Float64Array;
  nvlRecv: Float64Array;
  /** [gpus] dispatch token copies sent / received over RDMA */
  rdmaSend: Float64Array;
  rdmaRecv: Float64Array;
  /** tokens with at least one expert, those whose experts all lie on one GPU / one node, and on the token's own GPU / node */
  routed: number;
  oneGpu: number;
  oneNode: number;
  localGpu: number;
  localNode: number;
  /** Σ over tokens of distinct destination ranks / nodes */
  ranks: number;
  nodes: number;
}

/** Reusable buffers for countStep. */
export class StepCounter {
  readonly c: StepCounts;
  private readonly slotRows: Int32Array;
  private readonly rankStamp: Int32Array;
  private readonly nodeStamp: Int32Array;
  private readonly rankList: Int32Array;
  private readonly nodeList: Int32Array;
  private stamp = 0;

  constructor(readonly topo: Topology) {
    const g = topo.gpus;
    this.c = { rows: new Float64Array(g), active: new Float64Array(g), nvlSend: new Float64Array(g), nvlRecv: new Float64Array(g), rdmaSend: new Float64Array(g), rdmaRecv: new Float64Array(g), routed: 0, oneGpu: 0, oneNode: 0, localGpu: 0, localNode: 0, ranks: 0, nodes: 0 };
    this.slotRows = new Int32Array(topo.slots);
    this.rankStamp = new Int32Array(g);
    this.nodeStamp = new Int32Array(topo.nodes);
    this.rankList = new Int32Array(g);
    this.nodeList = new Int32Array(topo.nodes);
  }

  /**
   * Counts the dispatch of `tokens` (trace indices) at layer l. Token i of the b tokens lives on rank ⌊i·gpus/b⌋
   * (attention data-parallel). Counting rule, DeepEP's: a token goes once over RDMA to each remote node holding one of
   * its experts (to the rank with its own GPU index there) and from that forwarder (on its own node: itself) once over
   * NVLink to each other rank on the node holding one; a copy to the forwarder itself moves nothing.
   */
  count(trace: RoutingTrace, plan: Plan, l: number, tokens: ArrayLike<number>): StepCounts {
    const { c, topo, slotRows, rankStamp, nodeStamp, rankList, nodeList } = this;
    const { L, K } = trace;
    const { gpus, gpusPerNode: gpn, slotsPerGpu: spg } = topo;
    for (const a of [c.rows, c.active, c.nvlSend, c.nvlRecv, c.rdmaSend, c.rdmaRecv]) a.fill(0);
    c.routed = c.oneGpu = c.oneNode = c.localGpu = c.localNode = c.ranks = c.nodes = 0;
    slotRows.fill(0);
    const l2p = plan.log2phy[l]!, cnt = plan.logcnt[l]!;
    const b = tokens.length;
    for (let i = 0; i < b; i++) {
      const n = tokens[i]!;
      const stamp = ++this.stamp;
      let nr = 0, nn = 0;
      for (let k = 0; k < K; k++) {
        const e = trace.experts[(n * L + l) * K + k]!;
        if (e < 0) continue;
        const p = l2p[e]![n % cnt[e]!]!;
        slotRows[p]!++;
        const r = (p / spg) | 0;
        if (rankStamp[r] !== stamp) {
          rankStamp[r] = stamp;
          rankList[nr++] = r;
          const nd = (r / gpn) | 0;
          if (nodeStamp[nd] !== stamp) { nodeStamp[nd] = stamp; nodeList[nn++] = nd; }
        }
      }
      if (nr === 0) continue;
      const src = Math.floor((i * gpus) / b), srcNode = (src / gpn) | 0, j = src % gpn;
      c.routed++;
      c.ranks += nr;
      c.nodes += nn;
      if (nr === 1) c.oneGpu++;
      if (nn === 1) c.oneNode++;
      if (nr === 1 && rankList[0] === src) c.localGpu++;
      if (nn === 1 && nodeList[0] === srcNode) c.localNode++;
      for (let q = 0; q < nn; q++) {
        const nd = nodeList[q]!;
        if (nd !== srcNode) { c.rdmaSend[src]!++; c.rdmaRecv[nd * gpn + j]!++; }
      }
      for (let q = 0; q < nr; q++) {
        const d = rankList[q]!;
        const fwd = ((d / gpn) | 0) * gpn + j;
        if (d !== fwd) { c.nvlSend[fwd]!++; c.nvlRecv[d]!++; }
      }
    }
    for (let p = 0; p < topo.slots; p++) {
      const v = slotRows[p]!;
      if (v > 0) { const g = (p / spg) | 0; c.rows[g]! += v; c.active[g]!++; }
    }
    return c;
  }
}
