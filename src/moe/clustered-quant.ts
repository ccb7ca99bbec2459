// Heterogeneous precision for the clustered experts (the paper's §4): FP16 bases and INT4 (or INT8) group-wise
// residual factors with FP16 scales; the inference form multiplies with the engine's quantised matmul, dequantising
// on the fly, one call per group (bases) or expert (factors) over its contiguous rows. `ClusteredExperts.toQuantized`
// returns it as an experts module (`QuantizedClusteredExperts`), and its `toFused()` the form the fused kernel reads.
import { Module } from '../nn/module.js';
import { cast, concat, dequantize, quantMatmul, quantize, reshape, slice, transpose, zeros } from '../tensor/api.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import type { QuantFormat } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { composedExperts, runClusteredExperts, type ClusteredExpertsForm, type ClusteredExpertsResult, type ClusteredExpertWeights, type ExpertMatmuls, type ExpertMatrix } from './clustered-ffn.js';

export interface QuantFactor {
  data: Tensor; // (out, in/2) u8 int4 or (out, in) i8
  scales: Tensor; // (out, in/groupSize) f16
  groupSize: number;
}

/** One layer's experts in inference form: per group an FP16 base Wᵀ (out, in); per expert quantised Aᵀ and Bᵀ. */
export interface QuantizedClustered {
  format: QuantFormat;
  G: number;
  E: number;
  H: number;
  I: number;
  r: number;
  bases: Record<ExpertMatrix, Tensor[]>;
  a: Record<ExpertMatrix, QuantFactor[]>;
  b: Record<ExpertMatrix, QuantFactor[]>;
  /** storage bytes: bases (f16) and factors (data + scales) */
  bytes: { base: number; factors: number; total: number };
  dispose(): void;
}

const MATRICES: ExpertMatrix[] = ['gate', 'up', 'down'];

/** Largest divisor of k that is at most `want` (even for int4). */
export function factorGroupSize(k: number, want: number, format: QuantFormat): number {
  for (let g = Math.min(want, k); g >= 1; g--) if (k % g === 0 && (format !== 'int4' || g % 2 === 0)) return g;
  throw new RangeError(`factorGroupSize: no ${format === 'int4' ? 'even ' : ''}group size divides K = ${k} (int4 needs an even K)`);
}

/**
 * Converts trained clustered experts to the inference form. `groupSize` (default 32) applies along each factor's
 * input dim; where that dim is smaller (Bᵀ has K = r) the largest fitting divisor is used.
 */
export function quantizeClustered(ex: { G: number; E: number; H: number; I: number; r: number; weights: ClusteredExpertWeights }, opts: { format?: QuantFormat; groupSize?: number } = {}): QuantizedClustered {
  const format = opts.format ?? 'int4';
  const gs = opts.groupSize ?? 32;
  const { G, E, H, I, r } = ex;
  const w = ex.weights;
  const src = { gate: [w.baseGate, w.gateA, w.gateB], up: [w.baseUp, w.upA, w.upB], down: [w.baseDown, w.downA, w.downB] } as const;
  const out: QuantizedClustered = {
    format, G, E, H, I, r, bases: { gate: [], up: [], down: [] }, a: { gate: [], up: [], down: [] }, b: { gate: [], up: [], down: [] },
    bytes: { base: 0, factors: 0, total: 0 },
    dispose() {
      for (const m of MATRICES) {
        for (const t of this.bases[m]) t.dispose();
        for (const f of [...this.a[m], ...this.b[m]]) { f.data.dispose(); f.scales.dispose(); }
      }
    },
  };
  const q = (wt: Tensor): QuantFactor => { // wt (out, in): quantised along in
    const k = wt.shape[1]!;
    const g = factorGroupSize(k, gs, format);
    const { data, scales } = quantize(wt, format, g);
    out.bytes.factors += data.size + scales.size * 2; // u8/i8 data, f16 scales
    return { data: keep(data), scales: keep(scales), groupSize: g };
  };
  noGrad(() => tidy(() => {
    for (const m of MATRICES) {
      const [base, A, B] = src[m];
      const [din, dout] = m === 'down' ? [I, H] : [H, I];
      for (let g = 0; g < G; g++) {
        const bt = keep(cast(transpose(reshape(slice(base, [g, 0, 0], [1, din, dout]), [din, dout])), 'f16')); // (out, in)
        out.bytes.base += bt.size * 2;
        out.bases[m].push(bt);
      }
      for (let e = 0; e < E; e++) {
        out.a[m].push(q(transpose(reshape(slice(A, [e, 0, 0], [1, din, r]), [din, r])))); // Aᵀ (r, in)
        out.b[m].push(q(transpose(reshape(slice(B, [e, 0, 0], [1, r, dout]), [r, dout])))); // Bᵀ (out, r)
      }
    }
  }));
  out.bytes.total = out.bytes.base + out.bytes.factors;
  return out;
}

