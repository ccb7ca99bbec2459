// Shared pieces of the gpt_oss tests: the fixture's config, an explicit sink-softmax reference, and a gpt_oss model of
// other sizes.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import * as mk from '../../src/index.js';
import type { Backend } from '../../src/backend/backend.js';
import { fromHfConfig } from '../../src/models/hf/config.js';
import { MoELM, type ModelConfigInput } from '../../src/models/index.js';
import { ids } from './compare.js';
import { fixture } from './fixtures.js';

const dir = path.dirname(fixture('hf/gpt_oss/config.json'));
export const raw = (): Record<string, unknown> => JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
export const close = (got: ArrayLike<number>, want: readonly number[], rel: number): void => {
  want.forEach((w, i) => expect(Math.abs(got[i]! - w), `index ${i}`).toBeLessThanOrEqual(rel * Math.abs(w)));
};

/**
 * The sink softmax written out: scores (B, Hq, T, S) with the causal window mask (HF: key j visible to query i at
 * position p = i + S − T when j ≤ p and j > p − window), the sink as an extra column, softmax, column dropped.
 */
export function explicitSinkAttention(q: mk.Tensor, k: mk.Tensor, v: mk.Tensor, sinks: mk.Tensor, window: number): mk.Tensor {
  const [B, T, Hq, D] = q.shape as [number, number, number, number];
  const [, S, Hkv] = k.shape as [number, number, number];
  const G = Hq / Hkv;
  const rep = (x: mk.Tensor): mk.Tensor => {
    const xt = mk.transpose(x, [0, 2, 1, 3]); // (B, Hkv, S, ·)
    return mk.reshape(mk.mul(mk.reshape(xt, [B, Hkv, 1, S, x.shape[3]!]), mk.ones([1, 1, G, 1, 1])), [B, Hq, S, x.shape[3]!]);
  };
  const mask = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) {
    const p = i + S - T;
    mask[i * S + j] = j <= p && (window === 0 || j > p - window) ? 0 : -1e30;
  }
  const s = mk.add(mk.mul(mk.matmul(mk.transpose(q, [0, 2, 1, 3]), rep(k), { transB: true }), 1 / Math.sqrt(D)), mk.tensor(mask, [T, S])); // (B, Hq, T, S)
  const sinkCol = mk.mul(mk.reshape(sinks, [1, Hq, 1, 1]), mk.ones([B, Hq, T, 1])); // (B, Hq, T, 1)
  const p = mk.slice(mk.softmax(mk.concat([s, sinkCol], 3), -1), [0, 0, 0, 0], [-1, -1, -1, S]); // (B, Hq, T, S)
  return mk.transpose(mk.matmul(p, rep(v)), [0, 2, 1, 3]); // (B, T, Hq, Dv)
}

/** gpt_oss of other sizes: hidden 96, 3 layers, 6 heads over 2 kv heads, 16 experts, top-4, window 5 on layers 0 and 2. */
export const OTHER: ModelConfigInput = {
  ...fromHfConfig(raw()).config, hidden: 96, layers: 3, heads: 6, kvHeads: 2, headDim: 16, experts: 16, topK: 4, expertWidth: 24,
  slidingWindow: 5, slidingLayers: [0, 2], maxSeqLen: 64,
};

/** A model of OTHER with non-zero biases and sinks (zero at init), so every gpt_oss path changes the output. */
export function otherModel(): MoELM {
  const m = new MoELM(OTHER);
  const rng = new mk.Rng(11);
  mk.noGrad(() => {
    for (const [n, p] of m.parameters()) {
      if (/(_bias|\.bias|sinks)$/.test(n)) m.setTensor(n, mk.randn(p.shape, rng, 0.5));
      if (/experts\.(gate|up)_proj$/.test(n)) m.setTensor(n, mk.randn(p.shape, rng, 0.6)); // pre-activations beyond ±7 here and there
    }
  });
  return m;
}
export const SEQ = Array.from({ length: 12 }, (_, i) => (i * 37 + 5) % 320);

/** Loss and every gradient of otherModel() on `backend`. */
export function lossAndGrads(backend: Backend): { loss: number; grads: Map<string, number[]> } {
  mk.useBackend(backend);
  const m = otherModel();
  const loss = mk.tidy(() => {
    const l = m.loss(ids(SEQ), mk.tensor(Int32Array.from([...SEQ.slice(1), -100]), [1, SEQ.length], 'i32'));
    mk.backward(l.loss);
    return l.loss.item();
  });
  const grads = new Map(m.parameters().map(([n, p]) => [n, Array.from(p.grad!.dataSync())]));
  m.dispose();
  return { loss, grads };
}
