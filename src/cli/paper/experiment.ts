// The paper reproduction benchmark (`moekit bench paper`): dense, standard top-K MoE and the clustered model trained
// on the same tokens, per seed; quality, parameters, speed, expert load, the all-to-all proxy and resident expert
// bytes; plus post-training compression baselines applied to the trained standard MoE at the clustered budget.
import os from 'node:os';
import path from 'node:path';
import { brownGenreTask } from '../../io/brown.js';
import { readMrpc, readSst2 } from '../../io/glue.js';
import { loadWikitext } from '../../io/wikitext.js';
import { denseBaseline, parseConfig, type ModelConfig, type ModelConfigInput } from '../../models/config.js';
import type { MoELM } from '../../models/moe-lm.js';
import { MoEBlock } from '../../moe/block.js';
import { Rng } from '../../tensor/random.js';
import { encodeTexts, brownCorpus, type BrownCorpus } from '../../train/corpus.js';
import { train } from '../../train/loop.js';
import fs from 'node:fs';
import { ExpertStore, writeOffloadFile } from '../../serve/offload.js';
import { calibrate, clusteredExpertParams, compressBaseline, layerExperts, setLayerExperts, type LayerExperts } from '../../compress/baselines.js';
import { ClassifierHead, evaluateClassifier, fineTuneClassifier, type ClassifyRow } from '../../eval/classify.js';
import { inferenceSpeed, inferenceSpeeds, routingSummary } from '../../eval/inference.js';
import { perplexity } from '../../eval/perplexity.js';

export interface PaperPreset {
  /** the standard MoE; the clustered model adds ffn 'clustered' and the dense baseline is FLOP-matched */
  model: ModelConfigInput;
  clusterGroups: number;
  clusterRank: number;
  clusterEvery: number;
  clusterWarmup: number;
  /**
   * γ of the clustered model's aux-loss-free selection bias (two-stage routing balanced at both stages, on top of the
   * Switch and group losses); the standard MoE is the paper's Switch-style baseline (no bias) unless `moeBiasRate`
   */
  clusterBiasRate: number;
  steps: number;
  batch: number;
  seqLen: number;
  lr: number;
  /** Brown documents per split (undefined: all) */
  maxDocs?: number;
  evalTokens: number;
  calibTokens: number;
  speed: { prefillLen: number; promptLen: number; decodeTokens: number; seconds: number };
  classify: { epochs: number; maxRows: number; maxLen: number; batch: number; lr: number };
}

const common = { heads: 4, kvHeads: 2, topK: 2, biasUpdateRate: 0, auxLossCoef: 1e-2 } as const;

/** smoke: the pipeline end to end in CI (not the claims); small: the claims on 2 CPU cores; base: hours. */
export const PAPER_PRESETS: Record<'smoke' | 'small' | 'base', PaperPreset> = {
  smoke: {
    model: { ...common, vocabSize: 320, hidden: 32, layers: 2, headDim: 8, maxSeqLen: 64, experts: 8, expertWidth: 32 },
    clusterGroups: 2, clusterRank: 4, clusterEvery: 10, clusterWarmup: 10, clusterBiasRate: 1e-3, steps: 30, batch: 4, seqLen: 32, lr: 1e-2, maxDocs: 30,
    evalTokens: 2048, calibTokens: 512, speed: { prefillLen: 32, promptLen: 8, decodeTokens: 8, seconds: 0.2 },
    classify: { epochs: 1, maxRows: 120, maxLen: 32, batch: 16, lr: 3e-3 },
  },
  small: {
    model: { ...common, vocabSize: 2048, hidden: 128, layers: 4, headDim: 32, maxSeqLen: 128, experts: 16, expertWidth: 128 },
    clusterGroups: 2, clusterRank: 4, clusterEvery: 100, clusterWarmup: 100, clusterBiasRate: 1e-3, steps: 400, batch: 8, seqLen: 128, lr: 3e-3,
    evalTokens: 40000, calibTokens: 4096, speed: { prefillLen: 128, promptLen: 16, decodeTokens: 64, seconds: 2 },
    classify: { epochs: 2, maxRows: 1500, maxLen: 64, batch: 16, lr: 1e-3 },
  },
  base: {
    model: { ...common, vocabSize: 8192, hidden: 512, layers: 8, heads: 8, kvHeads: 4, headDim: 64, maxSeqLen: 512, experts: 32, expertWidth: 256 },
    clusterGroups: 4, clusterRank: 16, clusterEvery: 200, clusterWarmup: 400, clusterBiasRate: 1e-3, steps: 20000, batch: 16, seqLen: 512, lr: 1e-3,
    evalTokens: 200000, calibTokens: 16384, speed: { prefillLen: 512, promptLen: 32, decodeTokens: 128, seconds: 5 },
    classify: { epochs: 2, maxRows: 4000, maxLen: 128, batch: 16, lr: 5e-4 },
  },
};