/** Runs f on each non-empty contiguous row segment of x and stacks the results (rows stay in order). */
export function segmented(x: Tensor, off: Int32Array, outDim: number, f: (seg: Tensor, i: number) => Tensor): Tensor {
  const parts: Tensor[] = [];
  for (let i = 0; i + 1 < off.length; i++) {
    const n = off[i + 1]! - off[i]!;
    if (n > 0) parts.push(f(slice(x, [off[i]!, 0], [n, x.shape[1]!]), i));
  }
  if (parts.length === 0) return zeros([0, outDim]);
  return parts.length === 1 ? parts[0]! : concat(parts, 0);
}

/** The ExpertMatmuls of the inference form (what `QuantizedClusteredExperts` multiplies with). */
export function quantizedMatmuls(qc: QuantizedClustered): ExpertMatmuls {
  const outDim = (m: ExpertMatrix): number => (m === 'down' ? qc.H : qc.I);
  const qmm = (x: Tensor, f: QuantFactor): Tensor => quantMatmul(x, f.data, f.scales, qc.format, f.groupSize);
  return {
    base: (x, m, off) => segmented(x, off, outDim(m), (seg, g) => quantMatmul(seg, qc.bases[m][g]!, null, 'f16')),
    lowRank: (x, m, off) => segmented(x, off, outDim(m), (seg, e) => qmm(qmm(seg, qc.a[m][e]!), qc.b[m][e]!)),
  };
}

/** The fused form of the inference form: what `clusteredFfn` reads, plus its resident bytes. */
export interface FusedClustered {
  /** bases f16 (G, in, out); factors f32 (E, ·, ·), the dequantised INT4/INT8 values */
  weights: ClusteredExpertWeights;
  /** resident bytes: bases (f16) and factors (f32) */
  bytes: { base: number; factors: number; total: number };
  dispose(): void;
}

/**
 * The inference form laid out for the fused `clusteredFfn` kernel (what `FusedClusteredExperts` runs):
 * the FP16 bases as they are, the quantised factors widened once to f32 (exact: int × f16 scale fits f32). It computes
 * the same function as `quantizedMatmuls(qc)` in one op per layer; decode reads half the base bytes of the f32 model.
 */
