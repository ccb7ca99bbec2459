// The worker pool on a busy machine: training tokens/s and GEMM GFLOP/s at 1 thread and at the default thread count,
// chunked pool vs the static one, on a quiet machine and beside competitor processes that each keep a core busy.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { fmt, machineHeader, median, progress, renderTable } from './common.js';

const SELF = fileURLToPath(import.meta.url);
const TSX = path.join(path.dirname(SELF), '..', 'node_modules', '.bin', 'tsx');

type Pool = 'chunked' | 'static';
type Workload = 'train' | 'gemm';
interface Config { name: string; threads: number; pool: Pool }
interface Row { bench: 'contention'; round: number; load: string; workload: Workload; config: string; threads: number; pool: Pool; value: number; unit: string }

/** One measurement in this process (a child): prints {"value": …}. */
async function child(workload: Workload, steps: number, tokenizer: string): Promise<void> {
  const mk = await import('../src/node.js');
  if (workload === 'gemm') {
    const { WasmRuntime } = await import('../src/backend/wasm/runtime.js');
    const K = await import('../src/backend/wasm/kernels.js');
    const rt = await WasmRuntime.create({ threads: Number(process.env.MOEKIT_THREADS) });
    const M = 512, Kd = 512, N = 1024;
    const a = rt.alloc(M * Kd * 4), b = rt.alloc(Kd * N * 4), c = rt.alloc(M * N * 4);
    rt.f32(a, M * Kd).fill(0.5);
    rt.f32(b, Kd * N).fill(0.25);
    const times: number[] = [];
    const end = performance.now() + 1000 * steps * 0.25;
    for (let i = 0; i < 3 || performance.now() < end; i++) {
      const t0 = performance.now();
      K.matmul(rt, { a, b, c, M, N, K: Kd });
      if (i > 0) times.push(performance.now() - t0);
    }
    rt.dispose();
    console.log(JSON.stringify({ value: (2 * M * Kd * N) / (median(times) * 1e6) }));
    return;
  }
  await mk.setBackend('wasm'); // MOEKIT_THREADS, MOEKIT_POOL from the parent
  const cfg = mk.PRESETS.small;
  const { brownCorpus } = await import('../src/train/corpus.js');
  const corpus = brownCorpus({ vocabSize: cfg.vocabSize, tokenizerPath: tokenizer, maxDocs: 60 });
  const rates: number[] = [];
  await mk.train({ config: cfg, tokens: corpus.train, steps, batch: 8, seqLen: 128, lr: 3e-3, seed: 0, out: null, onStep: (m) => rates.push(m.tokens_per_s) });
  console.log(JSON.stringify({ value: median(rates.slice(2)) }));
}

function runChild(args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(TSX, [SELF, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
    c.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) return reject(new Error(`child ${args.join(' ')} failed (${code}): ${err.trim().split('\n').pop() ?? ''}`));
      resolve((JSON.parse(line) as { value: number }).value);
    });
  });
}

