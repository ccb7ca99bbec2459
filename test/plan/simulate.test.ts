// The expert-parallel simulator: the worked 2-GPU example of docs/PLANNING.md reproduced number for number (DeepEP
// layout, bytes, step time, prefill loads, goodput), DeepEP's RDMA-then-NVLink forwarding on 2 nodes of 2 GPUs, the
// replica rule, layered ≤ chunked prefill, and bad plans, hardware files and model dims refused with the rule named.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkPlan, dispatchLayout, physicalIds, StepCounter, topology } from '../../src/plan/dispatch.js';
import { H200, parseHardware, type Hardware, type ModelDims } from '../../src/plan/hw.js';
import { goodput, prefillLoads, requests } from '../../src/plan/prefill.js';
import { simulate, simulateTokens } from '../../src/plan/simulate.js';
import type { Plan } from '../../src/plan/types.js';
import type { RoutingTrace } from '../../src/trace/types.js';

/** A trace from rows [token][layer][K] of expert ids. */
function traceOf(rows: number[][][], E: number, seq?: number[]): RoutingTrace {
  const N = rows.length, L = rows[0]!.length, K = rows[0]![0]!.length;
  return { N, L, K, E, experts: Int16Array.from(rows.flat(2)), layers: Array.from({ length: L }, (_, l) => l), metadata: {}, ...(seq ? { seq: Int32Array.from(seq) } : {}) };
}

/** A plan from phy2log rows (log2phy and logcnt derived). */
function planOf(phy2log: number[][], E: number, gpus: number, nodes: number): Plan {
  const logcnt = phy2log.map((row) => Array.from({ length: E }, (_, e) => row.filter((x) => x === e).length));
  const max = Math.max(...logcnt.flat());
  const log2phy = phy2log.map((row) => Array.from({ length: E }, (_, e) => {
    const s = row.flatMap((x, i) => (x === e ? [i] : []));
    return [...s, ...new Array<number>(max - s.length).fill(-1)];
  }));
  return { policy: 'test', gpus, nodes, groups: 1, replicas: phy2log[0]!.length, phy2log, log2phy, logcnt };
}

// The worked example: 4 tokens, 2 layers, top-2 of E = 4, 2 GPUs with 2 slots each.
//   token  layer 0   layer 1
//     0    [0, 1]    [1, 2]
//     1    [0, 2]    [0, −1]
//     2    [1, 3]    [0, 1]
//     3    [2, 3]    [0, 2]
// Layer 0 places experts 0 1 | 2 3, layer 1 places 3 0 | 1 2 (GPU 0 | GPU 1).
const trace = traceOf([
  [[0, 1], [1, 2]],
  [[0, 2], [0, -1]],
  [[1, 3], [0, 1]],
  [[2, 3], [0, 2]],
], 4, [0, 0, 0, 0]);
const plan2 = (nodes: number): Plan => planOf([[0, 1, 2, 3], [3, 0, 1, 2]], 4, 2, nodes);
// H = 4, I = 2, bf16 weights and dispatch: 48 FLOPs per token-expert row, 48 weight bytes per expert, 8 bytes per token.
const dims: ModelDims = { hidden: 4, expertWidth: 2, weightBytes: 2, dispatch: 'bf16' };
const hw = (gpusPerNode: number): Hardware => ({ name: 'toy', flops: 480, hbm_bytes_per_s: 192, nvlink_bytes_per_s: 8, rdma_bytes_per_s: 4, gpus_per_node: gpusPerNode });