/** The fields every model reports (the names `--json` uses). */
export interface ModelResult {
  ppl: number;
  /** WikiText-103 validation perplexity, when --wikitext is given */
  ppl_wikitext?: number;
  /** Brown genre accuracy (15 classes) after fine-tuning */
  accuracy: number;
  /** GLUE accuracies (validation), when --glue is given */
  accuracy_sst2?: number;
  accuracy_mrpc?: number;
  params_total: number;
  params_expert: number;
  params_active: number;
  train_tokens_per_s: number;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  /** mean over MoE layers (per-layer values in `per_layer`) */
  load_variance: number | null;
  imbalance: number | null;
  cross_group_fraction: number | null;
  peak_expert_bytes: number;
  /** per MoE layer; tokens_per_expert: routed slots per expert slot on the held-out tokens */
  per_layer?: { load_variance: number[]; imbalance: number[]; cross_group_fraction: number[]; tokens_per_expert: number[][] };
  /** clustered: regroupings and the largest loss change one caused */
  regroups?: number;
  /** groups whose membership a regroup changed, summed over all regroups and layers */
  regroup_changed_groups?: number;
  max_regroup_loss_jump?: number;
  /** clustered: expert bytes of the FP32 training form */
  expert_bytes_fp32?: number;
  /** clustered, inference form (FP16 bases + INT4 factors): valid perplexity and expert bytes */
  ppl_int4?: number;
  int4_expert_bytes?: number;
  /** clustered, inference form (FP16 bases + INT4 factors) in the fused kernel, all resident: prefill and decode speed */
  prefill_tokens_per_s_int4?: number;
  decode_tokens_per_s_int4?: number;
  /** clustered, INT4 form served from the offload file under the budget: the budget, unit loads, stall time and decode speed */
  offload_budget_bytes?: number;
  offload_loads?: number;
  offload_stall_ms?: number;
  offload_decode_tokens_per_s?: number;
}

export type Agg = { mean: number; std: number; values: number[] };
export type AggResult = { [K in keyof ModelResult]: ModelResult[K] extends number | undefined | null ? Agg : never };

export interface PaperOptions {
  preset: keyof typeof PAPER_PRESETS;
  seeds: number;
  steps?: number;
  wikitext?: string;
  glue?: string;
  /** resident expert bytes the offloaded clustered model may hold (default: half of its INT4 form) */
  offloadBudget?: number;
  /** overrides of the preset's clustered settings (ablations) */
  clusterGroups?: number;
  clusterRank?: number;
  groupTopK?: number;
  /** train full experts until the preset's clusterWarmup, then compress them (clusterDenseWarmup); default true */
  denseWarmup?: boolean;
  /** γ of the clustered model's selection-bias balancing (default: the preset's; 0 = Switch and group losses only) */
  clusterBiasRate?: number;
  /** γ of the same balancing for the standard MoE (ablation; default 0, the paper's Switch-style baseline) */
  moeBiasRate?: number;
  log?: (s: string) => void;
}

export interface PaperResult {
  preset: string;
  seeds: number;
  steps: number;
  configs: Record<string, ModelConfig>;
  /** per model: mean ± std over seeds of every numeric field */
  models: Record<string, Partial<Record<keyof ModelResult, Agg>>>;
  /** per model and seed: the raw results */
  runs: Record<string, ModelResult[]>;
  claims: Claim[];
  seconds: number;
}

