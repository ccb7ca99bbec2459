// moekit logits / moekit generate: run a model directory (Hugging Face checkpoint or moekit model) on token ids or text.
import type { Command } from 'commander';
import { loadModelDir } from '../models/dir.js';
import { noTokenizerReason } from '../io/tokenizer.js';
import { checkGenerate, countNonFinite, generateStreamAsync, type GenerateOptions, type GenerateResult } from '../serve/generate.js';
import { tensor } from '../tensor/api.js';
import { noGrad } from '../tensor/engine.js';
import { setBackend } from '../backend/registry.js';
import { LOAD_DTYPE_HELP, intOption, loadDtypeOption } from './args.js';

/** "3,17,42" -> [3, 17, 42]; anything else is an error naming the option (`flag`, e.g. "--stop") and the value. */
export function parseIds(v: string, vocab: number, flag = '--ids'): number[] {
  const parts = v.split(',').map((s) => s.trim());
  const ids = parts.map(Number);
  const bad = parts.find((s, i) => s === '' || !Number.isInteger(ids[i]) || ids[i]! < 0 || ids[i]! >= vocab);
  if (bad !== undefined) throw new Error(`${flag} must be comma-separated token ids in [0, ${vocab}), got "${v}" (bad entry "${bad}")`);
  return ids;
}

/** Errors when logits (P positions × V) hold NaN or ±Infinity, naming how many and the first position and token id. */
function checkFiniteLogits(flat: Float32Array, V: number): void {
  const { count, first } = countNonFinite(flat);
  if (count === 0) return;
  throw new Error(
    `logits: the model produced non-finite logits: ${count} of ${flat.length} values are NaN or ±Infinity, the first at position ${Math.floor(first / V)}, token id ${first % V} (${flat[first]}); ` +
      'expected finite logits (likely non-finite weights, or activations overflowing)',
  );
}

