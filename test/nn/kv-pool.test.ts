// The KV pool and RaggedAttention: sequences written into their slots and attended in one call give the bits of
// attention over each sequence's own cache (js and wasm); the pool grows (slots, rows) keeping what it holds; bad
// slots, lengths and tables are refused with the value named.
import { afterAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { KVPool } from '../../src/nn/kv-pool.js';
import { attentionLse, raggedAttention, reshape, slice, tensor } from '../../src/tensor/api.js';
import { maxAbsDiff } from '../helpers/compare.js';

afterAll(async () => {
  await mk.setBackend('js');
});

const Hq = 4, Hkv = 2, D = 8;
const rand = (rng: mk.Rng, shape: number[]): mk.Tensor => tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);

for (const backend of ['js', 'wasm'] as const) {
  describe(`RaggedAttention over a KV pool on ${backend}`, () => {
    it('equals attention over each sequence\'s own cache, bit for bit, with and without a window', async () => {
      await mk.setBackend(backend);
      const rng = new mk.Rng(3);
      // three sequences: 5 cached + 1 decode row, a 7-row prompt, 2 cached + a 3-row chunk
      const cached = [5, 0, 2], rows = [1, 7, 3];
      for (const window of [0, 3]) {
        const pool = new KVPool([{ heads: Hkv, dk: D, dv: D }], { maxSlots: 4, maxLen: 16, slots: 1, rows: 2 });
        const slots = cached.map(() => pool.acquire());
        const ks = cached.map((c, b) => rand(rng, [1, c + rows[b]!, Hkv, D]));
        const vs = cached.map((c, b) => rand(rng, [1, c + rows[b]!, Hkv, D]));
        cached.forEach((c, b) => { if (c > 0) pool.append(0, [{ slot: slots[b]!, rows: c }], slice(ks[b]!, [0, 0, 0, 0], [1, c, Hkv, D]), slice(vs[b]!, [0, 0, 0, 0], [1, c, Hkv, D])); });
        const segs = rows.map((r, b) => ({ slot: slots[b]!, rows: r }));
        const newK = mk.concat(cached.map((c, b) => slice(ks[b]!, [0, c, 0, 0], [1, rows[b]!, Hkv, D])), 1);
        const newV = mk.concat(cached.map((c, b) => slice(vs[b]!, [0, c, 0, 0], [1, rows[b]!, Hkv, D])), 1);
        const table = pool.append(0, segs, newK, newV);
        expect(Array.from(table.dataSync())).toEqual([0, 1, slots[0], 6, 1, 7, slots[1], 7, 8, 3, slots[2], 5]);
        const q = rand(rng, [11, Hq, D]);
        const { k, v } = pool.tensors(0);
        const got = raggedAttention(q, k, v, table, { window, scale: 0.3 });
        let off = 0, worst = 0;
        rows.forEach((r, b) => {
          const want = attentionLse(reshape(slice(q, [off, 0, 0], [r, Hq, D]), [1, r, Hq, D]), ks[b]!, vs[b]!, { causal: true, window, scale: 0.3 });
          worst = Math.max(worst, maxAbsDiff(slice(got.o, [off, 0, 0], [r, Hq, D]).dataSync(), want.o.dataSync()));
          const lse = mk.transpose(reshape(want.lse, [Hq, r]), [1, 0]); // (r, Hq)
          worst = Math.max(worst, maxAbsDiff(slice(got.lse, [off, 0], [r, Hq]).dataSync(), lse.dataSync()));
          off += r;
        });
        console.log(`${backend} window ${window}: ragged vs per-sequence attention max |diff| ${worst} (pool grew to ${pool.slots} slots)`);
        expect(worst).toBe(0);
        pool.dispose();
      }
    });
  });
}

