// Tokenizer tests: HF fixture parity, BPE training, tokenizer.json save/load round trip.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBrown } from '../../src/io/brown.js';
import { bytesToUnicode, loadTokenizer, saveTokenizerJson, tokenizerJson, trainBpe } from '../../src/io/tokenizer.js';
import { fixture } from '../helpers/fixtures.js';

const fixtureDir = fixture('hf/tokenizer') + '/';
const tmp = mkdtempSync(join(tmpdir(), 'moekit-tok-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('loadTokenizer on the HF fixture', () => {
  const tok = loadTokenizer(join(fixtureDir, 'tokenizer.json'));
  const reference = JSON.parse(readFileSync(join(fixtureDir, 'reference.json'), 'utf8')) as Array<{ text: string; ids: number[] }>;

  it('has the reference texts', () => {
    expect(reference.length).toBeGreaterThanOrEqual(5);
  });
  it.each(reference.map((r, i) => [i, r] as const))('encodes reference text %i to the exact ids', (_i, r) => {
    expect(tok.encode(r.text)).toEqual(r.ids);
    expect(tok.decode(r.ids)).toBe(r.text);
  });
  it('exposes vocab size and token ids', () => {
    expect(tok.vocabSize).toBe(2048);
    expect(tok.tokenId('<|endoftext|>')).toBe(0);
    expect(tok.tokenId('no such token')).toBeUndefined();
  });
  it('names the path of a missing or broken file', () => {
    expect(() => loadTokenizer(join(tmp, 'nope.json'))).toThrow(`tokenizer: ${join(tmp, 'nope.json')} does not exist`);
    writeFileSync(join(tmp, 'bad.json'), '{ not json');
    expect(() => loadTokenizer(join(tmp, 'bad.json'))).toThrow(`tokenizer: ${join(tmp, 'bad.json')} is not valid JSON`);
  });
});

describe('trainBpe', () => {
  it('maps all 256 bytes to distinct printable chars (GPT-2 bytes_to_unicode)', () => {
    const m = bytesToUnicode();
    expect(new Set(m).size).toBe(256);
    expect(m[32]).toBe('Ġ');
    expect(m[10]).toBe('Ċ');
    expect(m[65]).toBe('A');
  });

  it('learns the most frequent pair first, counting words by frequency', () => {
    const m = trainBpe(['low low low lower newest newest'], { vocabSize: 1 + 256 + 3, minFrequency: 1 });
    expect(m.merges[0]).toEqual(['l', 'o']);
    expect(m.merges[1]).toEqual(['lo', 'w']);
    expect(m.vocab.get('low')).toBe(258);
    expect(m.vocab.size).toBe(260);
  });

  it('stops at minFrequency and never learns from special tokens', () => {
    const m = trainBpe(['ab ab<|endoftext|>cd'], { vocabSize: 1000, minFrequency: 2 });
    expect(m.merges).toEqual([['a', 'b']]);
    expect(m.vocab.has('<|')).toBe(false);
  });

  it('rejects a vocab size smaller than specials + bytes, and minFrequency < 1', () => {
    expect(() => trainBpe(['x'], { vocabSize: 100 })).toThrow('vocabSize 100 must be an integer in [257,');
    expect(() => trainBpe(['x'], { vocabSize: 300, minFrequency: 0 })).toThrow('minFrequency 0 must be an integer >= 1');
  });

  it('trained on Brown, saved as tokenizer.json and loaded by @huggingface/tokenizers, round-trips text', () => {
    const docs = loadBrown().filter((_, i) => i % 2 === 0); // 250 documents
    const model = trainBpe(
      docs.map((d) => d.text),
      { vocabSize: 2048, specialTokens: ['<|endoftext|>'] },
    );
    expect(model.merges.length).toBe(2048 - 257);
    const path = join(tmp, 'tokenizer.json');
    saveTokenizerJson(model, path);
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    // same layout as the HF fixture (keys in order, nested option objects)
    const fixture = JSON.parse(readFileSync(join(fixtureDir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const saved = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    expect(Object.keys(saved)).toEqual(Object.keys(fixture));
    for (const k of ['added_tokens', 'pre_tokenizer', 'decoder', 'normalizer', 'post_processor']) expect(saved[k]).toEqual(fixture[k]);
    const fm = fixture.model as Record<string, unknown>;
    const sm = saved.model as Record<string, unknown>;
    expect(Object.keys(sm)).toEqual(Object.keys(fm));
    expect(sm.merges).toEqual((tokenizerJson(model).model as Record<string, unknown>).merges);

    const tok = loadTokenizer(path);
    expect(tok.vocabSize).toBe(2048);
    expect(tok.tokenId('<|endoftext|>')).toBe(0);
    const samples = [
      'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence".',
      '  leading spaces\tand tabs\nnew line  ',
      'naïve café – 東京 🙂 Ünïcödé ß',
      'Mixture-of-Experts: 8 experts, top-2 routing -- 42% load!',
      'one<|endoftext|>two',
    ];
    for (const s of samples) {
      const ids = tok.encode(s);
      expect(ids.every((i) => Number.isInteger(i) && i >= 0 && i < 2048)).toBe(true);
      expect(tok.decode(ids)).toBe(s);
    }
    expect(tok.encode('one<|endoftext|>two')).toContain(0);
    // a common word is one token: the merges were learned and are applied by the HF loader
    expect(tok.encode(' the')).toEqual([model.vocab.get('Ġthe')]);
  });
});
