// The training loop: batches from a token stream, AdamW with warm-up + cosine, clipping, accumulation,
// aux-free bias updates, per-step metrics (JSONL), atomic checkpoints and bit-exact resume.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { MoELM, resolveStats, type ModelStats } from '../models/moe-lm.js';
import type { ClusteredMoEBlock } from '../moe/clustered.js';
import { clusterGroupsOf, parseConfig, type ModelConfig } from '../models/config.js';
import { calibrate } from '../compress/baselines.js';
import { toClustered } from '../compress/convert.js';
import * as T from '../tensor/api.js';
import { backward, zeroGrad } from '../tensor/autograd.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { AdamW, clipGradNormAsync } from './optim.js';
import { cosineLr } from './schedule.js';
import { cleanStaleTemps, describeRun, hashConfig, hashTokens, moveAside, occupiedError, resumeMismatches, truncateJsonl, type RunIdentity } from './rundir.js';

export interface TrainOptions {
  config: ModelConfig;
  /** training tokens (documents joined by an end-of-text id) */
  tokens: Int32Array;
  steps: number;
  /** sequences per micro-batch */
  batch: number;
  /** tokens per sequence (<= config.maxSeqLen) */
  seqLen: number;
  /** micro-batches per optimizer step */
  accum?: number;
  /** peak learning rate, default 3e-3 (small models tolerate high rates; GPT-3 small used 6e-4) */
  lr?: number;
  /** warm-up steps, default 5% of steps */
  warmup?: number;
  /** default 0.1 */
  weightDecay?: number;
  /** global gradient-norm clip, default 1.0 */
  clip?: number;
  /** seeds batch sampling (model init uses config.seed) */
  seed?: number;
  /** output directory for metrics.jsonl and checkpoints; null = none */
  out: string | null;
  /** checkpoint every N steps (and at the end), default 0 = only at the end */
  checkpointEvery?: number;
  /** continue from the latest checkpoint in `out`; its config, batch, seqLen, seed, accum and data must match */
  resume?: boolean;
  /**
   * `out` already holds a run and `resume` is off: move it aside to `out.old-<timestamp>` (never deleted) and start
   * afresh. Without it such an `out` is an error, so a run never overwrites another silently.
   */
  overwrite?: boolean;
  /** what identifies the data beyond the token stream's length and hash (e.g. docs limit, tokenizer hash); checked on resume */
  data?: Record<string, string | number | null>;
  /** non-fatal notices (a torn log line dropped, a legacy checkpoint's unchecked fields); default console.warn */
  onWarning?: (msg: string) => void;
  onStep?: (m: StepMetrics) => void;
  /** clustered models: called after each regrouping with one event per layer */
  onRegroup?: (events: RegroupLog[]) => void;
}

/** One layer's regrouping during training (written to clusters.jsonl). */
export interface RegroupLog {
  step: number;
  layer: number;
  /** members of each group as original expert ids */
  membership: number[][];
  intra_similarity: number;
  changed_groups: number;
  /** relative Frobenius error of the re-initialised experts against their previous effective weights */
  rel_error: number;
  /** training loss (ce + aux) of this step's first micro-batch just before and just after regrouping */
  loss_before: number;
  loss_after: number;
}

export interface StepMetrics {
  step: number;
  loss: number;
  ce: number;
  aux: number;
  lr: number;
  grad_norm: number;
  tokens: number;
  tokens_per_s: number;
  /** per MoE layer: tokens routed to each expert in this step */
  tokens_per_expert: number[][];
  /** per MoE layer: variance of the expert loads (fractions of routed slots) */
  load_variance: number[];
  /** per MoE layer: max / mean expert load */
  imbalance: number[];
  dropped: number[];
  /** clustered layers: share of tokens whose K experts sit in more than one group */
  cross_group?: number[];
}

export interface TrainResult {
  model: MoELM;
  metrics: StepMetrics[];
  /** clustered models: every regrouping */
  regroups: RegroupLog[];
  /** step the run started from (0, or the resumed checkpoint's); equal to `steps` when there was nothing to do */
  startStep: number;
  /** where an earlier run in `out` was moved (overwrite) */
  movedAside?: string;
  seconds: number;
}

