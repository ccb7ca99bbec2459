// moekit bench serve: a seeded load (Poisson arrivals, prompt and output lengths from Brown paragraphs) against the
// server at several rates, for an MoE model and its FLOP-matched dense baseline in turn: throughput, TTFT/TPOT
// percentiles, goodput under SLOs, activated experts vs batch size, and the MoE tax per phase (docs/SERVING.md).
import type { Command } from 'commander';
import { setBackend } from '../backend/registry.js';
import { loadBrown, splitBrown } from '../io/brown.js';
import { loadModelDir, type LoadedModel } from '../models/dir.js';
import { BatchEngine, type StepInfo } from '../serve/engine.js';
import { createServer } from '../serve/http.js';
import { runLoad, type LoadReport, type LoadRequest } from '../serve/loadgen.js';
import { ServerMetrics } from '../serve/metrics.js';
import { Rng } from '../tensor/random.js';
import { intOption } from './args.js';

interface Flags { model: string; dense?: string; rates: string; requests: string; outputMax: string; maxBatch: string; sloTtft: string; sloTpot: string; seed: string; backend: string; json?: boolean }

/** Requests from Brown valid paragraphs: a paragraph is the prompt, the next one's length (clipped) the output length. */
function brownRequests(m: LoadedModel, n: number, outputMax: number, seed: number): LoadRequest[] {
  if (!m.tokenizer) throw new Error('bench serve: the model needs a tokenizer (prompts are Brown text)');
  const paras = splitBrown(loadBrown()).valid.flatMap((d) => d.paragraphs.map((p) => p.join(' ')));
  const rng = new Rng(seed);
  const ctx = m.config.maxSeqLen;
  return Array.from({ length: n }, () => {
    const i = Math.floor(rng.uniform() * (paras.length - 1));
    const out = Math.max(4, Math.min(outputMax, m.tokenizer!.encode(paras[i + 1]!).length));
    const ids = m.tokenizer!.encode(paras[i]!).slice(0, ctx - out - 1);
    return { prompt: ids.length > 0 ? ids : [0], maxTokens: out };
  });
}

interface StepStats { kind: StepInfo['kind']; rows: number; ms: number; distinct: number[] }

async function measure(dir: string, o: Flags, rates: number[]): Promise<{ name: string; E: number; K: number; loads: LoadReport[]; steps: StepStats[] }> {
  const m = await loadModelDir(dir);
  const metrics = new ServerMetrics();
  const steps: StepStats[] = [];
  metrics.onStepExperts = (s, distinct) => steps.push({ kind: s.kind, rows: s.decodeRows + s.prefillRows, ms: s.ms, distinct });
  const engine = new BatchEngine(m.model, { maxBatch: intOption('max-batch', o.maxBatch, 16, 1), observer: metrics });
  const server = createServer({ loaded: m, engine, metrics, modelId: 'bench', maxQueue: 100_000, timeoutMs: 600_000 });
  const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
  const reqs = brownRequests(m, intOption('requests', o.requests, 32, 1), intOption('output-max', o.outputMax, 64, 1), intOption('seed', o.seed, 1, 0));
  const slo = { ttft: Number(o.sloTtft), tpot: Number(o.sloTpot) };
  const loads: LoadReport[] = [];
  try {
    await runLoad(url, 'bench', reqs.slice(0, 2), 100, 0); // warm-up
    steps.length = 0;
    for (const [i, rate] of rates.entries()) {
      const r = await runLoad(url, 'bench', reqs, rate, 100 + i, slo);
      loads.push(r);
      if (!o.json) console.error(`${dir}: rate ${rate}/s: ${r.completed}/${r.requests} in ${r.seconds.toFixed(1)} s, ${r.throughput.toFixed(0)} tokens/s`);
    }
  } finally {
    await server.app.close();
  }
  return { name: dir, E: m.model.cfg.ffn === 'dense' ? 0 : m.model.cfg.experts, K: m.model.cfg.topK, loads, steps };
}

const f = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : '—');

/** Mean ms per row of the steps of one kind, by batch-size bucket. */
function perRow(steps: readonly StepStats[], kind: StepInfo['kind']): Map<number, { ms: number; rows: number; n: number }> {
  const out = new Map<number, { ms: number; rows: number; n: number }>();
  for (const s of steps) {
    if (s.kind !== kind) continue;
    const b = 2 ** Math.floor(Math.log2(s.rows)); // buckets 1, 2, 4, 8, …
    const a = out.get(b) ?? { ms: 0, rows: 0, n: 0 };
    a.ms += s.ms; a.rows += s.rows; a.n++;
    out.set(b, a);
  }
  return out;
}

