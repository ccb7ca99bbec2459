// Benchmark driver helpers: spawn one engine per child process, collect its JSON rows, machine header, text tables.
import { spawn } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ResultRow } from './engines/types.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
const RUNNER = path.join(ROOT, 'bench', 'engines', 'run.ts');

export const ALL_ENGINES = ['moekit-wasm', 'moekit-js', 'tfjs-wasm', 'jax-js', 'ort-web', 'ort-node'] as const;
export const BASELINE = 'moekit-wasm';

export function parseList(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
}

export function parseThreads(s: string): number[] {
  const t = parseList(s).map(Number);
  if (t.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`--threads: positive integers expected, got "${s}"`);
  return t;
}

function isRow(v: unknown): v is ResultRow {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r['engine'] === 'string' && typeof r['threads'] === 'number' && (typeof r['gflops'] === 'number' || r['gflops'] === null);
}

/**
 * Runs `tsx bench/engines/run.ts args...` to completion (children never overlap: the caller awaits each one).
 * Every valid JSON row on its stdout goes to onRow; a crash is returned as a one-line message.
 */
export function runChild(args: string[], onRow: (row: ResultRow) => void): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(TSX, [RUNNER, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        try {
          const v: unknown = JSON.parse(line);
          if (isRow(v)) onRow(v);
        } catch { /* not a result line */ }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => { err = (err + chunk).slice(-4000); });
    child.on('error', (e) => resolve(`spawn failed: ${e.message}`));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(undefined);
      const last = err.trim().split('\n').filter((l) => l.trim() && !/^\s+at /.test(l)).pop() ?? '';
      resolve(`child exited with ${signal ?? `code ${code}`}${last ? `: ${last.slice(0, 300)}` : ''}`);
    });
  });
}

/** What one driver runs: each engine × thread count as a child, each item (shape or case) a row. */
export interface JobSpec {
  bench: 'gemm' | 'grouped';
  engines: string[];
  threads: number[];
  /** Child arguments naming the items, e.g. ['--shapes', '1x2x3'] */
  itemArgs: string[];
  /** A placeholder row per item, used when a child crashes before reporting it. */
  items: (engine: string, threads: number, note: string) => ResultRow[];
  /** The item a row belongs to (shape or case). */
  itemOf: (r: ResultRow) => string;
  minTime: number;
  waitIdle: number;
  rounds: number;
  json?: boolean;
  out?: string;
}

/**
 * Runs every engine × thread count, one child at a time, `rounds` times over (interleaved: the machine is noisy and
 * noise only ever slows a run down). With several rounds each result is the best round, with `rounds` and `spread`
 * (1 − worst/best) attached. Rows are printed as JSON lines (--json) and appended to --out.
 */
export async function runJobs(spec: JobSpec): Promise<ResultRow[]> {
  if (spec.out) writeFileSync(spec.out, '');
  const record = (r: ResultRow): void => {
    if (spec.json) console.log(JSON.stringify(r));
    if (spec.out) appendFileSync(spec.out, JSON.stringify(r) + '\n');
  };
  const jobs = spec.engines.flatMap((e) => spec.threads.map((t) => [e, t] as const));
  const all: ResultRow[] = [];
  let i = 0;
  for (let round = 1; round <= spec.rounds; round++) {
    for (const [engine, t] of jobs) {
      if (!spec.json) progress(`[${++i}/${jobs.length * spec.rounds}] ${spec.bench}: ${engine}, ${t} thread(s)${spec.rounds > 1 ? `, round ${round}` : ''}...`);
      const got: ResultRow[] = [];
      const crash = await runChild(['--bench', spec.bench, '--engine', engine, '--threads', String(t), ...spec.itemArgs,
        '--min-time', String(spec.minTime), '--wait-idle', String(spec.waitIdle)], (r) => {
        got.push(r);
        if (spec.rounds === 1) record(r);
      });
      for (const r of spec.items(engine, t, crash ?? 'no result')) {
        if (got.some((g) => spec.itemOf(g) === spec.itemOf(r))) continue;
        got.push(r);
        if (spec.rounds === 1) record(r);
      }
      all.push(...got);
    }
  }
  if (spec.rounds === 1) return all;
  const best = new Map<string, ResultRow>();
  const worst = new Map<string, number>();
  for (const r of all) {
    const k = `${r.engine}|${r.threads}|${spec.itemOf(r)}`;
    const b = best.get(k);
    if (!b || (r.gflops ?? -1) > (b.gflops ?? -1)) best.set(k, r);
    if (r.gflops !== null) worst.set(k, Math.min(worst.get(k) ?? Infinity, r.gflops));
  }
  const merged = [...best.entries()].map(([k, r]) => {
    const w = worst.get(k);
    return r.gflops === null || w === undefined ? r : { ...r, rounds: spec.rounds, spread: +(1 - w / r.gflops).toFixed(3) };
  });
  merged.forEach(record);
  return merged;
}

