// KV storage for many sequences at once (continuous batching): per layer, one key tensor (P, C, Hkv, D) and one value
// tensor (P, C, Hkv, Dv), a slot of C rows per sequence. New rows are written in place at the end of their slot, and
// attention reads every sequence of a step from the pool in one RaggedAttention call: no per-sequence concatenation.
import { pad, tensor } from '../tensor/api.js';
import { assignRange, keep, noGrad } from '../tensor/engine.js';
import { ShapeError, fmtInfo } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

/** What one layer caches per position: heads, key width and value width. */
export interface KVShape {
  heads: number;
  dk: number;
  dv: number;
}

export interface KVPoolOptions {
  /** slots at most (sequences at once) */
  maxSlots: number;
  /** rows per slot at most (the model's context) */
  maxLen: number;
  /** slots and rows allocated at first; both double on demand up to the limits (default 8 and 64) */
  slots?: number;
  rows?: number;
}

/** A sequence's rows of one step: `rows` new positions of the sequence in `slot`. */
export interface PoolSegment {
  slot: number;
  rows: number;
}

interface LayerStore {
  k: Tensor; // (P, C, Hkv, D)
  v: Tensor; // (P, C, Hkv, Dv)
  rows: number; // C
  lengths: Int32Array; // per slot
}

export class KVPool {
  readonly shapes: readonly KVShape[];
  readonly maxSlots: number;
  readonly maxLen: number;
  #slots: number;
  #layers: (LayerStore | null)[];
  #free: number[];
  #used = new Set<number>();
  #initialRows: number;

