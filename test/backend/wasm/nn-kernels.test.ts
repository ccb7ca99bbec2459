// The wasm nn kernels at sizes large enough to split across threads, with the js fallback disabled for the common
// cases (so a silent fallback fails), against the js reference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../../src/index.js';
import { JS_KERNELS } from '../../../src/backend/js/kernels/index.js';
import { WasmBackend } from '../../../src/backend/wasm/index.js';
import { Op, type OpParams } from '../../../src/tensor/ops.js';
import { allocTyped, type DType } from '../../../src/tensor/dtype.js';
import { relErr } from '../../helpers/compare.js';

interface In { shape: number[]; dtype?: DType; gen?: (i: number) => number }
interface Case { name: string; op: Op; ins: In[]; params: unknown }

const rng = new mk.Rng(7);
const normal = (): number => rng.normal();

function make(backend: mk.Backend, ins: In[], data: number[][]): mk.Tensor[] {
  return ins.map((s, k) => {
    const d = allocTyped(s.dtype ?? 'f32', data[k]!.length);
    d.set(data[k]!);
    return mk.fromTyped(d, s.shape, s.dtype ?? 'f32', backend);
  });
}


const big = [257, 301];
const attnP = (causal: boolean, window: number): OpParams[Op.Attention] => ({ causal, window, scale: 0.125 });
const CASES: Case[] = [
  ...([Op.Add, Op.Sub, Op.Mul, Op.Div, Op.Maximum] as const).flatMap((op) => [
    { name: `${op} same`, op, ins: [{ shape: big }, { shape: big, gen: (): number => normal() + (op === Op.Div ? 3 : 0) }], params: {} },
    { name: `${op} scalar b`, op, ins: [{ shape: big }, { shape: [] }], params: {} },
    { name: `${op} scalar a`, op, ins: [{ shape: [1] }, { shape: big }], params: {} },
    { name: `${op} row b`, op, ins: [{ shape: [3, ...big] }, { shape: [1, big[1]!] }], params: {} },
    { name: `${op} row a`, op, ins: [{ shape: [big[1]!] }, { shape: [3, ...big] }], params: {} },
  ]),
  ...([Op.Neg, Op.Abs, Op.Exp, Op.Sigmoid, Op.Tanh, Op.Silu] as const).map((op) => ({ name: op, op, ins: [{ shape: big }], params: {} })),
  ...([Op.Log, Op.Sqrt, Op.Rsqrt] as const).map((op) => ({ name: op, op, ins: [{ shape: big, gen: (): number => 0.1 + Math.abs(normal()) }], params: {} })),
  { name: 'gelu erf', op: Op.Gelu, ins: [{ shape: big }], params: { approximate: 'none' } },
  { name: 'gelu tanh', op: Op.Gelu, ins: [{ shape: big }], params: { approximate: 'tanh' } },
  { name: 'gelu_grad erf', op: Op.GeluGrad, ins: [{ shape: big }, { shape: big }], params: { approximate: 'none' } },
  { name: 'gelu_grad tanh', op: Op.GeluGrad, ins: [{ shape: big }, { shape: big }], params: { approximate: 'tanh' } },
  { name: 'softmax', op: Op.Softmax, ins: [{ shape: [2, 67, 1003], gen: (): number => 4 * normal() }], params: { axis: -1 } },
  { name: 'log_softmax', op: Op.LogSoftmax, ins: [{ shape: [67, 1003] }], params: { axis: 1 } },
  { name: 'logsumexp', op: Op.LogSumExp, ins: [{ shape: [67, 1003] }], params: { axis: -1, keepDims: true } },
  { name: 'rms_norm', op: Op.RMSNorm, ins: [{ shape: [3, 129, 515] }, { shape: [515] }], params: { eps: 1e-6 } },
  { name: 'rms_norm_grad', op: Op.RMSNormGrad, ins: [{ shape: [259, 515] }, { shape: [515] }, { shape: [259, 515] }], params: { eps: 1e-6 } },
  {
    name: 'cross_entropy', op: Op.CrossEntropy, params: { ignoreIndex: -1 },
    ins: [{ shape: [131, 1001] }, { shape: [131], dtype: 'i32', gen: (i): number => (i % 7 === 3 ? -1 : (i * 37) % 1001) }],
  },
  {
    name: 'attention causal GQA', op: Op.Attention, params: attnP(true, 0),
    ins: [{ shape: [2, 67, 8, 64] }, { shape: [2, 67, 2, 64] }, { shape: [2, 67, 2, 64] }],
  },
  {
    name: 'attention window + kv offset', op: Op.Attention, params: attnP(true, 13),
    ins: [{ shape: [1, 45, 4, 36] }, { shape: [1, 70, 1, 36] }, { shape: [1, 70, 1, 20] }],
  },
];

