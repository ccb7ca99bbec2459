// Exported config.json keeps transformers' field types: every number the fixture's own config.json (written by
// transformers) has as a float is written as a float, every int as an int - read from the raw text of both.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { loadHfModel } from '../../src/models/hf/load.js';
import { exportHf } from '../../src/models/hf/export.js';
import { hfConfigJson } from '../../src/models/hf/json.js';
import { fixture } from '../helpers/fixtures.js';
import { tempDir } from '../helpers/tmp.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

/** "path" → literal kind for every scalar in config.json text: float, int, string, bool, null (nested as a.b). */
function literalKinds(text: string): Map<string, string> {
  const kinds = new Map<string, string>();
  const stack: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*"([^"]+)":\s*(.*?),?\s*$/.exec(line);
    if (!m) {
      if (/^\s*[}\]]/.test(line)) stack.pop();
      continue;
    }
    const [, key, lit] = m as unknown as [string, string, string];
    if (lit === '{' || lit === '[') { stack.push(key); continue; }
    const kind = /^-?\d+$/.test(lit) ? 'int' : /^-?[\d.]+([eE][-+]?\d+)?$/.test(lit) ? 'float' : lit === 'null' ? 'null' : lit === 'true' || lit === 'false' ? 'bool' : lit.startsWith('"') ? 'string' : 'other';
    kinds.set([...stack, key].join('.'), kind);
  }
  return kinds;
}

describe('hfConfigJson', () => {
  it('writes whole numbers of float fields with a decimal point, and parses back to the same object', () => {
    const cfg = { vocab_size: 320, router_jitter_noise: 0, rms_norm_eps: 1e-6, rope_parameters: { rope_theta: 10000, rope_type: 'default' }, mlp_only_layers: [], tie_word_embeddings: false, sliding_window: null };
    const text = hfConfigJson(cfg);
    expect(text).toContain('"router_jitter_noise": 0.0');
    expect(text).toContain('"rope_theta": 10000.0');
    expect(text).toContain('"vocab_size": 320,');
    expect(text).toContain('"rms_norm_eps": 0.000001');
    expect(JSON.parse(text)).toEqual(cfg);
    expect(() => hfConfigJson({ initializer_range: Number.NaN })).toThrow(/"initializer_range" is NaN/);
  });
});

describe.each(['mixtral', 'qwen2_moe', 'qwen3_moe', 'olmoe', 'glm4_moe', 'deepseek_v3', 'gpt_oss'] as const)('exported %s config.json', (arch) => {
  const tmp = tempDir('moekit-hf-json-');
  it('types every number as transformers wrote it in the fixture (float stays float, int stays int)', async () => {
    const dir = path.dirname(fixture(`hf/${arch}/config.json`));
    const hf = await loadHfModel(dir);
    const out = path.join(tmp, arch);
    await exportHf(hf.model, arch, out, { baseConfig: hf.raw });
    const want = literalKinds(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const got = literalKinds(readFileSync(path.join(out, 'config.json'), 'utf8'));
    const wrong: string[] = [];
    let checked = 0;
    for (const [key, kind] of want) {
      if (kind !== 'int' && kind !== 'float') continue;
      const g = got.get(key);
      if (g === undefined || g === 'null') continue; // a field moekit leaves out or unset is not a type error
      checked++;
      if (g !== kind) wrong.push(`${key}: ${g}, transformers wrote ${kind}`);
    }
    console.log(`${arch}: ${checked} numeric fields checked against the fixture's config.json`);
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(8);
  });
});
