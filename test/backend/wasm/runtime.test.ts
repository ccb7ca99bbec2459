// Tests for the wasm runtime (module choice, dispatch, views, errors) and the JS-side allocator.
import { afterAll, describe, expect, it } from 'vitest';
import { Allocator, sizeClass } from '../../../src/backend/wasm/alloc.js';
import { WasmRuntime } from '../../../src/backend/wasm/runtime.js';
import * as K from '../../../src/backend/wasm/kernels.js';

const runtimes: WasmRuntime[] = [];
async function make(threads: number, relaxedSimd: boolean | 'auto' = 'auto'): Promise<WasmRuntime> {
  const rt = await WasmRuntime.create({ threads, relaxedSimd });
  runtimes.push(rt);
  return rt;
}
afterAll(() => { for (const rt of runtimes) rt.dispose(); });

describe('WasmRuntime', () => {
  it('creates relaxed and plain builds with the requested threads', async () => {
    const r = await make(2, true);
    expect(r.relaxed).toBe(true);
    expect(r.threads).toBe(2);
    const p = await make(2, false);
    expect(p.relaxed).toBe(false);
    const d = await make(1);
    expect(d.threads).toBe(1);
    expect(d.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it('defaults threads to the available parallelism', async () => {
    const os = await import('node:os');
    const rt = await WasmRuntime.create();
    runtimes.push(rt);
    expect(rt.threads).toBe(os.availableParallelism());
  });

  it('runs a kernel on every thread many times in a row (dispatch stays consistent)', async () => {
    const rt = await make(2);
    const M = 7, N = 40, Kd = 5;
    const a = rt.alloc(M * Kd * 4), b = rt.alloc(Kd * N * 4), c = rt.alloc(M * N * 4);
    rt.f32(a, M * Kd).fill(1);
    rt.f32(b, Kd * N).fill(2);
    for (let it = 0; it < 2000; it++) {
      rt.f32(c, M * N).fill(-1);
      K.matmul(rt, { a, b, c, M, N, K: Kd, chunks: 2 });
      const C = rt.f32(c, M * N);
      if (C.some((v) => v !== 10)) throw new Error(`iteration ${it}: wrong result`);
    }
    for (const p of [a, b, c]) rt.free(p);
  });

  it('mixes thread counts on a 3-thread pool (idle workers acknowledge every dispatch)', async () => {
    const rt = await make(3);
    const M = 5, N = 48, Kd = 3;
    const a = rt.alloc(M * Kd * 4), b = rt.alloc(Kd * N * 4), c = rt.alloc(M * N * 4);
    rt.f32(a, M * Kd).fill(1);
    for (let it = 0; it < 600; it++) {
      rt.f32(b, Kd * N).fill(it);
      K.matmul(rt, { a, b, c, M, N, K: Kd, chunks: 1 + (it % 3) });
      if (rt.f32(c, M * N).some((v) => v !== 3 * it)) throw new Error(`iteration ${it}: wrong result`);
    }
  });

  it('views are fresh after memory growth', async () => {
    const rt = await make(1);
    const before = rt.memory.buffer.byteLength;
    const p = rt.alloc(64 << 20);
    expect(rt.memory.buffer.byteLength).toBeGreaterThan(before);
    const v = rt.f32(p, 16 << 20);
    v[v.length - 1] = 3;
    expect(rt.f32(p, 16 << 20)[(16 << 20) - 1]).toBe(3);
    expect(rt.u8(p, 4).length).toBe(4);
    expect(rt.i8(p, 4).length).toBe(4);
    expect(rt.u16(p, 4).length).toBe(4);
    expect(rt.i32(p, 4).length).toBe(4);
    rt.free(p);
  });

  it('reports unknown kernels, worker traps and use after dispose', async () => {
    const rt = await make(2);
    expect(() => rt.parallel('nope', [], 1)).toThrow(/does not exist/);
    // Out-of-bounds pointers trap on both threads; the error surfaces and the pool keeps working.
    const bad = 0xfffffff0;
    expect(() => K.matmul(rt, { a: bad, b: bad, c: bad, M: 64, N: 64, K: 64, chunks: 2 })).toThrow();
    const a = rt.alloc(64), c = rt.alloc(64);
    rt.f32(a, 1)[0] = 3;
    K.matmul(rt, { a, b: a, c, M: 1, N: 1, K: 1 });
    expect(rt.f32(c, 1)[0]).toBe(9);
    const rt2 = await WasmRuntime.create({ threads: 2 });
    rt2.dispose();
    expect(() => rt2.alloc(4)).toThrow(/disposed/);
    expect(() => rt2.parallel('matmul', [], 1)).toThrow(/disposed/);
  });
});

describe('Allocator', () => {
  it('aligns to 64 bytes and rounds to size classes', () => {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const al = new Allocator(mem, 1000);
    const p = al.alloc(3), q = al.alloc(100), r = al.alloc(5000);
    for (const x of [p, q, r]) expect(x % 64).toBe(0);
    expect(p).toBeGreaterThanOrEqual(1000);
    expect(q - p).toBe(64);
    expect(sizeClass(4097)).toBeGreaterThanOrEqual(4097);
    expect(sizeClass(4097)).toBeLessThanOrEqual(4097 * 1.125 + 64);
    expect(al.bytesInUse).toBe(64 + 128 + sizeClass(5000));
  });

  it('reuses freed memory without growth in a training-like loop', async () => {
    const rt = await make(1);
    const sizes = [4096, 123456, 7, 1 << 20, 3 * 1024 * 1024 + 5];
    const warm = sizes.map((s) => rt.alloc(s));
    for (const p of warm) rt.free(p);
    const bytes = rt.memory.buffer.byteLength;
    const peak = rt.peakBytes;
    for (let step = 0; step < 200; step++) {
      const ps = sizes.map((s) => rt.alloc(s));
      for (const p of ps.reverse()) rt.free(p);
      const qs = sizes.map((s) => rt.alloc(s));
      for (const p of qs) rt.free(p); // freeing in allocation order exercises the free lists
    }
    expect(rt.memory.buffer.byteLength).toBe(bytes);
    expect(rt.peakBytes).toBe(peak);
    const p = rt.alloc(123456);
    rt.free(p);
    expect(rt.alloc(123456)).toBe(p);
  });

  it('throws on double free, unknown pointers and out of memory', () => {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const al = new Allocator(mem, 64);
    const p = al.alloc(100);
    al.free(p);
    expect(() => al.free(p)).toThrow(/not a live allocation/);
    expect(() => al.free(12345)).toThrow(/not a live allocation/);
    expect(() => al.alloc(5e9)).toThrow(/5000000000 bytes/);
    expect(() => al.alloc(-1)).toThrow(RangeError);
    expect(al.bytesInUse).toBe(0);
  });

  it('tracks bytesInUse and peakBytes', () => {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const al = new Allocator(mem, 64);
    const a = al.alloc(640), b = al.alloc(64);
    expect(al.bytesInUse).toBe(704);
    al.free(a);
    expect(al.bytesInUse).toBe(64);
    expect(al.peakBytes).toBe(704);
    al.free(b);
    expect(al.bytesInUse).toBe(0);
  });
});
