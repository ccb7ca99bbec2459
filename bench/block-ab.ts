// One MoE layer (standard and clustered block, `small` preset shapes) through `infer` (fused inference path) and
// `forward` under noGrad (composed training path) in this checkout and in another one (--compare DIR), timed in
// alternation in one process: a before/after of an engine change that both versions' block API can run.
import { Command } from 'commander';
import path from 'node:path';
import * as mk from '../src/index.js';
import { machineHeader, median, parseThreads, progress, renderTable } from './common.js';

interface Opts { compare: string; tokens: string; rounds: number; calls: number; threads: number; json?: boolean }
type Engine = typeof mk;
interface Subject { version: string; layer: string; path: string; T: number; run: () => void; use: () => void }

async function subjects(engine: Engine, version: string, T: number[], threads: number): Promise<Subject[]> {
  const be = await engine.WasmBackend.create({ threads });
  const use = (): void => engine.useBackend(be);
  use();
  const rng = new engine.Rng(7);
  const moe = new engine.MoEBlock({ hidden: 128, experts: 16, topK: 2, expertWidth: 128 }, rng);
  const cl = new engine.ClusteredMoEBlock({ hidden: 128, experts: 16, topK: 2, expertWidth: 128, groups: 2, rank: 4 }, rng);
  const out: Subject[] = [];
  for (const t of T) {
    const x = engine.keep(engine.randn([t, 128], rng));
    for (const [layer, b] of [['moe', moe], ['clustered', cl]] as const) {
      out.push({ version, layer, path: 'fused (infer)', T: t, use, run: () => engine.noGrad(() => engine.tidy(() => void b.infer(x).y.dataSync())) });
      out.push({ version, layer, path: 'composed (forward)', T: t, use, run: () => engine.noGrad(() => engine.tidy(() => void b.forward(x).y.dataSync())) });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const o = new Command()
    .name('bench:block-ab')
    .description('one MoE layer in this checkout vs another (--compare DIR), interleaved in one process: µs per call')
    .requiredOption('--compare <dir>', 'another moekit checkout')
    .option('--tokens <list>', 'tokens per call', '1,32,512')
    .option('--rounds <n>', 'timed rounds (each a batch of calls per subject)', Number, 20)
    .option('--calls <n>', 'calls per round at T = 1 (fewer for larger T)', Number, 200)
    .option('--threads <n>', 'wasm threads', Number, 2)
    .option('--json', 'print one JSON object per row')
    .parse()
    .opts<Opts>();
  for (const [k, v] of [['--rounds', o.rounds], ['--calls', o.calls], ['--threads', o.threads]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  }
  const T = parseThreads(o.tokens);
  const other = (await import(path.resolve(o.compare, 'src/index.ts'))) as Engine;
  const all = [...(await subjects(other, `${o.compare}`, T, o.threads)), ...(await subjects(mk, 'this checkout', T, o.threads))];
  const times = all.map(() => [] as number[]);
  const calls = (s: Subject): number => Math.max(1, Math.round(o.calls / Math.sqrt(s.T)));
  for (const s of all) { s.use(); s.run(); }
  for (let r = 0; r < o.rounds; r++) {
    if (!o.json) progress(`round ${r + 1}/${o.rounds}`);
    all.forEach((s, i) => {
      s.use();
      const n = calls(s);
      const t0 = performance.now();
      for (let k = 0; k < n; k++) s.run();
      times[i]!.push(((performance.now() - t0) / n) * 1000);
    });
  }
  const half = all.length / 2;
  const rows = all.slice(half).map((s, j) => {
    const before = median(times[j]!);
    const after = median(times[half + j]!);
    return { layer: s.layer, path: s.path, T: s.T, beforeUs: +before.toFixed(2), afterUs: +after.toFixed(2), ratio: +(after / before).toFixed(3) };
  });
  if (o.json) {
    for (const r of rows) console.log(JSON.stringify({ bench: 'block-ab', compare: o.compare, rounds: o.rounds, threads: o.threads, ...r }));
    process.exit(0);
  }
  console.log([`one MoE layer (small preset shapes), µs per call, median of ${o.rounds} rounds; before = ${o.compare}, after = this checkout`, ...machineHeader()].join('\n'));
  console.log(renderTable(['layer', 'path', 'T', 'before µs', 'after µs', 'after/before'], rows.map((r) => [r.layer, r.path, String(r.T), String(r.beforeUs), String(r.afterUs), r.ratio.toFixed(3)])));
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
