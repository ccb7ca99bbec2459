// The grouped-matmul benchmark problem: top-k routing (uniform or Zipf-skewed), expert-sorted rows, offsets, check.
import type { GroupedProblem } from './moekit.js';
import { Rng, randomData } from './types.js';

export type Routing = 'uniform' | 'skewed';

export interface MoeShape {
  tokens: number; // T
  hidden: number; // H = K of the GEMM
  inter: number; // I = N of the GEMM
  experts: number; // E
  topK: number;
}

export const DEFAULT_MOE: MoeShape = { tokens: 512, hidden: 512, inter: 1024, experts: 16, topK: 2 };

/** Zipf exponent of the skewed routing: expert e is picked with weight 1 / (e + 1)^s (without replacement per token). */
export const ZIPF_S = 1.5;

/** Rows per expert after routing every token to topK distinct experts (fixed seed). */
export function routeCounts(shape: MoeShape, routing: Routing, seed = 7): Int32Array {
  const { tokens, experts, topK } = shape;
  const r = new Rng(seed);
  const weights = Array.from({ length: experts }, (_, e) => (routing === 'uniform' ? 1 : 1 / Math.pow(e + 1, ZIPF_S)));
  const counts = new Int32Array(experts);
  for (let t = 0; t < tokens; t++) {
    const w = weights.slice();
    for (let k = 0; k < topK; k++) {
      const total = w.reduce((s, v) => s + v, 0);
      let u = r.next() * total;
      let e = 0;
      while (e < experts - 1 && u >= w[e]!) { u -= w[e]!; e++; }
      while (w[e] === 0) e = (e + 1) % experts; // float edge case: never pick an expert twice
      counts[e]!++;
      w[e] = 0;
    }
  }
  return counts;
}

/** x (T·topK, H) permuted rows sorted by expert, w (E, H, I), offsets from the routing. */
export function makeGrouped(shape: MoeShape, routing: Routing, seed = 3): GroupedProblem {
  const counts = routeCounts(shape, routing);
  const E = shape.experts;
  const offsets = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e]! + counts[e]!;
  const T = offsets[E]!;
  return {
    T, K: shape.hidden, N: shape.inter, E, offsets,
    x: randomData(T * shape.hidden, seed),
    w: randomData(E * shape.hidden * shape.inter, seed + 17),
  };
}

/** Parses "HxIxE" (hidden × expert width × experts) into a MoeShape with DEFAULT_MOE's tokens and top-k. */
export function parseMoeDims(s: string): MoeShape {
  const d = s.split('x').map(Number);
  if (d.length !== 3 || d.some((v) => !Number.isInteger(v) || v <= 0)) throw new Error(`--moe: bad dims "${s}" (want HxIxE, e.g. 512x1024x16)`);
  return { ...DEFAULT_MOE, hidden: d[0]!, inter: d[1]!, experts: d[2]! };
}

/** Balanced grouped problem: every expert gets exactly `rows` rows (the rows-per-expert sweep for the ridge point). */
export function makeBalanced(shape: MoeShape, rows: number, seed = 3): GroupedProblem {
  const E = shape.experts;
  const offsets = new Int32Array(E + 1);
  for (let e = 0; e <= E; e++) offsets[e] = e * rows;
  const T = E * rows;
  return {
    T, K: shape.hidden, N: shape.inter, E, offsets,
    x: randomData(T * shape.hidden, seed),
    w: randomData(E * shape.hidden * shape.inter, seed + 17),
  };
}

/** Checks a few rows/columns of y against float64 x_e · W_e; throws on relative error ≥ tol. */
export function checkGrouped(g: GroupedProblem, y: Float32Array, tol = 1e-3): void {
  if (y.length < g.T * g.N) throw new Error(`wrong result: output has ${y.length} elements, expected ${g.T * g.N}`);
  const r = new Rng(999);
  const rows = [0, g.T - 1];
  for (let i = 0; i < 14; i++) rows.push(r.int(g.T));
  for (const row of rows) {
    let e = 0;
    while (g.offsets[e + 1]! <= row) e++;
    const j = r.int(g.N);
    let ref = 0;
    for (let k = 0; k < g.K; k++) ref += g.x[row * g.K + k]! * g.w[(e * g.K + k) * g.N + j]!;
    const got = y[row * g.N + j]!;
    const rel = Math.abs(got - ref) / Math.max(Math.abs(ref), 1e-30);
    if (!(rel < tol)) throw new Error(`wrong result: y[${row},${j}] (expert ${e}) = ${got}, reference ${ref.toPrecision(8)}`);
  }
}

/** "64,64,...": the per-expert row counts, for notes. */
export function describeCounts(g: GroupedProblem): string {
  const c: number[] = [];
  for (let e = 0; e < g.E; e++) c.push(g.offsets[e + 1]! - g.offsets[e]!);
  return c.join(',');
}
