// Elementwise webgpu kernels: broadcast binary ops, compare, where, unary ops, GELU and its gradient.
import type { BackendInput } from '../backend.js';
import { Op, type OpParams } from '../../tensor/ops.js';
import { sizeOf } from '../../tensor/shape.js';
import type { Kernel } from './context.js';
import { INDEX, MAIN, bindings, broadcastIndex, broadcastMeta, launch, wgsl } from './wgsl.js';

// ---- elementwise ----

const BINARY: Partial<Record<Op, (a: string, b: string, t: string) => string>> = {
  [Op.Add]: (a, b) => `${a} + ${b}`,
  [Op.Sub]: (a, b) => `${a} - ${b}`,
  [Op.Mul]: (a, b) => `${a} * ${b}`,
  [Op.Div]: (a, b) => `${a} / ${b}`,
  [Op.Pow]: (a, b) => `pow(${a}, ${b})`,
  [Op.Maximum]: (a, b) => `max(${a}, ${b})`,
};

/** The ops binaryKernel serves (same parameters). */
type BinaryOp = Op.Add | Op.Sub | Op.Mul | Op.Div | Op.Pow | Op.Maximum;

function binaryKernel(op: Op): Kernel<BinaryOp> {
  return (b, ins, _p, outs) => {
    const [x, y] = ins as [BackendInput, BackendInput];
    const o = outs[0]!;
    const t = wgsl(x.dtype);
    const r = o.shape.length;
    const code = `${bindings([t, t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${broadcastIndex(r, 2)}
  let a = in0[o0]; let b = in1[o1];
  out0[i] = ${BINARY[op]!('a', 'b', t)};
}`;
    launch(b, code, [x, y], [o], broadcastMeta(o.shape, [x.shape, y.shape]), sizeOf(o.shape));
  };
}

const CMP: Record<OpParams[Op.Compare]['cmp'], string> = { eq: '==', ne: '!=', lt: '<', le: '<=', gt: '>', ge: '>=' };

const compareKernel: Kernel<Op.Compare> = (b, ins, p, outs) => {
  const [x, y] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  const t = wgsl(x.dtype);
  const code = `${bindings([t, t], ['f32'])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${broadcastIndex(o.shape.length, 2)}
  out0[i] = select(0.0, 1.0, in0[o0] ${CMP[p.cmp]} in1[o1]);
}`;
  launch(b, code, [x, y], [o], broadcastMeta(o.shape, [x.shape, y.shape]), sizeOf(o.shape));
};

const whereKernel: Kernel<Op.Where> = (b, ins, _p, outs) => {
  const [c, x, y] = ins as [BackendInput, BackendInput, BackendInput];
  const o = outs[0]!;
  const tc = wgsl(c.dtype);
  const t = wgsl(x.dtype);
  const zero = tc === 'f32' ? '0.0' : '0';
  const code = `${bindings([tc, t, t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  ${broadcastIndex(o.shape.length, 3)}
  out0[i] = select(in2[o2], in1[o1], in0[o0] != ${zero});
}`;
  launch(b, code, [c, x, y], [o], broadcastMeta(o.shape, [c.shape, x.shape, y.shape]), sizeOf(o.shape));
};

const ERF = `fn erf_(x: f32) -> f32 {
  // Abramowitz & Stegun 7.1.26 is too coarse for 1e-5; use the complementary-error series of W. J. Cody's rational form
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}`;

const UNARY: Partial<Record<Op, string>> = {
  [Op.Neg]: '-x',
  [Op.Abs]: 'abs(x)',
  [Op.Exp]: 'exp(x)',
  [Op.Log]: 'log(x)',
  [Op.Sqrt]: 'sqrt(x)',
  [Op.Rsqrt]: 'inverseSqrt(x)',
  [Op.Sigmoid]: '1.0 / (1.0 + exp(-x))',
  [Op.Tanh]: 'tanh(x)',
  [Op.Silu]: 'x / (1.0 + exp(-x))',
};

