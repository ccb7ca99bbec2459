// TensorSource: where a model's weights come from, by Hugging Face tensor name (a checkpoint, a dequantising view).
import type { BlockFormat } from '../../tensor/ops.js';

/**
 * A weight as a checkpoint stores it in a block format, rows in stored order (..., N, K): u8 codes (..., N, K/2) for
 * MXFP4 or (..., N, K) for FP8 E4M3, and the scales of each row's groups of `groupSize` values (..., N, K/groupSize):
 * E8M0 bytes (MXFP4, groupSize 32) or f32 (FP8; a tile's factor repeated on each of its rows).
 */
export interface PackedData {
  format: BlockFormat;
  /** logical (..., N, K) in stored order */
  shape: readonly number[];
  codes: Uint8Array;
  scales: Uint8Array | Float32Array;
  groupSize: number;
}

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
  /** the block format a tensor can be kept in as stored (readPacked), else null (it is read dequantised) */
  packedFormat?(name: string): BlockFormat | null;
  /** a tensor whose packedFormat is not null, as stored (rows in stored order, which for MXFP4 experts presented as
   *  (E, in, out) is (E, out, in)) */
  readPacked?(name: string): Promise<PackedData>;
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
