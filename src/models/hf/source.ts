// TensorSource: where a model's weights come from, by Hugging Face tensor name (a checkpoint, a dequantising view).

/** Where weights come from: a safetensors checkpoint (one file or shards), or anything with the same shape. */
export interface TensorSource {
  has(name: string): boolean;
  shape(name: string): readonly number[];
  readF32(name: string): Promise<Float32Array>;
  names(): Iterable<string>;
}