/** The ops unaryKernel serves (same parameters). */
type UnaryOp = Op.Neg | Op.Abs | Op.Exp | Op.Log | Op.Sqrt | Op.Rsqrt | Op.Sigmoid | Op.Tanh | Op.Silu;

function unaryKernel(op: Op): Kernel<UnaryOp> {
  return (b, ins, _p, outs) => {
    const x = ins[0]!;
    const o = outs[0]!;
    const t = wgsl(x.dtype);
    if (t !== 'f32' && op !== Op.Neg && op !== Op.Abs) throw new Error(`webgpu: ${op} needs f32, got ${x.dtype}`);
    const code = `${bindings([t], [t])}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let x = in0[i];
  out0[i] = ${UNARY[op]!};
}`;
    launch(b, code, [x], [o], [sizeOf(o.shape)], sizeOf(o.shape));
  };
}

const geluKernel: Kernel<Op.Gelu> = (b, ins, p, outs) => {
  const x = ins[0]!;
  const o = outs[0]!;
  wgsl(x.dtype);
  const body = p.approximate === 'tanh'
    ? 'let y = 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));'
    : 'let y = 0.5 * x * (1.0 + erf_(x * 0.7071067811865476));';
  const code = `${bindings(['f32'], ['f32'])}
${ERF}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let x = in0[i];
  ${body}
  out0[i] = y;
}`;
  launch(b, code, [x], [o], [sizeOf(o.shape)], sizeOf(o.shape));
};

// ---- gelu gradient ----

const geluGradKernel: Kernel<Op.GeluGrad> = (b, ins, p, outs) => {
  const [x, dy] = ins as [BackendInput, BackendInput];
  const o = outs[0]!;
  wgsl(x.dtype);
  const body = p.approximate === 'tanh'
    ? `let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  let th = tanh(u);
  let d = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);`
    : 'let d = 0.5 * (1.0 + erf_(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x);';
  const code = `${bindings(['f32', 'f32'], ['f32'])}
${ERF}
${MAIN} {
  ${INDEX}
  if (i >= prm[0]) { return; }
  let x = in0[i];
  ${body}
  out0[i] = in1[i] * d;
}`;
  launch(b, code, [x, dy], [o], [sizeOf(o.shape)], sizeOf(o.shape));
};

export const elementwiseKernels = {
  [Op.Add]: binaryKernel(Op.Add),
  [Op.Sub]: binaryKernel(Op.Sub),
  [Op.Mul]: binaryKernel(Op.Mul),
  [Op.Div]: binaryKernel(Op.Div),
  [Op.Pow]: binaryKernel(Op.Pow),
  [Op.Maximum]: binaryKernel(Op.Maximum),
  [Op.Compare]: compareKernel,
  [Op.Where]: whereKernel,
  [Op.Neg]: unaryKernel(Op.Neg),
  [Op.Abs]: unaryKernel(Op.Abs),
  [Op.Exp]: unaryKernel(Op.Exp),
  [Op.Log]: unaryKernel(Op.Log),
  [Op.Sqrt]: unaryKernel(Op.Sqrt),
  [Op.Rsqrt]: unaryKernel(Op.Rsqrt),
  [Op.Sigmoid]: unaryKernel(Op.Sigmoid),
  [Op.Tanh]: unaryKernel(Op.Tanh),
  [Op.Silu]: unaryKernel(Op.Silu),
  [Op.Gelu]: geluKernel,
  [Op.GeluGrad]: geluGradKernel,
} satisfies { [O in Op.Add | Op.Sub | Op.Mul | Op.Div | Op.Pow | Op.Maximum | Op.Compare | Op.Where | Op.Neg | Op.Abs | Op.Exp | Op.Log | Op.Sqrt | Op.Rsqrt | Op.Sigmoid | Op.Tanh | Op.Silu | Op.Gelu | Op.GeluGrad]: Kernel<O> };
