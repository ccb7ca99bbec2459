// toClustered's bounds: groups divide the experts (1 <= G <= E), 1 <= rank <= min(H, I), 1 <= groupTopK <= G, each
// refused with the reason before anything is converted; full rank stays allowed (it is the lossless check).
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { toClustered } from '../../src/compress/convert.js';

let model: mk.MoELM;

beforeAll(async () => {
  await mk.setBackend('js');
  // H = 32, I = 16: min(H, I) = 16
  model = new mk.MoELM(mk.parseConfig({ ...mk.PRESETS.tiny, layers: 1, expertWidth: 16 }));
});

describe('toClustered bounds', () => {
  it('refuses a rank above min(H, I), naming both sizes', () => {
    expect(() => toClustered(model, null, { groups: 2, rank: 100000 })).toThrow(
      'toClustered: rank 100000 must be an integer in [1, 16]: an expert matrix is H x I = 32 x 16, so its residual has rank at most min(H, I) = 16');
    expect(() => toClustered(model, null, { groups: 2, rank: 0 })).toThrow(/rank 0 must be an integer in \[1, 16\]/);
    expect(() => toClustered(model, null, { groups: 2, rank: 2.5 })).toThrow(/rank 2.5 must be an integer/);
  });

  it('refuses group counts that do not divide the experts or exceed them, and groupTopK above G', () => {
    expect(() => toClustered(model, null, { groups: 8, rank: 2 })).toThrow('toClustered: groups 8 must divide the 4 experts (1 <= G <= 4)');
    expect(() => toClustered(model, null, { groups: 3, rank: 2 })).toThrow(/groups 3 must divide the 4 experts/);
    expect(() => toClustered(model, null, { groups: 0, rank: 2 })).toThrow(/groups 0 must divide/);
    expect(() => toClustered(model, null, { groups: 2, rank: 2, groupTopK: 3 })).toThrow('toClustered: groupTopK 3 must be an integer in [1, 2] (the groups per layer)');
  });

  it('accepts the bounds themselves: rank min(H, I) reproduces the experts (and is larger than the input)', () => {
    const full = toClustered(model, null, { groups: 2, rank: 16 });
    expect(full.layers.every((l) => l.relError < 1e-5)).toBe(true);
    expect(full.expertParamsAfter).toBeGreaterThan(full.expertParamsBefore);
    const one = toClustered(model, null, { groups: 4, rank: 1, groupTopK: 4 });
    expect(one.expertParamsAfter).toBe(4 * 3 * 32 * 16 + 4 * 3 * 1 * (32 + 16));
    full.model.dispose();
    one.model.dispose();
  });
});
