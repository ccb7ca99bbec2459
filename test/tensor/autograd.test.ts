// Gradient checks (float64 finite differences) for every differentiable op, plus tape behaviour.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { GRAD } from '../../src/tensor/autograd.js';
import { NON_DIFFERENTIABLE } from '../../src/tensor/engine.js';
import { Op } from '../../src/tensor/ops.js';
import { CASES, type OpCase } from '../helpers/cases.js';

const differentiable = Object.values(Op).filter((op) => GRAD[op] !== null);

describe('gradcheck: every differentiable op', () => {
  it('the non-differentiable ops are exactly the expected ones', () => {
    const nonDiff = Object.values(Op).filter((op) => GRAD[op] === null).sort();
    expect(nonDiff).toEqual([Op.Argmax, Op.AttentionGrad, Op.Compare, Op.CrossEntropyGrad, Op.Dequantize, Op.GeluGrad, Op.GroupedMatmulWeightGrad, Op.Quantize, Op.RMSNormGrad, Op.ExpertBins, Op.RouteTopK, Op.MoeFfn, Op.ClusteredFfn, Op.RaggedAttention].sort());
    // the engine records exactly the ops that have a rule
    expect([...NON_DIFFERENTIABLE].sort()).toEqual(nonDiff);
  });
  for (const op of differentiable) {
    for (const n of [1, 3]) {
      const gen = CASES[op] as (r: mk.Rng, n: number) => OpCase[];
      for (const c of gen(new mk.Rng(7 + n), n)) {
        if (!c.inputs.some((i) => (i.dtype ?? 'f32') === 'f32' && i.grad !== false)) continue;
        it(`${op}: ${c.name}`, () => {
          const r = mk.gradcheck((...xs) => mk.run(op, xs, c.params as never)[0]!, c.inputs);
          if (!r.ok) console.log(op, c.name, r);
          expect(r.ok).toBe(true);
        });
      }
    }
  }
});

describe('autograd tape', () => {
  beforeAll(async () => {
    await mk.setBackend('js');
  });

  it('accumulates gradients across backward calls and zeroGrad clears them', () => {
    const w = mk.variable(mk.tensor([1, 2, 3]));
    for (let i = 0; i < 2; i++) mk.tidy(() => mk.backward(mk.sum(mk.mul(w, w))));
    expect(w.grad!.toArray()).toEqual([4, 8, 12]);
    mk.zeroGrad([w]);
    expect(w.grad).toBeNull();
  });

  it('noGrad records nothing', () => {
    const w = mk.variable(mk.tensor([1, 2]));
    const y = mk.noGrad(() => mk.mul(w, 3));
    expect(y.requiresGrad).toBe(false);
    expect(() => mk.backward(mk.sum(y))).toThrow(/does not require grad/);
  });

  it('a tensor used twice gets both contributions; a diamond graph sums paths', () => {
    const x = mk.variable(mk.tensor([2]));
    mk.tidy(() => {
      const a = mk.mul(x, x); // x²
      const b = mk.exp(x);
      mk.backward(mk.sum(mk.add(mk.mul(a, b), a)));
    });
    const v = 2;
    expect(x.grad!.item()).toBeCloseTo(2 * v * Math.exp(v) + v * v * Math.exp(v) + 2 * v, 4);
  });

  it('backward of a non-scalar needs a seed', () => {
    const x = mk.variable(mk.tensor([1, 2]));
    expect(() => mk.backward(mk.mul(x, 2))).toThrow(/seed/);
  });

  it('tidy frees intermediates and keeps results; backward leaves no stray tensors', () => {
    const be = mk.getBackend();
    const w = mk.variable(mk.tensor([[1, 2], [3, 4]]));
    const before = be.bytesInUse();
    const out = mk.tidy(() => {
      const h = mk.silu(mk.matmul(w, w));
      mk.backward(mk.mean(h));
      return mk.sum(h);
    });
    // the kept gradient (4 floats) and the returned sum (1 float) remain
    expect(be.bytesInUse() - before).toBe((4 + 1) * 4);
    out.dispose();
    w.grad!.dispose();
    w.dispose();
  });
});
