// moekit trace: run a model over text and write its routing trace (docs/ROUTING.md).
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setBackend } from '../backend/registry.js';
import { loadBrown, splitBrown } from '../io/brown.js';
import { checkWritableFile } from '../io/outputs.js';
import { noTokenizerReason, type LoadedTokenizer } from '../io/tokenizer.js';
import { loadModelDir } from '../models/dir.js';
import { TraceWriter } from '../trace/format.js';
import { traceModel, traceShape } from '../trace/record.js';
import { LOAD_DTYPE_HELP, intOption, loadDtypeOption } from './args.js';
import { createProgress } from './progress.js';

interface TraceCliOptions { out: string; data: string; hidden?: boolean; window?: string; batch?: string; maxTokens?: string; backend: string; loadDtype?: string; json?: boolean }

/**
 * The token sequences of `--data`: `brown:valid` / `brown:test` (one sequence per document), a `.jsonl` file (one per
 * line: {"prompt"} or {"text"}), or any other text file (one sequence). At most `maxTokens` tokens in all.
 */
export function traceSequences(data: string, tok: LoadedTokenizer, maxTokens: number): { sequences: Int32Array[]; tokens: number } {
  let texts: string[];
  const brown = /^brown:(.*)$/.exec(data);
  if (brown) {
    const split = brown[1]!;
    if (split !== 'train' && split !== 'valid' && split !== 'test') throw new Error(`--data brown:${split}: the split must be train, valid or test`);
    texts = splitBrown(loadBrown())[split].map((d) => d.text);
  } else if (data.endsWith('.jsonl')) {
    texts = readFileSync(data, 'utf8').split('\n').flatMap((line, i) => {
      if (line.trim() === '') return [];
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch {
        throw new Error(`${data}:${i + 1}: not JSON (expected {"prompt": "..."} or {"text": "..."} per line)`);
      }
      const t = typeof o === 'object' && o !== null ? ((o as Record<string, unknown>).prompt ?? (o as Record<string, unknown>).text) : undefined;
      if (typeof t !== 'string') throw new Error(`${data}:${i + 1}: expected {"prompt": "..."} or {"text": "..."}, got ${line.slice(0, 80)}`);
      return [t];
    });
  } else texts = [readFileSync(data, 'utf8')];
  const sequences: Int32Array[] = [];
  let tokens = 0;
  for (const t of texts) {
    if (tokens >= maxTokens) break;
    const ids = Int32Array.from(tok.encode(t)).subarray(0, maxTokens - tokens);
    if (ids.length === 0) continue;
    sequences.push(ids);
    tokens += ids.length;
  }
  if (tokens === 0) throw new Error(`--data ${data}: no tokens to trace`);
  return { sequences, tokens };
}

export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description('run a model over text and write the routing trace: experts and gate weights per token and MoE layer (safetensors)')
    .argument('<model>', 'a moekit or Hugging Face model directory, or a training run')
    .requiredOption('--out <file>', 'the trace file to write (.safetensors)')
    .option('--data <source>', 'brown:valid | brown:test | brown:train | a .jsonl file of {"prompt"} lines | a text file', 'brown:valid')
    .option('--hidden', 'also record the hidden state entering each MoE layer (float16; for predictors)')
    .option('--window <n>', 'tokens per forward window (default: the model\'s maxSeqLen, at most 256)')
    .option('--batch <n>', 'windows per forward', '8')
    .option('--max-tokens <n>', 'trace at most this many tokens')
    .option('--load-dtype <d>', LOAD_DTYPE_HELP, 'auto')
    .option('--backend <name>', 'js | wasm | webgpu', 'wasm')
    .option('--json', 'print one JSON summary instead of progress and text')
    .action(async (dir: string, o: TraceCliOptions) => {
      const batch = intOption('batch', o.batch, 8, 1);
      const maxTokens = intOption('max-tokens', o.maxTokens, Number.MAX_SAFE_INTEGER, 1);
      const out = path.resolve(o.out);
      checkWritableFile(out, '--out');
      await setBackend(o.backend);
      const m = await loadModelDir(dir, { loadDtype: loadDtypeOption(o.loadDtype) });
      const window = intOption('window', o.window, Math.min(256, m.config.maxSeqLen), 1);
      if (window > m.config.maxSeqLen) throw new Error(`--window ${window} exceeds the model's maxSeqLen ${m.config.maxSeqLen}`);
      if (!m.tokenizer) throw new Error(`trace: ${noTokenizerReason(m.assetsDir)}; a trace encodes --data with the model's tokenizer`);
      const { sequences, tokens } = traceSequences(o.data, m.tokenizer, maxTokens);
      const shape = traceShape(m.model, o.hidden ?? false);
      const writer = new TraceWriter(out, shape, { model: path.resolve(dir), corpus: o.data, window: String(window) });
      const bar = createProgress({ total: tokens, unit: 'tok', json: o.json ?? false, label: 'trace' });
      const t0 = performance.now();
      try {
        await traceModel(m.model, sequences, writer, { window, batch, hidden: o.hidden ?? false, onProgress: (n) => bar.update(n, { tokens: n }) });
        writer.finish();
      } catch (e) {
        writer.abort();
        throw e;
      } finally {
        bar.stop();
      }
      const seconds = (performance.now() - t0) / 1000;
      const summary = { trace: out, tokens: writer.N, sequences: sequences.length, layers: shape.layers, experts: shape.E, top_k: shape.K, hidden: shape.H ?? null, seconds: +seconds.toFixed(2), tokens_per_s: Math.round(writer.N / seconds) };
      if (o.json) console.log(JSON.stringify(summary));
      else console.log(`traced ${writer.N} tokens (${sequences.length} sequences) through ${shape.layers.length} MoE layers (E ${shape.E}, top-${shape.K}${shape.H ? `, hidden ${shape.H}` : ''}) in ${seconds.toFixed(1)} s (${summary.tokens_per_s} tok/s) -> ${out}`);
    });
}