function nonNegNumber(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number >= 0, got "${v}"`);
  return n;
}

const round = (x: number): number => Math.fround(x);

export function registerRun(program: Command): void {
  program
    .command('logits')
    .description('logits of a model directory for token ids (one row per position); --router adds router logits')
    .argument('<model>', 'Hugging Face model directory (config.json + safetensors) or moekit model directory')
    .requiredOption('--ids <ids>', 'comma-separated token ids, e.g. 3,17,42')
    .option('--router', 'also print router logits (layer, position, expert)')
    .option('--load-dtype <d>', LOAD_DTYPE_HELP, 'auto')
    .option('--backend <name>', 'js | wasm | webgpu', 'wasm')
    .option('--json', 'print one JSON object')
    .action(async (dir: string, o: { ids: string; router?: boolean; backend: string; json?: boolean; loadDtype?: string }) => {
      await setBackend(o.backend);
      const m = await loadModelDir(dir, { loadDtype: loadDtypeOption(o.loadDtype) });
      const ids = parseIds(o.ids, m.config.vocabSize);
      if (ids.length > m.config.maxSeqLen) throw new Error(`--ids: ${ids.length} tokens exceed the model's maxSeqLen ${m.config.maxSeqLen}`);
      const V = m.config.vocabSize;
      const out = noGrad(() => m.model.forward(tensor(Int32Array.from(ids), [1, ids.length], 'i32'), { aux: false }));
      const flat = await out.logits.data();
      checkFiniteLogits(flat as Float32Array, V);
      const logits = ids.map((_, t) => Array.from(flat.subarray(t * V, (t + 1) * V), round));
      const result: { logits: number[][]; router_logits?: number[][][] } = { logits };
      if (o.router) {
        result.router_logits = await Promise.all(out.routerLogits.filter((t) => t !== null).map(async (t) => {
          const E = t.shape[1]!;
          const d = await t.data();
          return ids.map((_, p) => Array.from(d.subarray(p * E, (p + 1) * E), round));
        }));
      }
      if (o.json) {
        console.log(JSON.stringify(result));
        return;
      }
      console.log(`${m.kind === 'hf' ? m.arch : 'moekit'} model ${dir}: ${ids.length} positions × ${V} logits`);
      logits.forEach((row, t) => {
        let best = 0;
        for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
        const tok = m.tokenizer ? ` ${JSON.stringify(m.tokenizer.decode([best]))}` : '';
        console.log(`  position ${t} (id ${ids[t]}): argmax ${best}${tok} (logit ${row[best]!.toFixed(4)})`);
      });
      if (result.router_logits) console.log(`router logits: ${result.router_logits.length} MoE layers (use --json to print them)`);
    });

  program
    .command('generate')
    .description('generate text or token ids from a model directory (KV cache; greedy or sampled)')
    .argument('<model>', 'Hugging Face model directory (config.json + safetensors) or moekit model directory')
    .option('--prompt <text>', 'prompt text (encoded with the model directory\'s tokenizer.json)')
    .option('--ids <ids>', 'prompt as comma-separated token ids instead of text')
    .option('--max-new-tokens <n>', 'tokens to generate at most', '32')
    .option('--greedy', 'always take the most likely token (the default unless a sampling option is given)')
    .option('--temperature <t>', 'sample with this temperature (0 = greedy)')
    .option('--top-k <k>', 'sample among the k most likely tokens')
    .option('--top-p <p>', 'sample among the most likely tokens covering probability p')
    .option('--repetition-penalty <r>', 'discourage tokens already in the sequence (> 1)')
    .option('--stop <ids>', 'comma-separated stop token ids (default: the checkpoint\'s eos ids)')
    .option('--seed <n>', 'sampling seed', '0')
    .option('--load-dtype <d>', LOAD_DTYPE_HELP, 'auto')
    .option('--backend <name>', 'js | wasm | webgpu', 'wasm')
    .option('--json', 'print one JSON object {"ids": [...]} (prompt included; with --prompt also "text")')
    .action(async (dir: string, o: {
      prompt?: string; ids?: string; maxNewTokens: string; greedy?: boolean; temperature?: string; topK?: string; topP?: string;
      repetitionPenalty?: string; stop?: string; seed: string; backend: string; json?: boolean; loadDtype?: string;
    }) => {
      if ((o.prompt === undefined) === (o.ids === undefined)) throw new Error('generate: give exactly one of --prompt TEXT or --ids 1,2,3');
      await setBackend(o.backend);
      const m = await loadModelDir(dir, { loadDtype: loadDtypeOption(o.loadDtype) });
      const V = m.config.vocabSize;
      let prompt: number[];
      if (o.ids !== undefined) prompt = parseIds(o.ids, V);
      else {
        if (!m.tokenizer) throw new Error(`generate: ${noTokenizerReason(m.assetsDir)}; pass --ids instead of --prompt`);
        prompt = m.tokenizer.encode(o.prompt!);
        if (m.bosTokenId !== null && m.addBos) prompt.unshift(m.bosTokenId);
        if (prompt.length === 0) throw new Error('generate: --prompt encodes to no tokens');
      }
      const g: GenerateOptions = {
        maxNewTokens: intOption('max-new-tokens', o.maxNewTokens, 32, 0),
        seed: intOption('seed', o.seed, 0, 0),
        stopIds: o.stop !== undefined ? parseIds(o.stop, V, '--stop') : m.eosTokenIds,
      };
      if (o.greedy) g.greedy = true;
      const t = nonNegNumber('temperature', o.temperature);
      if (t !== undefined) g.temperature = t;
      if (o.topK !== undefined) g.topK = intOption('top-k', o.topK, 0, 1);
      const p = nonNegNumber('top-p', o.topP);
      if (p !== undefined) {
        if (p <= 0 || p > 1) throw new Error(`--top-p must be in (0, 1], got "${o.topP}"`);
        g.topP = p;
      }
      const r = nonNegNumber('repetition-penalty', o.repetitionPenalty);
      if (r !== undefined) {
        if (r <= 0) throw new Error(`--repetition-penalty must be > 0, got "${o.repetitionPenalty}"`);
        g.repetitionPenalty = r;
      }
      checkGenerate(m.model, prompt, g); // the prompt and options are valid before anything is printed
      const it = generateStreamAsync(m.model, prompt, g);
      const stream = !o.json && m.tokenizer !== null && o.prompt !== undefined;
      if (stream) process.stdout.write(o.prompt!);
      let res: GenerateResult;
      const emitted: number[] = [];
      let printed = '';
      for (;;) {
        let s: IteratorResult<number, GenerateResult>;
        try {
          s = await it.next();
        } catch (e) {
          if (stream) process.stdout.write('\n'); // end the streamed line before the error
          throw e;
        }
        if (s.done) {
          res = s.value;
          break;
        }
        emitted.push(s.value);
        if (stream) {
          // decode the whole continuation each time so multi-byte characters split over tokens print correctly
          const text = m.tokenizer!.decode(emitted);
          if (!text.endsWith('\uFFFD')) {
            process.stdout.write(text.slice(printed.length));
            printed = text;
          }
        }
      }
      if (o.json) {
        const out: { ids: number[]; text?: string } = { ids: res.ids };
        if (m.tokenizer && o.prompt !== undefined) out.text = m.tokenizer.decode(res.newIds);
        console.log(JSON.stringify(out));
        return;
      }
      if (stream) process.stdout.write(`${m.tokenizer!.decode(emitted).slice(printed.length)}\n`);
      else console.log(res.ids.join(','));
      const tps = res.newIds.length > 1 && res.decodeMs > 0 ? ((res.newIds.length - 1) / (res.decodeMs / 1000)).toFixed(1) : '—';
      console.error(`${res.newIds.length} new tokens (stopped by ${res.stoppedBy}); prefill ${prompt.length} tokens in ${res.prefillMs.toFixed(0)} ms, decode ${tps} tokens/s`);
    });
}
