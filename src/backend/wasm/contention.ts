// Whether the machine has a core to spare for spinning pool workers, from Linux's count of runnable threads.

/** Decides, probe by probe, whether idle workers should sleep right away instead of spinning. */
export interface ContentionProbe {
  /** true: calm (no spinning). `sleepers`: workers asleep now, which would be runnable if they spun. */
  update(sleepers: number): boolean;
}

/** Probes that must see a spare core in a row before workers spin again (at PROBE_MS each). */
const CLEAR_AFTER = 3;
/** Milliseconds between probes. */
export const PROBE_MS = 50;

/**
 * A probe over /proc/loadavg, whose fourth field counts the threads runnable right now (running or waiting for a
 * CPU, this process's included). Spinning workers are runnable threads; when they and everything else that wants a
 * CPU outnumber the cores, a spinning worker takes CPU from a thread with work to do - often this process's own main
 * thread. Null where the file is not readable (not Linux, a browser): workers then always spin.
 */
export async function loadavgProbe(cores: number): Promise<ContentionProbe | null> {
  let read: () => string;
  try {
    const fs = await import('node:fs');
    read = () => fs.readFileSync('/proc/loadavg', 'latin1');
    parseRunnable(read());
  } catch {
    return null;
  }
  return runnableProbe(read, cores);
}

/** The decision over any source of /proc/loadavg text (a test can feed it lines). */
export function runnableProbe(read: () => string, cores: number): ContentionProbe {
  let calm = false;
  let clear = 0;
  return {
    update(sleepers: number): boolean {
      let runnable: number;
      try {
        runnable = parseRunnable(read());
      } catch {
        return calm;
      }
      if (runnable + sleepers > cores) {
        calm = true;
        clear = 0;
      } else if (calm && ++clear >= CLEAR_AFTER) {
        calm = false;
      }
      return calm;
    },
  };
}

/** "0.52 0.58 0.59 3/467 12345" → 3 */
export function parseRunnable(text: string): number {
  const m = /^\S+ \S+ \S+ (\d+)\/\d+/.exec(text);
  if (!m) throw new Error(`/proc/loadavg: unexpected contents "${text.trim()}"`);
  return Number(m[1]);
}