/** `n` processes that each spin on a core until stopped. */
function competitors(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

async function main(o: { rounds: string; busy: string; steps: string; workloads: string; json?: boolean; out?: string }): Promise<void> {
  const cores = os.availableParallelism();
  const rounds = Number(o.rounds), busy = Number(o.busy), steps = Number(o.steps);
  for (const [k, v] of [['rounds', rounds], ['busy', busy], ['steps', steps]] as const) {
    if (!Number.isInteger(v) || v < (k === 'busy' ? 1 : k === 'steps' ? 4 : 1)) throw new Error(`--${k}: expected a positive integer${k === 'steps' ? ' ≥ 4' : ''}, got "${String(v)}"`);
  }
  const workloads = o.workloads.split(',') as Workload[];
  for (const w of workloads) if (w !== 'train' && w !== 'gemm') throw new Error(`--workloads: expected train and/or gemm, got "${w}"`);
  const configs: Config[] = [
    { name: '1 thread', threads: 1, pool: 'chunked' },
    { name: `${cores} threads, static pool`, threads: cores, pool: 'static' },
    { name: `${cores} threads, chunked (default)`, threads: cores, pool: 'chunked' },
  ];
  const loads = ['quiet', `${busy} busy`];
  const work = mkdtempSync(path.join(os.tmpdir(), 'moekit-contention-'));
  const tokenizer = path.join(work, 'tokenizer.json');
  const rows: Row[] = [];
  try {
    if (workloads.includes('train')) await runChild(['--child', 'train', '--steps', '4', '--tokenizer', tokenizer], { MOEKIT_THREADS: '1' }); // trains the BPE once
    for (let r = 0; r < rounds; r++) {
      for (const load of loads) {
        const comp = load === 'quiet' ? [] : competitors(busy);
        await new Promise((res) => setTimeout(res, 300));
        try {
          for (const workload of workloads) {
            const order = r % 2 === 0 ? configs : [...configs].reverse();
            for (const c of order) {
              const value = await runChild(['--child', workload, '--steps', String(steps), '--tokenizer', tokenizer], { MOEKIT_THREADS: String(c.threads), MOEKIT_POOL: c.pool });
              const row: Row = { bench: 'contention', round: r, load, workload, config: c.name, threads: c.threads, pool: c.pool, value, unit: workload === 'train' ? 'tok/s' : 'GFLOP/s' };
              rows.push(row);
              if (o.json) console.log(JSON.stringify(row));
              progress(`round ${r + 1}/${rounds}, ${load}, ${workload}, ${c.name}: ${value.toFixed(1)} ${row.unit}`);
            }
          }
        } finally {
          for (const p of comp) p.kill('SIGKILL');
        }
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const text = report(rows, configs, loads, workloads, rounds, steps);
  if (!o.json) console.log(text);
  if (o.out) writeFileSync(o.out, `${text}\n`);
}

function report(rows: Row[], configs: Config[], loads: string[], workloads: Workload[], rounds: number, steps: number): string {
  const med = (load: string, w: Workload, c: Config): number => median(rows.filter((r) => r.load === load && r.workload === w && r.config === c.name).map((r) => r.value));
  const lines = [...machineHeader(), `rounds: ${rounds} (configs in alternating order), medians over rounds; train: preset small, batch 8×128, median tokens/s of steps 3..${steps}; gemm: 512×512×1024`, ''];
  const [one, stat, dflt] = configs as [Config, Config, Config];
  const body = workloads.flatMap((w) => loads.map((load) => {
    const v = configs.map((c) => med(load, w, c));
    return [`${w} (${w === 'train' ? 'tok/s' : 'GFLOP/s'}), ${load}`, ...v.map((x) => fmt(x)), `${(100 * med(load, w, dflt) / med(load, w, one)).toFixed(0)}%`, `${(100 * med(load, w, dflt) / med(load, w, stat)).toFixed(0)}%`];
  }));
  lines.push(renderTable(['workload, machine', ...configs.map((c) => c.name), 'default / 1 thread', 'default / static'], body));
  return lines.join('\n');
}

const program = new Command()
  .option('--rounds <n>', 'rounds over all configurations', '3')
  .option('--busy <n>', 'competitor processes in the busy runs (each spins on one core)', '1')
  .option('--steps <n>', 'training steps per run (the gemm runs time steps/4 seconds)', '12')
  .option('--workloads <list>', 'train,gemm', 'train,gemm')
  .option('--json', 'one JSON line per measurement')
  .option('--out <file>', 'also write the table to this file')
  .option('--child <workload>', '(internal) run one measurement')
  .option('--tokenizer <file>', '(internal) tokenizer path');
program.parse();
const opts = program.opts<{ rounds: string; busy: string; steps: string; workloads: string; json?: boolean; out?: string; child?: Workload; tokenizer?: string }>();
const job = opts.child ? child(opts.child, Number(opts.steps), opts.tokenizer!) : main(opts);
job.catch((e: unknown) => {
  console.error(`bench:contention: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
