// Random test cases for every op (exhaustive over the op set): shared by gradcheck and backend parity tests.
import { JS_KERNELS } from '../../src/backend/js/kernels/index.js';
import type { View } from '../../src/backend/js/view.js';
import { f32ToF16, type DType } from '../../src/tensor/dtype.js';
import { INFER } from '../../src/tensor/infer.js';
import { Op, type OpParams } from '../../src/tensor/ops.js';
import { Rng } from '../../src/tensor/random.js';
import { sizeOf } from '../../src/tensor/shape.js';
import type { GradcheckInput } from '../../src/backend/gradcheck.js';
import { allocTyped } from '../../src/tensor/dtype.js';

export interface OpCase<P = unknown> {
  name: string;
  inputs: GradcheckInput[];
  params: P;
}
type Gen<O extends Op> = (rng: Rng, n: number) => OpCase<OpParams[O]>[];

interface FOpts { lo?: number; hi?: number; awayFromZero?: number }
/** f32 input with values uniform in [lo, hi) (default normal), optionally kept away from 0. */
export function f(rng: Rng, shape: number[], o: FOpts = {}): GradcheckInput {
  const data = Array.from({ length: sizeOf(shape) }, () => {
    let v = o.lo !== undefined ? o.lo + (o.hi! - o.lo) * rng.uniform() : rng.normal();
    if (o.awayFromZero && Math.abs(v) < o.awayFromZero) v = v < 0 ? v - o.awayFromZero : v + o.awayFromZero;
    return v;
  });
  return { data, shape };
}
export const idx = (rng: Rng, shape: number[], max: number): GradcheckInput => ({ data: Array.from({ length: sizeOf(shape) }, () => rng.int(max)), shape, dtype: 'i32' });
const raw = (data: number[], shape: number[], dtype: DType): GradcheckInput => ({ data, shape, dtype, grad: false });
/** A weight value for f16 storage: normal, or one time in ten small enough to be a subnormal half. */
const rng16 = (rng: Rng): number => (rng.uniform() < 0.1 ? rng.normal() * 3e-5 : rng.normal());

/** Row offsets for T rows over E groups; group 1 (when E > 2) is always empty. */
export function offsets(rng: Rng, T: number, E: number): number[] {
  const counts = new Array<number>(E).fill(0);
  for (let t = 0; t < T; t++) {
    let e = rng.int(E);
    if (E > 2 && e === 1) e = 0;
    counts[e]!++;
  }
  const off = [0];
  for (const c of counts) off.push(off.at(-1)! + c);
  return off;
}

/** Runs a js kernel on plain inputs (to derive consistent inputs for backward ops). */
function jsRun<O extends Op>(op: O, inputs: GradcheckInput[], params: OpParams[O]): number[][] {
  const ins: View[] = inputs.map((i) => {
    const dtype = i.dtype ?? 'f32';
    const data = allocTyped(dtype, i.data.length);
    for (let k = 0; k < i.data.length; k++) data[k] = i.data[k]!;
    return { data, shape: i.shape, dtype };
  });
  const infos = INFER[op](ins, params);
  const outs: View[] = infos.map((t) => ({ data: allocTyped(t.dtype, sizeOf(t.shape)), shape: t.shape, dtype: t.dtype }));
  JS_KERNELS[op](ins, params, outs);
  return outs.map((o) => Array.from(o.data));
}

