// Browser page script: the webgpu backend through navigator.gpu (headless Chromium, SwiftShader) against js:
// hot ops, a small MoE model's logits and greedy generation, and two training steps.
import * as mk from '../../src/index.js';
import { relErr } from '../helpers/compare.js';

interface Report {
  adapter: string;
  diffs: Record<string, number>;
  sameTokens: boolean;
  error?: string;
}

function probes(): [string, () => mk.Tensor][] {
  const t = (shape: number[], seed: number): mk.Tensor => mk.randn(shape, new mk.Rng(seed));
  return [
    ['matmul 300x200x100', () => mk.matmul(t([300, 200], 1), t([200, 100], 2))],
    ['grouped_matmul', () => mk.groupedMatmul(t([256, 64], 3), t([4, 64, 96], 4), mk.tensor([0, 100, 100, 200, 256], [5], 'i32'))],
    ['attention', () => mk.attention(t([1, 64, 4, 32], 5), t([1, 64, 2, 32], 6), t([1, 64, 2, 32], 7))],
    ['softmax', () => mk.softmax(t([128, 1000], 8))],
    ['quant_matmul int4', () => {
      const q = mk.quantize(t([96, 128], 9), 'int4', 32);
      return mk.quantMatmul(t([5, 128], 10), q.data, q.scales, 'int4', 32);
    }],
    ['routeTopK + moeFfn', () => mk.noGrad(() => {
      const x = t([40, 32], 11);
      const r = mk.routeTopK(mk.matmul(x, t([8, 32], 12), { transB: true }), 2);
      return mk.moeFfn(x, r.ids, r.weights, { gate: t([8, 32, 48], 13), up: t([8, 32, 48], 14), down: t([8, 48, 32], 15) });
    })],
  ];
}

async function main(): Promise<Report> {
  const gpu = await mk.WebGpuBackend.create();
  const js = new mk.JsBackend();
  const diffs: Record<string, number> = {};
  for (const [name, build] of probes()) {
    mk.useBackend(js);
    const want = mk.tidy(() => build().dataSync());
    mk.useBackend(gpu);
    const out = build();
    diffs[name] = relErr(await out.data(), want);
    out.dispose();
  }
  // a small MoE language model: logits of a forward, greedy generation, and two training steps' losses
  const cfg = { ...mk.PRESETS.tiny, seed: 5 };
  const ids = [5, 9, 200, 17, 33, 4, 120, 7];
  mk.useBackend(js);
  const mj = new mk.MoELM(cfg);
  const wantLogits = mk.noGrad(() => mj.forward(mk.tensor(ids, [1, 8], 'i32'), { aux: false }).logits.dataSync());
  const wantGen = mk.generate(mj, ids, { maxNewTokens: 6 }).ids;
  mk.useBackend(gpu);
  const mg = new mk.MoELM(cfg);
  const logits = mk.noGrad(() => mg.forward(mk.tensor(ids, [1, 8], 'i32'), { aux: false }).logits);
  diffs['MoELM logits'] = relErr(await logits.data(), wantLogits);
  const gotGen = (await mk.generateAsync(mg, ids, { maxNewTokens: 6 })).ids;
  const lossAfterSteps = async (m: mk.MoELM): Promise<number> => {
    const opt = new mk.AdamW(m.parameters(), { weightDecay: 0.1 });
    let last = 0;
    for (let s = 0; s < 2; s++) {
      const l = mk.tidy(() => {
        const out = m.loss(mk.tensor(ids, [1, 8], 'i32'), mk.tensor([...ids.slice(1), -100], [1, 8], 'i32'));
        mk.backward(out.loss);
        return out.loss;
      });
      last = (await l.data())[0]!;
      l.dispose();
      await mk.clipGradNormAsync(m.parameters().map(([, p]) => p), 1);
      opt.update(1e-2);
      mk.zeroGrad(m.parameters().map(([, p]) => p));
    }
    return last;
  };
  mk.useBackend(js);
  const wantLoss = await lossAfterSteps(mj);
  mk.useBackend(gpu);
  const gotLoss = await lossAfterSteps(mg);
  diffs['loss after a training step'] = Math.abs(gotLoss - wantLoss) / Math.abs(wantLoss);
  const report = { adapter: gpu.adapterInfo, diffs, sameTokens: JSON.stringify(gotGen) === JSON.stringify(wantGen) };
  await gpu.dispose();
  return report;
}

const w = globalThis as unknown as { moekitReport?: Report };
main().then(
  (r) => (w.moekitReport = r),
  (e: unknown) => (w.moekitReport = { adapter: '', diffs: {}, sameTokens: false, error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) }),
);