export function fusedInferenceWeights(qc: QuantizedClustered): FusedClustered {
  const { G, E, H, I, r } = qc;
  const made: Tensor[] = [];
  const bytes = { base: 0, factors: 0, total: 0 };
  const w = noGrad(() => tidy(() => {
    const stackOf = (parts: Tensor[], shape: number[]): Tensor => keep(reshape(parts.length === 1 ? parts[0]! : concat(parts, 0), shape));
    const deq = (f: QuantFactor): Tensor => dequantize(f.data, f.scales, qc.format, f.groupSize); // (out, in) f32
    const out = {} as Record<string, Tensor>;
    for (const m of MATRICES) {
      const [din, dout] = m === 'down' ? [I, H] : [H, I];
      // bases: (out, in) f16 per group -> (G, in, out) f16; the transpose moves halves, no rounding
      out[`base_${m}`] = stackOf(qc.bases[m].map((bt) => cast(transpose(cast(bt, 'f32')), 'f16')), [G, din, dout]);
      out[`${m}A`] = stackOf(qc.a[m].map((f) => transpose(deq(f))), [E, din, r]); // Aᵀ (r, in) -> A (in, r)
      out[`${m}B`] = stackOf(qc.b[m].map((f) => transpose(deq(f))), [E, r, dout]); // Bᵀ (out, r) -> B (r, out)
      bytes.base += G * din * dout * 2;
      bytes.factors += E * r * (din + dout) * 4;
    }
    return out;
  }));
  made.push(...Object.values(w));
  bytes.total = bytes.base + bytes.factors;
  return {
    weights: {
      baseGate: w.base_gate!, baseUp: w.base_up!, baseDown: w.base_down!,
      gateA: w.gateA!, gateB: w.gateB!, upA: w.upA!, upB: w.upB!, downA: w.downA!, downB: w.downB!,
    },
    bytes,
    dispose() {
      for (const t of made) t.dispose();
    },
  };
}

/** Options of `ClusteredExperts.toQuantized`. */
export interface QuantizeOptions {
  /** factor format; default 'int4' */
  format?: QuantFormat;
  /** quantisation group along each factor's input dim; default 32 (the largest fitting divisor where smaller) */
  groupSize?: number;
}

/** The clustered experts in their inference form (FP16 bases, INT4/INT8 factors), multiplied with quantised matmuls.
 *  Owns its tensors (freed by `dispose`). */
export class QuantizedClusteredExperts extends Module implements ClusteredExpertsForm {
  readonly form = 'quantized';
  readonly G: number;
  readonly E: number;
  readonly H: number;
  readonly I: number;
  readonly r: number;
  readonly quantized: QuantizedClustered;
  readonly #matmuls: ExpertMatmuls;
  constructor(qc: QuantizedClustered) {
    super();
    this.quantized = qc;
    ({ G: this.G, E: this.E, H: this.H, I: this.I, r: this.r } = qc);
    this.#matmuls = quantizedMatmuls(qc);
  }
  /** storage bytes: bases (f16) and factors (data + scales) */
  get bytes(): QuantizedClustered['bytes'] {
    return this.quantized.bytes;
  }
  run(xt: Tensor, ids: Tensor, weights: Tensor, opts: { inputSums?: boolean } = {}): ClusteredExpertsResult {
    return composedExperts(xt, ids, weights, this, this.#matmuls, opts.inputSums ?? false);
  }
  /** The same function laid out for the fused kernel: FP16 bases, factors widened once to f32. */
  toFused(): FusedClusteredExperts {
    return new FusedClusteredExperts(fusedInferenceWeights(this.quantized));
  }
  override dispose(): void {
    this.quantized.dispose();
    super.dispose();
  }
}

/** The clustered experts' inference form laid out for the fused `clusteredFfn` kernel (FP16 bases, f32 factors):
 *  where the backend has no fused kernel, the composed computation on the same weights. Owns its tensors. */
export class FusedClusteredExperts extends Module implements ClusteredExpertsForm {
  readonly form = 'fused';
  readonly G: number;
  readonly E: number;
  readonly H: number;
  readonly I: number;
  readonly r: number;
  readonly fused: FusedClustered;
  constructor(f: FusedClustered) {
    super();
    this.fused = f;
    const w = f.weights;
    [this.G, this.H, this.I] = w.baseGate.shape as [number, number, number];
    [this.E, , this.r] = w.gateA.shape as [number, number, number];
  }
  /** resident bytes: bases (f16) and factors (f32) */
  get bytes(): FusedClustered['bytes'] {
    return this.fused.bytes;
  }
  get weights(): ClusteredExpertWeights {
    return this.fused.weights;
  }
  run(xt: Tensor, ids: Tensor, weights: Tensor, opts: { inputSums?: boolean } = {}): ClusteredExpertsResult {
    return runClusteredExperts(xt, ids, weights, this.fused.weights, opts);
  }
  override dispose(): void {
    this.fused.dispose();
    super.dispose();
  }
}
