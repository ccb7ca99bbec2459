// gradcheck: compares autograd gradients with central finite differences, in float64 on the js backend.
import { JsBackend } from './js/index.js';
import { allocTyped, type DType, type TypedArray } from '../tensor/dtype.js';
import * as T from '../tensor/api.js';
import { backward } from '../tensor/autograd.js';
import { ENGINE, fromTyped, keep, noGrad, tidy } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import { sizeOf } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

export interface GradcheckInput {
  data: ArrayLike<number>;
  shape: readonly number[];
  /** default f32; i32 inputs (indices, offsets) are constants */
  dtype?: DType;
  /** default true for f32 inputs */
  grad?: boolean;
}

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** check at most this many elements per input (chosen at random); default 4096 */
  maxElements?: number;
  seed?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** largest |analytic - numeric| over all checked elements */
  maxAbsErr: number;
  /** the element that was worst relative to its tolerance */
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
}

/**
 * Checks the gradient of sum(f(...xs) * r) for a fixed random r against central differences.
 * Runs on a float64 js backend so the comparison is not drowned by float32 rounding.
 */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: readonly GradcheckInput[], opts: GradcheckOptions = {}): GradcheckResult {
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const rng = new Rng(opts.seed ?? 1234);
  const prev = ENGINE.backend;
  const backend = new JsBackend({ float64: true });
  ENGINE.backend = backend;
  try {
    return tidy(() => {
      const xs = inputs.map((inp) => {
        const dtype = inp.dtype ?? 'f32';
        const data = dtype === 'f32' ? Float64Array.from(inp.data) : allocTyped(dtype, inp.data.length);
        if (dtype !== 'f32') for (let i = 0; i < inp.data.length; i++) data[i] = inp.data[i]!;
        const x = keep(backendTensor(backend, data, inp.shape, dtype));
        x.requiresGrad = dtype === 'f32' && inp.grad !== false;
        return x;
      });
      const y = f(...xs);
      const r = Float64Array.from({ length: y.size }, () => rng.normal());
      const rT = backendTensor(backend, r, y.shape, 'f32');
      backward(T.sum(T.mul(y, rT)));
      const loss = (): number => noGrad(() => tidy(() => T.sum(T.mul(f(...xs), rT)).item()));
      let maxAbsErr = 0;
      let worstRatio = -1;
      let worst: GradcheckResult['worst'] = null;
      xs.forEach((x, xi) => {
        if (!x.requiresGrad) return;
        const analytic = x.grad ? x.grad.dataSync() : new Float64Array(x.size);
        const vals = x.dataSync() as Float64Array;
        const n = x.size;
        const max = opts.maxElements ?? 4096;
        const picks = n <= max ? Array.from({ length: n }, (_, i) => i) : Array.from({ length: max }, () => rng.int(n));
        for (const i of picks) {
          const orig = vals[i]!;
          vals[i] = orig + eps;
          backend.write(x.dataId, vals);
          const lp = loss();
          vals[i] = orig - eps;
          backend.write(x.dataId, vals);
          const lm = loss();
          vals[i] = orig;
          backend.write(x.dataId, vals);
          const numeric = (lp - lm) / (2 * eps);
          const a = analytic[i]!;
          const err = Math.abs(a - numeric);
          maxAbsErr = Math.max(maxAbsErr, err);
          const ratio = err / (atol + rtol * Math.abs(numeric));
          if (ratio > worstRatio || Number.isNaN(err)) {
            worstRatio = Number.isNaN(err) ? Infinity : ratio;
            worst = { input: xi, index: i, analytic: a, numeric };
          }
        }
      });
      for (const x of xs) {
        x.grad?.dispose();
        x.dispose();
      }
      return { ok: worstRatio <= 1, maxAbsErr, worst };
    }) as GradcheckResult;
  } finally {
    ENGINE.backend = prev;
  }
}

function backendTensor(backend: JsBackend, data: TypedArray, shape: readonly number[], dtype: DType): Tensor {
  if (sizeOf(shape) !== data.length) throw new Error(`gradcheck: ${data.length} values do not fill shape (${shape.join(', ')})`);
  return fromTyped(data, shape, dtype, backend);
}
