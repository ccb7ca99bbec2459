// Engine behaviour: scopes, disposal, backend selection and creation errors.
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { ENGINE } from '../../src/tensor/engine.js';

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
    let kept: mk.Tensor | null = null;
    let dropped: mk.Tensor | null = null;
    const k = mk.tidy(() => {
      kept = mk.keep(mk.zeros([3]));
      dropped = mk.zeros([5]);
      return null;
    });
    expect(k).toBeNull();
    expect(kept!.disposed).toBe(false);
    expect(dropped!.disposed).toBe(true);
    kept!.dispose();
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

  it('reshape shares storage: no allocation, the storage lives until its last holder is disposed', () => {
    const be = mk.getBackend();
    const before = be.bytesInUse();
    const x = mk.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const v = mk.reshape(x, [3, 2]);
    expect(v.dataId).toBe(x.dataId);
    expect(be.bytesInUse() - before).toBe(6 * 4);
    const w = mk.reshape(v, [6]);
    x.dispose();
    expect(v.toArray()).toEqual([1, 2, 3, 4, 5, 6]);
    v.dispose();
    expect(w.toArray()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(be.bytesInUse() - before).toBe(6 * 4);
    w.dispose();
    expect(be.bytesInUse() - before).toBe(0);
    // a view made and dropped inside tidy leaves the kept source alone
    const k = mk.keep(mk.tensor([7, 8], [2]));
    mk.tidy(() => {
      mk.reshape(k, [1, 2]);
    });
    expect(k.toArray()).toEqual([7, 8]);
    k.dispose();
    expect(be.bytesInUse() - before).toBe(0);
  });

  it('reshape views see assign into their source, and carry gradients', () => {
    const p = mk.keep(mk.tensor([1, 2, 3, 4], [4]));
    const v = mk.reshape(p, [2, 2]);
    mk.assign(p, mk.tensor([5, 6, 7, 8], [4]));
    expect(v.toArray()).toEqual([5, 6, 7, 8]);
    p.requiresGrad = true;
    mk.backward(mk.sum(mk.mul(mk.reshape(p, [2, 2]), mk.tensor([1, 2, 3, 4], [2, 2]))));
    expect(p.grad!.toArray()).toEqual([1, 2, 3, 4]);
    p.dispose();
  });

  it('seeded Rng is reproducible and its state round-trips', () => {
    const a = new mk.Rng(5);
    const b = new mk.Rng(5);
    expect([a.normal(), a.uniform(), a.nextU32()]).toEqual([b.normal(), b.uniform(), b.nextU32()]);
    const c = mk.Rng.fromState(a.state());
    expect(c.normal()).toBe(a.normal());
  });
});

describe('backend selection', () => {
  it('ready() follows MOEKIT_BACKEND and MOEKIT_THREADS; the default is wasm', async () => {
    const saved = { b: process.env.MOEKIT_BACKEND, t: process.env.MOEKIT_THREADS, current: ENGINE.backend };
    try {
      process.env.MOEKIT_BACKEND = 'js';
      ENGINE.backend = null;
      expect((await mk.ready()).name).toBe('js');
      delete process.env.MOEKIT_BACKEND;
      process.env.MOEKIT_THREADS = '1';
      ENGINE.backend = null;
      const wasm = await mk.ready();
      expect(wasm.name).toBe('wasm');
      expect((wasm as mk.WasmBackend).threads).toBe(1);
      await wasm.dispose();
      process.env.MOEKIT_THREADS = 'two';
      ENGINE.backend = null;
      await expect(mk.ready()).rejects.toThrow('MOEKIT_THREADS must be a positive integer, got "two"');
      ENGINE.backend = null;
      expect(() => mk.zeros([1])).toThrow(/no backend is ready/);
    } finally {
      if (saved.b === undefined) delete process.env.MOEKIT_BACKEND;
      else process.env.MOEKIT_BACKEND = saved.b;
      if (saved.t === undefined) delete process.env.MOEKIT_THREADS;
      else process.env.MOEKIT_THREADS = saved.t;
      ENGINE.backend = saved.current;
    }
  });
});

describe('assign', () => {
  it('copies values into the target storage on js and wasm, refusing shape or dtype mismatches', async () => {
    const wasm = await mk.WasmBackend.create({ threads: 1 });
    try {
      for (const be of [mk.getBackend(), wasm]) {
        const t = mk.fromTyped(new Float32Array([1, 2, 3]), [3], 'f32', be);
        const id = t.dataId;
        mk.assign(t, mk.fromTyped(new Float32Array([4, 5, 6]), [3], 'f32', be));
        expect(t.dataId).toBe(id);
        expect(t.toArray()).toEqual([4, 5, 6]);
        expect(() => mk.assign(t, mk.fromTyped(new Float32Array([1, 2]), [2], 'f32', be))).toThrow('assign: value f32(2) does not match target f32(3)');
      }
    } finally {
      await wasm.dispose();
    }
  });
  it('assignRange writes a range of elements in place on js and wasm, refusing ranges outside either tensor', async () => {
    const wasm = await mk.WasmBackend.create({ threads: 1 });
    try {
      for (const be of [mk.getBackend(), wasm]) {
        const t = mk.fromTyped(new Float32Array(6), [2, 3], 'f32', be);
        const v = mk.fromTyped(new Float32Array([7, 8, 9, 10]), [4], 'f32', be);
        mk.assignRange(t, 2, v, 1, 3);
        expect(t.toArray()).toEqual([0, 0, 8, 9, 10, 0]);
        expect(() => mk.assignRange(t, 4, v)).toThrow('assignRange: elements [4, 8) are not within target f32(2, 3) (6 elements)');
        expect(() => mk.assignRange(t, 0, v, 2, 3)).toThrow('assignRange: elements [2, 5) are not within value f32(4) (4 elements)');
        expect(() => mk.assignRange(t, -1, v, 0, 1)).toThrow('assignRange: at must be a non-negative integer, got -1');
        expect(() => mk.assignRange(t, 0, mk.fromTyped(new Int32Array(1), [1], 'i32', be))).toThrow('assignRange: value i32(1) does not match the dtype of target f32(2, 3)');
      }
    } finally {
      await wasm.dispose();
    }
  });
});
