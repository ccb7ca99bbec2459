// The selfcheck command end to end: runs the CLI in a child process and reads its JSON.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const run = (args: string[], env: Record<string, string> = {}): string =>
  execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', env: { ...process.env, MOEKIT_BACKEND: '', ...env } });

describe('moekit selfcheck', () => {
  it('--json reports every probe op within tolerance and positive GEMM rates', () => {
    const r = JSON.parse(run(['selfcheck', '--json', '--seconds', '0.05'])) as {
      wasm: { threads: number; relaxedSimd: boolean };
      ops: { op: string; maxRelDiff: number; ok: boolean }[];
      gemm: { engine: string; threads: number; gflops: number }[];
    };
    expect(r.wasm.threads).toBeGreaterThanOrEqual(1);
    expect(r.ops.length).toBeGreaterThanOrEqual(8);
    for (const o of r.ops) expect(o.maxRelDiff, o.op).toBeLessThanOrEqual(1e-5);
    expect(r.gemm.map((g) => g.engine)).toEqual(['moekit-wasm', 'moekit-wasm', 'moekit-js']);
    for (const g of r.gemm) expect(g.gflops).toBeGreaterThan(0);
  });

  it('honours MOEKIT_THREADS: measures 1 thread and that many (not every core)', () => {
    const r = JSON.parse(run(['selfcheck', '--json', '--seconds', '0.05'], { MOEKIT_THREADS: '3' })) as {
      wasm: { threads: number; pool: string };
      gemm: { engine: string; threads: number }[];
    };
    expect(r.wasm.threads).toBe(3);
    expect(r.wasm.pool).toBe('chunked');
    expect(r.gemm.map((g) => g.threads)).toEqual([1, 3, 1]);
  });

  it('rejects a bad --seconds with a message naming the value', () => {
    expect(() => run(['selfcheck', '--seconds', 'soon'])).toThrow(/--seconds must be a positive number, got "soon"/);
  });
});
