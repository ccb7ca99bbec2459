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
  it('calm at once when runnable threads and sleeping workers outnumber the cores; spinning again after 3 clear probes', () => {
    let runnable = 2;
    const p = runnableProbe(() => `1.0 1.0 1.0 ${runnable}/300 42`, 2);
    expect(p.update(0)).toBe(false); // main + spinning worker on 2 cores
    runnable = 3; // a competitor
    expect(p.update(0)).toBe(true);
    runnable = 2; // main + competitor; the worker now sleeps but would want a core
    expect(p.update(1)).toBe(true);
    runnable = 1; // the competitor is gone
    expect([p.update(1), p.update(1), p.update(1)]).toEqual([true, true, false]);
  });
});

describe('loadavgProbe', () => {
  it('on Linux: calm at once when runnable threads and sleeping workers outnumber the cores, spinning again after 3 clear probes', async () => {
    const probe = await loadavgProbe(1);
    if (!probe) {
      console.log('loadavgProbe: /proc/loadavg is not readable here (not Linux): workers always spin; case skipped');
      return;
    }
    // one core: this thread is runnable, so one sleeping worker makes two contenders
    expect(probe.update(1)).toBe(true);
    // a huge core count is never contended; calm ends only after CLEAR_AFTER clear probes in a row
    const roomy = await loadavgProbe(1 << 20);
    expect(roomy!.update(0)).toBe(false);
  });
});
