// Shared engine-adapter contract for the benchmarks: problem data, a prepared callable, timing and the correctness check.

/** One fp32 GEMM problem, C (M, N) = A (M, K) · B (K, N), row-major host data. */
export interface GemmProblem {
  readonly M: number;
  readonly K: number;
  readonly N: number;
  readonly a: Float32Array;
  readonly b: Float32Array;
}

/** A problem loaded into an engine: `run` computes C (timed), `output` computes C and returns a host copy. */
export interface Prepared {
  run(): void | Promise<void>;
  output(): Float32Array | Promise<Float32Array>;
  dispose(): void | Promise<void>;
}

/** An engine started with a thread count; `threads` is what it really runs with (may differ from the request). */
export interface GemmEngine {
  readonly threads: number;
  /** Why `threads` differs from the request, or other caveats shown in the result row. */
  readonly note?: string;
  prepareGemm(p: GemmProblem): Promise<Prepared>;
  close(): Promise<void>;
}

/** One JSON result line. `gflops: null` means the configuration could not run; `note` says why. */
export interface ResultRow {
  engine: string;
  threads: number;
  gflops: number | null;
  ms?: number;
  reps?: number;
  /** CPU cores that other processes kept busy on average during the measurement (the machine is shared). */
  other?: number;
  /** With --rounds > 1: rounds run, and 1 − worst/best GFLOP/s over them. */
  rounds?: number;
  spread?: number;
  note?: string;
  shape?: [number, number, number];
  case?: string;
}

/** Deterministic xorshift32 PRNG: uniform floats in [0, 1). */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) || 0x9e3779b9; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.s = x;
    return x / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number { return Math.floor(this.next() * n); }
}

/**
 * Inputs are uniform in [0, 1): every entry of C is about K/4, so a plain relative error is well-defined
 * and an engine that skips, repeats or mis-indexes part of the K sum is caught at the 1e-3 tolerance.
 */
export function randomData(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = r.next();
  return out;
}

export function makeProblem(M: number, K: number, N: number, seed = 1): GemmProblem {
  return { M, K, N, a: randomData(M * K, seed), b: randomData(K * N, seed + 101) };
}

/** Checks corners and 12 pseudo-random entries of c against a float64 reference; throws on relative error ≥ tol. */
export function checkGemm(p: GemmProblem, c: Float32Array, tol = 1e-3): void {
  const { M, K, N, a, b } = p;
  if (c.length < M * N) throw new Error(`wrong result: output has ${c.length} elements, expected ${M * N}`);
  const r = new Rng(12345);
  const points: [number, number][] = [[0, 0], [0, N - 1], [M - 1, 0], [M - 1, N - 1]];
  for (let i = 0; i < 12; i++) points.push([r.int(M), r.int(N)]);
  for (const [i, j] of points) {
    let ref = 0;
    for (let k = 0; k < K; k++) ref += a[i * K + k]! * b[k * N + j]!;
    const got = c[i * N + j]!;
    const rel = Math.abs(got - ref) / Math.max(Math.abs(ref), 1e-30);
    if (!(rel < tol)) throw new Error(`wrong result: C[${i},${j}] = ${got}, reference ${ref.toPrecision(8)} (relative error ${rel.toExponential(2)})`);
  }
}

export interface Timing { ms: number; reps: number }

/**
 * Median per-call time of fn: warm-up (at least one call and ~20% of minTime), then timed calls until at least
 * minTime seconds and 3 calls have passed (2 calls when a single call already takes longer than minTime).
 */
export async function measure(fn: () => void | Promise<void>, minTimeS: number): Promise<Timing> {
  const minMs = minTimeS * 1000;
  let t0 = performance.now();
  await fn();
  let first = performance.now() - t0;
  while (performance.now() - t0 < 0.2 * minMs) {
    const s = performance.now();
    await fn();
    first = Math.min(first, performance.now() - s);
  }
  const minReps = first > minMs ? 2 : 3;
  const times: number[] = [];
  t0 = performance.now();
  while (times.length < minReps || performance.now() - t0 < minMs) {
    const s = performance.now();
    await fn();
    times.push(performance.now() - s);
  }
  times.sort((x, y) => x - y);
  const mid = times.length >> 1;
  const ms = times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
  return { ms, reps: times.length };
}

export function gflops(flops: number, ms: number): number {
  return flops / (ms * 1e6);
}

export function errorMessage(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.slice(0, 300);
}
