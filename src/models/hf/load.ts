// Node: a Hugging Face model directory (config.json, model.safetensors or sharded model-*.safetensors with
// model.safetensors.index.json, tokenizer.json, generation_config.json) -> a MoELM with its weights.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SafetensorsError, SafetensorsFile, type StTensorInfo } from '../../io/safetensors.js';
import { loadTokenizer, type LoadedTokenizer } from '../../io/tokenizer.js';
import { MoELM } from '../moe-lm.js';
import { withoutInit } from '../../nn/module.js';
import { HfConfigError, fromHfConfig, hfSizeNames, tokenIdList, type HfModelConfig } from './config.js';
import { allocationProblem } from '../sizes.js';
import { loadHfWeights, type LoadWeightsOptions, type TensorSource } from './weights.js';
import { halfOfStDType, u16Words } from './source.js';
import { dequantSource } from './quant.js';

/** The tensors of a checkpoint directory, lazily: headers are parsed on open, tensors read by byte range on demand. */
export class Checkpoint implements TensorSource {
  private constructor(
    readonly dir: string,
    private readonly files: readonly SafetensorsFile[],
    private readonly where: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  /** Opens `model.safetensors`, or the shards listed by `model.safetensors.index.json`, in `dir` (or one .safetensors file). */
  static async open(dirOrFile: string): Promise<Checkpoint> {
    if (!existsSync(dirOrFile)) throw new SafetensorsError(`checkpoint: ${dirOrFile} does not exist`);
    if (dirOrFile.endsWith('.safetensors')) {
      const f = await SafetensorsFile.open(dirOrFile);
      return new Checkpoint(path.dirname(dirOrFile), [f], new Map([...f.tensors.keys()].map((n) => [n, f])));
    }
    const index = path.join(dirOrFile, 'model.safetensors.index.json');
    const single = path.join(dirOrFile, 'model.safetensors');
    if (existsSync(index)) {
      let map: Record<string, unknown>;
      try {
        const j = JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: unknown };
        if (!j.weight_map || typeof j.weight_map !== 'object' || Array.isArray(j.weight_map)) throw new Error('"weight_map" is missing or not an object');
        map = j.weight_map as Record<string, unknown>;
      } catch (e) {
        throw new SafetensorsError(`checkpoint: ${index}: ${(e as Error).message} (expected {"weight_map": {tensor: file}})`);
      }
      const shardNames = [...new Set(Object.values(map))];
      for (const s of shardNames) {
        if (typeof s !== 'string' || s.includes('/') || s.includes('\\') || s === '..') throw new SafetensorsError(`checkpoint: ${index}: shard ${JSON.stringify(s)} must be a file name in ${dirOrFile}`);
      }
      const files: SafetensorsFile[] = [];
      try {
        for (const s of shardNames as string[]) files.push(await SafetensorsFile.open(path.join(dirOrFile, s)));
      } catch (e) {
        await Promise.all(files.map((f) => f.close()));
        throw e;
      }
      const byName = new Map(files.map((f, i) => [shardNames[i] as string, f]));
      const where = new Map<string, SafetensorsFile>();
      for (const [t, s] of Object.entries(map)) {
        const f = byName.get(s as string)!;
        if (!f.tensors.has(t)) {
          await Promise.all(files.map((x) => x.close()));
          throw new SafetensorsError(`checkpoint: ${index} puts "${t}" in ${String(s)}, which has no such tensor`);
        }
        where.set(t, f);
      }
      return new Checkpoint(dirOrFile, files, where);
    }
    if (existsSync(single)) return Checkpoint.open(single);
    throw new SafetensorsError(`checkpoint: ${dirOrFile} has neither model.safetensors nor model.safetensors.index.json`);
  }

