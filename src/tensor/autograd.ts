// Reverse-mode autograd: the gradient rule of every op (exhaustive table) and backward over the recorded graph.
import * as T from './api.js';
import { keep, noGrad, tidy } from './engine.js';
import { Op, type OpParams } from './ops.js';
import { ShapeError, normAxis } from './shape.js';
import { Tensor, type TapeNode } from './tensor.js';

interface GradCtx<O extends Op> {
  inputs: readonly Tensor[];
  outputs: readonly Tensor[];
  params: OpParams[O];
  /** gradient of each output (null where nothing flowed back) */
  dys: readonly (Tensor | null)[];
}
/** Gradient of each input (null: none, or not differentiable in that input). */
export type GradRule<O extends Op> = ((c: GradCtx<O>) => (Tensor | null)[]) | null;

/** Sums a broadcast gradient back to `shape`. */
export function unbroadcast(g: Tensor, shape: readonly number[]): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  return T.reshape(axes.length ? T.sum(g, axes) : g, shape);
}

/** Broadcasts a reduced gradient (reduced over `axes`) back to `shape`. */
function expand(g: Tensor, shape: readonly number[], axes: readonly number[]): Tensor {
  const set = new Set(axes.length === 0 ? shape.map((_, i) => i) : axes.map((a) => normAxis('reduce', a, shape.length)));
  const kept = shape.map((d, i) => (set.has(i) ? 1 : d));
  return T.add(T.reshape(g, kept), T.zeros(shape));
}

const first = <O extends Op>(c: GradCtx<O>): Tensor => c.dys[0]!;
const inv = (perm: readonly number[]): number[] => {
  const r = new Array<number>(perm.length);
  perm.forEach((p, i) => (r[p] = i));
  return r;
};
/** Only computes a gradient for inputs that need one. */
const need = (c: GradCtx<Op>, i: number, f: () => Tensor): Tensor | null => (c.inputs[i]!.requiresGrad ? f() : null);

function matmulGrad(c: GradCtx<Op.Matmul>): (Tensor | null)[] {
  const [a, b, bias] = c.inputs as [Tensor, Tensor, Tensor | undefined];
  const dC = first(c);
  const { transA, transB } = c.params;
  const dA = need(c, 0, () => (transA ? T.matmul(b, dC, { transA: transB, transB: true }) : T.matmul(dC, b, { transB: !transB })));
  const dB = need(c, 1, () => {
    const full = transB ? T.matmul(dC, a, { transA: true, transB: transA }) : T.matmul(a, dC, { transA: !transA });
    return full.rank > b.rank ? T.sum(full, full.shape.slice(0, full.rank - 2).map((_, i) => i)) : full;
  });
  const dBias = bias ? need(c, 2, () => T.sum(dC, dC.shape.slice(0, -1).map((_, i) => i))) : null;
  return bias ? [dA, dB, dBias] : [dA, dB];
}

const unaryRule = (f: (x: Tensor, y: Tensor, dy: Tensor) => Tensor) => <O extends Op>(c: GradCtx<O>) => [f(c.inputs[0]!, c.outputs[0]!, first(c))];

