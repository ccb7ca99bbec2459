// Batched decode against sequential generation: n requests of Brown text decoded together by the continuous-batching
// engine vs one after another with generate(), in the same process, alternating; tokens/s of each and the ratio, end to
// end and for the decode steps alone (the sequential side's decodeMs against the engine's decode-only steps).
// Usage: npx tsx bench/serve-batch.ts [--model DIR | --preset small] [--requests 8] [--new 64] [--prompt 32] [--rounds 5]
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
  .option('--rounds <n>', 'rounds, each sequential then batched; the ratio is taken per round', Number, 5)
  .option('--backend <name>', 'js | wasm', 'wasm')
  .parse()
  .opts<{ model?: string; preset: string; requests: number; new: number; prompt: number; rounds: number; backend: string }>();

await setBackend(o.backend);
const model = o.model ? (await loadModelDir(o.model)).model : new MoELM({ ...PRESETS[o.preset as PresetName], seed: 1 });
const V = model.cfg.vocabSize;
const prompts = Array.from({ length: o.requests }, (_, i) => Array.from({ length: o.prompt }, (_, j) => (31 * i + 17 * j + 5) % V));
const opts = { maxNewTokens: o.new };
console.log([...machineHeader(), `${o.model ?? o.preset}, ${o.backend}; ${o.requests} requests × (${o.prompt} prompt + ${o.new} new tokens), greedy; ${o.rounds} rounds after a warm-up, each sequential then batched`].join('\n'));
// one warm-up round of each (JIT, buffers), not counted
for (const p of prompts) generate(model, p, opts);
const warm = new BatchEngine(model, { maxBatch: o.requests });
await Promise.all(prompts.map((p) => warm.submit(p, opts)));
const rounds: { seq: number; bat: number; seqDecode: number; batDecode: number }[] = [];
for (let r = 0; r < o.rounds; r++) {
  let t = performance.now();
  const seqRuns = prompts.map((p) => generate(model, p, opts));
  const seq = performance.now() - t;
  const engine = new BatchEngine(model, { maxBatch: o.requests });
  let batDecode = 0;
  engine.onStep = (s) => { if (s.kind === 'decode') batDecode += s.ms; };
  t = performance.now();
  const bat = (await Promise.all(prompts.map((p) => engine.submit(p, opts)))).map((x) => x.newIds);
  rounds.push({ seq, bat: performance.now() - t, seqDecode: seqRuns.reduce((a, x) => a + x.decodeMs, 0), batDecode });
  const same = seqRuns.filter((s, i) => JSON.stringify(s.newIds) === JSON.stringify(bat[i])).length;
  const x = rounds.at(-1)!;
  console.log(`round ${r + 1}: ${same}/${o.requests} sequences with identical greedy tokens; decode ${(x.seqDecode / x.batDecode).toFixed(2)}×, end to end ${(x.seq / x.bat).toFixed(2)}×`);
}
// the first new token of each sequence comes from its prefill; the other new - 1 from decode steps
const tokens = o.requests * o.new, decoded = o.requests * (o.new - 1);
const median = (v: number[]): number => { const s = [...v].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
const rate = (n: number, ms: number): string => `${(n / (ms / 1000)).toFixed(0)} tokens/s`;
for (const [what, n, a, b] of [['end to end (prefill + decode), new tokens', tokens, 'seq', 'bat'], ['decode only (forward steps after the prefill)', decoded, 'seqDecode', 'batDecode']] as const) {
  const ratios = rounds.map((x) => x[a] / x[b]);
  console.log(`${what}: sequential ${rate(n, median(rounds.map((x) => x[a])))}, batched ${rate(n, median(rounds.map((x) => x[b])))} (medians); ` +
    `batched / sequential per round: median ${median(ratios).toFixed(2)}×, range ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×`);
}
