// moekit compress: compress a model directory (clustered, D², merging) into a moekit model directory.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { calibrate, clusteredExpertParams, compressBaseline, type BaselineMethod } from '../compress/baselines.js';
import { toClustered } from '../compress/convert.js';
import { loadBrown, splitBrown } from '../io/brown.js';
import { loadModelDir, saveModelDir, upcastWeights, type LoadedModel } from '../models/dir.js';
import { MoEBlock } from '../moe/block.js';
import { setBackend } from '../backend/registry.js';
import { encodeTexts } from '../train/corpus.js';
import { checkWritableDir, fsErrorWords } from '../io/outputs.js';
import { LOAD_DTYPE_HELP, intOption, loadDtypeOption } from './args.js';

const METHODS = ['clustered', 'd2', 'merge', 'mc-smoe', 'hc-smoe'] as const;
type Method = (typeof METHODS)[number];

/** Calibration token ids: --calib TEXTFILE, else Brown's training split, encoded with the model's tokenizer. */
export function calibrationIds(m: LoadedModel, file: string | undefined, maxTokens: number): { ids: Int32Array; source: string } {
  if (!m.tokenizer) throw new Error('compress: the model directory has no tokenizer.json, which calibration text needs (add one, or use --method clustered --no-calib)');
  let text: string[];
  let source: string;
  if (file) {
    if (!existsSync(file)) throw new Error(`--calib: ${file} does not exist`);
    text = [readFileSync(file, 'utf8')];
    source = file;
  } else {
    text = splitBrown(loadBrown()).train.map((d) => d.text);
    source = 'brown:train';
  }
  const all = encodeTexts(m.tokenizer, text);
  const ids = all.subarray(0, Math.min(all.length, maxTokens));
  const bad = ids.find((id) => id >= m.config.vocabSize);
  if (bad !== undefined) throw new Error(`compress: the tokenizer produced id ${bad}, outside the model's vocabulary of ${m.config.vocabSize}`);
  return { ids, source };
}

/** The largest residual rank at which G bases + E rank-r residuals store no more parameters than E full experts. */
export function breakEvenRank(E: number, H: number, I: number, G: number): number {
  return Math.floor(((E - G) * H * I) / (E * (H + I)));
}

/**
 * The compress settings checked against the model before any work: 1 <= G <= E with G dividing E, 1 <= r <= min(H, I),
 * 1 <= k_g <= G, and (unless `allowLarger`) a result smaller than the input. Errors name the value and the bound's reason.
 */
export function checkCompressShape(cfg: { experts: number; hidden: number; expertWidth: number }, G: number, r: number, groupTopK: number | undefined, allowLarger: boolean): void {
  const { experts: E, hidden: H, expertWidth: I } = cfg;
  if (G > E || E % G !== 0) throw new Error(`--groups ${G} must divide the ${E} experts (1 <= G <= ${E})`);
  const maxRank = Math.min(H, I);
  if (r > maxRank) {
    throw new Error(`--rank ${r} is above ${maxRank}: an expert matrix is hidden x expert width = ${H} x ${I}, so its residual has rank at most min(H, I) = ${maxRank}`);
  }
  if (groupTopK !== undefined && groupTopK > G) throw new Error(`--group-top-k ${groupTopK} must be at most --groups ${G}`);
  const before = 3 * E * H * I;
  const after = clusteredExpertParams(E, H, I, G, r);
  if (after > before && !allowLarger) {
    const rMax = breakEvenRank(E, H, I, G);
    const hint = rMax >= 1 ? `with --groups ${G} the rank must be at most ${rMax} for the result not to be larger` : `no rank keeps them from growing with --groups ${G}; use fewer groups`;
    throw new Error(`--groups ${G} --rank ${r} would store ${after.toLocaleString('en-US')} expert parameters per layer, ${((after / before - 1) * 100).toFixed(1)}% more than the ${before.toLocaleString('en-US')} the model has: ${hint} (--allow-larger writes it anyway, e.g. for a lossless check at full rank)`);
  }
}

/** The Hugging Face config.json a model came from (its own for a Hugging Face directory). */
export function sourceConfig(m: LoadedModel): Record<string, unknown> {
  return m.kind === 'hf' ? m.info : ((m.info.source as { config?: Record<string, unknown> } | undefined)?.config ?? {});
}

/** --out: writable (checked with a probe file before loading anything), and not the model directory itself. */
export function checkOut(dir: string, out: string): void {
  if (path.resolve(out) === path.resolve(dir)) throw new Error(`--out ${out} is the model directory itself; expected a new directory (the source would be overwritten)`);
  checkWritableDir(out, '--out');
}

