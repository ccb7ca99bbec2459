// AdamW against a scalar reference implementation, gradient clipping, and the cosine schedule.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { AdamW, clipGradNorm, clipGradNormAsync } from '../../src/train/optim.js';
import { cosineLr } from '../../src/train/schedule.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

/** Plain-number AdamW (decoupled decay), the textbook update, as an independent reference. */
function referenceAdamW(p: number[], grads: number[][], lrs: number[], b1: number, b2: number, eps: number, wd: number): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const x = [...p];
  grads.forEach((g, t) => {
    for (let i = 0; i < x.length; i++) {
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
      const mh = m[i]! / (1 - b1 ** (t + 1));
      const vh = v[i]! / (1 - b2 ** (t + 1));
      x[i] = x[i]! * (1 - lrs[t]! * wd) - lrs[t]! * (mh / (Math.sqrt(vh) + eps));
    }
  });
  return x;
}

describe('AdamW', () => {
  it('matches the scalar reference over several steps, updating parameters in place', () => {
    const w = mk.variable(mk.tensor([[0.5, -1.5], [2, 0.25]]));
    const opt = new AdamW([['w', w]], { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
    const grads = [[0.1, -0.2, 0.3, 0.4], [-0.5, 0.1, 0.2, -0.1], [0.05, 0.05, -0.3, 0.2]];
    const lrs = [0.1, 0.05, 0.01];
    grads.forEach((g, t) => {
      w.grad?.dispose();
      w.grad = mk.keep(mk.tensor(g, [2, 2]));
      opt.update(lrs[t]!);
    });
    const ref = referenceAdamW([0.5, -1.5, 2, 0.25], grads, lrs, 0.9, 0.99, 1e-8, 0.1);
    const got = w.toArray();
    for (let i = 0; i < 4; i++) expect(got[i]).toBeCloseTo(ref[i]!, 6);
    expect(opt.step).toBe(3);
  });

  it('minimises a quadratic; 1-d parameters get no weight decay by default', () => {
    const w = mk.variable(mk.tensor([3, -2, 1]));
    const opt = new AdamW([['w', w]], { weightDecay: 0.5 });
    for (let i = 0; i < 300; i++) {
      mk.zeroGrad([w]);
      mk.tidy(() => mk.backward(mk.sum(mk.mul(mk.sub(w, mk.tensor([1, 1, 1])), mk.sub(w, mk.tensor([1, 1, 1]))))));
      opt.update(0.05);
    }
    for (const v of w.toArray()) expect(Math.abs(v - 1)).toBeLessThan(0.05);
  });

  it('rejects bad betas by name', () => {
    expect(() => new AdamW([], { beta2: 1 })).toThrow('AdamW: beta2 must be in [0, 1), got 1');
  });
});

describe('AdamW.carryFrom', () => {
  it('a rebuilt parameter set continues the history of the parameters it kept: the same updates as never rebuilding', () => {
    const grads = [[0.5, -1, 2], [1, 1, -0.5], [-2, 0.25, 1]];
    const mkp = (): mk.Tensor => mk.variable(mk.tensor([1, 2, 3]));
    // one optimizer for three steps
    const a = mkp();
    const oa = new AdamW([['keep', a]], { weightDecay: 0.1 });
    // two steps, then a new optimizer over [kept, new] that carries 'keep' (and not 'other'), one more step
    const b = mkp();
    const ob = new AdamW([['keep', b], ['other', mk.variable(mk.tensor([5, 5]))]], { weightDecay: 0.1 });
    const fresh = mk.variable(mk.tensor([9, 9]));
    grads.forEach((g, s) => {
      a.grad = mk.keep(mk.tensor(g));
      oa.update(1e-2);
      if (s === 2) {
        const oc = new AdamW([['keep', b], ['other', fresh]], { weightDecay: 0.1 });
        expect(oc.carryFrom(ob, (n) => n !== 'other')).toBe(1);
        b.grad = mk.keep(mk.tensor(g));
        fresh.grad = mk.keep(mk.tensor([1, 1]));
        oc.update(1e-2);
        expect(oc.state().t).toEqual([3, 1]); // the kept parameter's bias correction continues, the other starts over
      } else {
        b.grad = mk.keep(mk.tensor(g));
        ob.update(1e-2);
      }
    });
    expect(b.toArray()).toEqual(a.toArray());
  });
});

describe('clipGradNorm', () => {
  it('the asynchronous form gives the same norm and the same clipped gradients', async () => {
    const mkv = (): mk.Tensor[] => [mk.variable(mk.tensor([3, 0, 1])), mk.variable(mk.tensor([0, 4]))];
    const [a, b] = mkv();
    const [c, d] = mkv();
    for (const [x, g] of [[a, [3, 0, 1]], [b, [0, 4]], [c, [3, 0, 1]], [d, [0, 4]]] as const) x!.grad = mk.keep(mk.tensor([...g]));
    const n1 = clipGradNorm([a!, b!], 1);
    const n2 = await clipGradNormAsync([c!, d!], 1);
    expect(n2).toBe(n1);
    expect(c!.grad!.toArray()).toEqual(a!.grad!.toArray());
    expect(d!.grad!.toArray()).toEqual(b!.grad!.toArray());
  });


  it('scales gradients to the max norm and returns the norm before clipping', () => {
    const a = mk.variable(mk.tensor([3, 0]));
    const b = mk.variable(mk.tensor([0, 4]));
    a.grad = mk.keep(mk.tensor([3, 0]));
    b.grad = mk.keep(mk.tensor([0, 4]));
    expect(clipGradNorm([a, b], 1)).toBeCloseTo(5, 6);
    expect(a.grad.toArray()[0]).toBeCloseTo(0.6, 5);
    expect(b.grad.toArray()[1]).toBeCloseTo(0.8, 5);
    expect(clipGradNorm([a, b], 10)).toBeCloseTo(1, 4);
    expect(a.grad.toArray()[0]).toBeCloseTo(0.6, 5);
  });
});

describe('cosineLr', () => {
  it('warms up linearly, decays by cosine to the floor, then stays there', () => {
    const s = { peak: 1e-3, warmup: 10, total: 110, floor: 1e-4 };
    expect(cosineLr(s, 0)).toBeCloseTo(1e-4, 12);
    expect(cosineLr(s, 9)).toBeCloseTo(1e-3, 12);
    expect(cosineLr(s, 60)).toBeCloseTo(1e-4 + 0.5 * 9e-4, 12);
    expect(cosineLr(s, 110)).toBeCloseTo(1e-4, 12);
    expect(cosineLr(s, 500)).toBeCloseTo(1e-4, 12);
  });
});
