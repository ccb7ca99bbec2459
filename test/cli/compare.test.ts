// moekit compare (the main job) end to end on the tiny preset: both models, perplexities and load statistics.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';

describe('moekit compare', () => {
  it('--preset tiny --json reports the MoE and its dense baseline with matching active parameters', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'compare', '--preset', 'tiny', '--steps', '20', '--eval-tokens', '2000', '--json'], { encoding: 'utf8', env: { ...process.env, MOEKIT_CACHE_DIR: tempDir('moekit-compare-cache-') } });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
      unigram_ppl: number;
      models: Record<string, { valid_ppl: number; params_total: number; params_active: number; train_tokens_per_s: number; load_variance: number | null; imbalance: number | null }>;
    };
    expect(Object.keys(r.models)).toEqual(['moe', 'dense']);
    const { moe, dense } = r.models as { moe: (typeof r.models)[string]; dense: (typeof r.models)[string] };
    for (const m of [moe, dense]) {
      expect(m.valid_ppl).toBeGreaterThan(1);
      expect(Number.isFinite(m.valid_ppl)).toBe(true);
      expect(m.train_tokens_per_s).toBeGreaterThan(0);
    }
    expect(moe.params_total).toBeGreaterThan(dense.params_total);
    // FLOP-matched: the dense baseline's active parameters equal the MoE's minus its routers
    expect(Math.abs(moe.params_active - dense.params_active) / moe.params_active).toBeLessThan(0.02);
    expect(moe.load_variance).not.toBeNull();
    expect(dense.load_variance).toBeNull();
    expect(r.unigram_ppl).toBeGreaterThan(1);
  });
});
