// CPU load of other processes on the shared benchmark machine: a probe around a measurement, and a wait for idle.
import os from 'node:os';

function busyMs(): number {
  return os.cpus().reduce((s, c) => s + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0);
}

/** Returns a function giving the CPU cores other processes kept busy on average since the probe started. */
export function startLoadProbe(): () => number {
  const wall0 = performance.now(), busy0 = busyMs(), own0 = process.cpuUsage();
  return () => {
    const own = process.cpuUsage(own0);
    const foreign = busyMs() - busy0 - (own.user + own.system) / 1000;
    return Math.max(0, foreign / (performance.now() - wall0));
  };
}

/**
 * Waits (up to maxS seconds) until other processes keep less than 0.3 cores busy over a 0.5 s window; returns the
 * last window's load in cores. Trades run time for cleaner numbers.
 */
export async function waitIdle(maxS: number): Promise<number> {
  const deadline = performance.now() + maxS * 1000;
  for (;;) {
    const probe = startLoadProbe();
    await new Promise((r) => setTimeout(r, 500));
    const load = probe();
    if (load < 0.3 || performance.now() >= deadline) return load;
  }
}