  info(name: string): StTensorInfo {
    const f = this.where.get(name);
    if (!f) throw new SafetensorsError(`checkpoint: ${this.dir} has no tensor "${name}"`);
    return f.info(name);
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  /** the path of the file holding `name` */
  fileOf(name: string): string {
    const f = this.where.get(name);
    if (!f) throw new SafetensorsError(`checkpoint: ${this.dir} has no tensor "${name}"`);
    return f.path;
  }
  shape(name: string): readonly number[] {
    return this.info(name).shape;
  }
  names(): Iterable<string> {
    return this.where.keys();
  }
  readF32(name: string): Promise<Float32Array> {
    if (!this.where.has(name)) throw new SafetensorsError(`checkpoint: ${this.dir} has no tensor "${name}"`);
    return this.where.get(name)!.readF32(name);
  }
  halfDtype(name: string): 'bf16' | 'f16' | null {
    return halfOfStDType(this.info(name).dtype);
  }
  async readHalf(name: string): Promise<Uint16Array> {
    const d = this.info(name).dtype;
    if (!halfOfStDType(d)) throw new SafetensorsError(`checkpoint: ${this.fileOf(name)}: tensor "${name}" is ${d}, expected BF16 or F16`);
    return u16Words(await this.readBytes(name));
  }
  readBytes(name: string): Promise<Uint8Array> {
    if (!this.where.has(name)) throw new SafetensorsError(`checkpoint: ${this.dir} has no tensor "${name}"`);
    return this.where.get(name)!.readBytes(name);
  }
  /** total bytes of tensor data */
  get dataBytes(): number {
    let n = 0;
    for (const name of this.where.keys()) {
      const t = this.info(name);
      n += t.end - t.begin;
    }
    return n;
  }
  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

/** A loaded Hugging Face checkpoint. */
export interface HfModel extends HfModelConfig {
  dir: string;
  model: MoELM;
  /** tokenizer.json of the directory, when present */
  tokenizer: LoadedTokenizer | null;
  /** checkpoint tensors moekit did not use */
  unused: string[];
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `is not valid JSON (${(e as Error).message})`}`);
  }
}

/** Reads and understands `dir/config.json` (and generation_config.json's eos ids, when present). */
export function readHfConfig(dir: string): HfModelConfig {
  const file = path.join(dir, 'config.json');
  if (!existsSync(file)) throw new Error(`${dir}: no config.json (expected a Hugging Face model directory)`);
  const hf = fromHfConfig(readJson(file), file);
  const gen = path.join(dir, 'generation_config.json');
  if (existsSync(gen)) {
    const g = readJson(gen) as Record<string, unknown>;
    const eos = tokenIdList(g.eos_token_id);
    for (const id of eos) if (!hf.eosTokenIds.includes(id)) hf.eosTokenIds.push(id);
    if (hf.bosTokenId === null && Number.isSafeInteger(g.bos_token_id)) hf.bosTokenId = g.bos_token_id as number;
  }
  return hf;
}

/** Loads a Hugging Face MoE model directory (any of HF_ARCHS or their aliases, e.g. Mixtral, DeepSeek-V3) into a MoELM.
 *  BF16/F16 Linear and routed-expert weights keep their dtype unless `loadDtype: 'f32'` (see LoadWeightsOptions). */
export async function loadHfModel(dir: string, opts: LoadWeightsOptions = {}): Promise<HfModel> {
  const hf = readHfConfig(dir);
  const big = allocationProblem(hf.config, hfSizeNames(hf.raw, hf.arch));
  if (big) throw new HfConfigError(`${path.join(dir, 'config.json')}: ${big}`);
  const model = withoutInit(() => new MoELM(hf.config));
  const ck = await Checkpoint.open(dir);
  let unused: string[];
  try {
    // quantised tensors (MXFP4 blocks + scales, FP8 + block scale_inv) are dequantised as they are read
    ({ unused } = await loadHfWeights(model, hf.arch, dequantSource(ck, hf.quantization, hf.arch), opts));
  } catch (e) {
    model.dispose();
    throw new Error(`${dir}: ${(e as Error).message}`);
  } finally {
    await ck.close();
  }
  const tokFile = path.join(dir, 'tokenizer.json');
  const tokenizer = existsSync(tokFile) ? loadTokenizer(tokFile) : null;
  return { ...hf, dir, model, tokenizer, unused };
}