/** Micro-batch `m` of optimizer step `step`: windows drawn from a generator seeded by (seed, step, m). */
export function sampleBatch(tokens: Int32Array, batch: number, seqLen: number, seed: number, step: number, m: number): { ids: Int32Array; targets: Int32Array } {
  const span = tokens.length - seqLen - 1;
  if (span < 1) throw new RangeError(`train: ${tokens.length} tokens are too few for sequences of ${seqLen} (+1 target)`);
  const rng = new Rng((seed * 1_000_003 + step * 7919 + m) >>> 0);
  const ids = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    const start = rng.int(span);
    ids.set(tokens.subarray(start, start + seqLen), b * seqLen);
    targets.set(tokens.subarray(start + 1, start + seqLen + 1), b * seqLen);
  }
  return { ids, targets };
}

export { loadStats } from '../moe/route.js';
import { loadStats } from '../moe/route.js';

function addStats(into: ModelStats, s: ModelStats): ModelStats {
  return s.map((l, i) => {
    const prev = into[i];
    if (!l) return null;
    const out: NonNullable<ModelStats[number]> = prev
      ? { tokensPerExpert: l.tokensPerExpert.map((c, e) => c + prev.tokensPerExpert[e]!), dropped: l.dropped + prev.dropped }
      : { tokensPerExpert: [...l.tokensPerExpert], dropped: l.dropped };
    if (l.tokensPerGroup) out.tokensPerGroup = l.tokensPerGroup.map((c, g) => c + (prev?.tokensPerGroup?.[g] ?? 0));
    if (l.crossGroup !== undefined) out.crossGroup = l.crossGroup + (prev?.crossGroup ?? 0);
    return out;
  });
}

/** The clustering state a checkpoint's state.json carries (clustered models). */
interface SavedClusterState {
  rng: { s: number[]; spare: number | null };
  layers: { layer: number; ids: number[]; centroids: string; seen: number[] }[];
}

function restoreClusterState(saved: SavedClusterState, blocks: readonly [number, ClusteredMoEBlock][], rng: Rng, where: string): void {
  rng.setState(saved.rng);
  if (saved.layers.length !== blocks.length) throw new Error(`train: checkpoint ${where} holds clustering state for ${saved.layers.length} layers, the model has ${blocks.length} clustered layers`);
  blocks.forEach(([layer, b], i) => {
    const st = saved.layers[i]!;
    const E = b.cfg.experts;
    const ids = Int32Array.from(st.ids);
    const sorted = Array.from(ids).sort((x, y) => x - y);
    if (st.layer !== layer || ids.length !== E || sorted.some((v, k) => v !== k)) throw new Error(`train: checkpoint ${where}: clustering state of layer ${st.layer} does not fit layer ${layer} (slot ids must be a permutation of 0..${E - 1})`);
    b.ids = ids;
    const bytes = Buffer.from(st.centroids, 'base64');
    if (bytes.byteLength !== E * b.cfg.hidden * 8) throw new Error(`train: checkpoint ${where}: layer ${layer} centroids hold ${bytes.byteLength} bytes, expected ${E * b.cfg.hidden * 8}`);
    b.centroids.setState({ data: new Float64Array(Uint8Array.from(bytes).buffer), seen: st.seen });
  });
}

