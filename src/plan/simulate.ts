// The expert-parallel simulator: replays a routing trace in steps of B consecutive tokens on the GPUs of a placement
// plan and prices each MoE layer of each step with a hardware file. Per layer: the slowest GPU's expert compute (FLOPs
// or weight reads, whichever takes longer) plus the dispatch and the combine all-to-all (the slowest GPU's NVLink
// bytes / NVLink bandwidth + RDMA bytes / RDMA bandwidth). Attention and the dense parts are left out (an optional
// fixed overhead per step stands for them in the request model, src/plan/prefill.ts).
import type { RoutingTrace } from '../trace/types.js';
import { checkPlan, StepCounter, topology, type StepCounts, type Topology } from './dispatch.js';
import { checkDims, combineTokenBytes, dispatchTokenBytes, expertTokenFlops, expertWeightBytes, type Hardware, type ModelDims } from './hw.js';
import type { Plan } from './types.js';

/** Time of one layer of one step, seconds. */
export interface LayerTime {
  /** max over GPUs of max(rows·6HI / flops, active slots·3HI·wb / hbm) */
  compute: number;
  /** max over GPUs of NVLink copies·bytes / nvlink + RDMA copies·bytes / rdma, a GPU's copies being the larger of sent and received */
  dispatch: number;
  /** the same with the combine's bf16 bytes (the combine reverses the dispatch's paths) */
  combine: number;
}

/** Prices one step's counts at one layer. */
export function layerTime(c: StepCounts, dims: ModelDims, hw: Hardware): LayerTime {
  const fl = expertTokenFlops(dims), wb = expertWeightBytes(dims);
  let compute = 0, links = 0;
  for (let g = 0; g < c.rows.length; g++) {
    compute = Math.max(compute, (c.rows[g]! * fl) / hw.flops, (c.active[g]! * wb) / hw.hbm_bytes_per_s);
    links = Math.max(links, Math.max(c.nvlSend[g]!, c.nvlRecv[g]!) / hw.nvlink_bytes_per_s + Math.max(c.rdmaSend[g]!, c.rdmaRecv[g]!) / hw.rdma_bytes_per_s);
  }
  return { compute, dispatch: links * dispatchTokenBytes(dims), combine: links * combineTokenBytes(dims) };
}

export const stepSeconds = (t: LayerTime[]): number => t.reduce((a, x) => a + x.compute + x.dispatch + x.combine, 0);

/** Simulates one batch of tokens (trace indices) through every layer; returns each layer's time. */
export function simulateTokens(trace: RoutingTrace, plan: Plan, counter: StepCounter, tokens: ArrayLike<number>, dims: ModelDims, hw: Hardware): LayerTime[] {
  const out: LayerTime[] = [];
  for (let l = 0; l < trace.L; l++) out.push(layerTime(counter.count(trace, plan, l, tokens), dims, hw));
  return out;
}

export interface LayerReport {
  layer: number;
  /** mean seconds per step */
  compute_s: number;
  dispatch_s: number;
  combine_s: number;
  /** bytes over the whole trace: dispatch over NVLink / RDMA, combine over NVLink / RDMA */
  dispatch_nvlink_bytes: number;
  dispatch_rdma_bytes: number;
  combine_nvlink_bytes: number;
  combine_rdma_bytes: number;
  /** shares of routed tokens whose experts all lie on one GPU / one node (any), and on their own GPU / node */
  one_gpu: number;
  one_node: number;
  local_gpu: number;
  local_node: number;
  /** mean distinct destination ranks / nodes per routed token */
  ranks_per_token: number;
  nodes_per_token: number;
  /** Σ rows on the busiest GPU / Σ mean GPU rows over steps (1 = balanced) */
  imbalance: number;
}

export interface SimulateReport {
  hw: Hardware;
  dims: ModelDims;
  topology: Topology;
  policy: string;
  batch: number;
  steps: number;
  tokens: number;
  /** Σ over steps and layers */
  total_s: number;
  step_s: number;
  /** tokens / total_s (MoE layers only) */
  tokens_per_s: number;
  compute_s: number;
  dispatch_s: number;
  combine_s: number;
  /** bytes per token summed over layers */
  bytes_per_token: { dispatch_nvlink: number; dispatch_rdma: number; combine_nvlink: number; combine_rdma: number };
  layers: LayerReport[];
}

