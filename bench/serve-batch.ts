// Batched decode against sequential generation: n requests of Brown text decoded together by the continuous-batching
// engine vs one after another with generate(), in the same process, alternating; tokens/s of each and the ratio.
// Usage: npx tsx bench/serve-batch.ts [--model DIR | --preset small] [--requests 8] [--new 64] [--prompt 32] [--rounds 3]
import { Command } from 'commander';
import { setBackend } from '../src/backend/registry.js';
import { loadModelDir } from '../src/models/dir.js';
import { MoELM } from '../src/models/moe-lm.js';
import { PRESETS, type PresetName } from '../src/models/config.js';
import { BatchEngine } from '../src/serve/engine.js';
import { generate } from '../src/serve/generate.js';
import { machineHeader } from './common.js';

const o = new Command()
  .option('--model <dir>', 'a model directory (default: a preset with random weights)')
  .option('--preset <name>', 'preset when no --model', 'small')
  .option('--requests <n>', 'sequences', Number, 8)
  .option('--new <n>', 'new tokens per sequence', Number, 64)
  .option('--prompt <n>', 'prompt tokens per sequence', Number, 32)
  .option('--rounds <n>', 'alternating rounds; the best of each is kept', Number, 3)
  .option('--backend <name>', 'js | wasm', 'wasm')
  .parse()
  .opts<{ model?: string; preset: string; requests: number; new: number; prompt: number; rounds: number; backend: string }>();

await setBackend(o.backend);
const model = o.model ? (await loadModelDir(o.model)).model : new MoELM({ ...PRESETS[o.preset as PresetName], seed: 1 });
const V = model.cfg.vocabSize;
const prompts = Array.from({ length: o.requests }, (_, i) => Array.from({ length: o.prompt }, (_, j) => (31 * i + 17 * j + 5) % V));
const opts = { maxNewTokens: o.new };
console.log([...machineHeader(), `${o.model ?? o.preset}, ${o.backend}; ${o.requests} requests × (${o.prompt} prompt + ${o.new} new tokens), greedy; best of ${o.rounds} alternating rounds`].join('\n'));
let bestSeq = Infinity, bestBat = Infinity;
for (let r = 0; r < o.rounds; r++) {
  let t = performance.now();
  const seq = prompts.map((p) => generate(model, p, opts).newIds);
  bestSeq = Math.min(bestSeq, performance.now() - t);
  const engine = new BatchEngine(model, { maxBatch: o.requests });
  t = performance.now();
  const bat = (await Promise.all(prompts.map((p) => engine.submit(p, opts)))).map((x) => x.newIds);
  bestBat = Math.min(bestBat, performance.now() - t);
  const same = seq.filter((s, i) => JSON.stringify(s) === JSON.stringify(bat[i])).length;
  console.log(`round ${r + 1}: ${same}/${o.requests} sequences with identical greedy tokens`);
}
const tokens = o.requests * o.new;
console.log(`sequential: ${(tokens / (bestSeq / 1000)).toFixed(0)} new tokens/s (${bestSeq.toFixed(0)} ms)`);
console.log(`batched:    ${(tokens / (bestBat / 1000)).toFixed(0)} new tokens/s (${bestBat.toFixed(0)} ms)`);
console.log(`batched / sequential: ${(bestSeq / bestBat).toFixed(2)}×`);
