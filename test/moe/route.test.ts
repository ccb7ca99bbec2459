// Routers: softmax-topk weights and renormalisation, Switch and z losses by hand, sigmoid-group selection and bias.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { imbalance, route } from '../../src/moe/index.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const rows = (t: mk.Tensor): number[][] => {
  const v = t.toArray();
  const w = t.shape.at(-1)!;
  return Array.from({ length: v.length / w }, (_, i) => v.slice(i * w, (i + 1) * w));
};

describe('softmax-topk', () => {
  it('picks the top-k probabilities, renormalised or not', () => {
    const logits = mk.randn([6, 5], new mk.Rng(1), 2); // (T, E)
    const probs = rows(mk.softmax(logits));
    const r = route(logits, { kind: 'softmax-topk', K: 2 });
    const raw = route(logits, { kind: 'softmax-topk', K: 2, renormalize: false });
    rows(r.experts).forEach((ids, t) => {
      const sorted = probs[t]!.map((p, e) => [p, e] as const).sort((a, b) => b[0] - a[0]);
      expect(ids).toEqual([sorted[0]![1], sorted[1]![1]]);
      const w = rows(r.weights)[t]!;
      expect(w[0]! + w[1]!).toBeCloseTo(1, 6);
      expect(rows(raw.weights)[t]![0]).toBeCloseTo(sorted[0]![0], 6);
    });
    expect(r.experts.dtype).toBe('i32');
  });

  it('Switch loss E·Σ f·P and z-loss mean(lse²) match a hand computation', () => {
    const logits = mk.tensor([[2, 0, 0, 0], [2, 1, 0, 0], [0, 0, 3, 0]]); // (T=3, E=4)
    const r = route(logits, { kind: 'softmax-topk', K: 1 });
    const p = rows(mk.softmax(logits));
    const f = [2 / 3, 0, 1 / 3, 0];
    const P = [0, 1, 2, 3].map((e) => (p[0]![e]! + p[1]![e]! + p[2]![e]!) / 3);
    expect(r.aux.switch.item()).toBeCloseTo(4 * f.reduce((s, fi, e) => s + fi * P[e]!, 0), 5);
    const lse = [[2, 0, 0, 0], [2, 1, 0, 0], [0, 0, 3, 0]].map((l) => Math.log(l.reduce((s, v) => s + Math.exp(v), 0)));
    expect(r.aux.z.item()).toBeCloseTo(lse.reduce((s, v) => s + v * v, 0) / 3, 5);
    // a perfectly balanced router gives exactly 1
    const u = route(mk.tensor([[5, 0], [0, 5]]), { kind: 'softmax-topk', K: 1 });
    expect(u.aux.switch.item()).toBeCloseTo(1, 6);
  });

  it('a selection bias changes the choice but not the weights', () => {
    const logits = mk.tensor([[1, 0, 0], [0, 1, 0]]);
    const bias = mk.tensor([0, 0, 10]);
    const r = route(logits, { kind: 'softmax-topk', K: 1, renormalize: false, bias });
    expect(r.experts.toArray()).toEqual([2, 2]);
    const p = mk.softmax(logits).toArray();
    expect(r.weights.toArray()[0]).toBeCloseTo(p[2]!, 6);
  });

  it('names a bad K and bad logits', () => {
    expect(() => route(mk.zeros([2, 3]), { kind: 'softmax-topk', K: 4 })).toThrow('route: K = 4 must be an integer in [1, E = 3]');
    expect(() => route(mk.zeros([3]), { kind: 'softmax-topk', K: 1 })).toThrow('route: logits must be f32 (T, E), got f32(3)');
  });
});

describe('sigmoid-group (DeepSeek-V3)', () => {
  const [T, E, G, TG, K] = [24, 12, 4, 2, 3];
  const logits = () => mk.randn([T, E], new mk.Rng(9), 2); // (T, E)

  it('only picks experts inside the top groups (sum of the top-2 scores per group)', () => {
    const l = logits();
    const bias = mk.randn([E], new mk.Rng(3), 0.3);
    const r = route(l, { kind: 'sigmoid-group', K, groups: G, topGroups: TG, bias });
    const b = bias.toArray();
    const sel = rows(mk.sigmoid(l)).map((s) => s.map((v, e) => v + b[e]!));
    const ids = rows(r.experts);
    let outsideUngrouped = 0;
    sel.forEach((s, t) => {
      const groupScore = Array.from({ length: G }, (_, g) => s.slice(g * 3, g * 3 + 3).sort((a, c) => c - a).slice(0, 2).reduce((a, c) => a + c, 0));
      const kept = groupScore.map((v, g) => [v, g] as const).sort((a, c) => c[0] - a[0]).slice(0, TG).map(([, g]) => g);
      for (const e of ids[t]!) expect(kept).toContain(Math.floor(e / (E / G)));
      // the chosen ones are the best K inside the kept groups
      const inside = s.map((v, e) => [v, e] as const).filter(([, e]) => kept.includes(Math.floor(e / (E / G)))).sort((a, c) => c[0] - a[0]);
      expect([...ids[t]!].sort()).toEqual(inside.slice(0, K).map(([, e]) => e).sort());
      const global = s.map((v, e) => [v, e] as const).sort((a, c) => c[0] - a[0]).slice(0, K).map(([, e]) => e);
      if (global.some((e) => !kept.includes(Math.floor(e / (E / G))))) outsideUngrouped++;
    });
    expect(outsideUngrouped).toBeGreaterThan(0); // the group limit actually changed some choices
  });

  it('weights are the unbiased scores of the chosen experts, normalised, times routedScale', () => {
    const l = logits();
    const r = route(l, { kind: 'sigmoid-group', K, groups: G, topGroups: TG, routedScale: 2.5, bias: mk.full([E], 0.5) });
    const s = rows(mk.sigmoid(l));
    rows(r.weights).forEach((w, t) => {
      const chosen = rows(r.experts)[t]!.map((e) => s[t]![e]!);
      const tot = chosen.reduce((a, c) => a + c, 0);
      w.forEach((v, k) => expect(v).toBeCloseTo((2.5 * chosen[k]!) / tot, 5));
    });
    expect(() => route(l, { kind: 'sigmoid-group', K, groups: 5 })).toThrow('route: groups 5 must divide E = 12');
  });

  it('renormalize false (norm_topk_prob false): weights are the chosen sigmoid scores times routedScale', () => {
    const l = logits();
    const r = route(l, { kind: 'sigmoid-group', K, groups: G, topGroups: TG, routedScale: 2.5, renormalize: false });
    const s = rows(mk.sigmoid(l));
    rows(r.weights).forEach((w, t) => w.forEach((v, k) => expect(v).toBeCloseTo(2.5 * s[t]![rows(r.experts)[t]![k]!]!, 5)));
  });

  it('imbalance is max/mean', () => {
    expect(imbalance([1, 1, 1, 1])).toBe(1);
    expect(imbalance([4, 0, 0, 0])).toBe(4);
  });
});