/** The checkpoint's state.json, with the file named when it cannot be read. */
function readState(ckpt: string): { step: number } & Partial<RunIdentity> & Record<string, unknown> {
  const file = path.join(ckpt, 'state.json');
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as { step: number } & Record<string, unknown>;
    if (!Number.isInteger(s.step) || s.step < 0) throw new Error(`"step" is ${JSON.stringify(s.step)}, expected a non-negative integer`);
    return s;
  } catch (e) {
    throw new Error(`train: ${file} is unreadable: ${(e as Error).message}`);
  }
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const accum = o.accum ?? 1;
  const seed = o.seed ?? 0;
  if (o.seqLen > o.config.maxSeqLen) throw new RangeError(`train: seqLen ${o.seqLen} exceeds the model's maxSeqLen ${o.config.maxSeqLen}`);
  for (const [k, v] of [['steps', o.steps], ['batch', o.batch], ['seqLen', o.seqLen], ['accum', accum]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`train: ${k} must be a positive integer, got ${v}`);
  }
  const sched = { peak: o.lr ?? 3e-3, warmup: o.warmup ?? Math.ceil(o.steps * 0.05), total: o.steps };
  const cc = o.config;
  const every = cc.clusterEvery;
  const warm = cc.clusterWarmup ?? every;
  // clusterDenseWarmup: a standard MoE with the same sizes trains until `warm`, then becomes the clustered model
  const denseWarm = cc.ffn === 'clustered' && cc.clusterDenseWarmup && warm > 0 && warm < o.steps;
  const warn = o.onWarning ?? ((msg: string): void => console.warn(`moekit: warning: ${msg}`));
  const metricsFile = o.out ? path.join(o.out, 'metrics.jsonl') : null;
  const ckptDir = o.out ? path.join(o.out, 'checkpoints') : null;
  let movedAside: string | undefined;
  if (o.out && !o.resume) {
    const held = describeRun(o.out);
    if (held.isRun && !o.overwrite) throw occupiedError(o.out, held);
    if (held.isRun) {
      movedAside = moveAside(o.out);
      warn(`${o.out} held a run (${held.summary}); moved it to ${movedAside}`);
    }
  }
  const last = o.resume && ckptDir ? await latestCheckpoint(ckptDir) : null;
  if (o.resume && ckptDir && !last) throw new Error(`train: --resume, but ${ckptDir} holds no checkpoint`);
  const identity: RunIdentity = { config: o.config, seed, batch: o.batch, seqLen: o.seqLen, accum, data: { tokens: o.tokens.length, sha256: hashTokens(o.tokens), ...o.data } };
  const savedState = last ? readState(last) : null;
  const lastStep = savedState?.step ?? 0;
  if (last && savedState) {
    if (o.steps < lastStep) throw new RangeError(`train: steps ${o.steps} is below the checkpoint's step ${lastStep} (${last}); a resumed run continues to a step count >= ${lastStep}`);
    const { mismatches, unchecked } = resumeMismatches(savedState, identity);
    if (mismatches.length) throw new Error(`train: cannot resume from ${last}: it was trained with other settings:\n  ${mismatches.join('\n  ')}\nRepeat the original settings, or start a new run (another --out, or --overwrite to move this one aside)`);
    if (unchecked.length) warn(`${last} was written by an earlier moekit that did not record ${unchecked.join(', ')}; these could not be checked against this run`);
  }
  // the checks passed: from here on the run owns the directory
  if (o.out) mkdirSync(o.out, { recursive: true });
  if (ckptDir) {
    const t = cleanStaleTemps(ckptDir);
    if (t.removed.length) warn(`removed ${t.removed.length} temporary checkpoint(s) left by an interrupted run in ${ckptDir}: ${t.removed.join(', ')}`);
    if (t.kept.length) warn(`${ckptDir} holds temporary checkpoint(s) of running process(es), left alone: ${t.kept.join(', ')}; is another run writing here?`);
  }
  const warmupConfig = (): ModelConfig => parseConfig({ ...cc, ffn: 'moe', balanceLoss: 'layer' });
  let model = new MoELM(denseWarm && lastStep < warm ? warmupConfig() : cc);
  let params = model.parameters();
  let opt = new AdamW(params, { weightDecay: o.weightDecay ?? 0.1 });
  let startStep = 0;
  if (last) {
    const biases = model.selectionBiasBuffers();
    const state = await loadCheckpoint(last, [...params, ...biases], opt);
    startStep = state.step;
  }
  if (metricsFile) truncateJsonl(metricsFile, startStep, warn);
  const clusterFile = o.out ? path.join(o.out, 'clusters.jsonl') : null;
  if (clusterFile) truncateJsonl(clusterFile, startStep, warn);
  let clustered = model.clusteredBlocks();
  for (const [, b] of clustered) b.tracking = true;
  const regroupRng = new Rng((cc.seed * 2654435761 + seed * 40503 + 1) >>> 0);
  // clustered models: which original expert each slot holds, the activation centroids and the regrouping RNG go
  // into every checkpoint, so a resumed run regroups exactly as an uninterrupted one
  const clusterState = (): { cluster?: SavedClusterState } => (clustered.length === 0 && !denseWarm ? {} : {
    cluster: {
      rng: regroupRng.getState(),
      layers: clustered.map(([layer, b]) => {
        const c = b.centroids.getState();
        return { layer, ids: Array.from(b.ids), centroids: Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength).toString('base64'), seen: Array.from(c.seen) };
      }),
    },
  });
  if (last) {
    const saved = (savedState as { cluster?: SavedClusterState }).cluster;
    if (saved) restoreClusterState(saved, clustered, regroupRng, last);
  }
  const regroups: RegroupLog[] = [];
  const metrics: StepMetrics[] = [];
  const started = performance.now();
  let lastGood: { dir: string; step: number } | null = last ? { dir: last, step: lastStep } : null;
  const save = async (step: number): Promise<void> => {
    if (!ckptDir) return;
    const biases = model.selectionBiasBuffers();
    const dir = await saveCheckpoint(ckptDir, [...params, ...biases], opt, { step, format: 2, ...identity, configHash: hashConfig(o.config), lr: sched.peak, warmup: sched.warmup, ...clusterState() });
    lastGood = { dir, step };
  };
  for (let step = startStep; step < o.steps; step++) {
    const t0 = performance.now();
    zeroGrad(params.map(([, p]) => p));
    let loss = 0;
    let ce = 0;
    let aux = 0;
    let stats: ModelStats = new Array(o.config.layers).fill(null);
    for (let m = 0; m < accum; m++) {
      const { ids, targets } = sampleBatch(o.tokens, o.batch, o.seqLen, seed, step, m);
      const out = tidy(() => {
        const l = model.loss(T.tensor(ids, [o.batch, o.seqLen], 'i32'), T.tensor(targets, [o.batch, o.seqLen], 'i32'));
        backward(accum > 1 ? T.mul(l.loss, 1 / accum) : l.loss);
        return { losses: T.concat([T.reshape(l.loss, [1]), T.reshape(l.ce, [1]), T.reshape(l.aux ?? T.zeros([]), [1])], 0), stats: l.stats };
      });
      // one awaited read per micro-batch: GPU backends never block, CPU ones resolve at once
      const v = await out.losses.data();
      out.losses.dispose();
      await resolveStats(out.stats);
      const r = { loss: v[0]!, ce: v[1]!, aux: v[2]!, stats: out.stats };
      loss += r.loss / accum;
      ce += r.ce / accum;
      aux += r.aux / accum;
      stats = addStats(stats, r.stats);
    }
    if (!Number.isFinite(loss)) {
      // checkpoint step-k holds the weights after k updates, the ones this step's loss was computed with when k = step
      const kept = lastGood
        ? lastGood.step < step
          ? `the last good checkpoint, ${lastGood.dir} (step ${lastGood.step}), is untouched; --resume from it`
          : `the latest checkpoint, ${lastGood.dir} (step ${lastGood.step}), is untouched but holds the weights that gave this loss`
        : ckptDir ? `no checkpoint had been written yet (--checkpoint-every ${o.checkpointEvery ?? 0}${(o.checkpointEvery ?? 0) === 0 ? ': only at the end' : ''}), so there is none to resume from` : 'no output directory: nothing was saved';
      throw new Error(`train: loss became ${loss} at step ${step + 1}; stopping (${kept}). Try a lower --lr.`);
    }
    const gradNorm = await clipGradNormAsync(params.map(([, p]) => p), o.clip ?? 1);
    const lr = cosineLr(sched, step);
    opt.update(lr);
    model.updateBiases(stats);
    const s1 = step + 1;
    if (denseWarm && s1 === warm) {
      // the first clustering: the trained experts are grouped by fused similarity (weights + mean routed inputs
      // of a calibration pass) and compressed; a new optimizer starts on the clustered parameters
      const { ids, targets } = sampleBatch(o.tokens, o.batch, o.seqLen, seed, step, 0);
      const lossOf = (m: MoELM): number => noGrad(() => tidy(() => m.loss(T.tensor(ids, [o.batch, o.seqLen], 'i32'), T.tensor(targets, [o.batch, o.seqLen], 'i32')).loss.item()));
      const before = lossOf(model);
      const calibIds = new Int32Array(4 * o.batch * o.seqLen);
      for (let m = 0; m < 4; m++) calibIds.set(sampleBatch(o.tokens, o.batch, o.seqLen, seed + 7919, step, m).ids, m * o.batch * o.seqLen);
      const calib = calibrate(model, calibIds, { seqLen: o.seqLen, batch: o.batch });
      const conv = toClustered(model, calib, { groups: clusterGroupsOf(cc), rank: cc.clusterRank, alpha: cc.clusterAlpha, tau: cc.clusterTau, seed: regroupRng.nextU32(), config: cc });
      model.dispose();
      model = conv.model;
      params = model.parameters();
      // attention, embeddings and norms continue with their AdamW history; the routers and experts start fresh
      const next = new AdamW(params, { weightDecay: o.weightDecay ?? 0.1 });
      next.carryFrom(opt, (n) => !n.includes('.mlp.'));
      opt.dispose();
      opt = next;
      clustered = model.clusteredBlocks();
      for (const [, b] of clustered) b.tracking = true;
      const after = lossOf(model);
      const logs = conv.layers.map((x): RegroupLog => ({
        step: s1, layer: x.layer, membership: x.groups, intra_similarity: x.intraSimilarity, changed_groups: x.groups.length, rel_error: x.relError, loss_before: before, loss_after: after,
      }));
      regroups.push(...logs);
      if (clusterFile) appendFileSync(clusterFile, logs.map((l) => `${JSON.stringify(l)}\n`).join(''));
      o.onRegroup?.(logs);
    } else if (clustered.length > 0 && every > 0 && s1 >= warm && (s1 - warm) % every === 0 && s1 < o.steps) {
      const { ids, targets } = sampleBatch(o.tokens, o.batch, o.seqLen, seed, step, 0);
      const evalLoss = (): number => {
        for (const [, b] of clustered) b.tracking = false;
        const v = noGrad(() => tidy(() => model.loss(T.tensor(ids, [o.batch, o.seqLen], 'i32'), T.tensor(targets, [o.batch, o.seqLen], 'i32')).loss.item()));
        for (const [, b] of clustered) b.tracking = true;
        return v;
      };
      const before = evalLoss();
      const events = clustered.map(([layer, b]) => {
        const e = b.regroup({ alpha: cc.clusterAlpha, tau: cc.clusterTau, rng: regroupRng });
        if (e.changedGroups > 0) opt.reset(b.regroupTensors());
        return { layer, e };
      });
      const after = evalLoss();
      const logs = events.map(({ layer, e }): RegroupLog => ({
        step: s1, layer, membership: e.membership, intra_similarity: e.intraSimilarity, changed_groups: e.changedGroups, rel_error: e.relError, loss_before: before, loss_after: after,
      }));
      regroups.push(...logs);
      if (clusterFile) appendFileSync(clusterFile, logs.map((l) => `${JSON.stringify(l)}\n`).join(''));
      o.onRegroup?.(logs);
    }
    const seconds = (performance.now() - t0) / 1000;
    const tokens = o.batch * o.seqLen * accum;
    const moe = stats.filter((s): s is NonNullable<typeof s> => s !== null);
    const m: StepMetrics = {
      step: step + 1, loss, ce, aux, lr, grad_norm: gradNorm, tokens, tokens_per_s: tokens / seconds,
      tokens_per_expert: moe.map((s) => s.tokensPerExpert),
      load_variance: moe.map((s) => loadStats(s.tokensPerExpert).variance),
      imbalance: moe.map((s) => loadStats(s.tokensPerExpert).imbalance),
      dropped: moe.map((s) => s.dropped),
    };
    if (moe.some((s) => s.crossGroup !== undefined)) m.cross_group = moe.map((s) => (s.crossGroup ?? 0) / tokens);
    metrics.push(m);
    if (metricsFile) appendFileSync(metricsFile, `${JSON.stringify(m)}\n`);
    o.onStep?.(m);
    const ckptEvery = o.checkpointEvery ?? 0;
    if (ckptEvery > 0 && (step + 1) % ckptEvery === 0 && step + 1 < o.steps) await save(step + 1);
  }
  if (startStep < o.steps) await save(o.steps);
  opt.dispose();
  for (const [, b] of clustered) b.tracking = false;
  return { model, metrics, regroups, startStep, seconds: (performance.now() - started) / 1000, ...(movedAside ? { movedAside } : {}) };
}