describe('KVPool', () => {
  it('grows slots and rows by doubling, keeping every row it holds; frees everything on dispose', async () => {
    await mk.setBackend('js');
    const before = mk.getBackend().bytesInUse();
    const pool = new KVPool([{ heads: 1, dk: 2, dv: 3 }], { maxSlots: 5, maxLen: 9, slots: 1, rows: 2 });
    mk.tidy(() => { // the pool's tensors are its own: they outlive the scope
      const a = pool.acquire();
      const row = (n: number, w: number, base: number): mk.Tensor => tensor(Float32Array.from({ length: n * w }, (_, i) => base + i), [n, 1, w]);
      pool.append(0, [{ slot: a, rows: 2 }], row(2, 2, 100), row(2, 3, 200));
      const b = pool.acquire(); // grows to 2 slots
      const c = pool.acquire(); // grows to 4 slots
      expect([a, b, c, pool.slots]).toEqual([0, 1, 2, 4]);
      pool.append(0, [{ slot: c, rows: 1 }, { slot: a, rows: 3 }], row(4, 2, 300), row(4, 3, 400)); // a: 5 rows, C grows to 8
      expect([pool.length(0, a), pool.length(0, b), pool.length(0, c)]).toEqual([5, 0, 1]);
      const k = pool.tensors(0).k; // (4, 8, 1, 2)
      expect(k.shape).toEqual([4, 8, 1, 2]);
      expect(Array.from(slice(k, [0, 0, 0, 0], [1, 5, 1, 2]).dataSync())).toEqual([100, 101, 102, 103, 302, 303, 304, 305, 306, 307]);
      expect(Array.from(slice(k, [2, 0, 0, 0], [1, 1, 1, 2]).dataSync())).toEqual([300, 301]);
      pool.release(a);
      expect(pool.length(0, a)).toBe(0);
      expect(pool.acquire()).toBe(a); // the lowest free slot
      expect(pool.inUse).toBe(3);
    });
    expect(pool.bytes).toBe(4 * 8 * (2 + 3) * 4); // 4 slots of 8 rows, keys of 2 and values of 3 floats
    pool.dispose();
    expect(mk.getBackend().bytesInUse()).toBe(before);
  });

  it('refuses bad slots, lengths, shapes and tables, naming the value', async () => {
    await mk.setBackend('js');
    const pool = new KVPool([{ heads: 1, dk: 2, dv: 2 }], { maxSlots: 2, maxLen: 3 });
    expect(() => new KVPool([], { maxSlots: 0, maxLen: 3 })).toThrow('KVPool: maxSlots must be a positive integer, got 0');
    const s = pool.acquire();
    pool.acquire();
    expect(() => pool.acquire()).toThrow('KVPool: all 2 slots are in use');
    expect(() => pool.release(7)).toThrow('KVPool: slot 7 is not in use');
    const kv = (n: number) => tensor(new Float32Array(n * 2), [n, 1, 2]);
    expect(() => pool.append(0, [{ slot: s, rows: 4 }], kv(4), kv(4))).toThrow('KVPool.append: 4 positions exceed the 3 a slot holds');
    expect(() => pool.append(0, [{ slot: s, rows: 2 }], kv(3), kv(3))).toThrow('do not hold 2 rows of (1, 2) and (1, 2)');
    pool.release(s);
    expect(() => pool.append(0, [{ slot: s, rows: 1 }], kv(1), kv(1))).toThrow('KVPool.append: slot 0 is not in use');
    const { k, v } = pool.tensors(0);
    const q = tensor(new Float32Array(3 * 2), [3, 1, 2]);
    const t = (rows: number[]) => tensor(Int32Array.from(rows), [rows.length / 4, 4], 'i32');
    expect(() => raggedAttention(q, k, v, t([0, 1, 5, 1]))).toThrow('ragged_attention: sequence 0 [qStart 0, rows 1, slot 5, length 1]: slot is not in [0, 2)');
    expect(() => raggedAttention(q, k, v, t([0, 2, 0, 1]))).toThrow('rows must be in [0, length]');
    expect(() => raggedAttention(q, k, v, t([2, 2, 0, 3]))).toThrow('query rows are not within the 3 rows of q');
    expect(() => raggedAttention(q, k, v, t([0, 2, 0, 2, 1, 1, 1, 1]))).toThrow('sequences 0 and 1 claim the same query row 1');
    expect(() => raggedAttention(q, k, v, tensor(Int32Array.from([0, 1, 0]), [1, 3], 'i32'))).toThrow('ragged_attention: seqs i32(1, 3) must be (B, 4)');
    pool.dispose();
  });
});
