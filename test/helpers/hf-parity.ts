// A Hugging Face fixture against transformers' golden files on the current backend: logits (training and inference
// forward) and router logits within 1e-4, greedy ids exact, one training step's loss within 1e-5 and gradients within
// 1e-4 · max(1, max |g|). The expects are inside; each check returns what it measured, for the caller to log.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import * as mk from '../../src/index.js';
import type { HfArch } from '../../src/models/hf/config.js';
import { Checkpoint, loadHfModel, type HfModel } from '../../src/models/hf/load.js';
import { hfTensors } from '../../src/models/hf/weights.js';
import { generate, generateAsync } from '../../src/serve/generate.js';
import { ids, maxAbsDiff } from './compare.js';
import { fixture } from './fixtures.js';

/** reference.json */
export interface Reference {
  input_ids: number[];
  logits: number[][];
  /** absent for glm4_moe and deepseek_v3 (transformers does not return them) */
  router_logits?: number[][][];
  greedy_from_first8: number[];
}
/** grads.json (the gradients themselves are in grads.safetensors) */
export interface GradRef {
  input_ids: number[];
  aux_loss: number;
  loss_total: number;
  grad_names: string[];
}

/** The fixture directory of `arch` (/work/shared/fixtures/hf/ARCH or under MOEKIT_FIXTURES). */
export const fixtureDir = (arch: string): string => path.dirname(fixture(`hf/${arch}/config.json`));
export const readReference = (dir: string): Reference => JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Reference;
const readGradRef = (dir: string): GradRef => JSON.parse(readFileSync(path.join(dir, 'grads.json'), 'utf8')) as GradRef;

/** Whether the current backend reads synchronously (js, wasm); GPU backends read only when awaited. */
const syncReads = (): boolean => mk.getBackend().readSync !== undefined;
const read = async (t: mk.Tensor): Promise<ArrayLike<number>> => (syncReads() ? t.dataSync() : t.data());

/**
 * Logits, and router logits where reference.json has them (`routerLogits: true` expects it to), of the forwards with
 * each `aux` (training forward: true, inference forward with fused expert kernels: false) within 1e-4 of the reference.
 * Returns the largest |diff| of each (routerLogits null where the fixture has none).
 */
export async function logitsParity(
  model: mk.MoELM, ref: Reference, opts: { aux?: readonly boolean[]; routerLogits?: boolean } = {},
): Promise<{ logits: number; routerLogits: number | null }> {
  if (opts.routerLogits) expect(ref.router_logits, 'reference.json router_logits').toBeDefined();
  const refRouters = ref.router_logits;
  let dl = 0;
  let dr = 0;
  for (const aux of opts.aux ?? [true, false]) {
    const o = mk.noGrad(() => model.forward(ids(ref.input_ids), { aux }));
    dl = Math.max(dl, maxAbsDiff(await read(o.logits), ref.logits.flat()));
    if (!refRouters) continue;
    const routers = o.routerLogits.filter((t): t is mk.Tensor => t !== null);
    expect(routers.length).toBe(refRouters.length);
    for (const [l, t] of routers.entries()) dr = Math.max(dr, maxAbsDiff(await read(t), refRouters[l]!.flat()));
  }
  expect(dl).toBeLessThanOrEqual(1e-4);
  expect(dr).toBeLessThanOrEqual(1e-4);
  return { logits: dl, routerLogits: refRouters ? dr : null };
}

/** Greedy generation from the first 8 ids (KV cache; generateAsync where reads must be awaited) equals transformers'. */
export async function greedyParity(hf: HfModel, ref: Reference): Promise<void> {
  const opts = { maxNewTokens: ref.greedy_from_first8.length - 8, greedy: true, stopIds: hf.eosTokenIds };
  const prompt = ref.input_ids.slice(0, 8);
  const g = syncReads() ? generate(hf.model, prompt, opts) : await generateAsync(hf.model, prompt, opts);
  expect(g.ids).toEqual(ref.greedy_from_first8);
}

/**
 * One training step on grads.json's ids: loss within 1e-5 of loss_total, the gradients named as transformers names
 * them, each within 1e-4 · max(1, max |g|) of grads.safetensors. Returns the loss |diff| and the worst relative diff.
 */
export async function gradParity(hf: HfModel, dir: string): Promise<{ loss: number; grads: number }> {
  const gr = readGradRef(dir);
  const T = gr.input_ids.length;
  const out = hf.model.loss(ids(gr.input_ids), mk.tensor(Int32Array.from([...gr.input_ids.slice(1), -100]), [1, T], 'i32'));
  mk.backward(out.loss);
  // transformers adds router_aux_loss_coef · aux_loss with the coefficient of config.json (the model keeps it from
  // construction), so loss_total = ce + config coef · aux_loss
  const loss = Math.abs((await read(out.loss))[0]! - gr.loss_total);
  expect(loss).toBeLessThanOrEqual(1e-5);
  const device = mk.getBackend();
  let pick = (p: mk.Tensor): mk.Tensor | null => p.grad;
  if (!syncReads()) {
    // read every gradient from the device, then name them as transformers does (hfTensors reads synchronously: js copies)
    const host = new Map<mk.Tensor, Float32Array>();
    for (const [, p] of hf.model.parameters()) if (p.grad) host.set(p, Float32Array.from(await p.grad.data()));
    mk.useBackend(new mk.JsBackend());
    pick = (p) => (host.has(p) ? mk.tensor(host.get(p)!, p.shape) : null);
  }
  try {
    const mine = new Map([...hfTensors(hf.model, hf.arch, 'fused', pick)].map((t) => [t.name, t]));
    expect([...mine.keys()].sort()).toEqual([...gr.grad_names].sort());
    const refGrads = await Checkpoint.open(path.join(dir, 'grads.safetensors'));
    let worst = 0;
    try {
      for (const name of gr.grad_names) {
        const want = await refGrads.readF32(name);
        const d = maxAbsDiff(mine.get(name)!.data, want) / Math.max(1, ...Array.from(want, Math.abs));
        worst = Math.max(worst, d);
        expect(d, name).toBeLessThanOrEqual(1e-4);
      }
    } finally {
      await refGrads.close();
    }
    return { loss, grads: worst };
  } finally {
    mk.useBackend(device);
  }
}

export interface FixtureParity {
  /** max |diff| of the logits over the training and inference forwards */
  logits: number;
  /** max |diff| of the router logits, null where the fixture has none */
  routerLogits: number | null;
  /** |loss − loss_total| of the training step */
  loss: number;
  /** worst gradient |diff| / max(1, max |g|) */
  grads: number;
}

/** Every check above for the fixture of `arch` on the current backend (the model is loaded here and disposed after). */
export async function fixtureParity(arch: HfArch, opts: { routerLogits?: boolean } = {}): Promise<FixtureParity> {
  const dir = fixtureDir(arch);
  const ref = readReference(dir);
  const hf = await loadHfModel(dir);
  try {
    expect(hf.arch).toBe(arch);
    const l = await logitsParity(hf.model, ref, opts);
    await greedyParity(hf, ref);
    return { ...l, ...(await gradParity(hf, dir)) };
  } finally {
    hf.model.dispose();
  }
}

/** One line of what fixtureParity measured. */
export const parityLine = (r: FixtureParity): string =>
  `logits max |diff| ${r.logits.toExponential(2)}, router logits ${r.routerLogits === null ? '(none in the fixture)' : r.routerLogits.toExponential(2)}, greedy exact, loss |diff| ${r.loss.toExponential(2)}, worst gradient ${r.grads.toExponential(2)} (relative)`;