const bin = (rng: Rng, n: number, o: FOpts = {}): OpCase<OpParams[Op.Add]>[] => [
  { name: `same ${n}x3`, inputs: [f(rng, [n, 3], o), f(rng, [n, 3], o)], params: {} },
  { name: `row broadcast ${n}`, inputs: [f(rng, [2, n, 3], o), f(rng, [1, 3], o)], params: {} },
  { name: `scalar ${n}`, inputs: [f(rng, [n], o), f(rng, [], o)], params: {} },
  { name: `both broadcast ${n}`, inputs: [f(rng, [n, 1], o), f(rng, [1, 4], o)], params: {} },
  { name: `one value per row ${n}`, inputs: [f(rng, [2, n, 5], o), f(rng, [2, n, 1], o)], params: {} },
];
const un = (o: FOpts = {}) => (rng: Rng, n: number): OpCase<OpParams[Op.Neg]>[] => [
  { name: `${n}x5`, inputs: [f(rng, [n, 5], o)], params: {} },
];
const red = (rng: Rng, n: number): OpCase<OpParams[Op.Sum]>[] => [
  { name: `all ${n}`, inputs: [f(rng, [n, 3])], params: { axes: [], keepDims: false } },
  { name: `last ${n}`, inputs: [f(rng, [2, n, 3])], params: { axes: [-1], keepDims: false } },
  { name: `middle keep ${n}`, inputs: [f(rng, [2, n, 3])], params: { axes: [1], keepDims: true } },
  { name: `two axes ${n}`, inputs: [f(rng, [2, n, 3])], params: { axes: [0, 2], keepDims: false } },
];
const axisCases = (rng: Rng, n: number): OpCase<OpParams[Op.Softmax]>[] => [
  { name: `last ${n}`, inputs: [f(rng, [3, n])], params: { axis: -1 } },
  { name: `first ${n}`, inputs: [f(rng, [n, 4])], params: { axis: 0 } },
];
function attn(rng: Rng, n: number): OpCase<OpParams[Op.Attention]>[] {
  const T = n;
  return [
    { name: `causal GQA T=${T}`, inputs: [f(rng, [1, T, 4, 8]), f(rng, [1, T, 2, 8]), f(rng, [1, T, 2, 8])], params: { causal: true, window: 0, scale: 0.35 } },
    { name: `window 2, kv cache S=T+2, Dv=5`, inputs: [f(rng, [2, T, 2, 4]), f(rng, [2, T + 2, 1, 4]), f(rng, [2, T + 2, 1, 5])], params: { causal: true, window: 2, scale: 0.5 } },
    { name: `non-causal S=T+2`, inputs: [f(rng, [1, T, 2, 4]), f(rng, [1, T + 2, 2, 4]), f(rng, [1, T + 2, 2, 4])], params: { causal: false, window: 0, scale: 0.5 } },
  ];
}
/** RaggedAttention: three sequences of a pool of 3 slots (C = n + 4 rows), one decode row, one prompt, one chunk. */
function ragged(rng: Rng, n: number): OpCase<OpParams[Op.RaggedAttention]>[] {
  const C = n + 4;
  // [qStart, rows, slot, length]: a decode row at slot 2; n prompt rows at slot 0; a 2-row chunk after 3 cached rows
  const seqs = [0, 1, 2, 5, 1, n, 0, n, 1 + n, 2, 1, 5];
  const N = n + 3;
  const table: GradcheckInput = { data: seqs, shape: [3, 4], dtype: 'i32', grad: false };
  return [
    { name: `GQA decode + prompt + chunk n=${n}`, inputs: [f(rng, [N, 4, 8]), f(rng, [3, C, 2, 8]), f(rng, [3, C, 2, 8]), table], params: { window: 0, scale: 0.35 } },
    { name: `window 2, Dv=5, a row unclaimed`, inputs: [f(rng, [N + 1, 2, 4]), f(rng, [3, C, 1, 4]), f(rng, [3, C, 1, 5]), table], params: { window: 2, scale: 0.5 } },
  ];
}
function quantInputs(rng: Rng, format: 'int8' | 'int4' | 'f16' | 'bf16', N: number, K: number, g: number): GradcheckInput[] {
  if (format === 'f16') return [raw(Array.from({ length: N * K }, () => f32ToF16(rng.normal() * 0.5)), [N, K], 'f16')];
  if (format === 'bf16') return [raw(Array.from({ length: N * K }, () => (f32ToF16(0) | 0x3c00) ^ rng.int(0x3fff)), [N, K], 'bf16')];
  const scales = raw(Array.from({ length: N * (K / g) }, () => f32ToF16(0.01 + 0.1 * rng.uniform())), [N, K / g], 'f16');
  if (format === 'int8') return [raw(Array.from({ length: N * K }, () => rng.int(255) - 127), [N, K], 'i8'), scales];
  return [raw(Array.from({ length: (N * K) / 2 }, () => rng.int(256)), [N, K / 2], 'u8'), scales];
}