describe('the worked 2-GPU example', () => {
  it('maps experts to physical slots by the plan', () => {
    expect([...physicalIds(trace, plan2(2), 1, [0, 1, 2, 3])]).toEqual([2, 3, 1, -1, 1, 2, 1, 3]);
  });

  it('gives DeepEP\'s dispatch layout on each source rank (2 nodes)', () => {
    const topo = topology(plan2(2), 1);
    expect(topo).toEqual({ gpus: 2, nodes: 2, gpusPerNode: 1, slots: 4, slotsPerGpu: 2 });
    const at = (l: number, tokens: number[]) => dispatchLayout(physicalIds(trace, plan2(2), l, tokens), 2, topo);
    expect(at(0, [0, 1])).toEqual({ num_tokens_per_rank: [2, 1], num_tokens_per_rdma_rank: [2, 1], num_tokens_per_expert: [2, 1, 1, 0], is_token_in_rank: [[true, false], [true, true]] });
    expect(at(0, [2, 3])).toEqual({ num_tokens_per_rank: [1, 2], num_tokens_per_rdma_rank: [1, 2], num_tokens_per_expert: [0, 1, 1, 2], is_token_in_rank: [[true, true], [false, true]] });
    expect(at(1, [0, 1])).toEqual({ num_tokens_per_rank: [1, 1], num_tokens_per_rdma_rank: [1, 1], num_tokens_per_expert: [0, 1, 1, 1], is_token_in_rank: [[false, true], [true, false]] });
    expect(at(1, [2, 3])).toEqual({ num_tokens_per_rank: [2, 2], num_tokens_per_rdma_rank: [2, 2], num_tokens_per_expert: [0, 2, 1, 1], is_token_in_rank: [[true, true], [true, true]] });
    // one node: no RDMA ranks, as DeepEP returns None intranode
    expect(dispatchLayout(physicalIds(trace, plan2(1), 0, [0, 1]), 2, topology(plan2(1), 2)).num_tokens_per_rdma_rank).toBeNull();
  });

  it('counts rows, active slots and RDMA copies on 2 nodes of 1 GPU', () => {
    const c = new StepCounter(topology(plan2(2), 1));
    const l0 = c.count(trace, plan2(2), 0, [0, 1, 2, 3]);
    expect({ rows: [...l0.rows], active: [...l0.active], rdmaSend: [...l0.rdmaSend], rdmaRecv: [...l0.rdmaRecv], nvl: [...l0.nvlSend, ...l0.nvlRecv] })
      .toEqual({ rows: [4, 4], active: [2, 2], rdmaSend: [1, 1], rdmaRecv: [1, 1], nvl: [0, 0, 0, 0] });
    expect({ routed: l0.routed, oneGpu: l0.oneGpu, oneNode: l0.oneNode, localGpu: l0.localGpu, ranks: l0.ranks, nodes: l0.nodes })
      .toEqual({ routed: 4, oneGpu: 2, oneNode: 2, localGpu: 2, ranks: 6, nodes: 6 });
    const l1 = c.count(trace, plan2(2), 1, [0, 1, 2, 3]);
    expect({ rows: [...l1.rows], active: [...l1.active], rdmaSend: [...l1.rdmaSend], rdmaRecv: [...l1.rdmaRecv] })
      .toEqual({ rows: [3, 4], active: [1, 2], rdmaSend: [1, 2], rdmaRecv: [2, 1] });
    expect({ oneGpu: l1.oneGpu, localGpu: l1.localGpu }).toEqual({ oneGpu: 2, localGpu: 1 });
  });

  it('prices the step: 4.5 s + 8.5 s on 2 nodes, 2.5 s + 4.5 s on one node', () => {
    const two = simulateTokens(trace, plan2(2), new StepCounter(topology(plan2(2), 1)), [0, 1, 2, 3], dims, hw(1));
    expect(two).toEqual([{ compute: 0.5, dispatch: 2, combine: 2 }, { compute: 0.5, dispatch: 4, combine: 4 }]);
    const r = simulate(trace, plan2(2), { batch: 4, dims, hw: hw(1) });
    expect(r.total_s).toBe(13);
    expect(r.tokens_per_s).toBeCloseTo(4 / 13, 12);
    expect(r.bytes_per_token).toEqual({ dispatch_nvlink: 0, dispatch_rdma: 10, combine_nvlink: 0, combine_rdma: 10 });
    expect(r.layers.map((l) => [l.dispatch_rdma_bytes, l.one_gpu, l.local_gpu, l.imbalance])).toEqual([[16, 0.5, 0.5, 1], [24, 0.5, 0.25, 8 / 7]]);
    const one = simulate(trace, plan2(1), { batch: 4, dims, hw: hw(2) });
    expect(one.layers.map((l) => [l.compute_s, l.dispatch_s, l.combine_s])).toEqual([[0.5, 1, 1], [0.5, 2, 2]]);
    expect(one.total_s).toBe(7);
    expect(one.bytes_per_token).toEqual({ dispatch_nvlink: 10, dispatch_rdma: 0, combine_nvlink: 10, combine_rdma: 0 });
  });

  it('loads 10 experts chunked (C = 2) and 7 layered; equal when the chunk covers the prompt', () => {
    const reqs = requests(trace, 4, 4);
    expect(reqs).toEqual([{ seq: 0, start: 0, prompt: 3, output: 1 }]);
    const p = prefillLoads(trace, reqs, 2, dims);
    expect([p.chunked_loads, p.layered_loads, p.chunked_bytes, p.layered_bytes]).toEqual([10, 7, 480, 336]);
    expect(p.reduction).toBeCloseTo(0.3, 12);
    const q = prefillLoads(trace, reqs, 3, dims);
    expect([q.chunked_loads, q.layered_loads, q.reduction]).toEqual([7, 7, 0]);
  });

  it('serves one request: TTFT 9 s, TPOT 8.5 s; goodput counts it only under both SLOs', () => {
    const reqs = requests(trace, 2, 2);
    expect(reqs).toEqual([{ seq: 0, start: 0, prompt: 2, output: 2 }]);
    const g = goodput(trace, plan2(2), reqs, { dims, hw: hw(1), concurrency: 4, ttftMs: 9000, tpotMs: 8000 });
    expect([g.ttft_ms.mean, g.tpot_ms.mean, g.duration_s, g.good, g.goodput]).toEqual([9000, 8500, 17.5, 0, 0]);
    const ok = goodput(trace, plan2(2), reqs, { dims, hw: hw(1), concurrency: 4, ttftMs: 9000, tpotMs: 8500 });
    expect([ok.good, ok.goodput, ok.request_throughput]).toEqual([1, 1 / 17.5, 1 / 17.5]);
    const over = goodput(trace, plan2(2), reqs, { dims, hw: hw(1), concurrency: 4, stepOverhead: 0.5 });
    expect([over.ttft_ms.mean, over.tpot_ms.mean]).toEqual([9500, 9000]);
  });
});

