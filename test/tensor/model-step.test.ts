// A tiny MoE transformer step (embedding, RMSNorm, RoPE, GQA attention, top-2 routing, grouped SwiGLU-free
// experts, cross-entropy): loss and every gradient on each device equal the js reference, and repeated
// steps allocate no new memory after the first.
import { describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import type { Backend } from '../../src/backend/backend.js';
import { DEVICES, useDevice } from '../helpers/devices.js';

const [V, H, T, Hq, Hkv, D, E, K, I] = [50, 32, 12, 4, 2, 8, 4, 2, 24];
type Params = Record<string, mk.Tensor>;

function initParams(seed: number): Record<string, { data: Float32Array; shape: number[] }> {
  const rng = new mk.Rng(seed);
  const p = (shape: number[], std: number) => ({ data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => std * rng.normal()), shape });
  return {
    emb: p([V, H], 0.5), norm: { data: new Float32Array(H).fill(1), shape: [H] },
    wq: p([H, Hq * D], 0.2), wk: p([H, Hkv * D], 0.2), wv: p([H, Hkv * D], 0.2), wo: p([Hq * D, H], 0.2),
    router: p([H, E], 0.5), w1: p([E, H, I], 0.2), w2: p([E, I, H], 0.2),
  };
}

/** One forward pass; routing (sort by expert) happens on the host, as the dispatch stage will. */
function loss(P: Params, ids: number[], targets: number[]): mk.Tensor {
  const x = mk.gather(P.emb!, mk.tensor(ids, [T], 'i32')); // (T, H)
  const h = mk.rmsNorm(x, P.norm!, 1e-6);
  const pos = mk.arange(0, T);
  const inv = mk.tensor(Array.from({ length: D / 2 }, (_, i) => 10000 ** (-(2 * i) / D)));
  const q = mk.rope(mk.reshape(mk.matmul(h, P.wq!), [1, T, Hq, D]), pos, inv);
  const k = mk.rope(mk.reshape(mk.matmul(h, P.wk!), [1, T, Hkv, D]), pos, inv);
  const v = mk.reshape(mk.matmul(h, P.wv!), [1, T, Hkv, D]);
  const att = mk.reshape(mk.attention(q, k, v), [T, Hq * D]);
  const x2 = mk.add(x, mk.matmul(att, P.wo!)); // (T, H)
  const probs = mk.softmax(mk.matmul(x2, P.router!)); // (T, E)
  const top = mk.topk(probs, K); // (T, K)
  const chosen = top.indices.toArray();
  const order = chosen.map((e, i) => [e, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const perm = order.map(([, i]) => i); // flat (T*K) slots sorted by expert
  const offsets = [0];
  for (let e = 0; e < E; e++) offsets.push(offsets[e]! + order.filter(([x]) => x === e).length);
  const rows = mk.tensor(perm.map((s) => Math.floor(s / K)), [T * K], 'i32');
  const xs = mk.gather(x2, rows); // (T*K, H) permuted
  const off = mk.tensor(offsets, [E + 1], 'i32');
  const hid = mk.silu(mk.groupedMatmul(xs, P.w1!, off)); // (T*K, I)
  const ys = mk.groupedMatmul(hid, P.w2!, off); // (T*K, H)
  const gate = mk.gather(mk.reshape(top.values, [T * K, 1]), mk.tensor(perm, [T * K], 'i32')); // (T*K, 1)
  const moe = mk.scatterAdd(mk.mul(ys, mk.reshape(gate, [T * K, 1])), rows, T); // (T, H)
  const logits = mk.matmul(mk.add(x2, moe), P.emb!, { transB: true }); // (T, V)
  return mk.crossEntropy(logits, mk.tensor(targets, [T], 'i32'));
}

function step(backend: Backend, init: ReturnType<typeof initParams>, ids: number[], targets: number[]): { loss: number; grads: Record<string, Float32Array | Float64Array> } {
  mk.useBackend(backend);
  const P: Params = {};
  for (const [n, v] of Object.entries(init)) P[n] = mk.variable(mk.fromTyped(v.data, v.shape, 'f32'));
  const l = mk.tidy(() => {
    const out = loss(P, ids, targets);
    mk.backward(out);
    return out.item();
  });
  const grads: Record<string, Float32Array | Float64Array> = {};
  for (const [n, t] of Object.entries(P)) {
    grads[n] = t.grad!.dataSync() as Float32Array;
    t.grad!.dispose();
    t.dispose();
  }
  return { loss: l, grads };
}

const rng = new mk.Rng(3);
const ids = Array.from({ length: T }, () => rng.int(V));
const targets = [...ids.slice(1), -100];
const init = initParams(11);
const reference = step(new mk.JsBackend(), init, ids, targets);

describe.each(DEVICES)('model step on $name', (device) => {
  const dev = useDevice(device);

  it('loss and every gradient equal the js reference', (ctx) => {
    const got = step(dev.backend(ctx), init, ids, targets);
    expect(Math.abs(got.loss - reference.loss)).toBeLessThan(1e-5);
    for (const [n, g] of Object.entries(reference.grads)) {
      let scale = 1;
      for (const v of g) scale = Math.max(scale, Math.abs(v));
      let diff = 0;
      got.grads[n]!.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - g[i]!))));
      expect(diff / scale, `gradient of ${n}`).toBeLessThan(1e-4);
    }
  });

  it('SGD steps after the first allocate nothing new', (ctx) => {
    const backend = dev.use(ctx);
    const P: Params = {};
    for (const [n, v] of Object.entries(init)) P[n] = mk.variable(mk.fromTyped(v.data, v.shape, 'f32'));
    const inUse: number[] = [];
    const memory: number[] = [];
    const losses: number[] = [];
    for (let s = 0; s < 5; s++) {
      losses.push(mk.tidy(() => {
        const out = loss(P, ids, targets);
        mk.backward(out);
        return out.item();
      }));
      for (const [n, t] of Object.entries(P)) {
        const next = mk.tidy(() => mk.noGrad(() => mk.sub(t, mk.mul(t.grad!, 0.1))));
        t.grad!.dispose();
        t.dispose();
        P[n] = mk.variable(next);
      }
      inUse.push(backend.bytesInUse());
      if (backend instanceof mk.WasmBackend) memory.push(backend.rt.memory.buffer.byteLength);
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
    expect(new Set(inUse.slice(1)).size).toBe(1);
    expect(new Set(memory.slice(1)).size).toBeLessThanOrEqual(1);
    for (const t of Object.values(P)) t.dispose();
  });
});
