// The contention probe: runnable threads from /proc/loadavg decide whether idle pool workers spin.
import { describe, expect, it } from 'vitest';
import { loadavgProbe, parseRunnable, runnableProbe } from '../../../src/backend/wasm/contention.js';

describe('parseRunnable', () => {
  it('reads the runnable count of /proc/loadavg and names bad contents', () => {
    expect(parseRunnable('0.52 0.58 0.59 3/467 12345\n')).toBe(3);
    expect(parseRunnable('12.00 9.10 4.00 17/2048 99')).toBe(17);
    expect(() => parseRunnable('nonsense')).toThrow(/\/proc\/loadavg: unexpected contents "nonsense"/);
  });
});

describe('runnableProbe', () => {
  it('takes threads away only when others are runnable at 3 probes in a row, and gives them back at once', () => {
    let runnable = 2;
    const p = runnableProbe(() => `1.0 1.0 1.0 ${runnable}/300 42`, 2);
    expect([p.update(2, 0), p.update(2, 0), p.update(2, 0)]).toEqual([2, 2, 2]); // main + spinning worker on 2 cores
    runnable = 3; // a burst of another thread: one probe is not enough
    expect(p.update(2, 0)).toBe(2);
    runnable = 2;
    expect(p.update(2, 0)).toBe(2);
    runnable = 3; // a busy process, runnable at every probe
    expect([p.update(2, 0), p.update(2, 0), p.update(2, 0)]).toEqual([2, 2, 1]);
    runnable = 2; // main + the busy process; the worker is parked (idle)
    expect(p.update(2, 1)).toBe(1);
    runnable = 1; // the busy process is gone
    expect(p.update(2, 1)).toBe(2);
  });

  it('on many cores one busy process costs one thread, not all; never below 1 nor above the pool', () => {
    const at = (text: string, cores: number, threads: number, idle: number): number => {
      const p = runnableProbe(() => text, cores);
      p.update(threads, idle);
      p.update(threads, idle);
      return p.update(threads, idle);
    };
    expect(at('9.0 9.0 9.0 17/900 42', 16, 16, 0)).toBe(15);
    expect(at('40.0 40.0 40.0 60/900 42', 16, 16, 0)).toBe(1);
    expect(at('0.0 0.0 0.0 1/900 42', 64, 4, 3)).toBe(4);
  });
});

describe('loadavgProbe', () => {
  it('on Linux: reads the live count (one core, this thread runnable: one thread takes part)', async () => {
    const probe = await loadavgProbe(1);
    if (!probe) {
      console.log('loadavgProbe: /proc/loadavg is not readable here (not Linux): every thread always takes part; case skipped');
      return;
    }
    for (let i = 0; i < 2; i++) probe.update(2, 1);
    expect(probe.update(2, 1)).toBe(1);
    const roomy = await loadavgProbe(1 << 20);
    for (let i = 0; i < 2; i++) roomy!.update(2, 1);
    expect(roomy!.update(2, 1)).toBe(2);
  });
});
