// raggedStep against the one-sequence forward: decode rows of up to 8 sequences in one step give the logits each
// sequence gets alone with generate()'s KV-cache forward, bit for bit on wasm (the decode kernels are batch-invariant:
// small-batch matmuls sum each output as the one-row GEMV does, the token-path MoE and RaggedAttention work row by
// row); bad segments are refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { KVCache } from '../../src/nn/attention.js';
import { newKVPool, raggedStep } from '../../src/serve/batch.js';
import { maxAbsDiff } from '../helpers/compare.js';

afterAll(async () => {
  await mk.setBackend('js');
});

/** The last row's logits of model.forward over `input` after what `cache` holds (generate()'s forward). */
function alone(m: mk.MoELM, cache: KVCache[], input: number[]): Float32Array {
  return mk.noGrad(() => mk.tidy(() => {
    const logits = m.forward(mk.tensor(Int32Array.from(input), [1, input.length], 'i32'), { cache, aux: false }).logits; // (T, V)
    return Float32Array.from(logits.dataSync().subarray((input.length - 1) * m.cfg.vocabSize));
  }));
}

describe('raggedStep on wasm', () => {
  beforeAll(async () => {
    await mk.setBackend('wasm');
  });

  // small: 8 rows × top-2 = 16 routing slots take the MoE token path, row by row: bit for bit. fine: 8 × top-8 = 64
  // slots take the grouped GEMMs (rows of several tokens per expert), which sum in another order: within 1e-5
  for (const [name, cfg, tol] of [['small', mk.PRESETS.small, 0], ['fine-grained (E = 64, K = 8)', mk.PRESETS.fine, 1e-5]] as const) {
    it(`${name}: 8 decode rows in one step give each sequence's own logits (max |diff| ≤ ${tol})`, () => {
      const m = new mk.MoELM({ ...cfg, seed: 2 });
      const V = m.cfg.vocabSize;
      const prompts = Array.from({ length: 8 }, (_, i) => Array.from({ length: 5 + 3 * i }, (_, j) => (11 * i + 7 * j + 3) % V));
      const pool = newKVPool(m, 8);
      const slots = prompts.map(() => pool.acquire());
      const caches = prompts.map(() => Array.from({ length: m.cfg.layers }, () => new KVCache()));
      // prompts one at a time (each its own step), then decode steps with all 8 rows together. generate()'s forward
      // computes the LM head over every prompt row (a GEMM), raggedStep over the last row only (a GEMV): the prompt's
      // logits may differ in the last bits, while the KV caches they leave are the same
      let prefill = 0;
      prompts.forEach((p, i) => {
        const got = raggedStep(m, [{ ids: p, slot: slots[i]! }], pool).logits[0]!;
        prefill = Math.max(prefill, maxAbsDiff(got, alone(m, caches[i]!, p)));
      });
      expect(prefill).toBeLessThan(1e-5);
      let worst = 0;
      for (let step = 0; step < 4; step++) {
        const ids = prompts.map((_, i) => (13 * step + 5 * i) % V);
        const got = raggedStep(m, ids.map((id, i) => ({ ids: [id], slot: slots[i]! })), pool).logits;
        ids.forEach((id, i) => { worst = Math.max(worst, maxAbsDiff(got[i]!, alone(m, caches[i]!, [id]))); });
      }
      console.log(`${name}: batched decode logits vs each sequence alone, max |diff| ${worst} over 4 steps × 8 sequences (prompt logits ${prefill.toExponential(1)})`);
      expect(worst).toBeLessThanOrEqual(tol);
      caches.flat().forEach((c) => c.dispose());
      pool.dispose();
    });
  }

  it('refuses a slot twice in one step, a pool of another model, and positions past the context', () => {
    const m = new mk.MoELM({ ...mk.PRESETS.tiny, seed: 1 });
    const pool = newKVPool(m, 2);
    const s = pool.acquire();
    expect(() => raggedStep(m, [{ ids: [1], slot: s }, { ids: [2], slot: s }], pool)).toThrow('segment 1: slot 0 appears twice in one step');
    expect(() => raggedStep(m, [{ ids: [1], slot: s }], newKVPool(new mk.MoELM({ ...mk.PRESETS.tiny, layers: 3, seed: 1 }), 1))).toThrow('raggedStep: the KV pool has 3 layers, the model 2');
    expect(() => raggedStep(m, [{ ids: new Array(65).fill(1), slot: s }], pool)).toThrow('segment 0: positions up to 65 exceed maxSeqLen 64');
    pool.dispose();
  });
});