describe('DeepEP internode forwarding', () => {
  it('sends once over RDMA per remote node, to the same GPU index, then over NVLink inside it', () => {
    // 4 GPUs on 2 nodes, one expert per GPU; one token on rank 0 choosing experts on ranks 1, 2 and 3
    const t = traceOf([[[1, 2, 3]]], 4);
    const p = planOf([[0, 1, 2, 3]], 4, 4, 2);
    const c = new StepCounter(topology(p, 2)).count(t, p, 0, [0]);
    expect([...c.rdmaSend]).toEqual([1, 0, 0, 0]);
    expect([...c.rdmaRecv]).toEqual([0, 0, 1, 0]);
    expect([...c.nvlSend]).toEqual([1, 0, 1, 0]);
    expect([...c.nvlRecv]).toEqual([0, 1, 0, 1]);
    expect([c.ranks, c.nodes, c.oneNode]).toEqual([3, 2, 0]);
  });

  it('prices fp8 dispatch as 1 byte per element plus a float32 scale per 128', () => {
    const t = traceOf([[[1]]], 2);
    const p = planOf([[0, 1]], 2, 2, 1);
    const big: ModelDims = { hidden: 256, expertWidth: 1, weightBytes: 1, dispatch: 'fp8' };
    const [l] = simulateTokens(t, p, new StepCounter(topology(p, 8)), [0], big, { ...hw(8), nvlink_bytes_per_s: 1 });
    expect([l!.dispatch, l!.combine]).toEqual([256 + 8, 512]);
  });
});

describe('replicas', () => {
  it('token n uses replica n mod logcnt of its expert', () => {
    const t = traceOf([[[0]], [[0]], [[0]], [[1]]], 2);
    const p = planOf([[0, 1, 0, 0]], 2, 2, 1);
    expect(p.log2phy[0]![0]).toEqual([0, 2, 3]);
    expect([...physicalIds(t, p, 0, [0, 1, 2, 3])]).toEqual([0, 2, 3, 1]);
    const c = new StepCounter(topology(p, 8)).count(t, p, 0, [0, 1, 2, 3]);
    expect([...c.rows, ...c.active]).toEqual([2, 2, 2, 2]);
  });
});

