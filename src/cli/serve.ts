// moekit serve: an OpenAI-compatible server for a model directory (a training run, a moekit or a Hugging Face model)
// with continuous batching (docs/SERVING.md). Binds to 127.0.0.1 unless told otherwise; SIGTERM and SIGINT drain.
import path from 'node:path';
import type { Command } from 'commander';
import { setBackend } from '../backend/registry.js';
import { loadModelDir } from '../models/dir.js';
import { BatchEngine, type PrefillPolicy } from '../serve/engine.js';
import { createServer } from '../serve/http.js';
import { ServerMetrics } from '../serve/metrics.js';
import { intOption, LOAD_DTYPE_HELP, loadDtypeOption } from './args.js';

interface ServeFlags {
  host: string; port: string; modelId?: string; apiKey?: string; cors?: string; maxBatch: string; maxQueue: string;
  prefill: string; chunk: string; stages: string; timeout: string; backend: string; loadDtype?: string;
}

function prefillPolicy(o: ServeFlags, layers: number): PrefillPolicy {
  if (o.prefill === 'whole') return { kind: 'whole' };
  if (o.prefill === 'chunked') return { kind: 'chunked', chunk: intOption('chunk', o.chunk, 256, 1) };
  if (o.prefill === 'layered') {
    const stages = intOption('stages', o.stages, 2, 1);
    if (stages > layers) throw new Error(`--stages ${stages} is more than the model's ${layers} layers`);
    return { kind: 'layered', stages };
  }
  throw new Error(`--prefill must be whole, chunked or layered, got "${o.prefill}"`);
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('OpenAI-compatible server (/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics) with continuous batching')
    .argument('<dir>', 'a training run, a moekit model directory or a Hugging Face model directory')
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', '8080')
    .option('--model-id <id>', 'the model id clients name (default: the directory\'s basename)')
    .option('--api-key <key>', 'require Authorization: Bearer KEY on /v1/')
    .option('--cors <origin>', 'Access-Control-Allow-Origin for browser clients')
    .option('--max-batch <n>', 'sequences decoding together', '8')
    .option('--max-queue <n>', 'requests waiting beyond the batch; more get 429', '64')
    .option('--prefill <policy>', 'whole | chunked | layered', 'whole')
    .option('--chunk <n>', 'chunked: prompt tokens per step', '256')
    .option('--stages <s>', 'layered: layer groups a prompt passes one per step', '2')
    .option('--timeout <s>', 'seconds a request may run', '300')
    .option('--load-dtype <d>', LOAD_DTYPE_HELP, 'auto')
    .option('--backend <name>', 'js | wasm', 'wasm')
    .action(async (dir: string, o: ServeFlags) => {
      const port = intOption('port', o.port, 8080, 0);
      if (port > 65535) throw new Error(`--port must be at most 65535, got ${port}`);
      if (o.backend !== 'js' && o.backend !== 'wasm') throw new Error(`--backend must be js or wasm (the server reads routing per step), got "${o.backend}"`);
      await setBackend(o.backend);
      const loaded = await loadModelDir(dir, { loadDtype: loadDtypeOption(o.loadDtype) });
      const metrics = new ServerMetrics();
      const engine = new BatchEngine(loaded.model, { maxBatch: intOption('max-batch', o.maxBatch, 8, 1), prefill: prefillPolicy(o, loaded.config.layers), observer: metrics });
      const modelId = o.modelId ?? path.basename(path.resolve(dir));
      const server = createServer({
        loaded, engine, metrics, modelId, maxQueue: intOption('max-queue', o.maxQueue, 64, 0), timeoutMs: 1000 * intOption('timeout', o.timeout, 300, 1),
        ...(o.apiKey ? { apiKey: o.apiKey } : {}), ...(o.cors ? { cors: o.cors } : {}),
      });
      const address = await server.app.listen({ host: o.host, port });
      console.log(`serving ${modelId} at ${address}/v1 (${loaded.config.layers} layers, ${loaded.model.cfg.experts} experts, top-${loaded.model.cfg.topK}; prefill ${o.prefill}, batch ${engine.maxBatch})`);
      let stopping = false;
      const stop = (sig: string): void => {
        if (stopping) return;
        stopping = true;
        console.log(`${sig}: draining (running requests finish, new ones get 503)`);
        server.drain().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1); });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