const GRAD_CASES: { name: string; shapes: [number[], number[], number[]]; p: OpParams[Op.Attention] }[] = [
  { name: 'causal GQA', shapes: [[2, 67, 8, 64], [2, 67, 2, 64], [2, 67, 2, 64]], p: attnP(true, 0) },
  { name: 'window + kv offset, Dv != D', shapes: [[1, 45, 4, 36], [1, 70, 2, 36], [1, 70, 2, 20]], p: attnP(true, 13) },
];

describe.each([
  { name: '2 threads', threads: 2, relaxedSimd: 'auto' as const },
  { name: '1 thread plain', threads: 1, relaxedSimd: false },
])('wasm nn kernels ($name)', ({ threads, relaxedSimd }) => {
  let wasm: WasmBackend;
  const js = new mk.JsBackend();
  const saved = new Map<Op, unknown>();
  beforeAll(async () => {
    wasm = await WasmBackend.create({ threads, relaxedSimd });
  });
  afterAll(async () => {
    await wasm.dispose();
  });

  /** Runs op on both backends; the js kernel table is disabled while the wasm one runs. */
  function compare(op: Op, ins: In[], data: number[][], params: unknown): number[] {
    const errs: number[] = [];
    mk.tidy(() => {
      mk.useBackend(js);
      const want = mk.run(op, make(js, ins, data), params as never).map((t) => t.dataSync());
      mk.useBackend(wasm);
      const table = JS_KERNELS as unknown as Record<string, unknown>;
      saved.set(op, table[op]);
      table[op] = () => {
        throw new Error(`${op} fell back to the js kernel`);
      };
      try {
        const got = mk.run(op, make(wasm, ins, data), params as never).map((t) => t.dataSync());
        want.forEach((w, k) => errs.push(relErr(got[k]!, w)));
      } finally {
        table[op] = saved.get(op);
      }
    });
    return errs;
  }

  for (const c of CASES) {
    it(`${c.name} runs in wasm and equals js`, () => {
      const data = c.ins.map((s) => Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, (_, i) => (s.gen ? s.gen(i) : normal())));
      for (const e of compare(c.op, c.ins, data, c.params)) expect(e).toBeLessThanOrEqual(1e-5);
    });
  }

  for (const c of GRAD_CASES) {
    it(`attention_grad ${c.name} runs in wasm and equals js`, () => {
      const [qs, ks, vs] = c.shapes;
      const gen = (s: number[]): number[] => Array.from({ length: s.reduce((a, b) => a * b, 1) }, normal);
      const q = gen(qs), k = gen(ks), v = gen(vs);
      const oShape = [qs[0]!, qs[1]!, qs[2]!, vs[3]!];
      const lseShape = [qs[0]!, qs[2]!, qs[1]!];
      let o: number[] = [];
      let lse: number[] = [];
      mk.tidy(() => {
        mk.useBackend(js);
        const [to, tl] = mk.run(Op.Attention, make(js, [{ shape: qs }, { shape: ks }, { shape: vs }], [q, k, v]), c.p);
        o = Array.from(to!.dataSync());
        lse = Array.from(tl!.dataSync());
      });
      const ins: In[] = [{ shape: qs }, { shape: ks }, { shape: vs }, { shape: oShape }, { shape: lseShape }, { shape: oShape }];
      for (const e of compare(Op.AttentionGrad, ins, [q, k, v, o, lse, gen(oShape)], c.p)) expect(e).toBeLessThanOrEqual(1e-5);
    });
  }

  it('keeps the js fallback for broadcasts the SIMD kernels do not take', () => {
    const ins: In[] = [{ shape: [5, 1] }, { shape: [1, 4] }];
    const data = [[1, 2, 3, 4, 5], [1, 10, 100, 1000]];
    mk.tidy(() => {
      mk.useBackend(wasm);
      const [t] = mk.run(Op.Mul, make(wasm, ins, data), {} as never);
      expect(Array.from(t!.dataSync()).slice(0, 8)).toEqual([1, 10, 100, 1000, 2, 20, 200, 2000]);
    });
  });
});
