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

/**
 * One machine condition in this process (a child): every configuration's backend is created here, and the rounds
 * alternate between them, so each round compares the configurations under the same conditions. Prints one JSON line
 * per measurement.
 */
async function child(workload: Workload, configs: Config[], rounds: number, steps: number, tokenizer: string): Promise<void> {
  const mk = await import('../src/node.js');
  const { WasmRuntime } = await import('../src/backend/wasm/runtime.js');
  const emit = (round: number, c: Config, value: number): void => console.log(JSON.stringify({ round, config: c.name, value }));
  if (workload === 'gemm') {
    const K = await import('../src/backend/wasm/kernels.js');
    const M = 512, Kd = 512, N = 1024;
    const rts = await Promise.all(configs.map((c) => WasmRuntime.create({ threads: c.threads, pool: c.pool })));
    const bufs = rts.map((rt) => {
      const a = rt.alloc(M * Kd * 4), b = rt.alloc(Kd * N * 4), c = rt.alloc(M * N * 4);
      rt.f32(a, M * Kd).fill(0.5);
      rt.f32(b, Kd * N).fill(0.25);
      return { a, b, c, M, N, K: Kd };
    });
    for (let r = 0; r < rounds; r++) {
      configs.forEach((c, i) => {
        const times: number[] = [];
        const end = performance.now() + 1000;
        for (let k = 0; k < 3 || performance.now() < end; k++) {
          const t0 = performance.now();
          K.matmul(rts[i]!, bufs[i]!);
          if (k > 0) times.push(performance.now() - t0);
        }
        emit(r, c, (2 * M * Kd * N) / (median(times) * 1e6));
      });
    }
    for (const rt of rts) rt.dispose();
    return;
  }
  const { brownCorpus } = await import('../src/train/corpus.js');
  const cfg = mk.PRESETS.small;
  const corpus = brownCorpus({ vocabSize: cfg.vocabSize, tokenizerPath: tokenizer, maxDocs: 60 });
  const backends = await Promise.all(configs.map((c) => mk.WasmBackend.create({ threads: c.threads, pool: c.pool })));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < configs.length; i++) {
      mk.useBackend(backends[i]!);
      const rates: number[] = [];
      const res = await mk.train({ config: cfg, tokens: corpus.train, steps, batch: 8, seqLen: 128, lr: 3e-3, seed: r, out: null, onStep: (m) => rates.push(m.tokens_per_s) });
      res.model.dispose();
      emit(r, configs[i]!, median(rates.slice(2)));
    }
  }
  for (const b of backends) await b.dispose();
}

function runChild(args: string[], onLine: (v: { round: number; config: string; value: number }) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(TSX, [SELF, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line.startsWith('{')) onLine(JSON.parse(line) as { round: number; config: string; value: number });
      }
    });
    c.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
    c.on('close', (code) => {
      if (code !== 0) return reject(new Error(`child ${args.join(' ')} failed (${code}): ${err.trim().split('\n').pop() ?? ''}`));
      resolve();
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
  const cfgArg = JSON.stringify(configs);
  try {
    for (const load of loads) {
      const comp = load === 'quiet' ? [] : competitors(busy);
      await new Promise((res) => setTimeout(res, 300));
      try {
        for (const workload of workloads) {
          await runChild(['--child', workload, '--configs', cfgArg, '--rounds', String(rounds), '--steps', String(steps), '--tokenizer', tokenizer], (v) => {
            const c = configs.find((x) => x.name === v.config)!;
            const row: Row = { bench: 'contention', round: v.round, load, workload, config: c.name, threads: c.threads, pool: c.pool, value: v.value, unit: workload === 'train' ? 'tok/s' : 'GFLOP/s' };
            rows.push(row);
            if (o.json) console.log(JSON.stringify(row));
            progress(`${load}, ${workload}, round ${v.round + 1}/${rounds}, ${c.name}: ${v.value.toFixed(1)} ${row.unit}`);
          });
        }
      } finally {
        for (const p of comp) p.kill('SIGKILL');
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
  const vals = (load: string, w: Workload, c: Config): number[] =>
    Array.from({ length: rounds }, (_, r) => rows.find((x) => x.load === load && x.workload === w && x.config === c.name && x.round === r)?.value ?? NaN);
  const [one, stat, dflt] = configs as [Config, Config, Config];
  /** median over rounds of the ratio of two configurations measured in the same round */
  const paired = (load: string, w: Workload, a: Config, b: Config): string => {
    const x = vals(load, w, a), y = vals(load, w, b);
    const q = x.map((v, r) => v / y[r]!).filter((v) => Number.isFinite(v));
    return q.length ? `${(100 * median(q)).toFixed(0)}% (${Math.round(100 * Math.min(...q))}–${Math.round(100 * Math.max(...q))})` : '—';
  };
  const lines = [...machineHeader(),
    `${rounds} rounds; one process per workload and machine condition creates every configuration's backend and alternates them round by round`,
    `train: preset small, batch 8×128, median tokens/s of steps 3..${steps} per run; gemm: 512×512×1024, median call over 1 s per run`,
    'cells: median over rounds; ratios: median over rounds of the ratio within each round (min–max)', ''];
  const body = workloads.flatMap((w) => loads.map((load) => [
    `${w} (${w === 'train' ? 'tok/s' : 'GFLOP/s'}), ${load}`,
    ...configs.map((c) => fmt(median(vals(load, w, c).filter((v) => Number.isFinite(v))))),
    paired(load, w, dflt, one), paired(load, w, dflt, stat),
  ]));
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
  .option('--tokenizer <file>', '(internal) tokenizer path')
  .option('--configs <json>', '(internal) the configurations');
program.parse();
const opts = program.opts<{ rounds: string; busy: string; steps: string; workloads: string; json?: boolean; out?: string; child?: Workload; tokenizer?: string; configs?: string }>();
const job = opts.child ? child(opts.child, JSON.parse(opts.configs!) as Config[], Number(opts.rounds), Number(opts.steps), opts.tokenizer!) : main(opts);
job.catch((e: unknown) => {
  console.error(`bench:contention: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