export interface Claim {
  claim: string;
  target: string;
  measured: string;
  pass: boolean;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const std = (xs: readonly number[]): number => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));

function aggregate(runs: ModelResult[]): Partial<Record<keyof ModelResult, Agg>> {
  const out: Partial<Record<keyof ModelResult, Agg>> = {};
  const keys = new Set(runs.flatMap((r) => Object.keys(r))) as Set<keyof ModelResult>;
  for (const k of keys) {
    const vals = runs.map((r) => r[k]).filter((v): v is number => typeof v === 'number');
    if (vals.length === runs.length) out[k] = { mean: mean(vals), std: std(vals), values: vals };
  }
  return out;
}

function shuffle<T>(xs: T[], seed: number): T[] {
  const r = new Rng(seed);
  for (let i = xs.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

interface Tasks {
  genre: { train: ClassifyRow[]; valid: ClassifyRow[] };
  glue: { name: 'sst2' | 'mrpc'; train: ClassifyRow[]; valid: ClassifyRow[] }[];
}

function buildTasks(corpus: BrownCorpus, p: PaperPreset, glueDir?: string): Tasks {
  const enc = (text: string): number[] => corpus.tokenizer.encode(text).slice(0, p.classify.maxLen);
  const genre = (docs: typeof corpus.docs.train, n: number): ClassifyRow[] =>
    shuffle(brownGenreTask(docs).map((r) => ({ ids: enc(r.text), label: r.label })), 7).filter((r) => r.ids.length > 0).slice(0, n);
  const tasks: Tasks = { genre: { train: genre(corpus.docs.train, p.classify.maxRows), valid: genre(corpus.docs.valid, Math.ceil(p.classify.maxRows / 3)) }, glue: [] };
  if (glueDir) {
    for (const [name, read, dir] of [['sst2', readSst2, 'SST-2'], ['mrpc', readMrpc, 'MRPC']] as const) {
      const rows = (split: string, n: number): ClassifyRow[] =>
        shuffle(read(path.join(glueDir, dir, `${split}.tsv`)).filter((r) => r.label >= 0).map((r) => ({ ids: enc(r.text2 === undefined ? r.text : `${r.text} ${r.text2}`), label: r.label })), 11).filter((r) => r.ids.length > 0).slice(0, n);
      tasks.glue.push({ name, train: rows(name === 'mrpc' ? 'msr_paraphrase_train' : 'train', p.classify.maxRows), valid: rows(name === 'mrpc' ? 'msr_paraphrase_test' : 'dev', Math.ceil(p.classify.maxRows / 3)) });
    }
  }
  return tasks;
}

/** Bytes of the FFN weights a model keeps resident at f32: every routed expert of an MoE layer, the whole FFN of a dense one. */
function residentFfnBytes(model: MoELM): number {
  let n = 0;
  for (const l of model.layers) n += l.mlp instanceof MoEBlock ? l.mlp.experts.numParams() : l.mlp.numParams();
  return n * 4;
}

/**
 * The clustered model's inference form: quality and bytes with FP16 bases + INT4 factors, then served from an offload
 * file under a resident budget (peak resident bytes, loads, stall time, decode speed).
 */
async function clusteredInference(model: MoELM, valid: Int32Array, p: PaperPreset, evalWindow: { window: number; stride: number; batch: number }, budget: number | undefined, seed: number): Promise<Partial<ModelResult>> {
  const out: Partial<ModelResult> = {};
  const blocks = model.clusteredBlocks();
  const qs = blocks.map(([, b]) => b.f32Experts('toQuantized').toQuantized({ format: 'int4' }));
  const f32 = blocks.map(([, b], i) => b.setExperts(qs[i]!));
  const int4Bytes = qs.reduce((a, q) => a + q.bytes.total, 0);
  try {
    out.ppl_int4 = perplexity(model, valid, evalWindow).ppl;
    out.int4_expert_bytes = int4Bytes;
  } finally {
    blocks.forEach(([, b], i) => b.setExperts(f32[i]!));
    for (const q of qs) q.dispose();
  }
  const file = path.join(os.tmpdir(), `moekit-paper-offload-${process.pid}-${seed}.safetensors`);
  try {
    const { unitBytes } = await writeOffloadFile(model, file, { format: 'int4' });
    const largest = Math.max(...unitBytes.flat());
    const budgetBytes = budget ?? Math.max(largest, Math.ceil(int4Bytes / 2));
    const store = ExpertStore.open(file, { budgetBytes, idleSteps: 16 });
    try {
      store.attach(model);
      perplexity(model, valid, evalWindow); // the same tokens, now through the store
      out.offload_decode_tokens_per_s = inferenceSpeed(model, valid, p.speed).decodeTokensPerS;
      Object.assign(out, { peak_expert_bytes: store.stats.peakResidentBytes, offload_budget_bytes: budgetBytes, offload_loads: store.stats.loads, offload_stall_ms: store.stats.stallMs });
    } finally {
      store.close();
    }
  } finally {
    fs.rmSync(file, { force: true });
  }
  return out;
}

/**
 * `n` held-out tokens spread over the whole split: evenly spaced contiguous chunks of `chunk` tokens, concatenated.
 * The valid split lists its documents genre by genre, so its first tokens would cover only the first genres (the
 * first 40,000 of Brown's are press and religion, 4 of 15 genres); the spread sample covers all of them.
 */
export function spreadSample(ids: Int32Array, n: number, chunk: number): Int32Array {
  if (ids.length <= n) return ids;
  const c = Math.min(chunk, n);
  const k = Math.floor(n / c);
  const out = new Int32Array(k * c);
  for (let i = 0; i < k; i++) {
    const start = Math.floor((i * (ids.length - c)) / Math.max(1, k - 1));
    out.set(ids.subarray(start, start + c), i * c);
  }
  return out;
}

/** The clustered settings checked before any training: G divides E, r <= min(H, I), k_g <= G (each error names why). */
function checkClusterShape(cfg: ModelConfig, G: number, rank: number, groupTopK: number | undefined): void {
  const { experts: E, hidden: H, expertWidth: I } = cfg;
  if (!Number.isInteger(G) || G < 1 || G > E || E % G !== 0) throw new RangeError(`bench paper: --groups ${G} must divide the ${E} experts (1 <= G <= ${E})`);
  const maxRank = Math.min(H, I);
  if (!Number.isInteger(rank) || rank < 1 || rank > maxRank) throw new RangeError(`bench paper: --rank ${rank} must be in [1, ${maxRank}]: a residual of an H x I = ${H} x ${I} expert matrix has rank at most min(H, I) = ${maxRank}`);
  if (groupTopK !== undefined && (!Number.isInteger(groupTopK) || groupTopK < 1 || groupTopK > G)) throw new RangeError(`bench paper: --group-top-k ${groupTopK} must be in [1, ${G}] (the groups per layer)`);
}

export async function paperBench(o: PaperOptions): Promise<PaperResult> {
  const started = performance.now();
  const log = o.log ?? ((): void => {});
  const p = PAPER_PRESETS[o.preset];
  if (!p) throw new Error(`bench paper: --preset must be one of ${Object.keys(PAPER_PRESETS).join(', ')}, got "${o.preset}"`);
  if (!Number.isInteger(o.seeds) || o.seeds < 1) throw new RangeError(`bench paper: --seeds must be a positive integer, got ${o.seeds}`);
  const steps = o.steps ?? p.steps;
  const moeBase = parseConfig(p.model);
  checkClusterShape(moeBase, o.clusterGroups ?? p.clusterGroups, o.clusterRank ?? p.clusterRank, o.groupTopK);
  const tokPath = path.join(os.tmpdir(), `moekit-paper-${o.preset}-${moeBase.vocabSize}-${p.maxDocs ?? 'all'}.tokenizer.json`);
  const corpus = brownCorpus({ vocabSize: moeBase.vocabSize, tokenizerPath: tokPath, ...(p.maxDocs ? { maxDocs: p.maxDocs } : {}) });
  const valid = spreadSample(corpus.valid, p.evalTokens, 8 * p.seqLen);
  let wiki: Int32Array | null = null;
  if (o.wikitext) {
    const w = loadWikitext(o.wikitext);
    const paras: string[] = [];
    let n = 0;
    for (const a of w.valid.articles()) {
      paras.push(a.text);
      n += a.text.length;
      if (n > p.evalTokens * 6) break;
    }
    wiki = encodeTexts(corpus.tokenizer, paras).subarray(0, p.evalTokens);
  }
  const tasks = buildTasks(corpus, p, o.glue);
  const G = o.clusterGroups ?? p.clusterGroups;
  const rank = o.clusterRank ?? p.clusterRank;
  log(`bench paper: preset ${o.preset}, ${o.seeds} seed(s), ${steps} steps of ${p.batch}×${p.seqLen}, Brown ${corpus.train.length} train / ${valid.length} valid tokens (spread over the split's ${corpus.valid.length})${wiki ? `, WikiText ${wiki.length} valid tokens` : ''}`);
  const runs: Record<string, ModelResult[]> = { dense: [], moe: [], clustered: [], d2: [], 'mc-smoe': [], 'hc-smoe': [] };
  const configs: Record<string, ModelConfig> = {};
  const evalWindow = { window: p.seqLen, stride: Math.max(1, p.seqLen / 2), batch: 8 };
  for (let s = 0; s < o.seeds; s++) {
    const moe = parseConfig({ ...p.model, seed: s, biasUpdateRate: o.moeBiasRate ?? 0 });
    const clustered = parseConfig({ ...p.model, seed: s, biasUpdateRate: o.clusterBiasRate ?? p.clusterBiasRate, ffn: 'clustered', clusterGroups: G, clusterRank: rank, clusterEvery: p.clusterEvery, clusterWarmup: p.clusterWarmup, clusterDenseWarmup: o.denseWarmup ?? true, ...(o.groupTopK ? { groupTopK: o.groupTopK } : {}) });
    const dense = denseBaseline(moe);
    if (s === 0) Object.assign(configs, { dense, moe, clustered });
    const trained: { name: 'dense' | 'moe' | 'clustered'; config: ModelConfig; model: MoELM; res: ModelResult; seconds: number }[] = [];
    for (const [name, config] of [['dense', dense], ['moe', moe], ['clustered', clustered]] as const) {
      const t0 = performance.now();
      const r = await train({
        config, tokens: corpus.train, steps, batch: p.batch, seqLen: p.seqLen, lr: p.lr, seed: s, out: null,
        onStep: (m) => {
          if (m.step % Math.max(1, Math.floor(steps / 5)) === 0) log(`  seed ${s} ${name.padEnd(9)} step ${m.step}/${steps}  ce ${m.ce.toFixed(3)}  ${Math.round(m.tokens_per_s)} tok/s`);
        },
      });
      const model = r.model;
      const counts = model.paramCounts();
      const res: ModelResult = {
        ppl: perplexity(model, valid, evalWindow).ppl, accuracy: NaN,
        params_total: counts.total, params_expert: counts.expert, params_active: counts.active,
        train_tokens_per_s: r.metrics.reduce((a, m) => a + m.tokens, 0) / r.seconds,
        prefill_tokens_per_s: 0, decode_tokens_per_s: 0, load_variance: null, imbalance: null, cross_group_fraction: null,
        peak_expert_bytes: residentFfnBytes(model),
      };
      if (wiki) res.ppl_wikitext = perplexity(model, wiki, evalWindow).ppl;
      if (name !== 'dense') {
        const rs = routingSummary(model, valid, { seqLen: p.seqLen, groups: G });
        Object.assign(res, {
          load_variance: mean(rs.loadVariance), imbalance: mean(rs.imbalance), cross_group_fraction: mean(rs.crossGroup),
          per_layer: { load_variance: rs.loadVariance, imbalance: rs.imbalance, cross_group_fraction: rs.crossGroup, tokens_per_expert: rs.tokensPerExpert },
        });
      }
      if (name === 'clustered') {
        res.regroups = new Set(r.regroups.map((e) => e.step)).size;
        res.regroup_changed_groups = r.regroups.reduce((a, e) => a + e.changed_groups, 0);
        res.max_regroup_loss_jump = r.regroups.reduce((a, e) => Math.max(a, Math.abs(e.loss_after - e.loss_before)), 0);
        res.expert_bytes_fp32 = counts.expert * 4;
        Object.assign(res, await clusteredInference(model, valid, p, evalWindow, o.offloadBudget, s));
        log(`  seed ${s} clustered INT4 ppl ${res.ppl_int4!.toFixed(2)} (${(res.int4_expert_bytes! / 1024).toFixed(0)} KiB); offloaded: peak ${(res.peak_expert_bytes / 1024).toFixed(0)} KiB of budget ${(res.offload_budget_bytes! / 1024).toFixed(0)} KiB, ${res.offload_loads} loads, ${res.offload_stall_ms!.toFixed(0)} ms stalled`);
      }
      if (name === 'moe') {
        // post-training baselines at the clustered model's expert budget, on this trained model (restored after each)
        const calib = calibrate(model, corpus.train.subarray(0, p.calibTokens), { batch: 8, seqLen: p.seqLen });
        const original: LayerExperts[] = model.layers.map((l) => layerExperts(l.mlp as MoEBlock));
        const budget = clusteredExpertParams(moe.experts, moe.hidden, moe.expertWidth, G, rank);
        for (const method of ['d2', 'mc-smoe', 'hc-smoe'] as const) {
          const c = compressBaseline(model, method, calib, budget);
          const b: ModelResult = {
            ...res, ppl: perplexity(model, valid, evalWindow).ppl, params_expert: c.params, params_total: counts.total - counts.expert + c.params,
            peak_expert_bytes: c.params * 4, train_tokens_per_s: NaN, prefill_tokens_per_s: NaN, decode_tokens_per_s: NaN,
          };
          delete b.ppl_wikitext;
          if (wiki) b.ppl_wikitext = perplexity(model, wiki, evalWindow).ppl;
          runs[method]!.push(b);
          model.layers.forEach((l, i) => setLayerExperts(l.mlp as MoEBlock, original[i]!));
          log(`  seed ${s} ${method.padEnd(9)} ppl ${b.ppl.toFixed(2)} at ${c.params} expert params (post-training, no retraining)`);
        }
      }
      trained.push({ name, config, model, res, seconds: (performance.now() - t0) / 1000 });
    }
    // inference speed of the three models timed in alternation (one process, one backend); the clustered model twice:
    // with its f32 parameters and in its inference form (FP16 bases + INT4 factors, in the fused kernel)
    log(`  seed ${s} timing prefill and decode of ${trained.map((t) => t.name).join(', ')} and clustered FP16/INT4 in alternation`);
    const cl = trained.find((t) => t.name === 'clustered')!;
    const blocks = cl.model.clusteredBlocks().map(([, b]) => b);
    const f32 = blocks.map((b) => b.f32Experts('toQuantized'));
    const forms = f32.map((e) => {
      const q = e.toQuantized({ format: 'int4' });
      const f = q.toFused();
      q.dispose();
      return f;
    });
    try {
      const setForm = (on: boolean) => (): void => blocks.forEach((b, i) => void b.setExperts(on ? forms[i]! : f32[i]!));
      const subjects = trained.map((t) => (t === cl ? { model: t.model, activate: setForm(false) } : t.model));
      const sp = inferenceSpeeds([...subjects, { model: cl.model, activate: setForm(true) }], valid, p.speed);
      trained.forEach((t, i) => {
        t.res.prefill_tokens_per_s = sp[i]!.prefillTokensPerS;
        t.res.decode_tokens_per_s = sp[i]!.decodeTokensPerS;
      });
      cl.res.prefill_tokens_per_s_int4 = sp[trained.length]!.prefillTokensPerS;
      cl.res.decode_tokens_per_s_int4 = sp[trained.length]!.decodeTokensPerS;
      setForm(false)();
    } finally {
      for (const f of forms) f.dispose();
    }
    for (const { name, config, model, res, seconds } of trained) {
      const t0 = performance.now();
      // classification last: fine-tuning changes the body
      const acc = (t: { train: ClassifyRow[]; valid: ClassifyRow[] }, classes: number): number => {
        const head = new ClassifierHead(config.hidden, classes, s);
        fineTuneClassifier(model, head, t.train, { ...p.classify, seed: s });
        const m = evaluateClassifier(model, head, t.valid, { batch: p.classify.batch, maxLen: p.classify.maxLen });
        head.dispose();
        return m.accuracy;
      };
      res.accuracy = acc(tasks.genre, 15);
      for (const g of tasks.glue) res[g.name === 'sst2' ? 'accuracy_sst2' : 'accuracy_mrpc'] = acc(g, 2);
      runs[name]!.push(res);
      log(`  seed ${s} ${name.padEnd(9)} ppl ${res.ppl.toFixed(2)}  acc ${(res.accuracy * 100).toFixed(1)}%  ${Math.round(res.train_tokens_per_s)} train tok/s  ${Math.round(res.prefill_tokens_per_s)} prefill / ${Math.round(res.decode_tokens_per_s)} decode tok/s  (${(seconds + (performance.now() - t0) / 1000).toFixed(0)} s)`);
      model.dispose();
    }
  }
  const models = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, aggregate(v)]));
  return { preset: o.preset, seeds: o.seeds, steps, configs, models, runs, claims: claims(models), seconds: (performance.now() - started) / 1000 };
}

