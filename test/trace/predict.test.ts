// Lookahead expert predictors against cases whose answers are known: the frequency baseline by hand, a path table on
// a deterministic layer-to-layer map, speculative gating at 100% when the next router equals this one and the hidden
// state does not change (with and without the fitted adapter), and activation matching on repeated sequences.
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/tensor/random.js';
import { predictExperts, type LayerRouter } from '../../src/trace/predict.js';
import type { RoutingTrace } from '../../src/trace/types.js';

const trace = (experts: number[], o: { N: number; L: number; K: number; E: number; seq?: number[]; hidden?: Float32Array; H?: number }): RoutingTrace => ({
  N: o.N, L: o.L, K: o.K, E: o.E, experts: Int16Array.from(experts), layers: Array.from({ length: o.L }, (_, l) => l), metadata: {},
  ...(o.seq ? { seq: Int32Array.from(o.seq) } : {}), ...(o.hidden ? { hidden: o.hidden, H: o.H! } : {}),
});

const find = (s: ReturnType<typeof predictExperts>, predictor: string, from: number, d: number) => s.find((x) => x.predictor === predictor && x.from === from && x.distance === d)!;

describe('predictExperts', () => {
  it('frequency baseline, by hand', () => {
    // [token][layer][slot], L = 2, K = 1. Train layer 1: 0, 0, 1, 2 -> ranking 0, 1, 2, 3.
    const train = trace([3, 0, 3, 0, 3, 1, 3, 2], { N: 4, L: 2, K: 1, E: 4 });
    // eval layer 1: 0, 1, 0, 3. recall@1 = (1 + 0 + 1 + 0) / 4 = 0.5; top-2 {0, 1}: (1 + 1 + 1 + 0) / 4 = 0.75; exact 0.5
    const ev = trace([2, 0, 2, 1, 2, 0, 2, 3], { N: 4, L: 2, K: 1, E: 4 });
    const f = find(predictExperts(train, ev, { distances: [1] }), 'frequency', 0, 1);
    expect([f.recall, f.recall2k, f.exact, f.tokens, f.layer]).toEqual([0.5, 0.75, 0.5, 4, 1]);
  });

  it('path table: a fixed map from the expert set at layer l to the one at l+1 is predicted exactly', () => {
    const E = 8;
    const rng = new Rng(3);
    const make = (N: number): RoutingTrace => {
      const ex: number[] = [];
      for (let n = 0; n < N; n++) {
        const a = rng.int(E);
        const b = (a + 1 + rng.int(E - 1)) % E; // two distinct experts
        ex.push(a, b, (a * 3 + 1) % E, (b * 3 + 1) % E); // layer 1 = 3x + 1 mod 8 of layer 0: a bijection
      }
      return trace(ex, { N, L: 2, K: 2, E });
    };
    const s = predictExperts(make(400), make(100), { distances: [1] });
    const p = find(s, 'path table', 0, 1);
    expect([p.recall, p.exact]).toEqual([1, 1]);
    expect(find(s, 'frequency', 0, 1).recall).toBeLessThan(0.5);
  });

  it('speculative gating scores 100% when the next router equals this one and the hidden state is unchanged', () => {
    const [E, K, H, L] = [6, 2, 8, 3];
    const rng = new Rng(5);
    const W = Float32Array.from({ length: E * H }, () => rng.normal());
    const router: LayerRouter = (x, n) => {
      const out = new Int32Array(n * K);
      for (let t = 0; t < n; t++) {
        const logits = Array.from({ length: E }, (_, e) => W.subarray(e * H, (e + 1) * H).reduce((a, w, i) => a + w * x[t * H + i]!, 0));
        const order = logits.map((v, e) => [v, e] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
        for (let k = 0; k < K; k++) out[t * K + k] = order[k]![1];
      }
      return out;
    };
    const make = (N: number): RoutingTrace => {
      const h = Float32Array.from({ length: N * H }, () => rng.normal());
      const hidden = new Float32Array(N * L * H);
      for (let n = 0; n < N; n++) for (let l = 0; l < L; l++) hidden.set(h.subarray(n * H, (n + 1) * H), (n * L + l) * H);
      const ids = router(h, N);
      const ex: number[] = [];
      for (let n = 0; n < N; n++) for (let l = 0; l < L; l++) ex.push(ids[n * K]!, ids[n * K + 1]!);
      return trace(ex, { N, L, K, E, hidden, H });
    };
    const s = predictExperts(make(300), make(200), { distances: [1, 2], routers: [router, router, router] });
    for (const name of ['speculative gating', 'speculative gating + adapter']) {
      for (const [from, d] of [[0, 1], [1, 1], [0, 2]] as const) {
        const r = find(s, name, from, d);
        expect([r.recall, r.exact], `${name} ${from}+${d}`).toEqual([1, 1]);
      }
    }
  });

  it('activation matching: sequences repeated from the train trace are recognised from their first tokens', () => {
    const E = 16;
    const rng = new Rng(9);
    // 6 train sequences, each with its own two experts at both layers; eval replays sequences 2 and 4
    const own = Array.from({ length: 6 }, () => [rng.int(8), 8 + rng.int(8)]);
    const seqTrace = (which: number[], len: number): RoutingTrace => {
      const ex: number[] = [];
      const seq: number[] = [];
      which.forEach((w, s) => {
        for (let t = 0; t < len; t++) {
          ex.push(own[w]![0]!, own[w]![1]!, own[w]![0]!, own[w]![1]!);
          seq.push(s);
        }
      });
      return trace(ex, { N: which.length * len, L: 2, K: 2, E, seq });
    };
    const s = predictExperts(seqTrace([0, 1, 2, 3, 4, 5], 10), seqTrace([2, 4], 10), { distances: [1] });
    expect(find(s, 'activation matrix', 0, 1).recall).toBe(1);
  });

  it('refuses traces of different shapes and a bad distance', () => {
    const a = trace([0, 1], { N: 1, L: 2, K: 1, E: 2 });
    const b = trace([0, 1, 0, 1], { N: 1, L: 2, K: 2, E: 2 });
    expect(() => predictExperts(a, b, { distances: [1] })).toThrow('the traces differ in shape: train L 2, K 1; eval L 2, K 2');
    expect(() => predictExperts(a, a, { distances: [0] })).toThrow('distance 0 must be a positive integer');
  });
});
