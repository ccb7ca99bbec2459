// Run directories (metrics.jsonl, clusters.jsonl, checkpoints/): what one holds, moving one aside, stale temp
// checkpoints, torn JSONL logs, and the settings a checkpoint must share with the run that resumes it.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig, type ModelConfig } from '../models/config.js';

/** What a run directory holds; `isRun` is false for a missing or empty directory or one with only other files. */
export interface RunContents {
  isRun: boolean;
  /** steps of the complete checkpoints under checkpoints/, ascending */
  checkpoints: number[];
  /** the step latest.json points at, or null */
  latestStep: number | null;
  /** non-empty lines of metrics.jsonl */
  metricLines: number;
  /** "checkpoints up to step 1500, 1500 metric lines" */
  summary: string;
}

const lineCount = (file: string): number => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).length : 0);

/** Describes the run in `dir` (reads only small files: latest.json and the JSONL logs). */
export function describeRun(dir: string): RunContents {
  const ckptDir = path.join(dir, 'checkpoints');
  const checkpoints = existsSync(ckptDir) && statSync(ckptDir).isDirectory()
    ? readdirSync(ckptDir).filter((n) => /^step-\d+$/.test(n)).map((n) => Number(n.slice(5))).sort((a, b) => a - b)
    : [];
  let latestStep: number | null = null;
  try {
    latestStep = (JSON.parse(readFileSync(path.join(ckptDir, 'latest.json'), 'utf8')) as { step?: number }).step ?? null;
  } catch {
    latestStep = null; // absent or unreadable: the step-N directories still tell
  }
  const metricLines = lineCount(path.join(dir, 'metrics.jsonl'));
  const clusterLines = lineCount(path.join(dir, 'clusters.jsonl'));
  const isRun = checkpoints.length > 0 || latestStep !== null || metricLines > 0 || clusterLines > 0;
  const top = latestStep ?? checkpoints.at(-1);
  const parts = [top !== undefined ? `checkpoints up to step ${top}` : 'no checkpoint', `${metricLines} metric line${metricLines === 1 ? '' : 's'}`];
  if (clusterLines > 0) parts.push(`${clusterLines} regrouping line${clusterLines === 1 ? '' : 's'}`);
  return { isRun, checkpoints, latestStep, metricLines, summary: parts.join(', ') };
}

/** The error for a run directory reused without --resume or --overwrite. */
export function occupiedError(dir: string, c: RunContents): Error {
  return new Error(`train: ${dir} holds a run (${c.summary}); nothing was changed. Pass --resume to continue it, --overwrite to move it aside and start afresh, or another --out`);
}

/** Renames `dir` to `dir.old-<UTC timestamp>` (a suffix added if that exists) and returns the new path; never deletes. */
export function moveAside(dir: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const base = `${path.resolve(dir)}.old-${stamp}`;
  let to = base;
  for (let i = 2; existsSync(to); i++) to = `${base}-${i}`;
  renameSync(dir, to);
  return to;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
};

/**
 * Removes temporary checkpoints (`.step-N.<pid>.tmp`) left in `ckptDir` by runs that died mid-write (a crash,
 * ENOSPC): those of this process and of pids that are no longer running. A live other pid may be writing one
 * right now (two runs in one directory), so its temp directory stays and is reported. Returns what was removed
 * and what was kept.
 */
export function cleanStaleTemps(ckptDir: string): { removed: string[]; kept: string[] } {
  const removed: string[] = [];
  const kept: string[] = [];
  if (!existsSync(ckptDir)) return { removed, kept };
  for (const n of readdirSync(ckptDir)) {
    const m = /^\.step-\d+\.(\d+)\.tmp$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && alive(pid)) {
      kept.push(n);
      continue;
    }
    rmSync(path.join(ckptDir, n), { recursive: true, force: true });
    removed.push(n);
  }
  return { removed, kept };
}

/**
 * Keeps the lines of a JSONL log whose `step` is <= `step` (an interrupted run's tail goes). A torn last line (a
 * crash mid-write) is dropped with a warning naming file and line; a corrupt line before the last is an error.
 */