export const GRAD: { [O in Op]: GradRule<O> } = {
  [Op.Add]: (c) => [need(c, 0, () => unbroadcast(first(c), c.inputs[0]!.shape)), need(c, 1, () => unbroadcast(first(c), c.inputs[1]!.shape))],
  [Op.Sub]: (c) => [need(c, 0, () => unbroadcast(first(c), c.inputs[0]!.shape)), need(c, 1, () => unbroadcast(T.neg(first(c)), c.inputs[1]!.shape))],
  [Op.Mul]: (c) => {
    const [a, b] = c.inputs as [Tensor, Tensor];
    return [need(c, 0, () => unbroadcast(T.mul(first(c), b), a.shape)), need(c, 1, () => unbroadcast(T.mul(first(c), a), b.shape))];
  },
  [Op.Div]: (c) => {
    const [a, b] = c.inputs as [Tensor, Tensor];
    return [need(c, 0, () => unbroadcast(T.div(first(c), b), a.shape)), need(c, 1, () => unbroadcast(T.neg(T.div(T.mul(first(c), c.outputs[0]!), b)), b.shape))];
  },
  [Op.Pow]: (c) => {
    const [a, b] = c.inputs as [Tensor, Tensor];
    return [
      need(c, 0, () => unbroadcast(T.mul(first(c), T.mul(b, T.pow(a, T.sub(b, 1)))), a.shape)),
      need(c, 1, () => unbroadcast(T.mul(first(c), T.mul(c.outputs[0]!, T.log(a))), b.shape)),
    ];
  },
  [Op.Maximum]: (c) => {
    const [a, b] = c.inputs as [Tensor, Tensor];
    const mask = T.compare(a, b, 'ge');
    return [need(c, 0, () => unbroadcast(T.mul(first(c), mask), a.shape)), need(c, 1, () => unbroadcast(T.mul(first(c), T.sub(1, mask)), b.shape))];
  },
  [Op.Compare]: null,
  [Op.Where]: (c) => {
    const [cond, a, b] = c.inputs as [Tensor, Tensor, Tensor];
    return [null, need(c, 1, () => unbroadcast(T.where(cond, first(c), 0), a.shape)), need(c, 2, () => unbroadcast(T.where(cond, 0, first(c)), b.shape))];
  },
  [Op.Neg]: unaryRule((_x, _y, dy) => T.neg(dy)),
  [Op.Abs]: unaryRule((x, _y, dy) => T.mul(dy, T.sub(T.compare(x, 0, 'gt'), T.compare(x, 0, 'lt')))),
  [Op.Exp]: unaryRule((_x, y, dy) => T.mul(dy, y)),
  [Op.Log]: unaryRule((x, _y, dy) => T.div(dy, x)),
  [Op.Sqrt]: unaryRule((_x, y, dy) => T.div(dy, T.mul(y, 2))),
  [Op.Rsqrt]: unaryRule((_x, y, dy) => T.mul(dy, T.mul(T.mul(y, T.mul(y, y)), -0.5))),
  [Op.Sigmoid]: unaryRule((_x, y, dy) => T.mul(dy, T.mul(y, T.sub(1, y)))),
  [Op.Tanh]: unaryRule((_x, y, dy) => T.mul(dy, T.sub(1, T.mul(y, y)))),
  [Op.Silu]: unaryRule((x, _y, dy) => {
    const s = T.sigmoid(x);
    return T.mul(dy, T.mul(s, T.add(1, T.mul(x, T.sub(1, s)))));
  }),
  [Op.Gelu]: (c) => [T.run(Op.GeluGrad, [c.inputs[0]!, first(c)], c.params)[0]!],
  [Op.GeluGrad]: null,
  [Op.Sum]: (c) => [expand(first(c), c.inputs[0]!.shape, c.params.axes)],
  [Op.Mean]: (c) => {
    const x = c.inputs[0]!;
    return [T.mul(expand(first(c), x.shape, c.params.axes), c.outputs[0]!.size / Math.max(x.size, 1))];
  },
  [Op.Max]: (c) => {
    const x = c.inputs[0]!;
    const y = expand(c.outputs[0]!, x.shape, c.params.axes);
    const mask = T.compare(x, y, 'eq');
    const count = expand(T.sum(mask, c.params.axes, c.params.keepDims), x.shape, c.params.axes);
    return [T.div(T.mul(mask, expand(first(c), x.shape, c.params.axes)), count)];
  },
  [Op.LogSumExp]: (c) => {
    const x = c.inputs[0]!;
    const axes = [c.params.axis];
    return [T.mul(expand(first(c), x.shape, axes), T.exp(T.sub(x, expand(c.outputs[0]!, x.shape, axes))))];
  },
  [Op.Argmax]: null,
  [Op.Softmax]: (c) => {
    const y = c.outputs[0]!;
    return [T.mul(y, T.sub(first(c), T.sum(T.mul(first(c), y), c.params.axis, true)))];
  },
  [Op.LogSoftmax]: (c) => [T.sub(first(c), T.mul(T.exp(c.outputs[0]!), T.sum(first(c), c.params.axis, true)))],
  [Op.TopK]: (c) => [c.dys[0] ? T.scatterAlong(c.dys[0], c.outputs[1]!, c.inputs[0]!.shape.at(-1)!) : null],
  [Op.TakeAlong]: (c) => [T.scatterAlong(first(c), c.inputs[1]!, c.inputs[0]!.shape.at(-1)!), null],
  [Op.ScatterAlong]: (c) => [T.takeAlong(first(c), c.inputs[1]!), null],
  [Op.Reshape]: (c) => [T.reshape(first(c), c.inputs[0]!.shape)],
  [Op.Transpose]: (c) => [T.transpose(first(c), inv(c.params.perm))],
  [Op.Slice]: (c) => {
    const x = c.inputs[0]!;
    return [T.pad(first(c), x.shape.map((d, i) => [c.params.begin[i]!, d - c.params.begin[i]! - c.params.size[i]!] as [number, number]))];
  },
  [Op.Concat]: (c) => {
    const axis = normAxis('concat', c.params.axis, c.inputs[0]!.rank);
    let at = 0;
    return c.inputs.map((x) => {
      const begin = x.shape.map((_, i) => (i === axis ? at : 0));
      at += x.shape[axis]!;
      return x.requiresGrad ? T.slice(first(c), begin, x.shape) : null;
    });
  },
  [Op.Pad]: (c) => [T.slice(first(c), c.params.pads.map(([b]) => b), c.inputs[0]!.shape)],
  [Op.Gather]: (c) => {
    const [table, idx] = c.inputs as [Tensor, Tensor];
    const rest = table.shape.slice(1);
    return [T.scatterAdd(T.reshape(first(c), [idx.size, ...rest]), T.reshape(idx, [idx.size]), table.shape[0]!), null];
  },
  [Op.ScatterAdd]: (c) => [T.gather(first(c), c.inputs[1]!), null],
  [Op.Cast]: (c) => [c.inputs[0]!.dtype === 'f32' ? T.cast(first(c), 'f32') : null],
  [Op.Dequantize]: null,
  [Op.Quantize]: null,
  [Op.Matmul]: matmulGrad,
  [Op.GroupedMatmul]: (c) => {
    const [x, w, off] = c.inputs as [Tensor, Tensor, Tensor];
    return [
      need(c, 0, () => T.groupedMatmul(first(c), w, off, !c.params.transW)),
      need(c, 1, () => T.run(Op.GroupedMatmulWeightGrad, [x, first(c), off], { transW: c.params.transW })[0]!),
      null,
    ];
  },
  [Op.GroupedMatmulWeightGrad]: null,
  [Op.QuantMatmul]: (c) => {
    const [, w, scales] = c.inputs as [Tensor, Tensor, Tensor | undefined];
    const { format, groupSize } = c.params;
    const dense = format === 'f16' || format === 'bf16' ? T.cast(w, 'f32') : T.dequantize(w, scales!, format, groupSize);
    return [T.matmul(first(c), dense), null, null];
  },
  [Op.RMSNorm]: (c) => T.run(Op.RMSNormGrad, [c.inputs[0]!, c.inputs[1]!, first(c)], c.params),
  [Op.RMSNormGrad]: null,
  [Op.ExpertBins]: null,
  [Op.RouteTopK]: null,
  [Op.MoeFfn]: null,
  [Op.ClusteredFfn]: null,
  [Op.RoPE]: (c) => [T.run(Op.RoPE, [first(c), c.inputs[1]!, c.inputs[2]!], { ...c.params, inverse: !c.params.inverse })[0]!, null, null],
  [Op.Attention]: (c) => {
    const [q, k, v] = c.inputs as [Tensor, Tensor, Tensor];
    const [o, lse] = c.outputs as [Tensor, Tensor]; // (B, T, Hq, Dv), (B, Hq, T)
    const dO = c.dys[0] ?? T.zeros(o.shape); // (B, T, Hq, Dv)
    const dLse = c.dys[1];
    if (!dLse) return T.run(Op.AttentionGrad, [q, k, v, o, lse, dO], c.params);
    // d lse_i / d s_ij = P_ij, so the lse cotangent g enters dS_ij = P_ij·(dP_ij − (Di − g_i)): the backward kernel
    // gets one extra value column that is 0 in v, −g in o and 1 in dO (Di = dO·o then includes −g; dP is unchanged)
    const [B, Tq, Hq] = o.shape as [number, number, number];
    const g = T.reshape(T.transpose(dLse, [0, 2, 1]), [B, Tq, Hq, 1]); // (B, T, Hq, 1)
    const v1 = T.pad(v, [[0, 0], [0, 0], [0, 0], [0, 1]]); // (B, S, Hkv, Dv + 1)
    const o1 = T.concat([o, T.neg(g)], 3); // (B, T, Hq, Dv + 1)
    const dO1 = T.pad(dO, [[0, 0], [0, 0], [0, 0], [0, 1]], 1); // (B, T, Hq, Dv + 1)
    const [dq, dk, dv1] = T.run(Op.AttentionGrad, [q, k, v1, o1, lse, dO1], c.params) as [Tensor, Tensor, Tensor];
    return [dq, dk, T.slice(dv1, [0, 0, 0, 0], [-1, -1, -1, v.shape[3]!])];
  },
  [Op.AttentionGrad]: null,
  [Op.RaggedAttention]: null,
  [Op.CrossEntropy]: (c) => {
    if (c.dys[1]) throw new Error('cross_entropy: gradients through the log-sum-exp output are not supported');
    return [T.run(Op.CrossEntropyGrad, [c.inputs[0]!, c.inputs[1]!, c.outputs[1]!, first(c)], c.params)[0]!, null];
  },
  [Op.CrossEntropyGrad]: null,
};

