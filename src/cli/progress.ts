// Progress reporting for long CLI work: a cli-progress bar with tokens/s and ETA on a TTY, quiet otherwise.
import cliProgress from 'cli-progress';

export type ProgressUnit = 'tok' | 'step';

export interface ProgressOptions {
  /** units of work in all (tokens or steps) */
  total: number;
  unit: ProgressUnit;
  /** --json: stdout carries JSON lines, so nothing is drawn anywhere */
  json: boolean;
  label: string;
  /** where the bar goes; default process.stderr */
  stream?: NodeJS.WriteStream;
  /** seconds between the plain lines written when the stream is not a TTY; default 30 */
  plainEverySeconds?: number;
  /** clock in milliseconds; default performance.now */
  now?: () => number;
}

/** What `update` reports besides the units done: tokens processed so far (for tokens/s), loss and any other numbers. */
export interface ProgressPayload {
  tokens: number;
  loss?: number;
  [key: string]: number | undefined;
}

export interface Progress {
  update(done: number, payload: ProgressPayload): void;
  stop(): void;
}

export interface RateEta {
  /** tokens per second so far; null before any time has passed */
  tokensPerSecond: number | null;
  /** seconds left at the average pace so far; null before any unit is done */
  etaSeconds: number | null;
}

/** Tokens/s and ETA from work done, tokens seen and elapsed seconds (pure: the bar and the plain lines use it). */
export function rateAndEta(done: number, total: number, tokens: number, elapsedSeconds: number): RateEta {
  const tokensPerSecond = elapsedSeconds > 0 ? tokens / elapsedSeconds : null;
  const etaSeconds = done > 0 ? (elapsedSeconds * Math.max(0, total - done)) / done : null;
  return { tokensPerSecond, etaSeconds };
}

/** 75 -> "1m15s", 3725 -> "1h02m", 4.2 -> "4s"; null -> "--". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** 1234.5 -> "1235", 45678 -> "45.7k", null -> "--". */
export function formatRate(perSecond: number | null): string {
  if (perSecond === null || !Number.isFinite(perSecond)) return '--';
  return perSecond >= 1e4 ? `${(perSecond / 1e3).toFixed(1)}k` : perSecond.toFixed(0);
}

/** One line of status: "label 40% (4/10 step) | 1234 tok/s | ETA 5s | loss 3.2100". */
export function progressLine(label: string, unit: ProgressUnit, done: number, total: number, payload: ProgressPayload, elapsedSeconds: number): string {
  const { tokensPerSecond, etaSeconds } = rateAndEta(done, total, payload.tokens, elapsedSeconds);
  const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
  return `${label} ${pct}% (${done}/${total} ${unit}) | ${formatRate(tokensPerSecond)} tok/s | ETA ${formatDuration(etaSeconds)}${extras(payload)}`;
}

function extras(payload: ProgressPayload): string {
  let s = '';
  for (const [k, v] of Object.entries(payload)) if (k !== 'tokens' && v !== undefined) s += ` | ${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`;
  return s;
}

/**
 * A progress reporter. On a TTY (and without --json) a cli-progress bar on stderr; on a non-TTY at most one
 * plain line on stderr every `plainEverySeconds`; with --json nothing at all.
 */
export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? (() => performance.now());
  const start = now();
  const elapsed = (): number => (now() - start) / 1000;
  if (opts.json) return { update: () => {}, stop: () => {} };
  if (!stream.isTTY) {
    const every = (opts.plainEverySeconds ?? 30) * 1000;
    let last = start;
    return {
      update(done, payload) {
        const t = now();
        if (t - last < every) return;
        last = t;
        stream.write(progressLine(opts.label, opts.unit, done, opts.total, payload, elapsed()) + '\n');
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar({
    stream,
    format: `${opts.label} [{bar}] {percentage}% | {value}/{total} ${opts.unit} | {rate} tok/s | ETA {etaText}{extra}`,
    hideCursor: true,
    barsize: 30,
  });
  bar.start(opts.total, 0, { rate: '--', etaText: '--', extra: '' });
  return {
    update(done, payload) {
      const { tokensPerSecond, etaSeconds } = rateAndEta(done, opts.total, payload.tokens, elapsed());
      bar.update(done, { rate: formatRate(tokensPerSecond), etaText: formatDuration(etaSeconds), extra: extras(payload) });
    },
    stop: () => bar.stop(),
  };
}
