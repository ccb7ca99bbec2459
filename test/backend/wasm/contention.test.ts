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
  it('keeps as many threads as the cores others leave: fewer at once, more after 3 probes that see the spare cores', () => {
    let runnable = 2;
    const p = runnableProbe(() => `1.0 1.0 1.0 ${runnable}/300 42`, 2);
    expect(p.update(2, 0)).toBe(2); // main + spinning worker on 2 cores: nobody else
    runnable = 3; // a competitor
    expect(p.update(2, 0)).toBe(1);
    runnable = 2; // main + competitor; the worker is parked (idle)
    expect(p.update(2, 1)).toBe(1);
    runnable = 1; // the competitor is gone
    expect([p.update(2, 1), p.update(2, 1), p.update(2, 1)]).toEqual([1, 1, 2]);
  });

  it('on many cores one competitor costs one thread, not all; never below 1 nor above the pool', () => {
    const p = runnableProbe(() => '9.0 9.0 9.0 17/900 42', 16);
    expect(p.update(16, 0)).toBe(15);
    const q = runnableProbe(() => '40.0 40.0 40.0 60/900 42', 16);
    expect(q.update(16, 0)).toBe(1);
    const r = runnableProbe(() => '0.0 0.0 0.0 1/900 42', 64);
    expect(r.update(4, 3)).toBe(4);
  });
});

describe('loadavgProbe', () => {
  it('on Linux: reads the live count (this thread is runnable, so one core and an idle worker leave one thread)', async () => {
    const probe = await loadavgProbe(1);
    if (!probe) {
      console.log('loadavgProbe: /proc/loadavg is not readable here (not Linux): every thread always takes part; case skipped');
      return;
    }
    expect(probe.update(2, 1)).toBe(1);
    const roomy = await loadavgProbe(1 << 20);
    expect(roomy!.update(2, 1)).toBe(2);
  });
});
