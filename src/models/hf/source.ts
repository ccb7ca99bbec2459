// TensorSource: where a model's weights come from, by Hugging Face tensor name (a checkpoint, a dequantising view).

/** Where weights come from: a safetensors checkpoint (one file or shards), or anything with the same shape. */
export interface TensorSource {
  has(name: string): boolean;
  shape(name: string): readonly number[];
  readF32(name: string): Promise<Float32Array>;
  names(): Iterable<string>;
  /** 'bf16' / 'f16' when the tensor is stored in that dtype (readable as is with readHalf), else null */
  halfDtype?(name: string): 'bf16' | 'f16' | null;
  /** the stored bf16/f16 bits of a tensor whose halfDtype is not null (no widening) */
  readHalf?(name: string): Promise<Uint16Array>;
}

/** StDType of safetensors -> the half dtype moekit keeps, or null. */
export const halfOfStDType = (d: string): 'bf16' | 'f16' | null => (d === 'BF16' ? 'bf16' : d === 'F16' ? 'f16' : null);

/** Bytes as read from a little-endian file -> their u16 words (a view when aligned on a little-endian host). */
export function u16Words(bytes: Uint8Array): Uint16Array {
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] === 1 && bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
  const out = new Uint16Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = bytes[2 * i]! | (bytes[2 * i + 1]! << 8);
  return out;
}
