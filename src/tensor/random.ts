// Seeded random numbers (xoshiro128**): reproducible initialisation, sampling and data shuffles.

export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed = 0) {
    this.s = new Uint32Array(4);
    // splitmix32 expands the seed into the state
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** The generator's state (to save with a checkpoint): four words and the cached normal, if any. */
  getState(): { s: number[]; spare: number | null } {
    return { s: Array.from(this.s), spare: this.spare };
  }

  /** Restores a state from getState(); the sequence then continues exactly where it was saved. */
  setState(st: { s: readonly number[]; spare: number | null }): void {
    if (!Array.isArray(st.s) || st.s.length !== 4 || st.s.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
      throw new RangeError(`Rng.setState: s must be four 32-bit unsigned integers, got ${JSON.stringify(st.s)}`);
    }
    this.s = Uint32Array.from(st.s);
    this.spare = st.spare ?? null;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** The generator state, to save in checkpoints. */
  state(): number[] {
    return [...this.s, this.spare === null ? NaN : this.spare];
  }

  static fromState(state: readonly number[]): Rng {
    const r = new Rng(0);
    r.s.set(state.slice(0, 4));
    r.spare = Number.isNaN(state[4]) ? null : state[4]!;
    return r;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
