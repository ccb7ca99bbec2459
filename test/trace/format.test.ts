// moekit's trace file: written in parts and assembled, read back bit-exactly (ids, f16-rounded scores and hidden
// states, tokens, sequence ids, metadata); a trace of a model holds exactly what its routing observer saw;
// bad input is refused with the file and what was expected.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { TraceWriter, readTrace } from '../../src/trace/format.js';
import { traceModel, traceShape } from '../../src/trace/record.js';
import { f16ToF32, f32ToF16 } from '../../src/tensor/dtype.js';

let dir = '';
beforeAll(async () => {
  await mk.setBackend('js');
  dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-trace-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const f16 = (x: number): number => f16ToF32(f32ToF16(x));

describe('trace file', () => {
  it('round-trips what was appended, in chunks, exactly (scores and hidden as float16)', () => {
    const file = path.join(dir, 'a.safetensors');
    const [L, K, H, E] = [3, 2, 4, 8];
    const w = new TraceWriter(file, { E, K, layers: [1, 2, 5], H }, { model: 'm', corpus: 'c' });
    const rng = new mk.Rng(1);
    const all = { experts: [] as number[], scores: [] as number[], tokens: [] as number[], seq: [] as number[], hidden: [] as number[] };
    for (const n of [5, 1, 7]) {
      const ex = Int16Array.from({ length: n * L * K }, (_, i) => (i % 5 === 4 ? -1 : rng.int(E)));
      const sc = Float32Array.from({ length: n * L * K }, () => rng.uniform());
      const tok = Int32Array.from({ length: n }, () => rng.int(1000));
      const sq = Int32Array.from({ length: n }, () => all.seq.length);
      const hid = Float32Array.from({ length: n * L * H }, () => rng.normal());
      w.append({ experts: ex, scores: sc, tokens: tok, seq: sq, hidden: hid });
      all.experts.push(...ex); all.scores.push(...sc); all.tokens.push(...tok); all.seq.push(...sq); all.hidden.push(...hid);
    }
    w.finish();
    expect(readdirSync(dir).filter((f) => f.includes('.part') || f.endsWith('.tmp'))).toEqual([]); // parts removed
    const t = readTrace(file);
    expect([t.N, t.L, t.K, t.E, t.H]).toEqual([13, L, K, E, H]);
    expect(t.layers).toEqual([1, 2, 5]);
    expect(Array.from(t.experts)).toEqual(all.experts);
    expect(Array.from(t.scores!)).toEqual(all.scores.map(f16));
    expect(Array.from(t.tokens!)).toEqual(all.tokens);
    expect(Array.from(t.seq!)).toEqual(all.seq);
    expect(Array.from(t.hidden!)).toEqual(all.hidden.map(f16));
    expect(t.metadata).toMatchObject({ format: 'moekit-trace', experts: '8', top_k: '2', layers: '[1,2,5]', model: 'm', corpus: 'c' });
  });

  it('refuses wrong row lengths, bad shapes and files that are not traces, naming what was expected', () => {
    const w = new TraceWriter(path.join(dir, 'b.safetensors'), { E: 4, K: 2, layers: [0] });
    expect(() => w.append({ experts: new Int16Array(3), scores: new Float32Array(4), tokens: new Int32Array(2), seq: new Int32Array(2) })).toThrow('experts has 3 values for 2 tokens, expected 4');
    w.abort();
    expect(readdirSync(dir).filter((f) => f.startsWith('.b.safetensors'))).toEqual([]);
    expect(() => new TraceWriter(path.join(dir, 'c.safetensors'), { E: 40000, K: 2, layers: [0] })).toThrow('experts 40000 must be an integer in [1, 32767]');
    expect(() => new TraceWriter(path.join(dir, 'c.safetensors'), { E: 4, K: 2, layers: [] })).toThrow('no layers to trace');
    const other = path.join(dir, 'other.safetensors');
    writeFileSync(other, mk.encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) }]));
    expect(() => readTrace(other)).toThrow(`${other}: __metadata__.format is "pt", expected "moekit-trace"`);
    const short = path.join(dir, 'short.safetensors');
    writeFileSync(short, new Uint8Array(3));
    expect(() => readTrace(short)).toThrow('3 bytes is too short');
  });
});

