// moekit export --format gguf: the llama.cpp file of a model (see src/models/gguf/export.ts), with the checks of its
// --out and --arch and the report.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fsErrorWords } from '../io/outputs.js';
import type { LoadedModel } from '../models/dir.js';
import type { HfArch } from '../models/hf/config.js';
import { GGUF_ARCHS, exportGguf, type GgufDtype } from '../models/gguf/export.js';
import type { MoELM } from '../models/moe-lm.js';

/** --arch for GGUF: a Hugging Face name moekit writes as GGUF, or llama.cpp's name for it. */
export function ggufArchOption(a: string): string {
  const byLlama = Object.entries(GGUF_ARCHS).find(([, g]) => g === a);
  if (byLlama) return byLlama[0];
  if (a in GGUF_ARCHS) return a;
  throw new Error(`--arch for --format gguf must be one of ${Object.entries(GGUF_ARCHS).map(([h, g]) => `${h} (${g})`).join(', ')}, got "${a}"`);
}

/** --out must name a .gguf file in an existing directory, not a directory. */
export function checkGgufOut(out: string): void {
  if (!out.toLowerCase().endsWith('.gguf')) throw new Error(`--out ${out}: expected a file name ending in .gguf for --format gguf`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new Error(`--out ${out} is a directory; expected the .gguf file to write`);
  const dir = path.dirname(path.resolve(out));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--out ${out}: the directory ${dir} does not exist`);
}

export async function writeGgufExport(m: LoadedModel, model: MoELM, arch: HfArch, out: string, dtype: GgufDtype, o: { dropBias: boolean; json: boolean; biasDropped: boolean }): Promise<void> {
  const tok = m.assetsDir ? path.join(m.assetsDir, 'tokenizer.json') : undefined;
  const tokenizerFile = tok && existsSync(tok) ? tok : undefined;
  let bytes: number;
  try {
    bytes = await exportGguf(model, arch, out, { dtype, dropBias: o.dropBias, ...(tokenizerFile ? { tokenizerFile } : {}) });
  } catch (e) {
    if (!(e as NodeJS.ErrnoException).code) throw e;
    throw new Error(`export: --out ${out}: could not write the file (${fsErrorWords(e)})`);
  }
  const vocab = tokenizerFile ? 'its tokenizer' : `a placeholder vocabulary of ${model.cfg.vocabSize} tokens (the model has no tokenizer.json)`;
  if (o.json) console.log(JSON.stringify({ out, format: 'gguf', arch, gguf_arch: GGUF_ARCHS[arch], dtype, bytes, tokenizer: tokenizerFile !== undefined, materialised: model !== m.model, bias_dropped: o.biasDropped }));
  else console.log(`wrote ${out}: GGUF ${GGUF_ARCHS[arch]} (${arch}), ${dtype}, ${(bytes / 2 ** 20).toFixed(1)} MiB, with ${vocab}`);
}
