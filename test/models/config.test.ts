// ModelConfig: defaults, presets, validation messages naming key, value and expectation, the dense baseline.
import { describe, expect, it } from 'vitest';
import { ModelConfigSchema, PRESETS, base, denseBaseline, denseWidthOf, parseConfig, small, tiny } from '../../src/models/index.js';

describe('ModelConfig', () => {
  it('fills every default from an empty object', () => {
    const c = parseConfig({});
    expect(c).toMatchObject({ ropeTheta: 1e4, normEps: 1e-6, auxLossCoef: 1e-2, zLossCoef: 1e-3, biasUpdateRate: 1e-3, initStd: 0.02, ffn: 'moe', router: 'softmax-topk', tieEmbeddings: true });
    expect(c.capacityFactor).toBeUndefined();
    expect(Object.keys(ModelConfigSchema.shape)).toContain('capacityFactor');
  });

  it('presets parse and keep their sizes', () => {
    for (const p of Object.values(PRESETS)) expect(parseConfig(p)).toEqual(p);
    expect(tiny).toMatchObject({ vocabSize: 320, hidden: 32, layers: 2, experts: 4, topK: 2 });
    expect(small).toMatchObject({ vocabSize: 2048, hidden: 128, layers: 4, experts: 8, topK: 2 });
    expect(base.hidden).toBeGreaterThan(small.hidden);
  });

  it.each([
    [{ hidden: 'x' }, /"hidden" = "x": expected number, received string/],
    [{ hidden: -2 }, /"hidden" = -2: expected number to be >0/],
    [{ layers: 1.5 }, /"layers" = 1.5: expected int/],
    [{ ffn: 'sparse' }, /"ffn" = "sparse": expected one of "moe"\|"dense"/],
    [{ hiden: 3 }, /unknown key "hiden" \(expected one of vocabSize, hidden/],
    [{ experts: 4, topK: 5 }, /"topK" = 5: expected at most experts = 4/],
    [{ heads: 6, kvHeads: 4 }, /"kvHeads" = 4: expected a divisor of heads = 6/],
    [{ headDim: 7 }, /"headDim" = 7: expected an even number/],
    [{ headDim: 16, rotaryDim: 7 }, /"rotaryDim" = 7: expected an even number/],
    [{ headDim: 16, rotaryDim: 18 }, /"rotaryDim" = 18: expected at most headDim = 16/],
    [{ attention: 'mla' }, /"kvLoraRank" = undefined: expected a positive integer for attention "mla"/],
    [{ attention: 'mla', kvLoraRank: 8, heads: 4, kvHeads: 2 }, /"kvHeads" = 2: expected heads = 4 for attention "mla"/],
    [{ attention: 'mla', kvLoraRank: 8, qkNorm: 'head' }, /"qkNorm" = "head": expected "none" for attention "mla"/],
    [{ kvLoraRank: 8 }, /"kvLoraRank" = 8: expected unset unless attention is "mla"/],
    [{ router: 'sigmoid-group', experts: 8, groups: 3 }, /"groups" = 3: expected a divisor of experts = 8/],
    [{ router: 'sigmoid-group', experts: 8, groups: 4, topGroups: 5 }, /"topGroups" = 5: expected at most groups = 4/],
    [{ capacityFactor: 0 }, /"capacityFactor" = 0: expected number to be >0/],
    [{ sharedGate: true }, /"sharedGate" = true: expected false when sharedWidth = 0/],
    [{ ropeTheta: Number.NaN }, /"ropeTheta" = NaN: expected number, received NaN/],
    [{ heads: [4] }, /"heads" = \[4\]: expected number, received array/],
    [7, /expected an object, got 7/],
  ])('rejects %j with a message naming key and value', (input, msg) => {
    expect(() => parseConfig(input)).toThrow(msg);
  });

  it('lists every problem in one message', () => {
    expect(() => parseConfig({ hidden: 0, vocabSize: 'a' })).toThrow(/^ModelConfig: .*"vocabSize" = "a".*; .*"hidden" = 0|^ModelConfig: .*"hidden" = 0.*; .*"vocabSize" = "a"/);
  });

  it('denseBaseline: same config with one SwiGLU of width K·I + S per layer', () => {
    const moe = parseConfig({ ...tiny, sharedWidth: 16 });
    const d = denseBaseline(moe);
    expect(d.ffn).toBe('dense');
    expect(denseWidthOf(d)).toBe(2 * 32 + 16);
    expect({ ...d, ffn: 'moe', denseWidth: undefined }).toEqual({ ...moe, denseWidth: undefined });
  });
});

describe('the fine preset', () => {
  it('has small\'s body and active expert width (K·I = 256) over 64 experts of width 32, top-8', () => {
    const f = PRESETS.fine;
    expect([f.experts, f.topK, f.expertWidth]).toEqual([64, 8, 32]);
    expect(f.topK * f.expertWidth).toBe(small.topK * small.expertWidth);
    expect({ ...f, experts: small.experts, topK: small.topK, expertWidth: small.expertWidth }).toEqual(small);
  });
});
