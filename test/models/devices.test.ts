// MoELM on every device: loss and gradients equal the js reference; AdamW steps allocate nothing new after the first.
import { describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import type { Backend } from '../../src/backend/backend.js';
import { MoELM, tiny, type ModelConfigInput } from '../../src/models/index.js';
import { DEVICES, JS, useDevice } from '../helpers/devices.js';

const [B, T] = [2, 10];
const cfg: ModelConfigInput = { ...tiny, router: 'sigmoid-group', groups: 2, topGroups: 2, sharedWidth: 16, sharedGate: true, tieEmbeddings: false };
const rng = new mk.Rng(5);
const ids = Array.from({ length: B * T }, () => rng.int(tiny.vocabSize));
const targets = ids.map((_, i) => (i % T === T - 1 ? -100 : ids[i + 1]!));

/** Loss and every gradient of a freshly initialised model (same seed, so the same weights) on `backend`. */
function lossAndGrads(backend: Backend): { loss: number; grads: Map<string, number[]> } {
  mk.useBackend(backend);
  const m = new MoELM(cfg);
  const loss = mk.tidy(() => {
    const l = m.loss(mk.tensor(ids, [B, T], 'i32'), mk.tensor(targets, [B, T], 'i32'));
    mk.backward(l.loss);
    return l.loss.item();
  });
  const grads = new Map(m.parameters().map(([n, p]) => [n, p.grad!.toArray()]));
  m.dispose();
  return { loss, grads };
}

const reference = lossAndGrads(new mk.JsBackend());

describe.each([JS, ...DEVICES])('MoELM on $name', (device) => {
  const dev = useDevice(device);

  it('loss and every gradient equal the js reference', (ctx) => {
    const got = lossAndGrads(dev.backend(ctx));
    expect(Math.abs(got.loss - reference.loss)).toBeLessThan(1e-4);
    let worst = 0;
    for (const [n, g] of reference.grads) {
      const scale = Math.max(1e-3, ...g.map(Math.abs));
      const diff = got.grads.get(n)!.reduce((m, v, i) => Math.max(m, Math.abs(v - g[i]!)), 0) / scale;
      worst = Math.max(worst, diff);
      expect(diff, `gradient of ${n}`).toBeLessThan(1e-3);
    }
    console.log(`${device.name}: loss diff ${Math.abs(got.loss - reference.loss).toExponential(2)}, worst relative gradient diff ${worst.toExponential(2)}`);
  });

  it('AdamW steps with bias updates allocate nothing new after the first', (ctx) => {
    const backend = dev.use(ctx);
    const m = new MoELM(cfg);
    const x = mk.tensor(ids, [B, T], 'i32');
    const y = mk.tensor(targets, [B, T], 'i32');
    const params = m.parameters();
    const opt = new mk.AdamW(params);
    const inUse: number[] = [];
    const losses: number[] = [];
    for (let s = 0; s < 5; s++) {
      losses.push(mk.tidy(() => {
        const l = m.loss(x, y);
        mk.backward(l.loss);
        m.updateBiases(l.stats);
        return l.ce.item();
      }));
      opt.update(1e-2);
      mk.zeroGrad(params.map(([, p]) => p));
      inUse.push(backend.bytesInUse());
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
    expect(new Set(inUse.slice(1)).size).toBe(1);
    opt.dispose();
    m.dispose();
    x.dispose();
    y.dispose();
  });
});
