// Comparison helpers for tests: relative error with NaN/infinity matching, max |a − b|, and token ids as a tensor.
import * as mk from '../../src/index.js';

/** max |a - b| / max(1, max |b|); NaN and infinities must match exactly (else Infinity). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let scale = 1;
  for (let i = 0; i < b.length; i++) if (Number.isFinite(b[i]!)) scale = Math.max(scale, Math.abs(b[i]!));
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      if (!(Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)))) return Infinity;
      continue;
    }
    m = Math.max(m, Math.abs(x - y) / scale);
  }
  return m;
}

/** max |a - b|; the lengths must match (else it throws, naming both); NaN anywhere gives NaN. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths ${a.length} and ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Token ids as a (1, T) i32 tensor. */
export const ids = (xs: readonly number[]): mk.Tensor => mk.tensor(Int32Array.from(xs), [1, xs.length], 'i32');