/** The paper's claims (issue floor) checked on the means: clustered against the standard MoE (and dense). */
export function claims(models: Record<string, Partial<Record<keyof ModelResult, Agg>>>): Claim[] {
  const m = (k: string, f: keyof ModelResult): number => models[k]?.[f]?.mean ?? NaN;
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  const out: Claim[] = [];
  const expertDown = 1 - m('clustered', 'params_expert') / m('moe', 'params_expert');
  out.push({ claim: 'expert parameters', target: '>= 75% fewer', measured: `${pct(expertDown)} fewer (total ${pct(1 - m('clustered', 'params_total') / m('moe', 'params_total'))} fewer)`, pass: expertDown >= 0.75 });
  const pplUp = m('clustered', 'ppl') / m('moe', 'ppl') - 1;
  out.push({ claim: 'perplexity', target: 'within +3%', measured: `${pplUp >= 0 ? '+' : ''}${pct(pplUp)}`, pass: pplUp <= 0.03 });
  const varDown = m('moe', 'load_variance') / m('clustered', 'load_variance');
  out.push({ claim: 'expert-load variance', target: '>= 3x lower', measured: `${varDown.toFixed(2)}x lower`, pass: varDown >= 3 });
  // speed twice: both models with f32 weights, and the clustered model in its inference form (FP16 bases + INT4
  // factors, the paper's §4) against the standard MoE as it is served (f32; it has no compressed form)
  for (const kind of ['prefill', 'decode'] as const) {
    for (const [form, f] of [['f32 weights', `${kind}_tokens_per_s`], ['clustered FP16/INT4', `${kind}_tokens_per_s_int4`]] as const) {
      const up = m('clustered', f) / m('moe', `${kind}_tokens_per_s`) - 1;
      if (Number.isNaN(up)) continue;
      out.push({ claim: `inference ${kind} tokens/s (${form})`, target: '>= +15%', measured: `${up >= 0 ? '+' : ''}${pct(up)}`, pass: up >= 0.15 });
    }
  }
  const peak = m('clustered', 'peak_expert_bytes') / m('dense', 'peak_expert_bytes');
  out.push({ claim: 'peak resident expert bytes', target: "<= dense FFNs'", measured: `${peak.toFixed(2)}x dense`, pass: peak <= 1 });
  return out;
}
