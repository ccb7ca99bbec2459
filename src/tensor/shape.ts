// Shape helpers: sizes, strides, broadcasting, axis normalisation, and the error type for misuse.
import type { DType } from './dtype.js';

/** Thrown when an op is given shapes or dtypes it cannot take; the message names the op and the values. */
export class ShapeError extends Error {
  override name = 'ShapeError';
}

export const fmt = (shape: readonly number[]): string => `(${shape.join(', ')})`;
export const fmtInfo = (shape: readonly number[], dtype: DType): string => `${dtype}${fmt(shape)}`;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** numpy broadcasting of two shapes, or null when they do not broadcast. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Element strides of `shape` read as if broadcast to `out` (0 on broadcast axes). */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const st = stridesOf(shape);
  const res = new Array<number>(out.length).fill(0);
  const off = out.length - shape.length;
  for (let i = 0; i < shape.length; i++) res[off + i] = shape[i] === 1 ? 0 : st[i]!;
  return res;
}

/** Axis in [0, rank) from a possibly negative axis; throws naming the op when out of range. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= Math.max(rank, 1)) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

export function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** (outer, n, inner) view of a shape around one axis. */
export function splitAxis(shape: readonly number[], axis: number): [number, number, number] {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i]!;
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i]!;
  return [outer, shape[axis] ?? 1, inner];
}