/** CPU model, cores, Node version, date and current load average. */
export function machineHeader(): string[] {
  const cpus = os.cpus();
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  return [
    `machine: ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores (available parallelism ${os.availableParallelism()}), ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    `node ${process.version} (V8 ${process.versions.v8}), ${os.platform()} ${os.release()}`,
    `date: ${new Date().toISOString()}, load average at start: ${load}`,
  ];
}

export function fmt(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined ? '—' : x.toFixed(digits);
}

/** Cells measured while other processes kept at least this many cores busy get a `*`. */
export const BUSY = 0.5;
export const BUSY_LEGEND = `* measured while other processes kept ≥ ${BUSY} core busy on average (the 2-core machine is shared): treat as a lower bound; 2-thread cells so marked effectively ran on one free core`;

/** A result cell: GFLOP/s, `*` when contended, or — plus a footnote for a null result. */
export function cell(r: ResultRow | undefined, notes: Notes, noteKey: string): string {
  if (!r) return '—';
  if (r.gflops === null) return `—${notes.ref(`${noteKey}: ${r.note ?? 'no result'}`)}`;
  return `${fmt(r.gflops)}${(r.spread ?? 0) > SPREAD ? '~' : ''}${(r.other ?? 0) >= BUSY ? '*' : ''}`;
}

/** Cells whose rounds differ by more than this fraction get a `~`. */
export const SPREAD = 0.15;

/** Legend lines for the marks that occur in rows. */
export function legends(rows: ResultRow[]): string[] {
  const out: string[] = [];
  if (rows.some((r) => (r.other ?? 0) >= BUSY)) out.push(BUSY_LEGEND);
  if (rows.some((r) => (r.spread ?? 0) > SPREAD)) out.push(`~ best and worst round differ by more than ${SPREAD * 100}%`);
  return out;
}

/** Right-aligned text table (first column left-aligned). */
export function renderTable(headers: string[], rows: string[][]): string {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(headers), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

/** Footnote numbering for notes of null (or otherwise annotated) cells. */
export class Notes {
  private readonly list: string[] = [];
  ref(note: string): string {
    let i = this.list.indexOf(note);
    if (i < 0) { this.list.push(note); i = this.list.length - 1; }
    return `[${i + 1}]`;
  }
  render(): string[] {
    return this.list.map((n, i) => `[${i + 1}] ${n}`);
  }
}

/** A stderr progress line (only when stderr is a terminal or progress is forced). */
export function progress(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** ms statistics */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Times the calls of several functions interleaved call by call (a, b, a, b, ...), so that a slow phase of the
 * shared machine hits every function alike. Warm-up: at least one call each and about 20% of minTime; then calls
 * repeat until every function has minTime seconds and at least 3 calls (2 when one call exceeds minTime).
 */
export function timeInterleaved(fns: (() => void)[], minTime: number): { ms: number; reps: number }[] {
  const warmEnd = performance.now() + 200 * minTime;
  do for (const f of fns) f(); while (performance.now() < warmEnd);
  const samples = fns.map(() => [] as number[]);
  const total = fns.map(() => 0);
  const done = (i: number): boolean => {
    const n = samples[i]!.length;
    return total[i]! >= 1000 * minTime && (n >= 3 || (n >= 2 && samples[i]![0]! > 1000 * minTime));
  };
  while (!fns.every((_, i) => done(i))) {
    fns.forEach((f, i) => {
      const t0 = performance.now();
      f();
      const dt = performance.now() - t0;
      samples[i]!.push(dt);
      total[i]! += dt;
    });
  }
  return samples.map((s) => ({ ms: median(s), reps: s.length }));
}
