// The load generator's parts against their definitions: Poisson arrivals (seeded, increasing, mean gap 1/rate),
// percentiles as numpy's linear interpolation (values worked out by hand), and a bench run against a live server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setBackend } from '../../src/backend/registry.js';
import { loadModelDir } from '../../src/models/dir.js';
import { BatchEngine } from '../../src/serve/engine.js';
import { createServer, type MoekitServer } from '../../src/serve/http.js';
import { percentile, poissonArrivals, runLoad } from '../../src/serve/loadgen.js';
import { ServerMetrics } from '../../src/serve/metrics.js';

describe('load generator', () => {
  it('Poisson arrivals: seeded, increasing, mean gap 1/rate', () => {
    const a = poissonArrivals(4, 20_000, 3);
    expect(a).toEqual(poissonArrivals(4, 20_000, 3));
    expect(a.every((t, i) => i === 0 || t > a[i - 1]!)).toBe(true);
    expect(a.at(-1)! / a.length).toBeCloseTo(0.25, 2); // mean gap 1/4 s (±0.005 over 20k gaps)
    expect(() => poissonArrivals(0, 1, 1)).toThrow('rate must be positive, got 0');
  });
  it('percentiles as numpy.percentile (linear)', () => {
    // sorted [1, 2, 3, 4]: p50 at rank 1.5 → 2.5; p99 at rank 2.97 → 3.97; p0 → 1; p100 → 4
    expect(percentile([4, 1, 3, 2], 50)).toBe(2.5);
    expect(percentile([4, 1, 3, 2], 99)).toBeCloseTo(3.97, 12);
    expect(percentile([4, 1, 3, 2], 0)).toBe(1);
    expect(percentile([4, 1, 3, 2], 100)).toBe(4);
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('runLoad against a server', () => {
  let s: MoekitServer;
  let url = '';
  beforeAll(async () => {
    await setBackend('js');
    const loaded = await loadModelDir('test/fixtures/legacy-run');
    const metrics = new ServerMetrics();
    s = createServer({ loaded, engine: new BatchEngine(loaded.model, { maxBatch: 4, observer: metrics }), metrics, modelId: 'm', maxQueue: 64, timeoutMs: 30_000 });
    url = await s.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => s.app.close());
  it('times every request; goodput counts only those within the SLOs', async () => {
    const reqs = Array.from({ length: 6 }, (_, i) => ({ prompt: [1, 2, 3 + i], maxTokens: 5 }));
    const r = await runLoad(url, 'm', reqs, 50, 1, { ttft: 60, tpot: 60 });
    expect(r.completed).toBe(6);
    for (const x of r.results) {
      expect(x.ok).toBe(true);
      expect(x.promptTokens).toBe(3);
      expect(x.tokens).toBeGreaterThan(0);
      expect(x.ttft).toBeLessThanOrEqual(x.latency);
    }
    expect(r.goodput).toBeCloseTo(6 / r.seconds, 9);
    const none = await runLoad(url, 'm', reqs, 50, 2, { ttft: 0 });
    expect(none.goodput).toBe(0);
    const bad = await runLoad(url, 'nope', reqs.slice(0, 1), 50, 3);
    expect(bad.completed).toBe(0);
    expect(bad.results[0]!.error).toBe('HTTP 404');
  });
});