export function registerBenchServe(bench: Command): void {
  bench.command('serve')
    .description('load the server at several rates (Poisson arrivals, Brown lengths): throughput, TTFT/TPOT, goodput, activated experts vs batch, MoE tax vs a dense baseline')
    .requiredOption('--model <dir>', 'the MoE model (a run or model directory with a tokenizer)')
    .option('--dense <dir>', 'its FLOP-matched dense baseline, served the same way, for the tax')
    .option('--rates <list>', 'request rates per second', '1,4,16')
    .option('--requests <n>', 'requests per rate', '32')
    .option('--output-max <n>', 'largest output length (outputs follow Brown paragraph lengths up to it)', '64')
    .option('--max-batch <n>', 'server batch', '16')
    .option('--slo-ttft <s>', 'TTFT SLO for goodput, seconds', '2')
    .option('--slo-tpot <s>', 'TPOT SLO for goodput, seconds', '0.1')
    .option('--seed <n>', 'seed of the requests and arrivals', '1')
    .option('--backend <name>', 'js | wasm', 'wasm')
    .option('--json', 'print one JSON object')
    .action(async (o: Flags) => {
      const rates = o.rates.split(',').map((s) => Number(s));
      if (rates.some((r) => !(r > 0))) throw new Error(`--rates must be positive numbers, got "${o.rates}"`);
      await setBackend(o.backend);
      const runs = [await measure(o.model, o, rates), ...(o.dense ? [await measure(o.dense, o, rates)] : [])];
      if (o.json) {
        console.log(JSON.stringify({ rates, runs: runs.map((r) => ({ ...r, loads: r.loads.map(({ results: _r, ...l }) => l) })) }));
        return;
      }
      for (const r of runs) {
        console.log(`\n${r.name} (${r.E ? `MoE, top-${r.K} of ${r.E}` : 'dense'})`);
        console.log('  rate/s  done  tokens/s  TTFT p50  TTFT p99  TPOT p50  TPOT p99  goodput/s');
        for (const l of r.loads) console.log(`  ${String(l.rate).padStart(6)} ${String(l.completed).padStart(5)} ${f(l.throughput, 0).padStart(9)} ${f(l.ttft.p50).padStart(9)} ${f(l.ttft.p99).padStart(9)} ${f(l.tpot.p50, 4).padStart(9)} ${f(l.tpot.p99, 4).padStart(9)} ${f(l.goodput, 2).padStart(10)}`);
        if (r.E) {
          console.log('  activated experts per layer vs rows in the step (mean over layers and steps; uniform routing in brackets):');
          const by = new Map<number, { sum: number; n: number }>();
          for (const s of r.steps) {
            const b = 2 ** Math.floor(Math.log2(s.rows));
            const a = by.get(b) ?? { sum: 0, n: 0 };
            a.sum += s.distinct.reduce((x, y) => x + y, 0) / Math.max(1, s.distinct.length); a.n++;
            by.set(b, a);
          }
          for (const [b, a] of [...by].sort((x, y) => x[0] - y[0])) console.log(`    ${String(b).padStart(5)}+ rows: ${f(a.sum / a.n, 1)} of ${r.E} [${f(r.E * (1 - (1 - r.K / r.E) ** b), 1)}] over ${a.n} steps`);
        }
      }
      if (runs.length === 2) {
        console.log('\nMoE tax: ms per row, MoE / dense, by step kind and batch-size bucket (steps of this load only)');
        for (const kind of ['decode', 'prefill'] as const) {
          const a = perRow(runs[0]!.steps, kind), b = perRow(runs[1]!.steps, kind);
          for (const [bucket, x] of [...a].sort((p, q) => p[0] - q[0])) {
            const y = b.get(bucket);
            if (y) console.log(`  ${kind.padEnd(7)} ${String(bucket).padStart(5)}+ rows: ${f(x.ms / x.rows, 4)} / ${f(y.ms / y.rows, 4)} ms = ${f(x.ms / x.rows / (y.ms / y.rows), 2)}× (${x.n} / ${y.n} steps)`);
          }
        }
      }
    });
}
