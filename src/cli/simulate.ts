// moekit simulate: replays a routing trace on the GPUs of a placement plan (dispatch layout, all-to-all bytes, step
// time, prefill expert loads, goodput under SLOs) as tables or one JSON object. The work is in src/plan/.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadTrace, parseExperts } from './analyse.js';
import { intOption, numOption } from './args.js';
import { checkPlan, dispatchLayout, physicalIds, topology, type DispatchLayout } from '../plan/dispatch.js';
import { H200, parseHardware, type DispatchFormat, type Hardware, type ModelDims } from '../plan/hw.js';
import { goodput, prefillLoads, requests, type GoodputReport, type PrefillReport } from '../plan/prefill.js';
import { readPlanFile } from '../plan/plan-file.js';
import { simulate, type SimulateReport } from '../plan/simulate.js';
import type { Plan } from '../plan/types.js';
import type { RoutingTrace } from '../trace/types.js';

export interface SimulateFlags {
  plan: string;
  hw?: string;
  gpusPerNode?: string;
  batch?: string;
  experts?: string;
  hidden?: string;
  expertWidth?: string;
  weightBytes?: string;
  dispatch?: string;
  maxTokens?: string;
  layout?: string;
  prompt?: string;
  output?: string;
  chunk?: string;
  concurrency?: string;
  sloTtft?: string;
  sloTpot?: string;
  stepOverheadMs?: string;
  json?: boolean;
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${what} ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} ${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** A number ≥ 0 option (SLOs, overhead), undefined when absent. */
function nonNegative(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number ≥ 0, got "${v}"`);
  return n;
}

/** The hardware: --hw's file (default the built-in H200), gpus_per_node overridden by --gpus-per-node. */
export function hardwareOf(o: SimulateFlags): Hardware {
  const hw = o.hw ? parseHardware(readJson(o.hw, 'hardware file'), `hardware file ${o.hw}`) : { ...H200 };
  return o.gpusPerNode === undefined ? hw : { ...hw, gpus_per_node: intOption('gpus-per-node', o.gpusPerNode, 0, 1) };
}

/** Model dims: the flags, else the trace's metadata (hidden, expert_width) or its hidden-state width. */
export function dimsOf(o: SimulateFlags, trace: RoutingTrace): ModelDims {
  const meta = (k: string): string | undefined => trace.metadata[k];
  const hv = o.hidden ?? meta('hidden') ?? (trace.H !== undefined ? String(trace.H) : undefined);
  const iv = o.expertWidth ?? meta('expert_width');
  if (hv === undefined) throw new Error('simulate: the trace does not record the hidden size; pass --hidden H');
  if (iv === undefined) throw new Error('simulate: the trace does not record the expert width; pass --expert-width I');
  const dispatch = (o.dispatch ?? 'bf16') as DispatchFormat;
  if (dispatch !== 'bf16' && dispatch !== 'fp8') throw new Error(`--dispatch must be bf16 or fp8, got "${o.dispatch}"`);
  return { hidden: intOption('hidden', hv, 0, 1), expertWidth: intOption('expert-width', iv, 0, 1), weightBytes: numOption('weight-bytes', o.weightBytes, 2), dispatch };
}

export interface SimulateOutput {
  trace: { source: string; N: number; L: number; K: number; E: number | null };
  simulate: SimulateReport;
  /** DeepEP's layout of one step, per layer and source rank (with --layout) */
  layout: { step: number; tokens: [number, number]; layers: { layer: number; ranks: DispatchLayout[] }[] } | null;
  prefill: PrefillReport | null;
  goodput: GoodputReport | null;
}

/** Layout of step `s` (tokens [s·B, s·B + b)): for each layer, what get_dispatch_layout returns on each source rank. */
function stepLayout(trace: RoutingTrace, plan: Plan, hw: Hardware, B: number, s: number): NonNullable<SimulateOutput['layout']> {
  const topo = topology(plan, hw.gpus_per_node);
  const a = s * B, b = Math.min(B, trace.N - a);
  if (b < 1) throw new Error(`--layout ${s}: the trace has ${Math.ceil(trace.N / B)} steps of ${B} tokens (0 to ${Math.ceil(trace.N / B) - 1})`);
  const layers = trace.layers.map((layer, l) => ({
    layer,
    ranks: Array.from({ length: topo.gpus }, (_, r) => {
      const own = Array.from({ length: b }, (_, i) => i).filter((i) => Math.floor((i * topo.gpus) / b) === r).map((i) => a + i);
      return dispatchLayout(physicalIds(trace, plan, l, own), trace.K, topo);
    }),
  }));
  return { step: s, tokens: [a, a + b], layers };
}

export function simulateFile(file: string, o: SimulateFlags): SimulateOutput {
  const trace = loadTrace(file, parseExperts(o.experts));
  const plan = readPlanFile(o.plan);
  checkPlan(plan, trace);
  const hw = hardwareOf(o);
  const dims = dimsOf(o, trace);
  const batch = intOption('batch', o.batch, 128, 1);
  const maxTokens = o.maxTokens === undefined ? undefined : intOption('max-tokens', o.maxTokens, 0, 1);
  const sim = simulate(trace, plan, { batch, dims, hw, ...(maxTokens !== undefined ? { maxTokens } : {}) });
  const layout = o.layout === undefined ? null : stepLayout(trace, plan, hw, batch, intOption('layout', o.layout, 0));
  let prefill: PrefillReport | null = null, good: GoodputReport | null = null;
  if (trace.seq) {
    const reqs = requests(trace, intOption('prompt', o.prompt, 512, 1), intOption('output', o.output, 128, 1));
    prefill = prefillLoads(trace, reqs, intOption('chunk', o.chunk, 128, 1), dims);
    const ttft = nonNegative('slo-ttft', o.sloTtft), tpot = nonNegative('slo-tpot', o.sloTpot), over = nonNegative('step-overhead-ms', o.stepOverheadMs);
    good = goodput(trace, plan, reqs, {
      dims, hw, concurrency: intOption('concurrency', o.concurrency, 16, 1),
      ...(ttft !== undefined ? { ttftMs: ttft } : {}), ...(tpot !== undefined ? { tpotMs: tpot } : {}), ...(over !== undefined ? { stepOverhead: over / 1e3 } : {}),
    });
  }
  return { trace: { source: trace.metadata.source ?? file, N: trace.N, L: trace.L, K: trace.K, E: trace.E }, simulate: sim, layout, prefill, goodput: good };
}

const us = (s: number): string => (s * 1e6).toPrecision(3);
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const kb = (b: number): string => (b / 1024).toFixed(2);

export function printSimulate(r: SimulateOutput): void {
  const s = r.simulate, t = s.topology, d = s.dims;
  console.log(`trace ${r.trace.source}: N = ${r.trace.N}, L = ${r.trace.L}, top-${r.trace.K} of E = ${r.trace.E}`);
  console.log(`plan ${s.policy}: ${t.gpus} GPUs on ${t.nodes} node${t.nodes > 1 ? 's' : ''} (${t.gpusPerNode} per node), ${t.slots} slots per layer; hardware ${s.hw.name}`);
  console.log(`model H = ${d.hidden}, I = ${d.expertWidth}, ${d.weightBytes} bytes per weight, dispatch ${d.dispatch}; ${s.steps} steps of B = ${s.batch} tokens (attention data-parallel)`);
  console.log(`\nper layer, mean over steps (µs); shares of routed tokens with all experts on one GPU / one node (own GPU / own node)`);
  console.log(`  ${'layer'.padStart(5)} ${'compute'.padStart(9)} ${'dispatch'.padStart(9)} ${'combine'.padStart(9)} ${'1 GPU'.padStart(7)} ${'1 node'.padStart(7)} ${'own GPU'.padStart(8)} ${'own node'.padStart(8)} ${'ranks/t'.padStart(8)} ${'nodes/t'.padStart(8)} ${'max/mean'.padStart(8)}`);
  for (const l of s.layers) {
    console.log(`  ${String(l.layer).padStart(5)} ${us(l.compute_s).padStart(9)} ${us(l.dispatch_s).padStart(9)} ${us(l.combine_s).padStart(9)} ${pct(l.one_gpu).padStart(7)} ${pct(l.one_node).padStart(7)} ${pct(l.local_gpu).padStart(8)} ${pct(l.local_node).padStart(8)} ${l.ranks_per_token.toFixed(2).padStart(8)} ${l.nodes_per_token.toFixed(2).padStart(8)} ${l.imbalance.toFixed(2).padStart(8)}`);
  }
  const b = s.bytes_per_token;
  console.log(`\nstep ${us(s.step_s)} µs (compute ${us(s.compute_s / s.steps)}, dispatch ${us(s.dispatch_s / s.steps)}, combine ${us(s.combine_s / s.steps)}); ${s.tokens_per_s.toExponential(3)} tokens/s through the MoE layers`);
  console.log(`bytes per token over all layers (KiB): dispatch NVLink ${kb(b.dispatch_nvlink)}, RDMA ${kb(b.dispatch_rdma)}; combine NVLink ${kb(b.combine_nvlink)}, RDMA ${kb(b.combine_rdma)}`);
  if (r.layout) {
    console.log(`\ndispatch layout of step ${r.layout.step} (tokens ${r.layout.tokens[0]}..${r.layout.tokens[1] - 1}), per source rank: num_tokens_per_rank | num_tokens_per_rdma_rank`);
    for (const l of r.layout.layers) {
      l.ranks.forEach((x, rank) => console.log(`  layer ${l.layer} rank ${rank}: [${x.num_tokens_per_rank.join(', ')}] | ${x.num_tokens_per_rdma_rank ? `[${x.num_tokens_per_rdma_rank.join(', ')}]` : '-'}`));
    }
  }
  const p = r.prefill;
  if (p) {
    console.log(`\nprefill of ${p.requests} prompts (${p.prompt_tokens} tokens): expert-weight loads chunked (C = ${p.chunk}) ${p.chunked_loads} = ${(p.chunked_bytes / 2 ** 20).toFixed(1)} MiB, layered ${p.layered_loads} = ${(p.layered_bytes / 2 ** 20).toFixed(1)} MiB: ${pct(p.reduction)} less (per prompt ${pct(p.mean_reduction)})`);
  } else console.log('\nprefill and goodput: the trace has no sequence ids');
  const g = r.goodput;
  if (g) {
    const slo = [g.slo.ttft_ms !== null ? `TTFT ≤ ${g.slo.ttft_ms} ms` : '', g.slo.tpot_ms !== null ? `TPOT ≤ ${g.slo.tpot_ms} ms` : ''].filter(Boolean).join(', ') || 'none';
    console.log(`requests ${g.requests} in ${g.duration_s.toExponential(3)} s: ${g.request_throughput.toFixed(1)} req/s; goodput ${g.goodput.toFixed(1)} req/s (${g.good} good; SLOs ${slo})`);
    console.log(`  TTFT ms mean ${g.ttft_ms.mean.toFixed(4)} median ${g.ttft_ms.median.toFixed(4)} p99 ${g.ttft_ms.p99.toFixed(4)}; TPOT ms mean ${g.tpot_ms.mean.toFixed(5)} median ${g.tpot_ms.median.toFixed(5)} p99 ${g.tpot_ms.p99.toFixed(5)}`);
  }
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('replay a routing trace on the GPUs of a placement plan: DeepEP dispatch layout, NVLink/RDMA bytes of dispatch and combine, step time per layer, prefill expert loads (chunked vs layered), goodput under TTFT/TPOT SLOs')
    .argument('<trace>', 'a moekit trace (.safetensors), a NumPy array of expert ids [N, L, K] (.npy) or a Megatron-LM router trace (.jsonl)')
    .requiredOption('--plan <file>', 'placement plan JSON (policy, gpus, nodes, groups, replicas, phy2log, log2phy, logcnt)')
    .option('--hw <file>', 'hardware JSON: name, flops, hbm_bytes_per_s, nvlink_bytes_per_s, rdma_bytes_per_s, gpus_per_node (default: NVIDIA H200 SXM, as hw/h200.json)')
    .option('--gpus-per-node <n>', 'override the hardware file\'s gpus_per_node')
    .option('--batch <B>', 'tokens per step', '128')
    .option('--experts <E>', 'experts per layer (required for .npy and .jsonl)')
    .option('--hidden <H>', 'hidden size (default: the trace\'s, when it records one)')
    .option('--expert-width <I>', 'routed expert width (default: the trace\'s, when it records one)')
    .option('--weight-bytes <b>', 'bytes per expert weight (2 bf16, 1 fp8, 0.5 int4)', '2')
    .option('--dispatch <fmt>', 'dispatched activations: bf16 | fp8 (1 byte + a float32 scale per 128 elements); combine is bf16', 'bf16')
    .option('--max-tokens <n>', 'simulate only the first n tokens')
    .option('--layout <step>', 'also give DeepEP\'s dispatch layout of this step (0-based), per layer and source rank')
    .option('--prompt <P>', 'prompt tokens per request (a sequence id is a request)', '512')
    .option('--output <O>', 'output tokens per request at most', '128')
    .option('--chunk <C>', 'chunk size of chunked prefill', '128')
    .option('--concurrency <n>', 'requests served together (a wave)', '16')
    .option('--slo-ttft <ms>', 'time-to-first-token SLO for goodput')
    .option('--slo-tpot <ms>', 'time-per-output-token SLO for goodput')
    .option('--step-overhead-ms <ms>', 'fixed time added to every prefill and decode step (attention, dense layers)', '0')
    .option('--json', 'print one JSON object')
    .action((file: string, o: SimulateFlags) => {
      const r = simulateFile(file, o);
      if (o.json) console.log(JSON.stringify(r));
      else printSimulate(r);
    });
}