export const CASES: { [O in Op]: Gen<O> } = {
  [Op.Add]: (r, n) => bin(r, n),
  [Op.Sub]: (r, n) => bin(r, n),
  [Op.Mul]: (r, n) => bin(r, n),
  [Op.Div]: (r, n) => bin(r, n, { awayFromZero: 0.5 }),
  [Op.Pow]: (r, n) => bin(r, n, { lo: 0.5, hi: 2 }),
  [Op.Maximum]: (r, n) => bin(r, n),
  [Op.Compare]: (r, n) => (['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const).map((cmp) => ({ name: `${cmp} ${n}`, inputs: [idx(r, [n, 3], 3), idx(r, [1, 3], 3)], params: { cmp } })),
  [Op.Where]: (r, n) => [{ name: `broadcast ${n}`, inputs: [idx(r, [n, 1], 2), f(r, [n, 3]), f(r, [3])], params: {} }],
  [Op.Neg]: un(),
  [Op.Abs]: un({ awayFromZero: 0.1 }),
  [Op.Exp]: un(),
  [Op.Log]: un({ lo: 0.2, hi: 3 }),
  [Op.Sqrt]: un({ lo: 0.2, hi: 3 }),
  [Op.Rsqrt]: un({ lo: 0.2, hi: 3 }),
  [Op.Sigmoid]: un(),
  [Op.Tanh]: un(),
  [Op.Silu]: un(),
  [Op.Gelu]: (r, n) => [
    { name: `erf ${n}`, inputs: [f(r, [n, 5], { lo: -4, hi: 4 })], params: { approximate: 'none' } },
    { name: `tanh ${n}`, inputs: [f(r, [n, 5], { lo: -4, hi: 4 })], params: { approximate: 'tanh' } },
  ],
  [Op.GeluGrad]: (r, n) => [{ name: `erf ${n}`, inputs: [f(r, [n, 5]), f(r, [n, 5])], params: { approximate: 'none' } }],
  [Op.Sum]: red,
  [Op.Mean]: red,
  [Op.Max]: red,
  [Op.LogSumExp]: (r, n) => [
    { name: `last ${n}`, inputs: [f(r, [3, n])], params: { axis: -1, keepDims: false } },
    { name: `first keep ${n}`, inputs: [f(r, [n, 2])], params: { axis: 0, keepDims: true } },
  ],
  [Op.Argmax]: (r, n) => [{ name: `last ${n}`, inputs: [f(r, [3, n])], params: { axis: -1, keepDims: false } }],
  [Op.Softmax]: axisCases,
  [Op.LogSoftmax]: axisCases,
  [Op.TopK]: (r, n) => [{ name: `k=${Math.min(2, n)} of ${n}`, inputs: [f(r, [4, n])], params: { k: Math.min(2, n) } }, { name: `k=n=${n}`, inputs: [f(r, [2, n])], params: { k: n } }],
  [Op.TakeAlong]: (r, n) => [{ name: `${n}`, inputs: [f(r, [3, n]), idx(r, [3, 2], n)], params: {} }],
  [Op.ScatterAlong]: (r, n) => [{ name: `${n}`, inputs: [f(r, [3, 4]), idx(r, [3, 4], n)], params: { width: n } }],
  [Op.Reshape]: (r, n) => [{ name: `${n}`, inputs: [f(r, [n, 6])], params: { shape: [3, n, 2] } }],
  [Op.Transpose]: (r, n) => [
    { name: `2d ${n}`, inputs: [f(r, [n, 3])], params: { perm: [1, 0] } },
    { name: `4d ${n}`, inputs: [f(r, [2, n, 3, 2])], params: { perm: [0, 2, 1, 3] } },
  ],
  [Op.Slice]: (r, n) => [{ name: `${n}`, inputs: [f(r, [n + 2, 5])], params: { begin: [1, 2], size: [n, 2] } }],
  [Op.Concat]: (r, n) => [
    { name: `axis 1 ${n}`, inputs: [f(r, [2, n]), f(r, [2, 3]), f(r, [2, 1])], params: { axis: 1 } },
    { name: `axis 0 ${n}`, inputs: [f(r, [n, 2]), f(r, [1, 2])], params: { axis: 0 } },
  ],
  [Op.Pad]: (r, n) => [{ name: `${n}`, inputs: [f(r, [n, 3])], params: { pads: [[1, 2], [0, 1]], value: 0 } }],
  [Op.Gather]: (r, n) => [
    { name: `${n}`, inputs: [f(r, [n, 4]), idx(r, [2, 3], n)], params: {} },
    { name: `${n} wide`, inputs: [f(r, [7, n]), idx(r, [n + 2], 7)], params: {} },
  ],
  [Op.ScatterAdd]: (r, n) => [
    { name: `${n}`, inputs: [f(r, [5, 3]), idx(r, [5], n)], params: { rows: n } },
    { name: `${n} wide`, inputs: [f(r, [n + 5, n]), idx(r, [n + 5], 6)], params: { rows: 6 } },
  ],
  [Op.Cast]: (r, n) => [
    { name: `f32->i32 ${n}`, inputs: [{ ...f(r, [n, 3], { lo: -50, hi: 50 }), grad: false }], params: { dtype: 'i32' } },
    { name: `i32->f32 ${n}`, inputs: [idx(r, [n, 3], 100)], params: { dtype: 'f32' } },
    { name: `f32->f16 ${n}`, inputs: [{ ...f(r, [n, 3]), grad: false }], params: { dtype: 'f16' } },
    { name: `f16->f32 ${n}`, inputs: quantInputs(r, 'f16', n, 2, 2), params: { dtype: 'f32' } },
    { name: `bf16->f32 ${n}`, inputs: quantInputs(r, 'bf16', n, 2, 2), params: { dtype: 'f32' } },
    { name: `f32->bf16 ${n}`, inputs: [{ ...f(r, [n, 3]), grad: false }], params: { dtype: 'bf16' } },
  ],
  [Op.Dequantize]: (r, n) => (['int8', 'int4'] as const).map((format) => ({ name: `${format} ${n}`, inputs: quantInputs(r, format, n, 64, 32), params: { format, groupSize: 32 } })),
  [Op.Quantize]: (r, n) => (['int8', 'int4'] as const).map((format) => ({ name: `${format} ${n}`, inputs: [{ ...f(r, [n, 64]), grad: false }], params: { format, groupSize: 32 } })),
  [Op.Matmul]: (r, n) => [
    { name: `${n}x17x3`, inputs: [f(r, [n, 17]), f(r, [17, 3])], params: { transA: false, transB: false } },
    { name: `transA ${n}`, inputs: [f(r, [5, n]), f(r, [5, 3])], params: { transA: true, transB: false } },
    { name: `transB ${n}`, inputs: [f(r, [3, n]), f(r, [4, n])], params: { transA: false, transB: true } },
    { name: `both + bias ${n}`, inputs: [f(r, [n, 3]), f(r, [2, n]), f(r, [2])], params: { transA: true, transB: true } },
    { name: `batched ${n}`, inputs: [f(r, [2, n, 3]), f(r, [2, 3, 4])], params: { transA: false, transB: false } },
    { name: `batched broadcast B ${n}`, inputs: [f(r, [2, 3, n]), f(r, [n, 2])], params: { transA: false, transB: false } },
  ],
  [Op.GroupedMatmul]: (r, n) => [
    { name: `E=4 T=${n + 4}`, inputs: [f(r, [n + 4, 3]), f(r, [4, 3, 5]), raw(offsets(r, n + 4, 4), [5], 'i32')], params: { transW: false } },
    { name: `transW E=3 T=${n}`, inputs: [f(r, [n, 4]), f(r, [3, 2, 4]), raw(offsets(r, n, 3), [4], 'i32')], params: { transW: true } },
    { name: `one group holds all`, inputs: [f(r, [n, 3]), f(r, [2, 3, 2]), raw([0, 0, n], [3], 'i32')], params: { transW: false } },
  ],
  [Op.GroupedMatmulWeightGrad]: (r, n) => [
    { name: `E=4 T=${n + 4}`, inputs: [f(r, [n + 4, 3]), f(r, [n + 4, 5]), raw(offsets(r, n + 4, 4), [5], 'i32')], params: { transW: false } },
    { name: `transW E=3 T=${n}`, inputs: [f(r, [n, 4]), f(r, [n, 2]), raw(offsets(r, n, 3), [4], 'i32')], params: { transW: true } },
  ],
  [Op.QuantMatmul]: (r, n) => [
    ...(['int8', 'int4'] as const).map((format) => ({ name: `${format} M=${n}`, inputs: [f(r, [n, 64]), ...quantInputs(r, format, 3, 64, 32)], params: { format, groupSize: 32 } })),
    { name: `int4 per-row M=${n}`, inputs: [f(r, [n, 32]), ...quantInputs(r, 'int4', 2, 32, 32)], params: { format: 'int4', groupSize: 32 } },
    ...(['f16', 'bf16'] as const).map((format) => ({ name: `${format} M=${n}`, inputs: [f(r, [n, 6]), ...quantInputs(r, format, 5, 6, 2)], params: { format, groupSize: 32 } })),
  ],
  [Op.ExpertBins]: (r, n) => [
    { name: `T=${n} K=2 E=5`, inputs: [idx(r, [n, 2], 5)], params: { experts: 5 } },
    { name: `T=${n} K=3 E=8 (some experts empty)`, inputs: [idx(r, [n, 3], 4)], params: { experts: 8 } },
  ],
  [Op.RouteTopK]: (r, n) => [
    { name: `T=${n} E=8 K=2`, inputs: [f(r, [n, 8])], params: { k: 2, groups: 1, topGroups: 1, renormalize: true } },
    { name: `T=${n} E=8 K=3 in the top 2 of 4 groups, not renormalised`, inputs: [f(r, [n, 8])], params: { k: 3, groups: 4, topGroups: 2, renormalize: false } },
    { name: `T=${n} E=6 K=2 in the top group of 2`, inputs: [f(r, [n, 6])], params: { k: 2, groups: 2, topGroups: 1, renormalize: true } },
    { name: `T=${n} E=8 K=2 with a selection bias`, inputs: [f(r, [n, 8]), f(r, [8], { lo: -0.2, hi: 0.2 })], params: { k: 2, groups: 1, topGroups: 1, renormalize: true } },
    { name: `T=${n} E=8 K=2 in the top group of 2 with a selection bias`, inputs: [f(r, [n, 8]), f(r, [8], { lo: -0.2, hi: 0.2 })], params: { k: 2, groups: 2, topGroups: 1, renormalize: true } },
  ],
  [Op.MoeFfn]: (r, n) => [
    { name: `T=${n} E=4 K=2 H=6 I=5`, inputs: [f(r, [n, 6]), idx(r, [n, 2], 4), f(r, [n, 2], { lo: 0, hi: 1 }), f(r, [4, 6, 5]), f(r, [4, 6, 5]), f(r, [4, 5, 6])], params: {} },
    { name: `T=${n} E=3 K=1 H=9 I=4`, inputs: [f(r, [n, 9]), idx(r, [n, 1], 3), f(r, [n, 1], { lo: 0, hi: 1 }), f(r, [3, 9, 4]), f(r, [3, 9, 4]), f(r, [3, 4, 9])], params: {} },
  ],
  [Op.ClusteredFfn]: (r, n) => {
    // f16 bases: normal halves and a tenth subnormal ones (the widening must be exact for both)
    const h16 = (shape: number[]): GradcheckInput => raw(Array.from({ length: sizeOf(shape) }, () => f32ToF16(rng16(r))), shape, 'f16');
    const cl = (E: number, G: number, K: number, H: number, I: number, R: number, half = false): GradcheckInput[] => [
      f(r, [n, H]), idx(r, [n, K], E), f(r, [n, K], { lo: 0, hi: 1 }),
      ...(half ? [h16([G, H, I]), h16([G, H, I]), h16([G, I, H])] : [f(r, [G, H, I]), f(r, [G, H, I]), f(r, [G, I, H])]),
      f(r, [E, H, R]), f(r, [E, R, I]), f(r, [E, H, R]), f(r, [E, R, I]), f(r, [E, I, R]), f(r, [E, R, H]),
    ];
    return [
      { name: `T=${n} E=4 G=2 K=2 H=6 I=5 R=2`, inputs: cl(4, 2, 2, 6, 5, 2), params: {} },
      { name: `T=${n} E=6 G=3 K=3 H=5 I=7 R=1`, inputs: cl(6, 3, 3, 5, 7, 1), params: {} },
      { name: `T=${n} E=4 G=2 K=2 H=9 I=8 R=2, f16 bases`, inputs: cl(4, 2, 2, 9, 8, 2, true), params: {} },
    ];
  },
  [Op.RMSNorm]: (r, n) => [{ name: `${n}x7`, inputs: [f(r, [n, 7]), f(r, [7], { lo: 0.5, hi: 1.5 })], params: { eps: 1e-5 } }],
  [Op.RMSNormGrad]: (r, n) => [{ name: `${n}x7`, inputs: [f(r, [n, 7]), f(r, [7]), f(r, [n, 7])], params: { eps: 1e-5 } }],
  [Op.RoPE]: (r, n) => [
    { name: `half T=${n}`, inputs: [f(r, [1, n, 2, 8]), idx(r, [n], 50), { ...f(r, [4], { lo: 0.01, hi: 1 }), grad: false }], params: { interleaved: false, inverse: false } },
    { name: `half partial (R = 4 of D = 10) T=${n}`, inputs: [f(r, [1, n, 3, 10]), idx(r, [n], 50), { ...f(r, [2], { lo: 0.01, hi: 1 }), grad: false }], params: { interleaved: false, inverse: false } },
    { name: `interleaved partial (B,T) pos`, inputs: [f(r, [2, n, 1, 6]), idx(r, [2, n], 50), { ...f(r, [2], { lo: 0.01, hi: 1 }), grad: false }], params: { interleaved: true, inverse: false } },
    { name: `inverse`, inputs: [f(r, [1, n, 1, 4]), idx(r, [n], 9), { ...f(r, [2], { lo: 0.01, hi: 1 }), grad: false }], params: { interleaved: false, inverse: true } },
  ],
  [Op.Attention]: attn,
  [Op.AttentionGrad]: (r, n) => attn(r, n).map((c) => {
    const [o, lse] = jsRun(Op.Attention, c.inputs, c.params);
    const [q, k, v] = c.inputs as [GradcheckInput, GradcheckInput, GradcheckInput];
    const oShape = [q.shape[0]!, q.shape[1]!, q.shape[2]!, v.shape[3]!];
    return { name: c.name, params: c.params, inputs: [q, k, v, { data: o!, shape: oShape }, { data: lse!, shape: [q.shape[0]!, q.shape[2]!, q.shape[1]!] }, f(r, oShape)] };
  }),
  [Op.RaggedAttention]: ragged,
  [Op.CrossEntropy]: (r, n) => {
    const tg = idx(r, [n + 1], 11);
    (tg.data as number[])[0] = -100;
    return [{ name: `N=${n + 1} V=11 with ignored row`, inputs: [f(r, [n + 1, 11]), tg], params: { ignoreIndex: -100 } }];
  },
  [Op.CrossEntropyGrad]: (r, n) => {
    const logits = f(r, [n + 1, 11]);
    const tg = idx(r, [n + 1], 11);
    (tg.data as number[])[0] = -100;
    const [, lse] = jsRun(Op.CrossEntropy, [logits, tg], { ignoreIndex: -100 });
    return [{ name: `N=${n + 1}`, inputs: [logits, tg, { data: lse!, shape: [n + 1] }, f(r, [n + 1])], params: { ignoreIndex: -100 } }];
  },
};

/** Every case of every op at the given size, with a fixed seed per op. */
export function allCases(n: number): { op: Op; c: OpCase }[] {
  const out: { op: Op; c: OpCase }[] = [];
  for (const op of Object.values(Op)) {
    const gen = CASES[op] as Gen<Op>;
    for (const c of gen(new Rng(hash(op) + n), n)) out.push({ op, c });
  }
  return out;
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) >>> 0;
  return h;
}
