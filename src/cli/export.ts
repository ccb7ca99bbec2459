// moekit export: materialise a model (Hugging Face, moekit or a training run) into a Hugging Face architecture's
// layout, refusing what would change the model: features the target lacks, or a selection bias it cannot hold.
import type { Command } from 'commander';
import { selectionBiasEffect, type BiasEffect } from '../eval/bias.js';
import { loadBrown, splitBrown } from '../io/brown.js';
import { fsErrorWords } from '../io/outputs.js';
import { loadModelDir, materialize, type LoadedModel } from '../models/dir.js';
import { HF_ARCHS, type HfArch } from '../models/hf/config.js';
import { exportHf, exportProblem } from '../models/hf/export.js';
import { archMismatches, archHoldsSelectionBias, selectionBiases } from '../models/hf/fit.js';
import { setBackend } from '../backend/registry.js';
import { encodeTexts } from '../train/corpus.js';
import { checkOut, sourceConfig } from './checkpoint.js';
import { checkGgufOut, ggufArchOption, writeGgufExport } from './export-gguf.js';
import { GGUF_ARCHS, GGUF_DTYPES, type GgufDtype } from '../models/gguf/export.js';
import { LOAD_DTYPE_HELP, loadDtypeOption } from './args.js';

/** Brown validation tokens to measure routing changes on (at most `max`), or null without a usable tokenizer. */
function validIds(m: LoadedModel, max: number): Int32Array | null {
  if (!m.tokenizer) return null;
  const ids = encodeTexts(m.tokenizer, splitBrown(loadBrown()).valid.map((d) => d.text)).subarray(0, max);
  return ids.some((id) => id >= m.config.vocabSize) ? null : ids;
}

const pct = (x: number): string => `${(x * 100).toFixed(x < 0.001 ? 3 : 2)}%`;
const effectText = (e: BiasEffect): string =>
  `dropping it changes ${e.changed.toLocaleString('en-US')} of ${e.decisions.toLocaleString('en-US')} routing decisions (${pct(e.fraction)}; a decision is one token's top-k experts at one layer) on ${e.tokens.toLocaleString('en-US')} tokens of Brown valid, and logits by up to ${e.maxLogitDiff.toPrecision(3)}`;

