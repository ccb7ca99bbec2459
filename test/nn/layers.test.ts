// nn layers: Module naming and counting, Linear/Embedding/RMSNorm/SwiGLU shapes, values and misuse messages.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { Embedding, Linear, Module, ModuleList, RMSNorm, SwiGLU, swiglu } from '../../src/nn/index.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

class Block extends Module {
  readonly mlp: SwiGLU;
  readonly norm: RMSNorm;
  constructor(rng: mk.Rng) {
    super();
    this.norm = this.addModule('input_layernorm', new RMSNorm(8));
    this.mlp = this.addModule('mlp', new SwiGLU(8, 12, rng));
  }
}

describe('Module', () => {
  it('names parameters with dotted HF-style paths and counts them', () => {
    const rng = new mk.Rng(1);
    const layers = new ModuleList([new Block(rng), new Block(rng)]);
    const names = layers.parameters('model.layers.').map(([n]) => n);
    expect(names).toContain('model.layers.0.mlp.gate_proj.weight');
    expect(names).toContain('model.layers.1.input_layernorm.weight');
    expect(names.length).toBe(8);
    expect(layers.numParams()).toBe(2 * (8 + 3 * 8 * 12));
    layers.dispose();
    expect(layers.parameters()[0]![1].disposed).toBe(true);
  });

  it('is deterministic from the seed and replaces tensors by name with a shape check', () => {
    const a = new Linear(4, 3, new mk.Rng(7));
    const b = new Linear(4, 3, new mk.Rng(7));
    expect(a.weight.toArray()).toEqual(b.weight.toArray());
    a.setTensor('weight', mk.ones([3, 4]));
    expect(a.weight.toArray()).toEqual(new Array(12).fill(1));
    expect(a.weight.requiresGrad).toBe(true);
    expect(() => a.setTensor('weight', mk.ones([4, 3]))).toThrow(/"weight" has shape \(3, 4\), got \(4, 3\)/);
    expect(() => a.setTensor('nope.weight', mk.ones([3]))).toThrow(/no child module "nope"/);
  });
});

describe('layers', () => {
  it('Linear: (B, T, in) -> (B, T, out), x·Wᵀ + b, and a shape error naming shapes', () => {
    const lin = new Linear(3, 2, new mk.Rng(2), { bias: true });
    lin.setTensor('weight', mk.tensor([[1, 2, 3], [4, 5, 6]]));
    lin.setTensor('bias', mk.tensor([0.5, -1]));
    const y = lin.forward(mk.tensor([[[1, 0, 1], [0, 1, 0]]])); // (1, 2, 3)
    expect(y.shape).toEqual([1, 2, 2]);
    expect(y.toArray()).toEqual([4.5, 9, 2.5, 4]);
    expect(() => lin.forward(mk.zeros([2, 5]))).toThrow('Linear(3 -> 2): input f32(2, 5) must be (..., 3) with rank >= 2');
  });

  it('Embedding looks up rows and rejects float ids', () => {
    const emb = new Embedding(10, 4, new mk.Rng(3));
    const y = emb.forward(mk.tensor([[1, 2, 3]], undefined, 'i32'));
    expect(y.shape).toEqual([1, 3, 4]);
    expect(y.toArray().slice(0, 4)).toEqual(emb.weight.toArray().slice(4, 8));
    expect(() => emb.forward(mk.tensor([1, 2]))).toThrow('Embedding(10, 4): ids must be i32, got f32(2)');
  });

  it('RMSNorm normalises the last axis and names a width mismatch', () => {
    const n = new RMSNorm(4, 0);
    const y = n.forward(mk.tensor([[2, 2, 2, 2]]));
    expect(y.toArray().map((v) => Math.round(v * 1e6) / 1e6)).toEqual([1, 1, 1, 1]);
    expect(() => n.forward(mk.zeros([2, 3]))).toThrow('RMSNorm(4): input f32(2, 3) must end in 4');
  });

  it('SwiGLU module equals the swiglu function of its weights', () => {
    const m = new SwiGLU(6, 10, new mk.Rng(4));
    const x = mk.randn([5, 6], new mk.Rng(5));
    const a = m.forward(x).toArray();
    const b = swiglu(x, m.gateProj.weight, m.upProj.weight, m.downProj.weight).toArray();
    expect(a).toEqual(b);
    expect(m.parameters().map(([n]) => n)).toEqual(['gate_proj.weight', 'up_proj.weight', 'down_proj.weight']);
  });
});
