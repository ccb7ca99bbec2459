// Engine behaviour: scopes, disposal, backend selection and creation errors.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

describe('tidy scopes', () => {
  it('frees everything but the result; nested scopes hand results outward', () => {
    const be = mk.getBackend();
    const before = be.bytesInUse();
    const out = mk.tidy(() => {
      const a = mk.ones([10]);
      const inner = mk.tidy(() => mk.add(mk.mul(a, 2), 1));
      mk.exp(inner);
      return { inner, list: [mk.sum(inner)] };
    });
    expect(be.bytesInUse() - before).toBe((10 + 1) * 4);
    expect(out.inner.toArray()).toEqual(new Array(10).fill(3));
    mk.dispose(out);
    expect(be.bytesInUse()).toBe(before);
  });

  it('keep survives the scope; dispose twice is safe', () => {
    const k = mk.tidy(() => {
      const t = mk.keep(mk.zeros([3]));
      mk.zeros([5]);
      return null;
    });
    expect(k).toBeNull();
    const t = mk.keep(mk.zeros([2]));
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
  });

  it('a throwing scope still frees its tensors', () => {
    const be = mk.getBackend();
    const before = be.bytesInUse();
    expect(() => mk.tidy(() => {
      mk.zeros([100]);
      throw new Error('boom');
    })).toThrow('boom');
    expect(be.bytesInUse()).toBe(before);
  });
});

describe('creation and backends', () => {
  it('nested arrays infer the shape; ragged arrays are rejected', () => {
    expect(mk.tensor([[1, 2, 3], [4, 5, 6]]).shape).toEqual([2, 3]);
    expect(() => mk.tensor([[1, 2], [3]])).toThrow('ragged nested array');
    expect(() => mk.tensor([1, 2, 3], [2, 2])).toThrow('3 values do not fill shape (2, 2)');
    expect(() => mk.fromTyped(new Float32Array(2), [2], 'i32')).toThrow('Float32Array cannot hold dtype i32');
  });

  it('tensors of another backend are refused by name', async () => {
    const other = new mk.JsBackend();
    const a = mk.fromTyped(new Float32Array([1]), [1], 'f32', other);
    expect(() => mk.exp(a)).toThrow(/lives on backend js, but the current backend is js/);
    await expect(mk.setBackend('nope')).rejects.toThrow('unknown backend "nope"');
  });

  it('reshape with -1 and the identity shortcut', () => {
    const x = mk.zeros([2, 3, 4]);
    expect(mk.reshape(x, [-1, 4]).shape).toEqual([6, 4]);
    expect(mk.reshape(x, [2, 3, 4])).toBe(x);
    expect(() => mk.reshape(x, [-1, -1])).toThrow('at most one -1');
  });

  it('seeded Rng is reproducible and its state round-trips', () => {
    const a = new mk.Rng(5);
    const b = new mk.Rng(5);
    expect([a.normal(), a.uniform(), a.nextU32()]).toEqual([b.normal(), b.uniform(), b.nextU32()]);
    const c = mk.Rng.fromState(a.state());
    expect(c.normal()).toBe(a.normal());
  });
});
