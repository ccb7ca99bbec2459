// How many pool threads the machine has cores for, from Linux's count of runnable threads.

/** Decides, probe by probe, how many of the pool's threads should take part. */
export interface ContentionProbe {
  /**
   * Threads to keep active (1..threads). `idle`: the pool's threads that are not runnable now (asleep or parked);
   * the others (the main thread, spinning or working workers) count as the pool's own runnable threads.
   */
  update(threads: number, idle: number): number;
}

/** Probes (PROBE_MS apart) that must all see others' threads runnable before fewer pool threads take part. */
export const WINDOW = 3;
/** Milliseconds between probes. */
export const PROBE_MS = 50;

/**
 * A probe over /proc/loadavg, whose fourth field counts the threads runnable right now (running or waiting for a
 * CPU), this process's included. What is runnable beyond the pool's own threads belongs to others; the cores they
 * leave are what the pool can use. A pool thread beyond them only takes CPU from a thread with work to do - often
 * this process's own main thread - and, worse, may be descheduled holding a chunk the op waits for. Null where the
 * file is not readable (not Linux, a browser): every thread then always takes part.
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
  /** others' runnable threads at the last WINDOW probes */
  const seen: number[] = [];
  let active = Number.POSITIVE_INFINITY;
  return {
    update(threads: number, idle: number): number {
      let runnable: number;
      try {
        runnable = parseRunnable(read());
      } catch {
        return Math.min(active, threads);
      }
      seen.push(Math.max(0, runnable - Math.max(1, threads - idle)));
      if (seen.length > WINDOW) seen.shift();
      // the fewest others over the window: a busy process is runnable at every probe, a short burst (another
      // process's moment of work, a GC thread) is not
      active = seen.length < WINDOW ? threads : Math.max(1, Math.min(threads, cores - Math.min(...seen)));
      return active;
    },
  };
}

/** "0.52 0.58 0.59 3/467 12345" → 3 */
export function parseRunnable(text: string): number {
  const m = /^\S+ \S+ \S+ (\d+)\/\d+/.exec(text);
  if (!m) throw new Error(`/proc/loadavg: unexpected contents "${text.trim()}"`);
  return Number(m[1]);
}
