// The engine alone knows no backend; src/backend/registry.ts registers js, wasm and webgpu by name.
import { afterAll, describe, expect, it } from 'vitest';
import { ENGINE, getBackend, setBackend } from '../../src/tensor/engine.js';

describe('backend registry', () => {
  const saved = process.env.MOEKIT_BACKEND;
  afterAll(async () => {
    if (saved === undefined) delete process.env.MOEKIT_BACKEND;
    else process.env.MOEKIT_BACKEND = saved;
  });

  it('without it, setBackend by name says what to import', async () => {
    expect(ENGINE.factories.size).toBe(0);
    await expect(setBackend('js')).rejects.toThrow(`setBackend: unknown backend "js": no backend is registered; import 'moekit' (or src/backend/registry.js) first`);
  });

  it('loading it registers js, wasm and webgpu; MOEKIT_BACKEND=js makes js on the first op without ready()', async () => {
    const registry = await import('../../src/backend/registry.js');
    expect([...ENGINE.factories.keys()]).toEqual(['js', 'wasm', 'webgpu']);
    expect(registry.setBackend).toBe(setBackend);
    expect((await setBackend('js')).name).toBe('js');
    const wasm = await setBackend('wasm');
    expect(wasm.name).toBe('wasm');
    await wasm.dispose();
    process.env.MOEKIT_BACKEND = 'js';
    ENGINE.backend = null;
    expect(getBackend().name).toBe('js');
    await expect(setBackend('nope')).rejects.toThrow('setBackend: unknown backend "nope"; known: js, wasm, webgpu');
  });
});
