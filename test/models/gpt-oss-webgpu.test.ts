// gpt_oss on webgpu (SwiftShader where available; skipped with the reason otherwise): attention sinks against the
// explicit softmax, the transformers fixture (logits, router logits, greedy ids, gradients), and a model of other sizes
// against the js backend. Reads only when awaited.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import type { Backend } from '../../src/backend/backend.js';
import { Checkpoint, loadHfModel } from '../../src/models/hf/load.js';
import { hfTensors } from '../../src/models/hf/weights.js';
import { sinkAttention } from '../../src/nn/sinks.js';
import { generateAsync } from '../../src/serve/generate.js';
import { SEQ, dir, explicitSinkAttention, ids, lossAndGrads, maxAbsDiff, otherModel, webgpu } from '../helpers/gpt-oss.js';

describe('gpt_oss on webgpu (reads only when awaited)', () => {
  let backend: Backend | null = null;
  let reason = '';
  beforeAll(async () => {
    const r = await webgpu.create();
    if (typeof r === 'string') {
      reason = r;
      console.warn(`[skip] device webgpu: ${r}`);
    } else backend = r;
  }, 60_000);
  afterAll(async () => {
    mk.useBackend(new mk.JsBackend());
    await backend?.dispose();
  });
  const read = async (t: mk.Tensor): Promise<number[]> => Array.from(await t.data());

  it('attention sinks with a cached step and a window: output and gradients equal the explicit softmax', async (ctx) => {
    if (!backend) return ctx.skip(reason);
    mk.useBackend(backend);
    const [B, T, S, Hq, Hkv, D, window] = [2, 3, 11, 6, 2, 5, 4];
    const rng = new mk.Rng(7);
    const make = (shape: number[], std = 1): mk.Tensor => mk.variable(mk.randn(shape, rng, std));
    const [q, k, v, sinks] = [make([B, T, Hq, D]), make([B, S, Hkv, D]), make([B, S, Hkv, D]), make([Hq], 2)];
    const r = mk.randn([B, T, Hq, D], rng);
    const run = async (f: () => mk.Tensor): Promise<number[][]> => {
      for (const t of [q, k, v, sinks]) t.grad = null;
      const o = f();
      mk.backward(mk.sum(mk.mul(o, r)));
      return Promise.all([o, ...[q, k, v, sinks].map((t) => t.grad!)].map(read));
    };
    const got = await run(() => sinkAttention(q, k, v, sinks, { causal: true, window }));
    const want = await run(() => explicitSinkAttention(q, k, v, sinks, window));
    ['o', 'dq', 'dk', 'dv', 'dsinks'].forEach((n, i) => expect(maxAbsDiff(got[i]!, want[i]!), n).toBeLessThan(2e-5));
  }, 60_000);

  it('fixture: logits and router logits within 1e-4 (training and inference forward), greedy ids exact, gradients within 1e-4 · max(1, max |g|)', async (ctx) => {
    if (!backend) return ctx.skip(reason);
    mk.useBackend(backend);
    const ref = JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as { input_ids: number[]; logits: number[][]; router_logits: number[][][]; greedy_from_first8: number[] };
    const hf = await loadHfModel(dir);
    let dl = 0;
    let dr = 0;
    for (const aux of [true, false]) {
      const o = mk.noGrad(() => hf.model.forward(ids(ref.input_ids), { aux }));
      dl = Math.max(dl, maxAbsDiff(await read(o.logits), ref.logits.flat()));
      for (const [l, t] of o.routerLogits.entries()) dr = Math.max(dr, maxAbsDiff(await read(t!), ref.router_logits[l]!.flat()));
    }
    expect(dl).toBeLessThanOrEqual(1e-4);
    expect(dr).toBeLessThanOrEqual(1e-4);
    const g = await generateAsync(hf.model, ref.input_ids.slice(0, 8), { maxNewTokens: ref.greedy_from_first8.length - 8, greedy: true, stopIds: hf.eosTokenIds });
    expect(g.ids).toEqual(ref.greedy_from_first8);
    const gr = JSON.parse(readFileSync(path.join(dir, 'grads.json'), 'utf8')) as { input_ids: number[]; loss_total: number; grad_names: string[] };
    const T = gr.input_ids.length;
    const out = hf.model.loss(ids(gr.input_ids), mk.tensor(Int32Array.from([...gr.input_ids.slice(1), -100]), [1, T], 'i32'));
    mk.backward(out.loss);
    const loss = (await read(out.loss))[0]!;
    expect(Math.abs(loss - gr.loss_total)).toBeLessThanOrEqual(1e-5);
    const params = new Map(hf.model.parameters());
    const host = new Map<string, Float32Array>();
    for (const [n, p] of params) host.set(n, Float32Array.from(await p.grad!.data()));
    // hfTensors reads synchronously: give it the gradients as host tensors on the js backend
    mk.useBackend(new mk.JsBackend());
    const gradOf = new Map([...params].map(([n, p]) => [p, mk.tensor(host.get(n)!, p.shape)]));
    const mine = new Map([...hfTensors(hf.model, 'gpt_oss', 'fused', (p) => gradOf.get(p)!)].map((t) => [t.name, t]));
    expect([...mine.keys()].sort()).toEqual([...gr.grad_names].sort());
    const refGrads = await Checkpoint.open(path.join(dir, 'grads.safetensors'));
    let worst = 0;
    for (const name of gr.grad_names) {
      const want = await refGrads.readF32(name);
      const d = maxAbsDiff(mine.get(name)!.data, want) / Math.max(1, ...Array.from(want, Math.abs));
      worst = Math.max(worst, d);
      expect(d, name).toBeLessThanOrEqual(1e-4);
    }
    await refGrads.close();
    console.log(`webgpu gpt_oss: logits max |diff| ${dl.toExponential(2)}, router logits ${dr.toExponential(2)}, greedy exact, loss |diff| ${Math.abs(loss - gr.loss_total).toExponential(2)}, worst gradient ${worst.toExponential(2)} (relative)`);
  }, 120_000);

  it('other sizes: loss and every gradient equal the js backend\'s', async (ctx) => {
    if (!backend) return ctx.skip(reason);
    const want = lossAndGrads(new mk.JsBackend());
    mk.useBackend(backend);
    const m = otherModel();
    const l = m.loss(ids(SEQ), mk.tensor(Int32Array.from([...SEQ.slice(1), -100]), [1, SEQ.length], 'i32'));
    mk.backward(l.loss);
    const loss = (await read(l.loss))[0]!;
    expect(Math.abs(loss - want.loss)).toBeLessThan(1e-4);
    let worst = 0;
    for (const [n, p] of m.parameters()) {
      const g = want.grads.get(n)!;
      const d = maxAbsDiff(await read(p.grad!), g) / Math.max(1, ...g.map(Math.abs));
      worst = Math.max(worst, d);
      expect(d, n).toBeLessThan(1e-4);
    }
    console.log(`webgpu gpt_oss other sizes: loss |diff| ${Math.abs(loss - want.loss).toExponential(2)}, worst gradient ${worst.toExponential(2)} (relative)`);
  }, 120_000);
});
