// js reference kernels: broadcasting binary ops, compare, where, and unary activations.
import type { TypedArray } from '../../../tensor/dtype.js';
import { Op, type CompareOp } from '../../../tensor/ops.js';
import { broadcastStrides, sizeOf } from '../../../tensor/shape.js';
import { fl, type CpuKernel, type View } from '../view.js';

/**
 * Visits every output index of a broadcast: fn(outIndex, indexA, indexB, indexC).
 * The last axis runs as an inner loop; the others as an odometer.
 */
export function forBroadcast(
  out: readonly number[],
  shapes: readonly (readonly number[])[],
  fn: (o: number, a: number, b: number, c: number) => void,
): void {
  const total = sizeOf(out);
  if (total === 0) return;
  const r = out.length;
  const st = shapes.map((s) => broadcastStrides(s, out));
  while (st.length < 3) st.push(new Array<number>(r).fill(0));
  const [sa, sb, sc] = st as [number[], number[], number[]];
  if (r === 0) {
    fn(0, 0, 0, 0);
    return;
  }
  const inner = out[r - 1]!;
  const ia = sa[r - 1]!;
  const ib = sb[r - 1]!;
  const ic = sc[r - 1]!;
  const idx = new Array<number>(r).fill(0);
  let a = 0;
  let b = 0;
  let c = 0;
  for (let o = 0; o < total; o += inner) {
    for (let j = 0; j < inner; j++) fn(o + j, a + j * ia, b + j * ib, c + j * ic);
    for (let ax = r - 2; ax >= 0; ax--) {
      idx[ax]!++;
      a += sa[ax]!;
      b += sb[ax]!;
      c += sc[ax]!;
      if (idx[ax]! < out[ax]!) break;
      a -= sa[ax]! * out[ax]!;
      b -= sb[ax]! * out[ax]!;
      c -= sc[ax]! * out[ax]!;
      idx[ax] = 0;
    }
  }
}

/** A kernel that ignores its params (fits any op whose params are empty). */
type PlainKernel = (ins: readonly View[], p: unknown, outs: readonly View[]) => void;

function binary(f: (x: number, y: number) => number): PlainKernel {
  return (ins, _p, outs) => {
    const [a, b] = ins as [View, View];
    const o = outs[0]!;
    const A = a.data;
    const Bd = b.data;
    const O = o.data as TypedArray;
    if (a.data.length === O.length && b.data.length === O.length) {
      for (let i = 0; i < O.length; i++) O[i] = f(A[i]!, Bd[i]!);
    } else if (b.data.length === 1) {
      const y = Bd[0]!;
      for (let i = 0; i < O.length; i++) O[i] = f(A[i]!, y);
    } else if (rowScalar(a.shape, b.shape, o.shape)) {
      // b holds one value per row of a (shape (..., 1)): e.g. routing weights times expert outputs
      const n = o.shape.at(-1)!;
      for (let r = 0, i = 0; r < Bd.length; r++) {
        const y = Bd[r]!;
        for (let j = 0; j < n; j++, i++) O[i] = f(A[i]!, y);
      }
    } else {
      forBroadcast(o.shape, [a.shape, b.shape], (i, ia, ib) => {
        O[i] = f(A[ia]!, Bd[ib]!);
      });
    }
  };
}

/** True when a has the output's shape and b equals it except for a last dimension of 1. */
function rowScalar(a: readonly number[], b: readonly number[], out: readonly number[]): boolean {
  const r = out.length;
  if (r === 0 || a.length !== r || b.length !== r || b[r - 1] !== 1) return false;
  for (let i = 0; i < r; i++) if (a[i] !== out[i] || (i < r - 1 && b[i] !== out[i])) return false;
  return true;
}

const intDiv = (x: number, y: number): number => (y === 0 ? 0 : Math.trunc(x / y));

function div(ins: readonly View[], p: unknown, outs: readonly View[]): void {
  (ins[0]!.dtype === 'i32' ? binary(intDiv) : binary((x, y) => x / y))(ins, p, outs);
}

const COMPARE: { [C in CompareOp]: (x: number, y: number) => number } = {
  eq: (x, y) => (x === y ? 1 : 0),
  ne: (x, y) => (x !== y ? 1 : 0),
  lt: (x, y) => (x < y ? 1 : 0),
  le: (x, y) => (x <= y ? 1 : 0),
  gt: (x, y) => (x > y ? 1 : 0),
  ge: (x, y) => (x >= y ? 1 : 0),
};

function unary(f: (x: number) => number): PlainKernel {
  return (ins, _p, outs) => {
    const X = fl(ins[0]);
    const O = fl(outs[0]);
    for (let i = 0; i < X.length; i++) O[i] = f(X[i]!);
  };
}

/** erf with |error| < 1.2e-7 (Numerical Recipes erfc Chebyshev fit), enough for float32 GELU. */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export function gelu(x: number, tanhApprox: boolean): number {
  if (tanhApprox) return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1 + erf(x * INV_SQRT_2));
}

export function geluDerivative(x: number, tanhApprox: boolean): number {
  if (tanhApprox) {
    const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    const th = Math.tanh(u);
    const du = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * du;
  }
  return 0.5 * (1 + erf(x * INV_SQRT_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

export const elementwiseKernels = {
  [Op.Add]: binary((x, y) => x + y),
  [Op.Sub]: binary((x, y) => x - y),
  [Op.Mul]: binary((x, y) => x * y),
  [Op.Div]: div,
  [Op.Pow]: binary((x, y) => x ** y),
  [Op.Maximum]: binary((x, y) => (x >= y || Number.isNaN(x) ? x : y)),
  [Op.Compare]: (ins, p, outs) => binary(COMPARE[p.cmp])(ins, {}, outs),
  [Op.Where]: (ins, _p, outs) => {
    const [c, a, b] = ins as [View, View, View];
    const C = c.data;
    const A = a.data;
    const Bd = b.data;
    const O = outs[0]!.data;
    forBroadcast(outs[0]!.shape, [c.shape, a.shape, b.shape], (i, ic, ia, ib) => {
      O[i] = C[ic] !== 0 ? A[ia]! : Bd[ib]!;
    });
  },
  [Op.Neg]: unary((x) => -x),
  [Op.Abs]: unary(Math.abs),
  [Op.Exp]: unary(Math.exp),
  [Op.Log]: unary(Math.log),
  [Op.Sqrt]: unary(Math.sqrt),
  [Op.Rsqrt]: unary((x) => 1 / Math.sqrt(x)),
  [Op.Sigmoid]: unary(sigmoid),
  [Op.Tanh]: unary(Math.tanh),
  [Op.Silu]: unary((x) => x * sigmoid(x)),
  [Op.Gelu]: (ins, p, outs) => unary((x) => gelu(x, p.approximate === 'tanh'))(ins, {}, outs),
  [Op.GeluGrad]: (ins, p, outs) => {
    const X = fl(ins[0]);
    const DY = fl(ins[1]);
    const O = fl(outs[0]);
    const t = p.approximate === 'tanh';
    for (let i = 0; i < X.length; i++) O[i] = DY[i]! * geluDerivative(X[i]!, t);
  },
} satisfies { [O in Op.Add | Op.Sub | Op.Mul | Op.Div | Op.Pow | Op.Maximum | Op.Compare | Op.Where | Op.Neg | Op.Abs | Op.Exp | Op.Log | Op.Sqrt | Op.Rsqrt | Op.Sigmoid | Op.Tanh | Op.Silu | Op.Gelu | Op.GeluGrad]: CpuKernel<O> };