export function truncateJsonl(file: string, step: number, warn: (msg: string) => void): void {
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const last = lines.reduce((k, l, i) => (l.trim() ? i : k), -1);
  const keep: string[] = [];
  lines.forEach((l, i) => {
    if (!l.trim()) return;
    let rec: { step?: unknown };
    try {
      rec = JSON.parse(l) as { step?: unknown };
    } catch (e) {
      if (i === last) {
        warn(`${file}: line ${i + 1} is incomplete (a crash mid-write?) and was dropped: ${JSON.stringify(l.length > 60 ? `${l.slice(0, 60)}…` : l)}`);
        return;
      }
      throw new Error(`train: ${file}: line ${i + 1} is not valid JSON (${(e as Error).message}); only a torn last line is repaired, fix or remove this one`);
    }
    if (typeof rec.step !== 'number') throw new Error(`train: ${file}: line ${i + 1} has no numeric "step"`);
    if (rec.step <= step) keep.push(l);
  });
  const out = keep.map((l) => `${l}\n`).join('');
  if (out !== text) writeFileSync(file, out); // an unchanged log keeps its modification time
}

/** sha256 of a token stream's bytes: the identity of the training data. */
export const hashTokens = (tokens: Int32Array): string => createHash('sha256').update(Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength)).digest('hex');

/** sha256 of a file (e.g. tokenizer.json). */
export const hashFile = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** sha256 of a config with its keys sorted. */
export const hashConfig = (cfg: ModelConfig): string => createHash('sha256').update(JSON.stringify(Object.fromEntries(Object.entries(cfg).sort(([a], [b]) => a.localeCompare(b))))).digest('hex');

/** The settings a checkpoint records and a resuming run must repeat. `data` absent: written before data was recorded. */
export interface RunIdentity {
  config: ModelConfig;
  seed: number;
  batch: number;
  seqLen: number;
  accum: number;
  /** tokens and sha256 of the stream, plus what the caller says about it (docs limit, tokenizer hash…) */
  data?: Record<string, string | number | null>;
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? 'undefined';
  return /^"[0-9a-f]{64}"$/.test(s) ? `${s.slice(1, 13)}…` : s;
};
const FLAGS: Record<string, string> = { seed: ' (--seed)', batch: ' (--batch)', seqLen: ' (--seq-len)', accum: '' };
const DATA_FLAGS: Record<string, string> = { docs: ' (--docs)', tokenizer: ' (tokenizer.json)' };

/**
 * Each difference between a checkpoint's recorded settings and the resuming run's, as
 * "batch (--batch): 8 in the checkpoint, 4 now"; `unchecked` lists what an older checkpoint did not record.
 */
export function resumeMismatches(saved: Partial<RunIdentity> & Record<string, unknown>, now: RunIdentity): { mismatches: string[]; unchecked: string[] } {
  const mismatches: string[] = [];
  const unchecked: string[] = [];
  const diff = (name: string, a: unknown, b: unknown): void => {
    if (JSON.stringify(a) !== JSON.stringify(b)) mismatches.push(`${name}: ${show(a)} in the checkpoint, ${show(b)} now`);
  };
  if (saved.config === undefined) unchecked.push('config');
  else {
    let cfg: ModelConfig | null = null;
    try {
      cfg = parseConfig(saved.config);
    } catch (e) {
      mismatches.push(`config: the checkpoint's config is not valid here (${(e as Error).message.split('\n')[0]})`);
    }
    if (cfg) {
      const keys = [...new Set([...Object.keys(cfg), ...Object.keys(now.config)])].sort();
      for (const k of keys) diff(`config.${k}`, (cfg as Record<string, unknown>)[k], (now.config as Record<string, unknown>)[k]);
    }
  }
  for (const k of ['seed', 'batch', 'seqLen', 'accum'] as const) {
    if (saved[k] === undefined) unchecked.push(k);
    else diff(`${k}${FLAGS[k]}`, saved[k], now[k]);
  }
  if (saved.data === undefined) unchecked.push('data (docs, tokenizer, token stream)');
  else {
    const a = saved.data;
    const b = now.data ?? {};
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (k in a && k in b) diff(`data.${k}${DATA_FLAGS[k] ?? ''}`, a[k], b[k]);
    }
  }
  return { mismatches, unchecked };
}
