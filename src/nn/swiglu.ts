// SwiGLU MLP: down(silu(gate(x)) · up(x)), as a function of its weights and as a module (HF gate/up/down_proj).
import { mul, silu } from '../tensor/api.js';
import type { Rng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear, linear } from './layers.js';
import { Module } from './module.js';

/** x (..., H), wGate/wUp (I, H), wDown (H, I) (torch Linear layout; f32 or kept bf16/f16) -> (..., H) */
export function swiglu(x: Tensor, wGate: Tensor, wUp: Tensor, wDown: Tensor): Tensor {
  const g = linear(x, wGate); // (..., I)
  const u = linear(x, wUp); // (..., I)
  return linear(mul(silu(g), u), wDown); // (..., H)
}

/**
 * SwiGLU MLP of width I. It is also the dense FLOP-matched baseline of an MoE block: a block with top-k K,
 * expert width I and shared width S does the work of `new SwiGLU(H, K * I + S, rng)` per token.
 */
export class SwiGLU extends Module {
  readonly hidden: number;
  readonly width: number;
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(hidden: number, width: number, rng: Rng) {
    super();
    this.hidden = hidden;
    this.width = width;
    this.gateProj = this.addModule('gate_proj', new Linear(hidden, width, rng)); // W (I, H)
    this.upProj = this.addModule('up_proj', new Linear(hidden, width, rng)); // W (I, H)
    this.downProj = this.addModule('down_proj', new Linear(width, hidden, rng)); // W (H, I)
  }

  /** x (..., H) -> (..., H) */
  forward(x: Tensor): Tensor {
    return this.downProj.forward(mul(silu(this.gateProj.forward(x)), this.upProj.forward(x)));
  }
}
