// Node: writes a MoELM as a Hugging Face model directory (config.json + model.safetensors, sharded with
// model.safetensors.index.json when large) in an architecture's layout, loadable by transformers, vLLM and SGLang.
import { copyFileSync, existsSync } from 'node:fs';
import { checkWritableDir } from '../../io/outputs.js';
import path from 'node:path';
import { writeFileAtomic, writeSafetensors, type StTensorIn } from '../../io/safetensors.js';
import { f32ToBf16, f32ToF16 } from '../../tensor/dtype.js';
import type { MoELM } from '../moe-lm.js';
import { HfConfigError, toHfConfig, type HfArch } from './config.js';
import { archHoldsSelectionBias, archMismatches, selectionBiases } from './fit.js';
import { hfConfigJson } from './json.js';
import { hfTensors, type ExpertLayout, type HfTensor } from './weights.js';

export interface ExportHfOptions {
  /** expert tensors per expert (what save_pretrained writes; default) or fused transformers-5 tensors */
  layout?: ExpertLayout;
  /** element type on disk; default F32 */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** the original config.json, whose other keys (token ids, ...) are kept */
  baseConfig?: Record<string, unknown>;
  /** copy tokenizer.json, tokenizer_config.json, generation_config.json (and special_tokens_map.json) from here */
  copyFrom?: string;
  /** largest shard in bytes; default 2 GiB */
  maxShardBytes?: number;
  /** export a model that routes with a selection bias to an architecture that cannot hold one, without it (its
   *  routing changes: `selectionBiasEffect` measures how much); default false = refuse */
  dropBias?: boolean;
}

/** Why `model` cannot be written as `arch` faithfully, or null: features the layout lacks, or a bias it would drop. */
export function exportProblem(model: MoELM, arch: HfArch, o: { dropBias?: boolean } = {}): string | null {
  const mismatch = archMismatches(model.cfg, arch);
  if (mismatch.length > 0) return `the model does not fit ${arch}: ${mismatch.join('; ')}`;
  const { maxAbs } = selectionBiases(model);
  if (maxAbs > 0 && !archHoldsSelectionBias(arch) && !o.dropBias) {
    return `the model routes with a selection bias (aux-loss-free balancing, max |bias| ${maxAbs.toPrecision(3)}) that ${arch} cannot hold; exporting without it changes which experts tokens go to (dropBias: true / --drop-bias exports it anyway)`;
  }
  return null;
}

function encode(t: HfTensor, dtype: 'F32' | 'F16' | 'BF16'): StTensorIn {
  if (dtype === 'F32') return { name: t.name, dtype, shape: t.shape, data: t.data };
  const out = new Uint16Array(t.data.length);
  const f = dtype === 'F16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < out.length; i++) out[i] = f(t.data[i]!);
  return { name: t.name, dtype, shape: t.shape, data: out };
}

/** Writes `model` to `outDir` as a Hugging Face `arch` checkpoint; returns the files written. */
export async function exportHf(model: MoELM, arch: HfArch, outDir: string, o: ExportHfOptions = {}): Promise<string[]> {
  const dtype = o.dtype ?? 'F32';
  const maxShard = o.maxShardBytes ?? 2 ** 31;
  const problem = exportProblem(model, arch, o);
  if (problem) throw new HfConfigError(`exportHf: ${problem}`);
  const config = toHfConfig(model.cfg, arch, o.baseConfig);
  config.dtype = dtype === 'F32' ? 'float32' : dtype === 'F16' ? 'float16' : 'bfloat16';
  checkWritableDir(outDir, 'exportHf: output directory'); // before encoding anything: read-only, full, not a directory
  const written: string[] = [];
  // group tensors into shards in order, each at most maxShard bytes (a larger single tensor gets its own shard)
  const shards: StTensorIn[][] = [[]];
  let bytes = 0;
  for (const t of hfTensors(model, arch, o.layout ?? 'legacy')) {
    const e = encode(t, dtype);
    if (bytes > 0 && bytes + e.data.byteLength > maxShard) {
      shards.push([]);
      bytes = 0;
    }
    shards.at(-1)!.push(e);
    bytes += e.data.byteLength;
  }
  if (shards.length === 1) {
    const f = path.join(outDir, 'model.safetensors');
    await writeSafetensors(f, shards[0]!, { format: 'pt' });
    written.push(f);
  } else {
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let i = 0; i < shards.length; i++) {
      const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      await writeSafetensors(path.join(outDir, name), shards[i]!, { format: 'pt' });
      written.push(path.join(outDir, name));
      for (const t of shards[i]!) {
        weightMap[t.name] = name;
        total += t.data.byteLength;
      }
    }
    const index = path.join(outDir, 'model.safetensors.index.json');
    await writeFileAtomic(index, `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
    written.push(index);
  }
  const cfgFile = path.join(outDir, 'config.json');
  await writeFileAtomic(cfgFile, hfConfigJson(config));
  written.push(cfgFile);
  if (o.copyFrom && path.resolve(o.copyFrom) !== path.resolve(outDir)) {
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json']) {
      const src = path.join(o.copyFrom, f);
      if (existsSync(src)) {
        copyFileSync(src, path.join(outDir, f));
        written.push(path.join(outDir, f));
      }
    }
  }
  return written;
}
