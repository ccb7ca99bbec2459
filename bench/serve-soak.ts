// Memory over many requests: the server (in process, 127.0.0.1) answers N requests, 8 at a time, streamed and not;
// every 200 requests the heap is collected and the RSS and the backend's allocated bytes are sampled. Growth is the
// last sample against the first after warm-up. Run with node's --expose-gc:
//   node --expose-gc --import tsx bench/serve-soak.ts [--model DIR] [--requests 2000]
import { Command } from 'commander';
import { setBackend } from '../src/backend/registry.js';
import { loadModelDir } from '../src/models/dir.js';
import { BatchEngine } from '../src/serve/engine.js';
import { createServer } from '../src/serve/http.js';
import { ServerMetrics } from '../src/serve/metrics.js';
import { streamCompletion } from '../src/serve/loadgen.js';
import { getBackend } from '../src/tensor/engine.js';
import { machineHeader } from './common.js';

const o = new Command()
  .option('--model <dir>', 'model directory', 'test/fixtures/legacy-run')
  .option('--requests <n>', 'requests', Number, 2000)
  .option('--backend <name>', 'js | wasm', 'wasm')
  .parse()
  .opts<{ model: string; requests: number; backend: string }>();
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (the samples are taken after a forced collection)');
await setBackend(o.backend);
const loaded = await loadModelDir(o.model);
const metrics = new ServerMetrics();
const engine = new BatchEngine(loaded.model, { maxBatch: 8, observer: metrics });
const server = createServer({ loaded, engine, metrics, modelId: 'm', maxQueue: 1000, timeoutMs: 60_000 });
const url = await server.app.listen({ host: '127.0.0.1', port: 0 });
console.log([...machineHeader(), `${o.model}, ${o.backend}; ${o.requests} requests, 8 at a time`].join('\n'));
const samples: { done: number; rss: number; backend: number }[] = [];
const sample = (done: number): void => {
  gc();
  samples.push({ done, rss: process.memoryUsage().rss, backend: getBackend().bytesInUse() });
  const s = samples.at(-1)!;
  console.log(`${String(done).padStart(6)} requests: RSS ${(s.rss / 2 ** 20).toFixed(1)} MiB, backend ${(s.backend / 2 ** 20).toFixed(2)} MiB`);
};
let done = 0, failed = 0;
const one = async (i: number): Promise<void> => {
  const prompt = `The ${['jury', 'city', 'man', 'court'][i % 4]} said ${i}`;
  if (i % 2 === 0) {
    const r = await streamCompletion(url, 'm', { prompt, maxTokens: 4 + (i % 13) });
    if (!r.ok) failed++;
  } else {
    const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', prompt, max_tokens: 4 + (i % 13), seed: i }) });
    if (!r.ok) failed++;
    await r.text();
  }
  done++;
};
sample(0);
for (let i = 0; i < o.requests; i += 8) {
  await Promise.all(Array.from({ length: Math.min(8, o.requests - i) }, (_, j) => one(i + j)));
  if (done % 200 === 0) sample(done);
}
await server.app.close();
const warm = samples.find((s) => s.done >= 200) ?? samples[0]!;
const last = samples.at(-1)!;
console.log(`failed: ${failed}; RSS after warm-up ${(warm.rss / 2 ** 20).toFixed(1)} MiB → ${(last.rss / 2 ** 20).toFixed(1)} MiB at ${last.done} (${(100 * (last.rss / warm.rss - 1)).toFixed(1)}%); backend bytes ${warm.backend} → ${last.backend}`);