/** Nodes reachable from `root`, newest first (a valid reverse topological order: seq grows with creation). */
function reachable(root: Tensor): TapeNode[] {
  const seen = new Set<TapeNode>();
  const stack: Tensor[] = [root];
  while (stack.length) {
    const t = stack.pop()!;
    const n = t.node;
    if (!n || seen.has(n)) continue;
    seen.add(n);
    for (const i of n.inputs) if (i.requiresGrad) stack.push(i);
  }
  return [...seen].sort((a, b) => b.seq - a.seq);
}

/**
 * Backpropagates from `root` (a one-element loss, or any tensor with `seed` as its gradient) and
 * adds the gradients of every leaf that requires grad into `leaf.grad` (accumulating across calls).
 */
export function backward(root: Tensor, seed?: Tensor): void {
  if (!root.requiresGrad) throw new Error(`backward: ${root} does not require grad (no recorded op reaches a parameter)`);
  if (!seed && root.size !== 1) throw new ShapeError(`backward: ${root} has ${root.size} elements; pass a seed gradient of the same shape`);
  const leaves: [Tensor, Tensor][] = [];
  noGrad(() =>
    tidy(() => {
      const grads = new Map<Tensor, Tensor>();
      const addGrad = (t: Tensor, g: Tensor): void => {
        const prev = grads.get(t);
        grads.set(t, prev ? T.add(prev, g) : g);
      };
      addGrad(root, seed ?? T.ones(root.shape));
      for (const node of reachable(root)) {
        const dys = node.outputs.map((o) => grads.get(o) ?? null);
        if (dys.every((d) => d === null)) continue;
        const rule = GRAD[node.op] as GradRule<Op>;
        if (!rule) throw new Error(`backward: op ${node.op} has no gradient`);
        const dxs = rule({ inputs: node.inputs, outputs: node.outputs, params: node.params, dys });
        node.inputs.forEach((x, i) => {
          const g = dxs[i];
          if (g && x.requiresGrad) addGrad(x, g);
        });
      }
      for (const [t, g] of grads) if (!t.node && t.requiresGrad) leaves.push([t, g]);
      for (const [t, g] of leaves) {
        const total = t.grad ? T.add(t.grad, g) : g;
        if (t.grad && t.grad !== total) t.grad.dispose();
        t.grad = keep(total);
      }
    }),
  );
}

/** Clears accumulated gradients. */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}

/** Marks a tensor as a trainable leaf: kept across tidy scopes, gradients accumulate in `.grad`. */
export function variable(t: Tensor): Tensor {
  t.requiresGrad = true;
  return keep(t);
}

