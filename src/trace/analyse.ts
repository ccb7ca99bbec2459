// analyse(trace): every routing statistic of a RoutingTrace in one report (pure), and its JSON form for `moekit analyse --json`.
import type { RoutingTrace } from './types.js';
import { activatedExperts, coactivation, expertsOf, layerCounts, loadStats, sequenceStats, transitions, type Activated, type LoadStats, type SequenceStats } from './stats.js';

export interface AnalyseOptions {
  /** experts per layer (E), where the trace does not say (a .npy array, a Megatron trace) */
  experts?: number;
  /** batch sizes for the activated-experts curve (default 1, 8, 32, 128); those with ⌊N/B⌋ = 0 are left out */
  batches?: number[];
  /** an expert is hot when its count exceeds hot · mean (default 2) */
  hot?: number;
  /** compute the E×E co-activation and transition matrices (default true) */
  matrices?: boolean;
}

export interface LayerReport extends LoadStats {
  /** the model's layer index (the index along L for a .npy array) */
  layer: number;
}

export interface AnalyseReport {
  trace: { N: number; L: number; K: number; E: number; source: string; format: string };
  layers: LayerReport[];
  activated: Activated[];
  sequences: SequenceStats | null;
  /** (L·E·E) co-activation counts per layer (see stats.coactivation); null when matrices: false */
  coactivation: Uint32Array | null;
  /** ((L−1)·E·E) transition counts between consecutive traced layers (see stats.transitions); null when matrices: false */
  transitions: Uint32Array | null;
}

export const DEFAULT_BATCHES = [1, 8, 32, 128];
export const DEFAULT_HOT = 2;

/** Every statistic of a trace: loads per layer, activated experts per batch size, per-sequence loads, co-activation and transitions. */
export function analyse(trace: RoutingTrace, opts: AnalyseOptions = {}): AnalyseReport {
  const E = expertsOf(trace, opts.experts);
  const hot = opts.hot ?? DEFAULT_HOT;
  if (!Number.isFinite(hot) || hot <= 0) throw new Error(`hot factor must be a positive number, got ${hot}`);
  const { N, L, K } = trace;
  if (trace.experts.length !== N * L * K) throw new Error(`the trace has ${trace.experts.length} expert ids but N·L·K = ${N}·${L}·${K} = ${N * L * K}`);
  const counts = layerCounts(trace, E); // also checks every id against E
  const layers = Array.from({ length: L }, (_, l) => ({ layer: trace.layers[l] ?? l, ...loadStats(counts.subarray(l * E, (l + 1) * E), hot) }));
  const activated = (opts.batches ?? DEFAULT_BATCHES).map((B) => activatedExperts(trace, E, B)).filter((a): a is Activated => a !== null);
  const matrices = opts.matrices ?? true;
  return {
    trace: { N, L, K, E, source: trace.metadata.source ?? '', format: trace.metadata.format ?? '' },
    layers,
    activated,
    sequences: sequenceStats(trace, E),
    coactivation: matrices ? coactivation(trace, E) : null,
    transitions: matrices ? transitions(trace, E) : null,
  };
}

/** The `top` largest non-zero entries of an E×E matrix at `offset` (only the upper triangle, diagonal left out, when `symmetric`). */
export function topPairs(m: Uint32Array, offset: number, E: number, top: number, symmetric: boolean): { a: number; b: number; count: number }[] {
  const best: { a: number; b: number; count: number }[] = [];
  for (let a = 0; a < E; a++) {
    for (let b = symmetric ? a + 1 : 0; b < E; b++) {
      const count = m[offset + a * E + b]!;
      if (count === 0 || (best.length === top && count <= best[best.length - 1]!.count)) continue;
      best.push({ a, b, count });
      best.sort((x, y) => y.count - x.count);
      if (best.length > top) best.pop();
    }
  }
  return best;
}

/** The report as one plain JSON object: matrices summarised as their `top` largest pairs per layer. */
export function reportJson(r: AnalyseReport, top = 8): Record<string, unknown> {
  const { E, L } = r.trace;
  const EE = E * E;
  const json: Record<string, unknown> = {
    trace: r.trace,
    layers: r.layers.map((l) => ({ layer: l.layer, routed: l.total, counts: l.counts, max_over_mean: l.max_over_mean, cv: l.cv, gini: l.gini, entropy_bits: l.entropy_bits, hot: l.hot })),
    activated: r.activated,
    sequences: r.sequences,
  };
  if (r.coactivation) {
    const m = r.coactivation;
    json.coactivation = r.layers.map((l, i) => ({ layer: l.layer, top: topPairs(m, i * EE, E, top, true).map((p) => ({ experts: [p.a, p.b], tokens: p.count })) }));
  }
  if (r.transitions) {
    const m = r.transitions;
    json.transitions = Array.from({ length: Math.max(0, L - 1) }, (_, i) => ({
      from: r.layers[i]!.layer,
      to: r.layers[i + 1]!.layer,
      top: topPairs(m, i * EE, E, top, false).map((p) => ({ from_expert: p.a, to_expert: p.b, count: p.count })),
    }));
  }
  return json;
}
