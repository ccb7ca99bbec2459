// Basic layers: Linear (weight (out, in) like torch nn.Linear, f32 or kept as stored: bf16/f16, MXFP4, FP8), Embedding
// and RMSNorm.
import { add, canReadSync, compare, gather, matmul, mul, needsGrad, ones, quantMatmul, reshape, rmsNorm, sub, zeros } from '../tensor/api.js';
import { ENGINE, noGrad } from '../tensor/engine.js';
import type { Rng } from '../tensor/random.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module, initNormal } from './module.js';
import { logicalShape, storedForm } from './packed.js';

export interface LinearOptions {
  /** add a bias (out); default false (LLM projections have none) */
  bias?: boolean;
  /** init std; default 1/sqrt(in) (keeps activation scale) */
  std?: number;
}

/**
 * x (..., in) · Wᵀ (+ b) with W (out, in) f32 (matmul) or kept as stored — bf16/f16, or packed MXFP4 / FP8 (nn/packed)
 * — through quantMatmul, widened on the fly (no gradient reaches a kept weight, only x) -> (..., out).
 */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const s = storedForm(w);
  if (!s) return matmul(x, w, b ? { transB: true, bias: b } : { transB: true });
  const [N, K] = logicalShape(w) as [number, number];
  if (needsGrad(w)) throw new Error(halfTrainingError(`a ${s.format} Linear weight (${N} x ${K})`));
  const y = quantMatmul(reshape(x, [x.size / K, K]), w, s.scales, s.format, s.groupSize); // (M, N)
  return reshape(b ? add(y, b) : y, [...x.shape.slice(0, -1), N]);
}

/** The error for training through weights kept in their bf16/f16 storage dtype (they would get no gradient). */
export const halfTrainingError = (what: string): string =>
  `${what} was kept in its storage dtype, which has no gradient: training it would leave it unchanged. Widen the model first (model.upcast(), or load with loadDtype 'f32' / --load-dtype f32), or run under noGrad`;

/** y = x · Wᵀ (+ b) with W (out, in). */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly hasBias: boolean;

  constructor(inFeatures: number, outFeatures: number, rng: Rng, opts: LinearOptions = {}) {
    super();
    if (!(Number.isInteger(inFeatures) && inFeatures > 0 && Number.isInteger(outFeatures) && outFeatures > 0)) {
      throw new Error(`Linear: in ${inFeatures} and out ${outFeatures} must be positive integers`);
    }
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.hasBias = opts.bias ?? false;
    this.addParameter('weight', initNormal([outFeatures, inFeatures], rng, opts.std ?? 1 / Math.sqrt(inFeatures))); // (out, in)
    if (this.hasBias) this.addParameter('bias', zeros([outFeatures])); // (out)
  }

  get weight(): Tensor {
    return this.param('weight');
  }

  get bias(): Tensor | undefined {
    return this.hasBias ? this.param('bias') : undefined;
  }

  /** x (..., in) -> (..., out) */
  forward(x: Tensor): Tensor {
    if (x.rank < 2 || x.shape.at(-1) !== this.inFeatures) {
      throw new ShapeError(`Linear(${this.inFeatures} -> ${this.outFeatures}): input ${fmtInfo(x.shape, x.dtype)} must be (..., ${this.inFeatures}) with rank >= 2`);
    }
    return linear(x, this.weight, this.bias); // (..., out)
  }
}

/** Token embedding table (V, H). */
export class Embedding extends Module {
  readonly vocab: number;
  readonly dim: number;

  /** the row that gets no gradient (torch `padding_idx`: the pad token's embedding stays as loaded); null = none */
  readonly paddingIdx: number | null;

  constructor(vocab: number, dim: number, rng: Rng, std = 1, paddingIdx: number | null = null) {
    super();
    this.vocab = vocab;
    this.dim = dim;
    if (paddingIdx !== null && !(Number.isInteger(paddingIdx) && paddingIdx >= 0 && paddingIdx < vocab)) throw new RangeError(`Embedding(${vocab}, ${dim}): paddingIdx ${paddingIdx} must be a token id in [0, ${vocab})`);
    this.paddingIdx = paddingIdx;
    this.addParameter('weight', initNormal([vocab, dim], rng, std)); // (V, H)
  }

  get weight(): Tensor {
    return this.param('weight');
  }

  /** ids i32 (...) -> (..., H) */
  forward(ids: Tensor): Tensor {
    if (ids.dtype !== 'i32') throw new ShapeError(`Embedding(${this.vocab}, ${this.dim}): ids must be i32, got ${fmtInfo(ids.shape, ids.dtype)}`);
    const pad = this.paddingIdx;
    // (the ids are inspected only where that is a cheap synchronous read; GPU backends always take the masked form)
    if (pad === null || !ENGINE.gradEnabled || (canReadSync() && !ids.dataSync().includes(pad))) return gather(this.weight, ids); // (..., H)
    // the pad rows take their values from a copy gradients do not reach; every other row from the live table
    const live = gather(this.weight, ids); // (..., H)
    const frozen = noGrad(() => gather(this.weight, ids)); // (..., H)
    const keepRow = noGrad(() => reshape(compare(ids, pad, 'ne'), [...ids.shape, 1])); // (..., 1) 1 except at pad
    return add(mul(live, keepRow), mul(frozen, noGrad(() => sub(1, keepRow)))); // (..., H)
  }
}

/** x / rms(x) · w over the last axis. */
export class RMSNorm extends Module {
  readonly dim: number;
  readonly eps: number;

  constructor(dim: number, eps = 1e-6) {
    super();
    this.dim = dim;
    this.eps = eps;
    this.addParameter('weight', ones([dim])); // (H)
  }

  get weight(): Tensor {
    return this.param('weight');
  }

  /** x (..., H) -> (..., H) */
  forward(x: Tensor): Tensor {
    if (x.shape.at(-1) !== this.dim) throw new ShapeError(`RMSNorm(${this.dim}): input ${fmtInfo(x.shape, x.dtype)} must end in ${this.dim}`);
    return rmsNorm(x, this.weight, this.eps);
  }
}
