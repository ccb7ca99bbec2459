// Dispatch and experts: bins by hand, capacity drops (lowest token first), permute/unpermute, grouped SwiGLU experts.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { experts, indicesAndBins, offsetsTensor, permute, unpermute } from '../../src/moe/index.js';
import { swiglu } from '../../src/nn/index.js';
import { maxAbsDiff } from '../helpers/compare.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const ids = () => mk.tensor([[2, 0], [0, 2], [2, 1], [0, 2]], [4, 2], 'i32'); // (T=4, K=2), E = 4

describe('indicesAndBins', () => {
  it('sorts slots by expert then token, with counts and offsets (empty expert 3)', () => {
    const b = indicesAndBins(ids(), 4);
    expect(Array.from(b.order)).toEqual([1, 2, 6, 5, 0, 3, 4, 7]);
    expect(Array.from(b.tokens)).toEqual([0, 1, 3, 2, 0, 1, 2, 3]);
    expect(b.counts).toEqual([3, 1, 4, 0]);
    expect(Array.from(b.offsets)).toEqual([0, 3, 4, 8, 8]);
    expect(b.dropped).toBe(0);
  });

  it('capacity mode drops the slots of the highest token indices', () => {
    const b = indicesAndBins(ids(), 4, { capacityFactor: 1 }); // capacity ceil(1·8/4) = 2
    expect(b.capacity).toBe(2);
    expect(b.routed).toEqual([3, 1, 4, 0]);
    expect(b.counts).toEqual([2, 1, 2, 0]);
    expect(Array.from(b.tokens)).toEqual([0, 1, 2, 0, 1]);
    expect(b.dropped).toBe(3);
  });

  it('names bad input', () => {
    expect(() => indicesAndBins(mk.tensor([[0, 5]], [1, 2], 'i32'), 4)).toThrow('slot 1 (token 0) names expert 5, outside [0, 4)');
    expect(() => indicesAndBins(mk.tensor([[0, 1]]), 4)).toThrow('experts must be i32 (T, K), got f32(1, 2)');
    expect(() => indicesAndBins(ids(), 4, { capacityFactor: 0 })).toThrow('capacityFactor 0 must be > 0');
  });
});

describe('permute / unpermute', () => {
  it('unpermute(permute(x)) is the weighted sum over a token\'s slots', () => {
    const x = mk.randn([4, 3], new mk.Rng(2)); // (T, H)
    const w = mk.tensor([[0.5, 0.25], [1, 2], [3, 0], [-1, 1]]); // (T, K)
    const b = indicesAndBins(ids(), 4);
    const xs = permute(x, b); // (8, H)
    expect(xs.shape).toEqual([8, 3]);
    const y = unpermute(xs, b, w, 4).toArray();
    const xv = x.toArray();
    const factor = [0.75, 3, 3, 0];
    expect(maxAbsDiff(y, xv.map((v, i) => v * factor[Math.floor(i / 3)]!))).toBeLessThan(1e-6);
    expect(() => unpermute(mk.zeros([7, 3]), b, w, 4)).toThrow('unpermute: y f32(7, 3) must have 8 rows (kept slots)');
  });
});

describe('experts', () => {
  it('grouped SwiGLU equals a dense SwiGLU per expert segment (with an empty expert)', () => {
    const [E, H, I] = [4, 5, 6];
    const rng = new mk.Rng(4);
    const w = { gate: mk.randn([E, H, I], rng), up: mk.randn([E, H, I], rng), down: mk.randn([E, I, H], rng) };
    const b = indicesAndBins(ids(), E);
    const xs = mk.randn([8, H], rng); // (N, H)
    const y = experts(xs, offsetsTensor(b), w).toArray();
    for (let e = 0; e < E; e++) {
      const [lo, hi] = [b.offsets[e]!, b.offsets[e + 1]!];
      if (hi === lo) continue;
      const pick = (t: mk.Tensor) => mk.reshape(mk.slice(t, [e, 0, 0], [1, -1, -1]), t.shape.slice(1));
      const ref = swiglu(mk.slice(xs, [lo, 0], [hi - lo, H]), mk.transpose(pick(w.gate)), mk.transpose(pick(w.up)), mk.transpose(pick(w.down))).toArray();
      expect(maxAbsDiff(y.slice(lo * H, hi * H), ref)).toBeLessThan(1e-4);
    }
    expect(() => experts(mk.zeros([8, 4]), offsetsTensor(b), w)).toThrow(/experts: xs f32\(8, 4\), gate f32\(4, 5, 6\)/);
  });
});