export interface SimulateOptions {
  /** tokens per step (B) */
  batch: number;
  dims: ModelDims;
  hw: Hardware;
  /** limit on the tokens simulated (the first maxTokens of the trace) */
  maxTokens?: number;
}

/** Checks that `v` is a positive integer; names the option. */
export function positiveInt(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${what} must be a positive integer, got ${v}`);
  return v;
}

/** Steps of B consecutive tokens over the trace (the last one shorter when B does not divide N). */
export function simulate(trace: RoutingTrace, plan: Plan, o: SimulateOptions): SimulateReport {
  checkPlan(plan, trace);
  checkDims(o.dims);
  const B = positiveInt(o.batch, 'batch');
  const topo = topology(plan, o.hw.gpus_per_node);
  const N = Math.min(trace.N, o.maxTokens ?? trace.N);
  if (N < 1) throw new Error('simulate: the trace has no tokens');
  const { L } = trace;
  const counter = new StepCounter(topo);
  const db = dispatchTokenBytes(o.dims), cb = combineTokenBytes(o.dims);
  const acc = Array.from({ length: L }, () => ({ compute: 0, dispatch: 0, combine: 0, nvl: 0, rdma: 0, routed: 0, oneGpu: 0, oneNode: 0, localGpu: 0, localNode: 0, ranks: 0, nodes: 0, max: 0, mean: 0 }));
  let steps = 0;
  const tokens = new Int32Array(B);
  for (let t0 = 0; t0 < N; t0 += B) {
    const b = Math.min(B, N - t0);
    for (let i = 0; i < b; i++) tokens[i] = t0 + i;
    const batch = b === B ? tokens : tokens.subarray(0, b);
    for (let l = 0; l < L; l++) {
      const c = counter.count(trace, plan, l, batch);
      const t = layerTime(c, o.dims, o.hw);
      const a = acc[l]!;
      a.compute += t.compute;
      a.dispatch += t.dispatch;
      a.combine += t.combine;
      for (let g = 0; g < topo.gpus; g++) { a.nvl += c.nvlSend[g]!; a.rdma += c.rdmaSend[g]!; }
      a.routed += c.routed; a.oneGpu += c.oneGpu; a.oneNode += c.oneNode; a.localGpu += c.localGpu; a.localNode += c.localNode;
      a.ranks += c.ranks; a.nodes += c.nodes;
      let mx = 0, sum = 0;
      for (let g = 0; g < topo.gpus; g++) { mx = Math.max(mx, c.rows[g]!); sum += c.rows[g]!; }
      a.max += mx;
      a.mean += sum / topo.gpus;
    }
    steps++;
  }
  const share = (x: number, n: number): number => (n > 0 ? x / n : 0);
  const layers: LayerReport[] = acc.map((a, l) => ({
    layer: trace.layers[l] ?? l,
    compute_s: a.compute / steps, dispatch_s: a.dispatch / steps, combine_s: a.combine / steps,
    dispatch_nvlink_bytes: a.nvl * db, dispatch_rdma_bytes: a.rdma * db, combine_nvlink_bytes: a.nvl * cb, combine_rdma_bytes: a.rdma * cb,
    one_gpu: share(a.oneGpu, a.routed), one_node: share(a.oneNode, a.routed), local_gpu: share(a.localGpu, a.routed), local_node: share(a.localNode, a.routed),
    ranks_per_token: share(a.ranks, a.routed), nodes_per_token: share(a.nodes, a.routed),
    imbalance: a.mean > 0 ? a.max / a.mean : 0,
  }));
  const sum = (f: (a: (typeof acc)[number]) => number): number => acc.reduce((s, a) => s + f(a), 0);
  const compute = sum((a) => a.compute), dispatch = sum((a) => a.dispatch), combine = sum((a) => a.combine);
  const total = compute + dispatch + combine;
  return {
    hw: o.hw, dims: o.dims, topology: topo, policy: plan.policy, batch: B, steps, tokens: N,
    total_s: total, step_s: total / steps, tokens_per_s: total > 0 ? N / total : Infinity,
    compute_s: compute, dispatch_s: dispatch, combine_s: combine,
    bytes_per_token: {
      dispatch_nvlink: (sum((a) => a.nvl) * db) / N, dispatch_rdma: (sum((a) => a.rdma) * db) / N,
      combine_nvlink: (sum((a) => a.nvl) * cb) / N, combine_rdma: (sum((a) => a.rdma) * cb) / N,
    },
    layers,
  };
}
