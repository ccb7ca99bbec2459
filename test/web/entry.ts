// Browser page script: runs hot ops on the wasm backend (Web Workers, shared memory) and on js, reports diffs.
import * as mk from '../../src/index.js';
import { WasmBackend } from '../../src/backend/wasm/index.js';
import { relErr } from '../helpers/compare.js';

interface Report {
  crossOriginIsolated: boolean;
  threads: number;
  relaxedSimd: boolean;
  diffs: Record<string, number>;
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
  ];
}

async function main(): Promise<Report> {
  const wasm = await WasmBackend.create({ threads: 2 });
  const js = new mk.JsBackend();
  const diffs: Record<string, number> = {};
  for (const [name, build] of probes()) {
    mk.useBackend(js);
    const want = mk.tidy(() => build().dataSync());
    mk.useBackend(wasm);
    const got = mk.tidy(() => build().dataSync());
    diffs[name] = relErr(got, want);
  }
  const r = { crossOriginIsolated: globalThis.crossOriginIsolated === true, threads: wasm.threads, relaxedSimd: wasm.relaxedSimd, diffs };
  await wasm.dispose();
  return r;
}

const w = globalThis as unknown as { moekitReport?: Report };
main().then(
  (r) => (w.moekitReport = r),
  (e: unknown) => (w.moekitReport = { crossOriginIsolated: false, threads: 0, relaxedSimd: false, diffs: {}, error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e) }),
);
