// Checkpoints round-trip weights, optimizer moments and state; a half-written checkpoint never replaces the last good
// one, and a failed write leaves no temporary directory behind.
import { readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { AdamW } from '../../src/train/optim.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.js';
import { tempDir } from '../helpers/tmp.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

function setup(seed: number): { params: [string, mk.Tensor][]; opt: AdamW } {
  const rng = new mk.Rng(seed);
  const params: [string, mk.Tensor][] = [['w', mk.variable(mk.randn([3, 4], rng))], ['b', mk.variable(mk.randn([4], rng))]];
  return { params, opt: new AdamW(params) };
}

function trainStep(params: [string, mk.Tensor][], opt: AdamW): void {
  mk.zeroGrad(params.map(([, p]) => p));
  mk.tidy(() => mk.backward(mk.sum(mk.mul(mk.add(params[0]![1], params[1]![1]), params[0]![1]))));
  opt.update(0.01);
}

describe('checkpoints', () => {
  it('save then load restores weights, moments and step exactly; training continues identically', async () => {
    const dir = tempDir('moekit-ckpt-');
    const a = setup(1);
    trainStep(a.params, a.opt);
    trainStep(a.params, a.opt);
    await saveCheckpoint(dir, a.params, a.opt, { step: 2, rng: [1, 2, 3] });
    const b = setup(99);
    const ckpt = await latestCheckpoint(dir);
    expect(ckpt).toBe(path.join(dir, 'step-2'));
    const state = await loadCheckpoint(ckpt!, b.params, b.opt);
    expect(state).toEqual({ step: 2, rng: [1, 2, 3] });
    expect(b.opt.step).toBe(2);
    trainStep(a.params, a.opt);
    trainStep(b.params, b.opt);
    for (let i = 0; i < 2; i++) expect(b.params[i]![1].toArray()).toEqual(a.params[i]![1].toArray());
  });

  it('keeps the last good checkpoint when a later one is left half-written, and prunes old ones', async () => {
    const dir = tempDir('moekit-ckpt-');
    const a = setup(2);
    for (const step of [1, 2, 3]) await saveCheckpoint(dir, a.params, a.opt, { step }, 2);
    expect(readdirSync(dir).filter((n) => n.startsWith('step-')).sort()).toEqual(['step-2', 'step-3']);
    // a crash in the middle of writing step 4: a temp dir with a truncated file
    mkdirSync(path.join(dir, '.step-4.123.tmp'));
    writeFileSync(path.join(dir, '.step-4.123.tmp', 'model.safetensors'), new Uint8Array(3));
    expect(await latestCheckpoint(dir)).toBe(path.join(dir, 'step-3'));
    const b = setup(3);
    expect((await loadCheckpoint((await latestCheckpoint(dir))!, b.params, b.opt)).step).toBe(3);
  });

  it('a shape mismatch names the tensor and both shapes', async () => {
    const dir = tempDir('moekit-ckpt-');
    const a = setup(4);
    await saveCheckpoint(dir, a.params, null, { step: 1 });
    const wrong: [string, mk.Tensor][] = [['w', mk.zeros([4, 3])]];
    await expect(loadCheckpoint(path.join(dir, 'step-1'), wrong, null)).rejects.toThrow('tensor "w" is F32 [3, 4], expected F32 [4, 3]');
  });

  it('a write that fails midway removes its temporary directory and names the checkpoint and the cause', async () => {
    const dir = tempDir('moekit-ckpt-');
    const a = setup(5);
    await saveCheckpoint(dir, a.params, a.opt, { step: 1 });
    // a non-f32 tensor fails after the temp directory was created, as ENOSPC would
    const bad: [string, mk.Tensor][] = [...a.params, ['ids', mk.tensor(new Int32Array([1, 2]), [2], 'i32')]];
    await expect(saveCheckpoint(dir, bad, a.opt, { step: 2 })).rejects.toThrow(`checkpoint: writing ${path.join(dir, 'step-2')} failed (checkpoint: only f32 parameters are saved`);
    expect(readdirSync(dir).sort()).toEqual(['latest.json', 'step-1']);
    expect(await latestCheckpoint(dir)).toBe(path.join(dir, 'step-1'));
  });
});