interface ExportCliOptions {
  out: string;
  format: string;
  arch?: string;
  layout: string;
  dtype: string;
  dropBias?: boolean;
  biasTokens: string;
  backend: string;
  json?: boolean;
  loadDtype?: string;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a model in a Hugging Face architecture\'s layout (clustered experts are materialised); refuses what would change the model')
    .argument('<model>', 'moekit or Hugging Face model directory, a training run (`moekit train --out`), or one of its checkpoints/step-N')
    .requiredOption('--out <path>', 'output directory (hf), or the .gguf file to write (gguf)')
    .option('--format <name>', 'hf | gguf (llama.cpp, Ollama, LM Studio)', 'hf')
    .option('--arch <name>', `target architecture (${HF_ARCHS.join(' | ')}; gguf: ${Object.keys(GGUF_ARCHS).join(' | ')}, also by llama.cpp's names ${Object.values(GGUF_ARCHS).join(' | ')}); default: the model's source architecture, else the first it fits exactly`)
    .option('--layout <name>', 'legacy (per-expert tensors, what save_pretrained writes) | fused (transformers 5 gate_up_proj)', 'legacy')
    .option('--dtype <name>', 'F32 | F16 | BF16; gguf also Q8_0 | Q4_0', 'F32')
    .option('--drop-bias', 'export a model that routes with a selection bias to an architecture without one (its routing changes; refused by default)')
    .option('--bias-tokens <n>', 'Brown valid tokens on which the routing change of dropping the bias is measured', '4096')
    .option('--load-dtype <d>', LOAD_DTYPE_HELP, 'auto')
    .option('--backend <name>', 'js | wasm', 'wasm')
    .option('--json', 'print one JSON object')
    .action(async (dir: string, o: ExportCliOptions) => {
      if (o.format !== 'hf' && o.format !== 'gguf') throw new Error(`--format must be "hf" or "gguf", got "${o.format}"`);
      const gguf = o.format === 'gguf';
      if (o.layout !== 'legacy' && o.layout !== 'fused') throw new Error(`--layout must be legacy or fused, got "${o.layout}"`);
      const dtypes: readonly string[] = gguf ? GGUF_DTYPES : ['F32', 'F16', 'BF16'];
      if (!dtypes.includes(o.dtype)) throw new Error(`--dtype must be one of ${dtypes.join(', ')} for --format ${o.format}, got "${o.dtype}"`);
      if (gguf && o.arch !== undefined) o.arch = ggufArchOption(o.arch);
      if (o.arch !== undefined && !HF_ARCHS.includes(o.arch as HfArch)) throw new Error(`--arch must be one of ${HF_ARCHS.join(', ')}, got "${o.arch}"`);
      const biasTokens = Number(o.biasTokens);
      if (!Number.isSafeInteger(biasTokens) || biasTokens < 1) throw new Error(`--bias-tokens must be a positive integer, got "${o.biasTokens}"`);
      if (gguf) checkGgufOut(o.out);
      else checkOut(dir, o.out);
      await setBackend(o.backend);
      const m = await loadModelDir(dir, { loadDtype: loadDtypeOption(o.loadDtype) });
      const model = materialize(m.model);
      let arch = (o.arch as HfArch | undefined) ?? m.arch;
      if (!arch) {
        arch = (gguf ? (Object.keys(GGUF_ARCHS) as HfArch[]) : HF_ARCHS).find((a) => archMismatches(model.cfg, a).length === 0) ?? null;
        if (!arch) throw new Error(`export: ${dir} fits none of ${HF_ARCHS.join(', ')} exactly (${HF_ARCHS.map((a) => `${a}: ${archMismatches(model.cfg, a).join(', ') || 'its own checks'}`).join('; ')})`);
        if (!o.json) console.error(`moekit export: no --arch given and ${dir} names no source architecture: ${arch} is the first it fits exactly`);
      }
      const mismatch = archMismatches(model.cfg, arch);
      if (mismatch.length > 0) throw new Error(`export: ${dir} does not fit ${arch}, so the export would reload as a different model: ${mismatch.join('; ')}. Nothing was written; pick another --arch`);
      // a selection bias the target cannot hold: measure what dropping it does, refuse unless --drop-bias
      let effect: BiasEffect | null = null;
      if (selectionBiases(m.model).maxAbs > 0 && !archHoldsSelectionBias(arch)) {
        const ids = validIds(m, biasTokens);
        effect = ids ? selectionBiasEffect(m.model, ids, m.config.maxSeqLen) : null;
        const what = effect ? effectText(effect) : `max |bias| ${selectionBiases(m.model).maxAbs.toPrecision(3)} (no tokenizer to measure its effect on Brown valid)`;
        if (!o.dropBias) throw new Error(`export: ${dir} routes with a selection bias (aux-loss-free balancing) that ${arch} cannot hold: ${what}. Nothing was written; pass --drop-bias to export without it`);
        if (!o.json) console.error(`moekit export: --drop-bias: the selection bias is left out; ${what}`);
      }
      const problem = exportProblem(model, arch, { dropBias: o.dropBias ?? false });
      if (problem) throw new Error(`export: ${problem}`);
      if (gguf) {
        await writeGgufExport(m, model, arch, o.out, o.dtype as GgufDtype, { dropBias: o.dropBias ?? false, json: o.json ?? false, biasDropped: effect !== null });
        return;
      }
      let files: string[];
      try {
        files = await exportHf(model, arch, o.out, { layout: o.layout, dtype: o.dtype as 'F32' | 'F16' | 'BF16', baseConfig: sourceConfig(m), copyFrom: m.assetsDir, dropBias: o.dropBias ?? false });
      } catch (e) {
        if (!(e as NodeJS.ErrnoException).code) throw e;
        throw new Error(`export: --out ${o.out}: could not write the model (${fsErrorWords(e)})`);
      }
      const names = files.map((f) => f.split('/').pop()!);
      if (o.json) console.log(JSON.stringify({ out: o.out, arch, layout: o.layout, dtype: o.dtype, files: names, materialised: model !== m.model, bias_dropped: effect !== null || (o.dropBias === true && selectionBiases(m.model).maxAbs > 0), bias_effect: effect }));
      else console.log(`wrote ${o.out}: ${arch} (${o.layout} experts, ${o.dtype}${model !== m.model ? ', clustered experts materialised' : ''}): ${names.join(', ')}`);
    });
}
