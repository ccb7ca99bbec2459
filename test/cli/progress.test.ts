// The progress reporter: tokens/s and ETA arithmetic, and silence in --json mode and on a non-TTY between lines.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createProgress, formatDuration, formatRate, progressLine, rateAndEta } from '../../src/cli/progress.js';

/** A fake stderr that records what is written to it. */
function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  const stream = {
    isTTY,
    columns: 120,
    write: (s: string) => {
      written.push(s);
      return true;
    },
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
    on: () => stream,
    removeListener: () => stream,
  } as unknown as NodeJS.WriteStream;
  return { stream, written };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('progress', () => {
  it('rateAndEta: tokens per elapsed second, and the remaining work at the average pace so far', () => {
    expect(rateAndEta(25, 100, 5000, 10)).toEqual({ tokensPerSecond: 500, etaSeconds: 30 });
    expect(rateAndEta(100, 100, 8000, 4)).toEqual({ tokensPerSecond: 2000, etaSeconds: 0 });
    expect(rateAndEta(0, 100, 0, 0)).toEqual({ tokensPerSecond: null, etaSeconds: null });
    expect(rateAndEta(0, 100, 10, 2)).toEqual({ tokensPerSecond: 5, etaSeconds: null });
    expect(rateAndEta(120, 100, 10, 2).etaSeconds).toBe(0); // past the total: never negative
  });

  it('formats durations, rates and a plain status line', () => {
    expect(formatDuration(4.2)).toBe('4s');
    expect(formatDuration(75)).toBe('1m15s');
    expect(formatDuration(3725)).toBe('1h02m');
    expect(formatDuration(null)).toBe('--');
    expect(formatRate(1234.4)).toBe('1234');
    expect(formatRate(45678)).toBe('45.7k');
    expect(formatRate(null)).toBe('--');
    expect(progressLine('train', 'step', 4, 10, { tokens: 4000, loss: 3.21 }, 2)).toBe('train 40% (4/10 step) | 2000 tok/s | ETA 3s | loss 3.2100');
  });

  it('--json mode writes nothing to the stream, stdout or stderr', () => {
    const out = vi.spyOn(process.stdout, 'write');
    const err = vi.spyOn(process.stderr, 'write');
    const { stream, written } = fakeStream(true);
    const p = createProgress({ total: 10, unit: 'step', json: true, label: 'train', stream });
    for (let i = 1; i <= 10; i++) p.update(i, { tokens: i * 100, loss: 1 / i });
    p.stop();
    expect(written).toEqual([]);
    expect(out).not.toHaveBeenCalled();
    expect(err).not.toHaveBeenCalled();
  });

  it('a non-TTY gets at most one plain line per interval, never a bar', () => {
    let t = 0;
    const { stream, written } = fakeStream(false);
    const p = createProgress({ total: 100, unit: 'tok', json: false, label: 'tok', stream, plainEverySeconds: 10, now: () => t });
    for (let i = 1; i <= 100; i++) {
      t = i * 1000; // 1 s per update
      p.update(i, { tokens: i * 50 });
    }
    p.stop();
    expect(written.length).toBe(10);
    expect(written[0]).toBe('tok 10% (10/100 tok) | 50 tok/s | ETA 1m30s\n');
    for (const w of written) expect(w).not.toContain('\u001b');
  });

  it('a TTY gets a bar with tok/s and ETA', () => {
    let t = 0;
    const { stream, written } = fakeStream(true);
    const p = createProgress({ total: 10, unit: 'step', json: false, label: 'train', stream, now: () => t });
    t = 2000;
    p.update(5, { tokens: 1000 });
    p.stop();
    const all = written.join('');
    expect(all).toContain('tok/s');
    expect(all).toContain('ETA');
  });
});