describe('layered vs chunked prefill', () => {
  it('layered never loads more than chunked, on random traces and chunk sizes', () => {
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let trial = 0; trial < 20; trial++) {
      const N = 5 + rnd(60), E = 2 + rnd(14);
      const rows = Array.from({ length: N }, () => Array.from({ length: 3 }, () => [rnd(E), rnd(5) === 0 ? -1 : rnd(E)]));
      const seq = Array.from({ length: N }, (_, i) => Math.floor(i / 17));
      const t = traceOf(rows, E, seq);
      const reqs = requests(t, 1 + rnd(20), 1);
      for (const C of [1, 2, 5, 64]) {
        const p = prefillLoads(t, reqs, C, dims);
        expect(p.layered_loads).toBeLessThanOrEqual(p.chunked_loads);
        if (reqs.every((r) => r.prompt <= C)) expect(p.layered_loads).toBe(p.chunked_loads);
      }
    }
  });
});

describe('bad input', () => {
  it('refuses a plan that does not match the trace', () => {
    expect(() => checkPlan(planOf([[0, 1, 2, 3]], 4, 2, 1), trace)).toThrow('phy2log has 1 layers but the trace has L = 2');
    const p = planOf([[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]], 6, 2, 1);
    expect(() => checkPlan(p, trace)).toThrow('logcnt[0] has 6 experts but the trace has E = 4');
    const bad = plan2(1);
    bad.log2phy[1]![2] = [0];
    expect(() => checkPlan(bad, trace)).toThrow('log2phy[1][2][0] = 0 is not a slot holding expert 2');
    expect(() => checkPlan({ ...plan2(1), gpus: -2 }, trace)).toThrow('gpus = -2; expected a positive integer');
  });

  it('refuses a topology the plan was not made for', () => {
    expect(() => topology(plan2(2), 2)).toThrow('made for 2 nodes of 1 GPUs, but gpus_per_node 2 makes 1 node; set gpus_per_node to 1');
    expect(() => topology(planOf([[0, 1, 2, 3, 0, 1]], 4, 6, 1), 4)).toThrow('6 GPUs do not fill nodes of 4 GPUs');
  });

  it('refuses bad hardware files, naming the field and the rule', () => {
    expect(() => parseHardware({ ...H200, flops: -1 })).toThrow('"flops" must be a positive finite number, got -1');
    expect(() => parseHardware({ ...H200, nvlink: 1 })).toThrow('unknown field "nvlink"');
    expect(() => parseHardware({ ...H200, gpus_per_node: 2.5 })).toThrow('"gpus_per_node" must be a positive integer, got 2.5');
    const { rdma_bytes_per_s: _, ...noRdma } = H200;
    expect(() => parseHardware(noRdma)).toThrow('"rdma_bytes_per_s" must be a positive finite number, got undefined');
    expect(() => parseHardware([])).toThrow('expected a JSON object');
  });

  it('refuses bad dims, batch and requests', () => {
    expect(() => simulate(trace, plan2(1), { batch: 0, dims, hw: hw(2) })).toThrow('batch must be a positive integer, got 0');
    expect(() => simulate(trace, plan2(1), { batch: 4, dims: { ...dims, hidden: -4 }, hw: hw(2) })).toThrow('hidden size must be a positive integer, got -4');
    expect(() => simulate(trace, plan2(1), { batch: 4, dims: { ...dims, weightBytes: 0 }, hw: hw(2) })).toThrow('bytes per weight must be a positive number, got 0');
    expect(() => requests({ ...trace, seq: undefined }, 2, 2)).toThrow('no sequence ids');
    expect(() => goodput(trace, plan2(1), requests(trace, 2, 2), { dims, hw: hw(2), concurrency: 1, ttftMs: -1 })).toThrow('TTFT SLO must be a number ≥ 0, got -1');
  });
});

describe('hw/h200.json', () => {
  it('holds the built-in H200 figures and parses', () => {
    expect(parseHardware(JSON.parse(readFileSync('hw/h200.json', 'utf8')))).toEqual(H200);
  });
});
