// Damages one value of a tensor in a safetensors file in place (tests of non-finite weight detection).
import { closeSync, openSync, writeSync } from 'node:fs';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { f32ToF16 } from '../../src/tensor/dtype.js';

/** Overwrites element `index` of tensor `name` (F32, F16 or BF16) in a safetensors file with `value` (NaN by default). */
export async function poke(file: string, name: string, index: number, value = Number.NaN): Promise<void> {
  const f = await SafetensorsFile.open(file);
  const t = f.info(name);
  await f.close();
  const f32 = new Uint32Array(Float32Array.of(value).buffer)[0]!;
  let bytes: Uint8Array;
  if (t.dtype === 'F32') bytes = new Uint8Array(Uint32Array.of(f32).buffer);
  else if (t.dtype === 'BF16') bytes = new Uint8Array(Uint16Array.of(f32 >>> 16).buffer);
  else if (t.dtype === 'F16') bytes = new Uint8Array(Uint16Array.of(f32ToF16(value)).buffer);
  else throw new Error(`poke: tensor "${name}" is ${t.dtype}, expected F32, F16 or BF16`);
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, t.begin + index * bytes.length);
  } finally {
    closeSync(fd);
  }
}
