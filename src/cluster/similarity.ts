// Expert similarity for online clustering: cosine similarity of flattened expert weights (cached, refreshed
// only for experts whose weights moved), cosine similarity of per-expert activation centroids (an EMA of the
// inputs routed to each expert), and their fusion S = α·S_param + (1−α)·S_task with weak pairs pruned.

/** Cosine similarity matrix (n × n, row-major, float64) of the given vectors; a zero vector has similarity 0 to all others and 1 to itself. */
export function cosineMatrix(rows: ArrayLike<number>[]): Float64Array {
  const n = rows.length;
  if (n === 0) return new Float64Array(0);
  const d = rows[0]!.length;
  for (let i = 1; i < n; i++) {
    if (rows[i]!.length !== d) throw new RangeError(`cosineMatrix: row ${i} has ${rows[i]!.length} values, expected ${d} like row 0`);
  }
  const norms = rows.map((r) => Math.sqrt(dot(r, r)));
  const S = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    S[i * n + i] = 1;
    for (let j = i + 1; j < n; j++) {
      const den = norms[i]! * norms[j]!;
      const s = den > 0 ? dot(rows[i]!, rows[j]!) / den : 0;
      S[i * n + j] = s;
      S[j * n + i] = s;
    }
  }
  return S;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
}

/**
 * Weight-similarity cache. `update(vectors)` recomputes the rows of S_param only for experts whose flattened
 * weights moved by more than `eps` (relative L2 change since they were last used); the rest of the matrix is
 * reused. Regrouping permutes experts between slots: `permute` keeps the cache aligned with the slots.
 */
export class ParamSimilarityCache {
  readonly eps: number;
  private vecs: Float32Array[] = [];
  private norms: number[] = [];
  private S: Float64Array = new Float64Array(0);
  /** how many expert rows the last update recomputed */
  lastRecomputed = 0;

  constructor(eps = 1e-3) {
    if (!(eps >= 0) || !Number.isFinite(eps)) throw new RangeError(`ParamSimilarityCache: eps = ${eps} must be a finite number >= 0`);
    this.eps = eps;
  }

  /** Refreshes the cache from the experts' current flattened weights; returns the indices it recomputed. */
  update(vectors: Float32Array[]): number[] {
    const n = vectors.length;
    const fresh = this.vecs.length !== n || (n > 0 && this.vecs[0]!.length !== vectors[0]!.length);
    const changed: number[] = [];
    if (fresh) {
      this.vecs = vectors.map((v) => Float32Array.from(v));
      this.norms = this.vecs.map((v) => Math.sqrt(dot(v, v)));
      this.S = cosineMatrix(this.vecs);
      for (let i = 0; i < n; i++) changed.push(i);
    } else {
      for (let i = 0; i < n; i++) {
        const v = vectors[i]!;
        if (v.length !== this.vecs[i]!.length) throw new RangeError(`ParamSimilarityCache: expert ${i} has ${v.length} weights, expected ${this.vecs[i]!.length}`);
        const old = this.vecs[i]!;
        let d2 = 0;
        for (let k = 0; k < v.length; k++) d2 += (v[k]! - old[k]!) ** 2;
        const ref = this.norms[i]!;
        if (Math.sqrt(d2) > this.eps * Math.max(ref, 1e-12)) changed.push(i);
      }
      for (const i of changed) {
        this.vecs[i] = Float32Array.from(vectors[i]!);
        this.norms[i] = Math.sqrt(dot(this.vecs[i]!, this.vecs[i]!));
      }
      for (const i of changed) {
        for (let j = 0; j < n; j++) {
          if (j === i) continue;
          const den = this.norms[i]! * this.norms[j]!;
          const s = den > 0 ? dot(this.vecs[i]!, this.vecs[j]!) / den : 0;
          this.S[i * n + j] = s;
          this.S[j * n + i] = s;
        }
      }
    }
    this.lastRecomputed = changed.length;
    return changed;
  }

  /** The cached S_param (n × n). */
  matrix(): Float64Array {
    return this.S;
  }

  /** Re-indexes the cache after experts moved: new slot s holds old slot perm[s]. */
  permute(perm: ArrayLike<number>): void {
    const n = this.vecs.length;
    if (n === 0) return;
    checkPerm(perm, n, 'ParamSimilarityCache.permute');
    const S = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) S[i * n + j] = this.S[perm[i]! * n + perm[j]!]!;
    this.S = S;
    this.vecs = Array.from({ length: n }, (_, s) => this.vecs[perm[s]!]!);
    this.norms = Array.from({ length: n }, (_, s) => this.norms[perm[s]!]!);
  }
}

/**
 * Per-expert activation centroids μ_i ← (1−β)·μ_i + β·x̄_i, where x̄_i is the mean of the inputs routed to
 * expert i in one batch (experts that received no tokens keep their centroid). An expert's first observation
 * sets μ_i = x̄_i.
 */
