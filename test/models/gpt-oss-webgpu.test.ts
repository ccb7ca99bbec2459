// gpt_oss on webgpu (SwiftShader where available; skipped with the reason otherwise): attention sinks against the
// explicit softmax and a model of other sizes against the js backend (the transformers fixture is checked on webgpu in
// hf-devices.test.ts). Reads only when awaited.
import { describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { sinkAttention } from '../../src/nn/sinks.js';
import { ids, maxAbsDiff } from '../helpers/compare.js';
import { WEBGPU, useDevice } from '../helpers/devices.js';
import { SEQ, explicitSinkAttention, lossAndGrads, otherModel } from '../helpers/gpt-oss.js';

describe('gpt_oss on webgpu (reads only when awaited)', () => {
  const dev = useDevice(WEBGPU);
  const read = async (t: mk.Tensor): Promise<number[]> => Array.from(await t.data());

  it('attention sinks with a cached step and a window: output and gradients equal the explicit softmax', async (ctx) => {
    dev.use(ctx);
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

  it('other sizes: loss and every gradient equal the js backend\'s', async (ctx) => {
    const backend = dev.backend(ctx);
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
