// The clustered layer's trainable experts: bases (G, ·, ·) and low-rank factors (E, ·, ·), their SVD compression from
// full expert weights, their effective weights, and conversion to the inference forms (clustered-quant.ts).
import { Module } from '../nn/module.js';
import { tensor, zeros } from '../tensor/api.js';
import { assign, noGrad, tidy } from '../tensor/engine.js';
import { ShapeError } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { fastLowRankFactors } from '../cluster/svd.js';
import { runClusteredExperts, type ClusteredExpertsForm, type ClusteredExpertsResult, type ClusteredExpertWeights, type HostExperts } from './clustered-ffn.js';
import { QuantizedClusteredExperts, quantizeClustered, type QuantizeOptions } from './clustered-quant.js';

const MATS = [
  { name: 'gate', base: 'base_gate', a: 'gate_a', b: 'gate_b', io: (H: number, I: number) => [H, I] as const },
  { name: 'up', base: 'base_up', a: 'up_a', b: 'up_b', io: (H: number, I: number) => [H, I] as const },
  { name: 'down', base: 'base_down', a: 'down_a', b: 'down_b', io: (H: number, I: number) => [I, H] as const },
] as const;

/** Bases (G, ·, ·) and factors (E, ·, ·) of the clustered experts. HF-style names: experts.base_gate, experts.gate_a, … */
export class ClusteredExperts extends Module implements ClusteredExpertsForm {
  readonly form = 'f32';
  readonly G: number;
  readonly E: number;
  readonly H: number;
  readonly I: number;
  readonly r: number;
  constructor(G: number, E: number, H: number, I: number, r: number) {
    super();
    this.G = G; this.E = E; this.H = H; this.I = I; this.r = r;
    for (const m of MATS) {
      const [din, dout] = m.io(H, I);
      this.addParameter(m.base, zeros([G, din, dout]));
    }
    for (const m of MATS) {
      const [din, dout] = m.io(H, I);
      this.addParameter(m.a, zeros([E, din, r]));
      this.addParameter(m.b, zeros([E, r, dout]));
    }
  }

  get weights(): ClusteredExpertWeights {
    const p = (n: string): Tensor => this.param(n);
    return {
      baseGate: p('base_gate'), baseUp: p('base_up'), baseDown: p('base_down'),
      gateA: p('gate_a'), gateB: p('gate_b'), upA: p('up_a'), upB: p('up_b'), downA: p('down_a'), downB: p('down_b'),
    };
  }

  /** The experts stage on these parameters: the fused kernel where it applies, else the composed computation. */
  run(xt: Tensor, ids: Tensor, weights: Tensor, opts: { inputSums?: boolean } = {}): ClusteredExpertsResult {
    return runClusteredExperts(xt, ids, weights, this.weights, opts);
  }

  /** The inference form (FP16 bases, INT4 or INT8 factors) as a new experts module; this one is unchanged. */
  toQuantized(opts: QuantizeOptions = {}): QuantizedClusteredExperts {
    return new QuantizedClusteredExperts(quantizeClustered(this, opts));
  }

  /** Every tensor of this module (for optimizer resets). */
  tensors(): Tensor[] {
    return this.parameters().map(([, t]) => t);
  }

  /** W̃_e = base_{group(e)} + A_e·B_e for every expert, as host arrays. */
  effective(): HostExperts {
    const { G, E, H, I, r } = this;
    const M = E / G;
    const out: HostExperts = { E, H, I, gate: new Float32Array(E * H * I), up: new Float32Array(E * H * I), down: new Float32Array(E * I * H) };
    for (const m of MATS) {
      const [din, dout] = m.io(H, I);
      const base = this.param(m.base).dataSync() as Float32Array;
      const A = this.param(m.a).dataSync() as Float32Array;
      const B = this.param(m.b).dataSync() as Float32Array;
      const dst = out[m.name];
      const sz = din * dout;
      for (let e = 0; e < E; e++) {
        const g = Math.floor(e / M);
        dst.set(base.subarray(g * sz, (g + 1) * sz), e * sz);
        for (let i = 0; i < din; i++) {
          const o = e * sz + i * dout;
          for (let c = 0; c < r; c++) {
            const a = A[(e * din + i) * r + c]!;
            if (a === 0) continue;
            const bo = (e * r + c) * dout;
            for (let j = 0; j < dout; j++) dst[o + j]! += a * B[bo + j]!;
          }
        }
      }
    }
    return out;
  }

  /**
   * Sets bases and factors from full expert weights with contiguous groups (expert e in group ⌊e/M⌋): base = the
   * group mean, factors = rank-r SVD of W_e − base. Groups listed in `keep` are left as they are.
   * Returns the relative Frobenius error of the new form over the re-initialised groups.
   */
  compressFrom(full: HostExperts, opts: { keep?: ReadonlySet<number>; seed?: number } = {}): number {
    const { G, E, H, I, r } = this;
    if (full.E !== E || full.H !== H || full.I !== I) throw new ShapeError(`ClusteredExperts.compressFrom: experts (${full.E}, ${full.H}, ${full.I}) do not match (${E}, ${H}, ${I})`);
    const M = E / G;
    let errSq = 0;
    let totSq = 0;
    noGrad(() => tidy(() => {
      for (const m of MATS) {
        const [din, dout] = m.io(H, I);
        const sz = din * dout;
        const src = full[m.name];
        const base = Float32Array.from(this.param(m.base).dataSync() as Float32Array);
        const A = Float32Array.from(this.param(m.a).dataSync() as Float32Array);
        const B = Float32Array.from(this.param(m.b).dataSync() as Float32Array);
        for (let g = 0; g < G; g++) {
          if (opts.keep?.has(g)) continue;
          const mean = new Float64Array(sz);
          for (let e = g * M; e < (g + 1) * M; e++) for (let i = 0; i < sz; i++) mean[i]! += src[e * sz + i]! / M;
          base.set(mean, g * sz);
          for (let e = g * M; e < (g + 1) * M; e++) {
            const res = new Float64Array(sz);
            for (let i = 0; i < sz; i++) {
              res[i] = src[e * sz + i]! - mean[i]!;
              totSq += src[e * sz + i]! ** 2;
            }
            const f = fastLowRankFactors(res, din, dout, r, { seed: (opts.seed ?? 0) * 7919 + e * 31 + dout });
            let rs = 0;
            for (let i = 0; i < sz; i++) rs += res[i]! ** 2;
            errSq += f.relError ** 2 * rs;
            A.set(f.A, e * din * r);
            B.set(f.B, e * r * dout);
          }
        }
        assign(this.param(m.base), tensor(base, [G, din, dout]));
        assign(this.param(m.a), tensor(A, [E, din, r]));
        assign(this.param(m.b), tensor(B, [E, r, dout]));
      }
    }));
    return totSq > 0 ? Math.sqrt(errSq / totSq) : 0;
  }
}