  constructor(shapes: readonly KVShape[], o: KVPoolOptions) {
    for (const [name, n] of [['maxSlots', o.maxSlots], ['maxLen', o.maxLen]] as const) {
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`KVPool: ${name} must be a positive integer, got ${n}`);
    }
    this.shapes = shapes;
    this.maxSlots = o.maxSlots;
    this.maxLen = o.maxLen;
    this.#slots = Math.min(o.maxSlots, o.slots ?? 8);
    this.#initialRows = Math.min(o.maxLen, o.rows ?? 64);
    this.#layers = shapes.map(() => null);
    this.#free = Array.from({ length: this.#slots }, (_, i) => i);
  }

  /** Slots allocated (P). */
  get slots(): number {
    return this.#slots;
  }

  /** Slots held by sequences. */
  get inUse(): number {
    return this.#used.size;
  }

  /** Bytes the pool's tensors hold. */
  get bytes(): number {
    return this.#layers.reduce((a, s) => a + (s ? (s.k.size + s.v.size) * 4 : 0), 0);
  }

  /** A free slot for a new sequence (its length 0 at every layer); grows the pool when all are taken. */
  acquire(): number {
    if (this.#free.length === 0) {
      if (this.#slots >= this.maxSlots) throw new RangeError(`KVPool: all ${this.maxSlots} slots are in use`);
      const P = Math.min(this.maxSlots, this.#slots * 2);
      this.#layers.forEach((s, l) => {
        if (s) this.#layers[l] = this.#grown(s, P, s.rows);
      });
      for (let i = this.#slots; i < P; i++) this.#free.push(i);
      this.#slots = P;
    }
    this.#free.sort((a, b) => a - b);
    const slot = this.#free.shift()!;
    this.#used.add(slot);
    return slot;
  }

  /** Gives a slot back; its rows are forgotten. */
  release(slot: number): void {
    if (!this.#used.delete(slot)) throw new RangeError(`KVPool: slot ${slot} is not in use`);
    for (const s of this.#layers) if (s) s.lengths[slot] = 0;
    this.#free.push(slot);
  }

  /** Positions cached for `slot` at `layer`. */
  length(layer: number, slot: number): number {
    this.#check(layer, slot);
    return this.#layers[layer]?.lengths[slot] ?? 0;
  }

  /** The layer's keys (P, C, Hkv, D) and values (P, C, Hkv, Dv); valid until the next append or acquire. */
  tensors(layer: number): { k: Tensor; v: Tensor } {
    const s = this.#store(layer);
    return { k: s.k, v: s.v };
  }

  /**
   * Writes each segment's new keys and values at the end of its slot: k (N, Hkv, D) and v (N, Hkv, Dv) hold the
   * segments' rows back to back (any leading shape with N·Hkv·D elements). Returns the RaggedAttention table (B, 4) of
   * [qStart, rows, slot, length] with the lengths after the write.
   */
  append(layer: number, segments: readonly PoolSegment[], k: Tensor, v: Tensor): Tensor {
    const { heads, dk, dv } = this.shapes[layer]!;
    const N = segments.reduce((a, s) => a + s.rows, 0);
    if (k.size !== N * heads * dk || v.size !== N * heads * dv) {
      throw new ShapeError(`KVPool.append: keys ${fmtInfo(k.shape, k.dtype)} and values ${fmtInfo(v.shape, v.dtype)} do not hold ${N} rows of (${heads}, ${dk}) and (${heads}, ${dv})`);
    }
    let s = this.#store(layer);
    const need = Math.max(0, ...segments.map((g) => this.length(layer, g.slot) + g.rows));
    if (need > this.maxLen) throw new RangeError(`KVPool.append: ${need} positions exceed the ${this.maxLen} a slot holds`);
    if (need > s.rows) {
      let C = s.rows;
      while (C < need) C = Math.min(this.maxLen, C * 2);
      s = this.#layers[layer] = this.#grown(s, this.#slots, C);
    }
    const table = new Int32Array(4 * segments.length);
    let q0 = 0;
    segments.forEach((g, b) => {
      if (!this.#used.has(g.slot)) throw new RangeError(`KVPool.append: slot ${g.slot} is not in use`);
      const len = s.lengths[g.slot]!;
      const row = g.slot * s.rows + len; // first row written, in (P·C) rows
      assignRange(s.k, row * heads * dk, k, q0 * heads * dk, g.rows * heads * dk);
      assignRange(s.v, row * heads * dv, v, q0 * heads * dv, g.rows * heads * dv);
      s.lengths[g.slot] = len + g.rows;
      table.set([q0, g.rows, g.slot, len + g.rows], 4 * b);
      q0 += g.rows;
    });
    return tensor(table, [segments.length, 4], 'i32');
  }

  /** Frees the tensors; the pool can be used again (it allocates anew). */
  dispose(): void {
    for (const s of this.#layers) {
      s?.k.dispose();
      s?.v.dispose();
    }
    this.#layers = this.shapes.map(() => null);
  }

  #check(layer: number, slot: number): void {
    if (!(Number.isInteger(layer) && layer >= 0 && layer < this.shapes.length)) throw new RangeError(`KVPool: layer ${layer} is not in [0, ${this.shapes.length})`);
    if (!(Number.isInteger(slot) && slot >= 0 && slot < this.#slots)) throw new RangeError(`KVPool: slot ${slot} is not in [0, ${this.#slots})`);
  }

  #store(layer: number): LayerStore {
    this.#check(layer, 0);
    const have = this.#layers[layer];
    if (have) return have;
    const { heads, dk, dv } = this.shapes[layer]!;
    const [P, C] = [this.#slots, this.#initialRows];
    const s: LayerStore = {
      k: keep(tensor(new Float32Array(P * C * heads * dk), [P, C, heads, dk])),
      v: keep(tensor(new Float32Array(P * C * heads * dv), [P, C, heads, dv])),
      rows: C,
      lengths: new Int32Array(this.maxSlots),
    };
    this.#layers[layer] = s;
    return s;
  }

  /** The store with P slots of C rows, the old rows kept in place (zero padding after them). */
  #grown(s: LayerStore, P: number, C: number): LayerStore {
    const dP = P - (s.k.shape[0] ?? 0), dC = C - s.rows;
    const k = noGrad(() => keep(pad(s.k, [[0, dP], [0, dC], [0, 0], [0, 0]], 0)));
    const v = noGrad(() => keep(pad(s.v, [[0, dP], [0, dC], [0, 0], [0, 0]], 0)));
    s.k.dispose();
    s.v.dispose();
    return { k, v, rows: C, lengths: s.lengths };
  }
}
