// Every op on every device equals the js reference: random inputs at odd sizes (1, 3, 17, 129), empty groups.
import { describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { Op } from '../../src/tensor/ops.js';
import type { Backend } from '../../src/backend/backend.js';
import { CASES, type OpCase } from '../helpers/cases.js';
import { DEVICES, useDevice } from '../helpers/devices.js';
import { allocTyped } from '../../src/tensor/dtype.js';
import type { GradcheckInput } from '../../src/backend/gradcheck.js';
import { relErr } from '../helpers/compare.js';

const SIZES = [1, 3, 17, 129];
const TOL = 1e-5;

function put(backend: Backend, i: GradcheckInput): mk.Tensor {
  const dtype = i.dtype ?? 'f32';
  const data = allocTyped(dtype, i.data.length);
  for (let k = 0; k < i.data.length; k++) data[k] = i.data[k]!;
  return mk.fromTyped(data, i.shape, dtype, backend);
}


describe.each(DEVICES)('device $name', (device) => {
  const dev = useDevice(device);
  const reference = new mk.JsBackend();

  for (const op of Object.values(Op)) {
    it(`${op} equals js at sizes ${SIZES.join(', ')}`, (ctx) => {
      const backend = dev.backend(ctx);
      const worst: string[] = [];
      for (const n of SIZES) {
        const gen = CASES[op] as (r: mk.Rng, n: number) => OpCase[];
        for (const c of gen(new mk.Rng(31 + n), n)) {
          mk.tidy(() => {
            mk.useBackend(reference);
            const want = mk.run(op, c.inputs.map((i) => put(reference, i)), c.params as never).map((t) => t.dataSync());
            mk.useBackend(backend);
            const got = mk.run(op, c.inputs.map((i) => put(backend, i)), c.params as never).map((t) => t.dataSync());
            want.forEach((w, k) => {
              const e = relErr(got[k]!, w);
              if (!(e <= TOL)) worst.push(`${c.name} output ${k}: relative error ${e}`);
            });
          });
        }
      }
      expect(worst).toEqual([]);
    });
  }
});