export class CentroidEma {
  readonly experts: number;
  readonly hidden: number;
  readonly beta: number;
  /** E × H centroids */
  data: Float64Array;
  private seen: Uint8Array;

  constructor(experts: number, hidden: number, beta = 0.05) {
    if (!Number.isInteger(experts) || experts < 1) throw new RangeError(`CentroidEma: experts = ${experts} must be a positive integer`);
    if (!Number.isInteger(hidden) || hidden < 1) throw new RangeError(`CentroidEma: hidden = ${hidden} must be a positive integer`);
    if (!(beta > 0 && beta <= 1)) throw new RangeError(`CentroidEma: beta = ${beta} must be in (0, 1]`);
    this.experts = experts;
    this.hidden = hidden;
    this.beta = beta;
    this.data = new Float64Array(experts * hidden);
    this.seen = new Uint8Array(experts);
  }

  /** Folds in one batch: `sums` (E × H) holds the sum of inputs routed to each expert, `counts` (E) how many. */
  update(sums: ArrayLike<number>, counts: ArrayLike<number>): void {
    const { experts: E, hidden: H, beta } = this;
    if (sums.length !== E * H) throw new RangeError(`CentroidEma.update: ${sums.length} sums, expected experts × hidden = ${E * H}`);
    if (counts.length !== E) throw new RangeError(`CentroidEma.update: ${counts.length} counts, expected ${E}`);
    for (let e = 0; e < E; e++) {
      const c = counts[e]!;
      if (!(c > 0)) continue;
      const b = this.seen[e] ? beta : 1;
      for (let h = 0; h < H; h++) {
        const i = e * H + h;
        this.data[i] = (1 - b) * this.data[i]! + (b * sums[i]!) / c;
      }
      this.seen[e] = 1;
    }
  }

  /** The centroids and which experts have been observed (to save with a checkpoint). */
  getState(): { data: Float64Array; seen: Uint8Array } {
    return { data: Float64Array.from(this.data), seen: Uint8Array.from(this.seen) };
  }

  /** Restores a state from getState() of an EMA of the same size. */
  setState(st: { data: ArrayLike<number>; seen: ArrayLike<number> }): void {
    const { experts: E, hidden: H } = this;
    if (st.data.length !== E * H || st.seen.length !== E) throw new RangeError(`CentroidEma.setState: ${st.data.length} centroid values and ${st.seen.length} flags, expected ${E * H} and ${E}`);
    this.data = Float64Array.from(st.data);
    this.seen = Uint8Array.from(st.seen, (v) => (v ? 1 : 0));
  }

  /** Whether expert i has received tokens since construction. */
  observed(i: number): boolean {
    return this.seen[i] === 1;
  }

  /** Re-indexes after experts moved: new slot s holds old slot perm[s]. */
  permute(perm: ArrayLike<number>): void {
    const { experts: E, hidden: H } = this;
    checkPerm(perm, E, 'CentroidEma.permute');
    const d = new Float64Array(E * H);
    const seen = new Uint8Array(E);
    for (let s = 0; s < E; s++) {
      d.set(this.data.subarray(perm[s]! * H, (perm[s]! + 1) * H), s * H);
      seen[s] = this.seen[perm[s]!]!;
    }
    this.data = d;
    this.seen = seen;
  }

  /** S_task: cosine similarity of the centroids (E × E). */
  similarity(): Float64Array {
    const { experts: E, hidden: H } = this;
    return cosineMatrix(Array.from({ length: E }, (_, e) => this.data.subarray(e * H, (e + 1) * H)));
  }
}

/**
 * S = α·S_param + (1−α)·S_task; pairs whose fused similarity is below τ are pruned to 0 (they never pull
 * each other into a group); the diagonal is 1.
 */
export function fusedSimilarity(sp: ArrayLike<number>, st: ArrayLike<number>, n: number, alpha: number, tau: number): Float64Array {
  if (sp.length !== n * n || st.length !== n * n) throw new RangeError(`fusedSimilarity: matrices of ${sp.length} and ${st.length} values, expected ${n} × ${n} = ${n * n}`);
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`fusedSimilarity: alpha = ${alpha} must be in [0, 1]`);
  if (!Number.isFinite(tau)) throw new RangeError(`fusedSimilarity: tau = ${tau} must be a finite number`);
  const S = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) {
        S[i * n + j] = 1;
        continue;
      }
      const s = alpha * sp[i * n + j]! + (1 - alpha) * st[i * n + j]!;
      S[i * n + j] = s < tau ? 0 : s;
    }
  }
  return S;
}

function checkPerm(perm: ArrayLike<number>, n: number, who: string): void {
  if (perm.length !== n) throw new RangeError(`${who}: permutation of length ${perm.length}, expected ${n}`);
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = perm[i]!;
    if (!Number.isInteger(p) || p < 0 || p >= n || seen[p]) throw new RangeError(`${who}: ${Array.from(perm).join(',')} is not a permutation of 0..${n - 1}`);
    seen[p] = 1;
  }
}