export function registerCheckpoint(program: Command): void {
  program
    .command('compress')
    .description('compress the experts of a model directory (Hugging Face or moekit) and write a moekit model directory')
    .argument('<model>', 'model directory')
    .requiredOption('--out <dir>', 'output directory')
    .option('--method <name>', `${METHODS.join(' | ')} (merge = mc-smoe)`, 'clustered')
    .option('--groups <n>', 'G expert groups per layer (clustered); the parameter budget of G bases + E rank-r residuals (all methods)', '2')
    .option('--rank <n>', 'r: rank of the residual factors', '16')
    .option('--group-top-k <n>', 'clustered: groups per token (default G: routing exactly as before)')
    .option('--calib <file>', 'calibration text (default: Brown train text), encoded with the model\'s tokenizer')
    .option('--no-calib', 'clustered: cluster by weights only, with no calibration text')
    .option('--calib-tokens <n>', 'calibration tokens', '4096')
    .option('--seq-len <n>', 'calibration window', '128')
    .option('--seed <n>', 'clustering seed', '0')
    .option('--allow-larger', 'write the result even when it stores more expert parameters than the input (default: refuse)')
    .option('--load-dtype <d>', LOAD_DTYPE_HELP, 'auto')
    .option('--backend <name>', 'js | wasm', 'wasm')
    .option('--json', 'print one JSON object')
    .action(async (dir: string, o: { out: string; method: string; groups: string; rank: string; groupTopK?: string; calib?: string | boolean; calibTokens: string; seqLen: string; seed: string; allowLarger?: boolean; backend: string; json?: boolean; loadDtype?: string }) => {
      if (!METHODS.includes(o.method as Method)) throw new Error(`--method must be one of ${METHODS.join(', ')}, got "${o.method}"`);
      const method = o.method as Method;
      const G = intOption('groups', o.groups, 2, 1);
      const r = intOption('rank', o.rank, 16, 1);
      const groupTopK = o.groupTopK === undefined ? undefined : intOption('group-top-k', o.groupTopK, G, 1);
      checkOut(dir, o.out);
      await setBackend(o.backend);
      const m = await loadModelDir(dir, { loadDtype: loadDtypeOption(o.loadDtype) });
      upcastWeights(m.model, 'compress'); // clustering and the baselines read and write f32 expert weights
      const cfg = m.config;
      if (cfg.ffn !== 'moe') throw new Error(`compress: ${dir} is already "${cfg.ffn}", expected a standard MoE model`);
      checkCompressShape(cfg, G, r, groupTopK, o.allowLarger === true);
      const seqLen = Math.min(intOption('seq-len', o.seqLen, 128, 1), cfg.maxSeqLen);
      const useCalib = o.calib !== false;
      if (!useCalib && method !== 'clustered') throw new Error(`--no-calib works with --method clustered only (${method} needs routing statistics)`);
      const t0 = performance.now();
      const calTok = useCalib ? calibrationIds(m, typeof o.calib === 'string' ? o.calib : undefined, intOption('calib-tokens', o.calibTokens, 4096, 1)) : null;
      const calib = calTok ? calibrate(m.model, calTok.ids, { seqLen }) : null;
      const moeLayers = m.model.layers.filter((l) => l.mlp instanceof MoEBlock).length;
      const budget = clusteredExpertParams(cfg.experts, cfg.hidden, cfg.expertWidth, G, r);
      const before = moeLayers * 3 * cfg.experts * cfg.hidden * cfg.expertWidth;
      let after: number;
      let provenance: Record<string, unknown>;
      let out = m.model;
      if (method === 'clustered') {
        const opts = { groups: G, rank: r, seed: intOption('seed', o.seed, 0, 0), ...(groupTopK !== undefined ? { groupTopK } : {}) };
        const res = toClustered(m.model, calib, opts);
        out = res.model;
        after = res.expertParamsAfter;
        provenance = { method, groups: G, rank: r, group_top_k: out.cfg.groupTopK, layers: res.layers.map((x) => ({ layer: x.layer, groups: x.groups, intra_similarity: x.intraSimilarity, rel_error: x.relError })) };
      } else {
        const bm: BaselineMethod = method === 'merge' ? 'mc-smoe' : method;
        const res = compressBaseline(m.model, bm, calib!, budget);
        after = res.params;
        provenance = { method: bm, budget_per_layer: budget, layers: res.layers, stored: 'materialised experts (standard MoE layout)' };
      }
      Object.assign(provenance, { source: dir, calibration: calTok ? { source: calTok.source, tokens: calTok.ids.length } : null, expert_params_before: before, expert_params_after: after });
      const save: Parameters<typeof saveModelDir>[2] = { provenance, bosTokenId: m.bosTokenId, eosTokenIds: m.eosTokenIds, copyFrom: m.assetsDir };
      if (m.arch) save.source = { arch: m.arch, config: sourceConfig(m), dir };
      let writeError: string | null = null;
      try {
        await saveModelDir(out, o.out, save);
      } catch (e) {
        if (!(e as NodeJS.ErrnoException).code) throw e;
        writeError = `compress: --out ${o.out}: could not write the model (${fsErrorWords(e)}); the numbers above are what it would have held`;
      }
      const seconds = (performance.now() - t0) / 1000;
      const summary = { out: o.out, method, expert_params_before: before, expert_params_after: after, reduction: 1 - after / before, seconds, ...(writeError ? { written: false } : {}) };
      if (o.json) console.log(JSON.stringify({ ...summary, provenance }));
      else {
        const change = after <= before ? `${((1 - after / before) * 100).toFixed(1)}% fewer` : `${((after / before - 1) * 100).toFixed(1)}% more`;
        console.log(`${method}: expert parameters ${before.toLocaleString('en-US')} -> ${after.toLocaleString('en-US')} (${change}) in ${seconds.toFixed(1)} s`);
        if (method === 'clustered') for (const x of provenance.layers as { layer: number; rel_error: number; intra_similarity: number }[]) console.log(`  layer ${x.layer}: relative weight error ${x.rel_error.toFixed(4)}, intra-group similarity ${x.intra_similarity.toFixed(3)}`);
        if (!writeError) console.log(`wrote ${o.out} (moekit model directory; \`moekit eval ${o.out}\` compares its perplexity with the original's)`);
      }
      if (writeError) {
        console.error(`moekit: ${writeError}`);
        process.exitCode = 1;
      }
    });
}
