// moekit simulate through its commander command (registered on a fresh program, run in-process): the worked 2-GPU
// example from files (a moekit trace, a plan file, a hardware file) as one JSON object and as tables; bad files and
// flags refused with the field and the rule named.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerSimulate, type SimulateOutput } from '../../src/cli/simulate.js';
import { writePlanFile } from '../../src/plan/plan-file.js';
import type { Plan } from '../../src/plan/types.js';
import { TraceWriter } from '../../src/trace/format.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir('moekit-cli-simulate-');
const traceFile = path.join(dir, 'trace.safetensors');
const planFile = path.join(dir, 'plan.json');
const hwFile = path.join(dir, 'toy.json');
const hw = { name: 'toy', flops: 480, hbm_bytes_per_s: 192, nvlink_bytes_per_s: 8, rdma_bytes_per_s: 4, gpus_per_node: 1 };
// the worked example of test/plan/simulate.test.ts: 4 tokens, 2 layers, top-2 of E = 4, 2 GPUs on 2 nodes
const plan: Plan = {
  policy: 'test', gpus: 2, nodes: 2, groups: 1, replicas: 4,
  phy2log: [[0, 1, 2, 3], [3, 0, 1, 2]],
  log2phy: [[[0], [1], [2], [3]], [[1], [2], [3], [0]]],
  logcnt: [[1, 1, 1, 1], [1, 1, 1, 1]],
};

beforeAll(async () => {
  const w = new TraceWriter(traceFile, { E: 4, K: 2, layers: [0, 1] });
  w.append({ experts: Int16Array.from([0, 1, 1, 2, 0, 2, 0, -1, 1, 3, 0, 1, 2, 3, 0, 2]), scores: new Float32Array(16).fill(0.5), tokens: new Int32Array(4), seq: new Int32Array(4) });
  w.finish();
  await writePlanFile(planFile, plan, 'moekit');
  writeFileSync(hwFile, JSON.stringify(hw));
});
afterEach(() => vi.restoreAllMocks());

/** Runs `moekit simulate ...args`; returns what it printed. */
async function run(args: string[]): Promise<string> {
  const lines: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  const program = new Command().exitOverride();
  registerSimulate(program);
  await program.parseAsync(['node', 'moekit', 'simulate', ...args]);
  return lines.join('\n');
}

const base = [traceFile, '--plan', planFile, '--hw', hwFile, '--hidden', '4', '--expert-width', '2', '--batch', '4'];

describe('moekit simulate', () => {
  it('--json prints one JSON object with the worked example\'s numbers', async () => {
    const out = await run([...base, '--layout', '0', '--prompt', '2', '--output', '2', '--chunk', '1', '--slo-ttft', '9000', '--slo-tpot', '8500', '--json']);
    expect(out.split('\n')).toHaveLength(1);
    const j = JSON.parse(out) as SimulateOutput;
    expect(j.trace).toEqual({ source: traceFile, N: 4, L: 2, K: 2, E: 4 });
    expect(j.simulate.total_s).toBe(13);
    expect(j.simulate.layers.map((l) => [l.compute_s, l.dispatch_s, l.combine_s])).toEqual([[0.5, 2, 2], [0.5, 4, 4]]);
    expect(j.simulate.bytes_per_token).toEqual({ dispatch_nvlink: 0, dispatch_rdma: 10, combine_nvlink: 0, combine_rdma: 10 });
    expect(j.layout!.layers[0]!.ranks[0]!.num_tokens_per_rank).toEqual([2, 1]);
    expect(j.layout!.layers[1]!.ranks[1]!.num_tokens_per_expert).toEqual([0, 2, 1, 1]);
    expect([j.goodput!.ttft_ms.mean, j.goodput!.tpot_ms.mean, j.goodput!.good, j.goodput!.goodput]).toEqual([9000, 8500, 1, 1 / 17.5]);
    // prompt 2 tokens, chunks of 1: layer 0 {0,1} + {0,2} = 4 vs {0,1,2} = 3; layer 1 {1,2} + {0} = 3 vs 3
    expect([j.prefill!.chunked_loads, j.prefill!.layered_loads]).toEqual([7, 6]);
  });

  it('prints readable tables without --json; --gpus-per-node 2 puts both GPUs on one node', async () => {
    const out = await run([...base.slice(0, 5), '--hidden', '4', '--expert-width', '2', '--batch', '4']);
    expect(out).toContain('plan test: 2 GPUs on 2 nodes (1 per node), 4 slots per layer; hardware toy');
    expect(out).toContain('step 1.30e+7 µs');
    expect(out).toMatch(/prefill of 1 prompts/);
    const flat = { ...plan, nodes: 1 };
    const one = path.join(dir, 'plan-1node.json');
    await writePlanFile(one, flat, 'moekit');
    const j = JSON.parse(await run([traceFile, '--plan', one, '--hw', hwFile, '--gpus-per-node', '2', '--hidden', '4', '--expert-width', '2', '--batch', '4', '--json'])) as SimulateOutput;
    expect(j.simulate.total_s).toBe(7);
  });

  it('refuses bad hardware files, plans and flags, naming the value and the rule', async () => {
    const bad = path.join(dir, 'bad-hw.json');
    writeFileSync(bad, JSON.stringify({ ...hw, hbm: 1 }));
    await expect(run([...base.slice(0, 3), '--hw', bad, '--hidden', '4', '--expert-width', '2'])).rejects.toThrow('unknown field "hbm"');
    writeFileSync(bad, JSON.stringify({ ...hw, rdma_bytes_per_s: 0 }));
    await expect(run([...base.slice(0, 3), '--hw', bad, '--hidden', '4', '--expert-width', '2'])).rejects.toThrow('"rdma_bytes_per_s" must be a positive finite number, got 0');
    const short = path.join(dir, 'plan-1layer.json');
    await writePlanFile(short, { ...plan, phy2log: [plan.phy2log[0]!], log2phy: [plan.log2phy[0]!], logcnt: [plan.logcnt[0]!] }, 'moekit');
    await expect(run([traceFile, '--plan', short, '--hw', hwFile, '--hidden', '4', '--expert-width', '2'])).rejects.toThrow('phy2log has 1 layers but the trace has L = 2');
    await expect(run([...base.slice(0, 5)])).rejects.toThrow('does not record the hidden size; pass --hidden H');
    await expect(run([...base, '--batch', '-3'])).rejects.toThrow('--batch must be a positive integer, got "-3"');
    await expect(run([...base, '--slo-tpot', 'fast'])).rejects.toThrow('--slo-tpot must be a number ≥ 0, got "fast"');
    await expect(run([...base, '--dispatch', 'fp4'])).rejects.toThrow('--dispatch must be bf16 or fp8, got "fp4"');
    await expect(run([...base, '--layout', '9'])).rejects.toThrow('--layout 9: the trace has 1 steps of 4 tokens');
  });
});