describe('traceModel', () => {
  for (const ffn of ['moe', 'clustered'] as const) {
    it(`${ffn}: the trace holds every MoE layer's routing as the observer saw it, window by window, with sequence ids`, async () => {
      const model = new mk.MoELM({ ...mk.PRESETS.tiny, ffn, ...(ffn === 'clustered' ? { clusterGroups: 2, clusterRank: 4 } : {}), denseLayers: [0], layers: 3 });
      const shape = traceShape(model, true);
      expect(shape.layers).toEqual([1, 2]); // layer 0 is dense
      const V = model.cfg.vocabSize;
      const seqs = [Int32Array.from({ length: 20 }, (_, i) => (i * 13) % V), Int32Array.from({ length: 7 }, (_, i) => (i * 7 + 3) % V)];
      const file = path.join(dir, `${ffn}.safetensors`);
      const w = new TraceWriter(file, shape);
      const seen: number[] = [];
      const n = await traceModel(model, seqs, w, { window: 8, batch: 2, hidden: true, onProgress: (t) => seen.push(t) });
      w.finish();
      expect(n).toBe(27);
      expect(seen.at(-1)).toBe(27);
      const t = readTrace(file);
      expect(Array.from(t.seq!)).toEqual([...new Array<number>(20).fill(0), ...new Array<number>(7).fill(1)]);
      expect(Array.from(t.tokens!)).toEqual([...seqs[0]!, ...seqs[1]!]);
      // reference: each window on its own through the model with a recorder
      const L = 2;
      const { K } = shape;
      const H = model.cfg.hidden;
      let at = 0;
      for (const [s, seq] of seqs.entries()) {
        for (let w0 = 0; w0 < seq.length; w0 += 8) {
          const win = seq.subarray(w0, Math.min(w0 + 8, seq.length));
          const rec = new mk.RoutingRecorder({ hidden: true });
          mk.noGrad(() => mk.tidy(() => void model.forward(mk.tensor(win, [1, win.length], 'i32'), { aux: false, observer: rec })));
          const ev = rec.events();
          for (let i = 0; i < win.length; i++) {
            for (let l = 0; l < L; l++) {
              for (let k = 0; k < K; k++) {
                expect(t.experts[((at + i) * L + l) * K + k], `seq ${s} token ${w0 + i} layer ${l}`).toBe(ev[l]!.experts[i * K + k]);
                expect(t.scores![((at + i) * L + l) * K + k]).toBeCloseTo(f16(ev[l]!.weights[i * K + k]!), 6);
              }
              for (let h = 0; h < H; h += 17) expect(t.hidden![((at + i) * L + l) * H + h]).toBe(f16(ev[l]!.hidden![i * H + h]!));
            }
          }
          at += win.length;
        }
      }
      model.dispose();
    });
  }

  it('refuses tokens outside the vocabulary and a window beyond maxSeqLen', async () => {
    const model = new mk.MoELM(mk.PRESETS.tiny);
    const w = new TraceWriter(path.join(dir, 'bad.safetensors'), traceShape(model, false));
    await expect(traceModel(model, [Int32Array.of(1, model.cfg.vocabSize)], w, { window: 8, batch: 1, hidden: false })).rejects.toThrow(`sequence 0 has token ${model.cfg.vocabSize} at position 1`);
    await expect(traceModel(model, [Int32Array.of(1)], w, { window: model.cfg.maxSeqLen + 1, batch: 1, hidden: false })).rejects.toThrow('window');
    w.abort();
    model.dispose();
  });
});
