// Node: writes a MoELM as a GGUF file for llama.cpp (and what builds on it: Ollama, LM Studio, node-llama-cpp), with
// tensor names, metadata keys and the q/k row order of llama.cpp's own converter (convert_hf_to_gguf.py): Mixtral as
// its `llama` architecture with experts, Qwen3-MoE as `qwen3moe`, Qwen2-MoE (shared expert) as `qwen2moe`, OLMoE as `olmoe`. The model's Hugging Face tensors (the same ones
// `moekit export --format hf` writes) are renamed, the experts stacked, and the weights encoded as F32, F16, BF16, Q8_0
// or Q4_0. The tokenizer goes in as llama.cpp's `gpt2` (byte-level BPE) vocabulary; a model without one gets a
// placeholder vocabulary of its size, so it loads and token ids can be compared.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeGguf, type GgmlType, type GgufTensorIn, type GgufValue } from '../../io/gguf.js';
import type { MoELM } from '../moe-lm.js';
import type { HfArch } from '../hf/config.js';
import { exportProblem } from '../hf/export.js';
import { HfConfigError } from '../hf/config.js';
import { hfTensors, type HfTensor } from '../hf/weights.js';

/** HF architectures moekit writes as GGUF, and llama.cpp's name for each. */
export const GGUF_ARCHS: Readonly<Partial<Record<HfArch, string>>> = { mixtral: 'llama', qwen3_moe: 'qwen3moe', qwen2_moe: 'qwen2moe', olmoe: 'olmoe' };
export const GGUF_DTYPES = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'] as const;
export type GgufDtype = (typeof GGUF_DTYPES)[number];
/** general.file_type (llama_ftype) of each. */
const FILE_TYPE: Record<GgufDtype, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, BF16: 32 };

export interface ExportGgufOptions {
  dtype?: GgufDtype;
  /** a Hugging Face tokenizer.json (byte-level BPE); absent: a placeholder vocabulary */
  tokenizerFile?: string;
  /** general.name; default the file's base name */
  name?: string;
  dropBias?: boolean;
}

/** convert_hf_to_gguf's LlamaModel.permute: HF's rotate-half q/k rows to llama.cpp's interleaved RoPE pairs. */
function permuteRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const half = rows / heads / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) for (let i = 0; i < half; i++) for (let two = 0; two < 2; two++) {
    const src = h * 2 * half + two * half + i, dst = h * 2 * half + i * 2 + two;
    out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
  }
  return out;
}

/** The GGUF name of a non-expert HF tensor, or null for expert tensors (stacked separately). */
function ggufName(name: string): string | null {
  const fixed: Record<string, string> = { 'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight' };
  if (fixed[name]) return fixed[name]!;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (!m) throw new HfConfigError(`exportGguf: no GGUF name for tensor ${name}`);
  const rest: Record<string, string> = {
    'input_layernorm.weight': 'attn_norm.weight', 'post_attention_layernorm.weight': 'ffn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight', 'self_attn.k_proj.weight': 'attn_k.weight', 'self_attn.v_proj.weight': 'attn_v.weight',
    'self_attn.o_proj.weight': 'attn_output.weight', 'self_attn.q_norm.weight': 'attn_q_norm.weight', 'self_attn.k_norm.weight': 'attn_k_norm.weight',
    'block_sparse_moe.gate.weight': 'ffn_gate_inp.weight', 'mlp.gate.weight': 'ffn_gate_inp.weight',
    'self_attn.q_proj.bias': 'attn_q.bias', 'self_attn.k_proj.bias': 'attn_k.bias', 'self_attn.v_proj.bias': 'attn_v.bias', 'self_attn.o_proj.bias': 'attn_output.bias',
    'mlp.shared_expert.gate_proj.weight': 'ffn_gate_shexp.weight', 'mlp.shared_expert.up_proj.weight': 'ffn_up_shexp.weight',
    'mlp.shared_expert.down_proj.weight': 'ffn_down_shexp.weight', 'mlp.shared_expert_gate.weight': 'ffn_gate_inp_shexp.weight',
  };
  if (/\.experts\.\d+\./.test(m[2]!)) return null;
  const r = rest[m[2]!];
  if (!r) throw new HfConfigError(`exportGguf: no GGUF name for tensor ${name}`);
  return `blk.${m[1]}.${r}`;
}

/** The tensors under GGUF names, experts stacked to (E, out, in), q/k permuted for llama; each with its type. */
export function ggufTensors(model: MoELM, arch: HfArch, dtype: GgufDtype): GgufTensorIn[] {
  const cfg = model.cfg;
  const llama = GGUF_ARCHS[arch] === 'llama';
  const out: GgufTensorIn[] = [];
  const experts = new Map<string, { shape: number[]; parts: Float32Array[] }>(); // blk.l.ffn_{gate,up,down}_exps
  // block types need rows of 32k values; norms, the router and odd-width rows stay F32, as llama.cpp's converter keeps them
  const typeOf = (name: string, shape: readonly number[]): GgmlType => {
    if (shape.length < 2 || name.endsWith('ffn_gate_inp.weight') || name.endsWith('ffn_gate_inp_shexp.weight')) return 'F32';
    if ((dtype === 'Q8_0' || dtype === 'Q4_0') && shape.at(-1)! % 32 !== 0) return 'F32';
    return dtype;
  };
  for (const t of hfTensors(model, arch, 'legacy') as Iterable<HfTensor>) {
    const name = ggufName(t.name);
    if (name === null) {
      const m = /^model\.layers\.(\d+)\..*experts\.(\d+)\.(\w+)\.weight$/.exec(t.name)!;
      const which = ({ w1: 'gate', gate_proj: 'gate', w3: 'up', up_proj: 'up', w2: 'down', down_proj: 'down' } as Record<string, string>)[m[3]!];
      if (!which) throw new HfConfigError(`exportGguf: no GGUF name for tensor ${t.name}`);
      const key = `blk.${m[1]}.ffn_${which}_exps.weight`;
      const e = experts.get(key) ?? { shape: t.shape, parts: [] };
      e.parts[Number(m[2])] = t.data;
      experts.set(key, e);
      continue;
    }
    let data = t.data;
    if (llama && name.endsWith('attn_q.weight')) data = permuteRows(data, t.shape[0]!, t.shape[1]!, cfg.heads);
    if (llama && name.endsWith('attn_k.weight')) data = permuteRows(data, t.shape[0]!, t.shape[1]!, cfg.kvHeads);
    out.push({ name, shape: t.shape, type: typeOf(name, t.shape), data });
  }
  for (const [name, e] of experts) {
    if (e.parts.length !== cfg.experts || e.parts.some((p) => !p)) throw new HfConfigError(`exportGguf: ${name} has ${e.parts.filter(Boolean).length} of ${cfg.experts} experts`);
    const data = new Float32Array(e.parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of e.parts) { data.set(p, at); at += p.length; }
    const shape = [cfg.experts, ...e.shape];
    out.push({ name, shape, type: typeOf(name, shape), data });
  }
  return out;
}

/** llama.cpp's metadata for the architecture. */
function archMetadata(model: MoELM, arch: HfArch): Record<string, GgufValue> {
  const c = model.cfg, a = GGUF_ARCHS[arch]!;
  const md: Record<string, GgufValue> = {
    [`${a}.context_length`]: c.maxSeqLen, [`${a}.embedding_length`]: c.hidden, [`${a}.block_count`]: c.layers,
    [`${a}.feed_forward_length`]: c.expertWidth, [`${a}.attention.head_count`]: c.heads, [`${a}.attention.head_count_kv`]: c.kvHeads,
    [`${a}.attention.key_length`]: c.headDim, [`${a}.attention.value_length`]: c.headDim, [`${a}.rope.dimension_count`]: c.rotaryDim ?? c.headDim,
    [`${a}.rope.freq_base`]: { f32: c.ropeTheta }, [`${a}.attention.layer_norm_rms_epsilon`]: { f32: c.normEps },
    [`${a}.expert_count`]: c.experts, [`${a}.expert_used_count`]: c.topK, [`${a}.vocab_size`]: c.vocabSize,
  };
  if (a !== 'llama') md[`${a}.expert_feed_forward_length`] = c.expertWidth;
  if (a === 'qwen2moe' && c.sharedWidth) md[`${a}.expert_shared_feed_forward_length`] = c.sharedWidth;
  if (c.clipQkv !== undefined) md[`${a}.attention.clamp_kqv`] = { f32: c.clipQkv };
  return md;
}

/** tokenizer.ggml.* from a byte-level BPE tokenizer.json, or a placeholder vocabulary of V tokens. */
function tokenizerMetadata(V: number, file: string | undefined): Record<string, GgufValue> {
  if (!file) {
    return {
      'tokenizer.ggml.model': 'gpt2', 'tokenizer.ggml.pre': 'default',
      'tokenizer.ggml.tokens': Array.from({ length: V }, (_, i) => `<moekit_${i}>`), 'tokenizer.ggml.token_type': { i32s: new Array<number>(V).fill(1) },
      'tokenizer.ggml.merges': [], 'tokenizer.ggml.add_bos_token': false,
    };
  }
  const tj = JSON.parse(readFileSync(file, 'utf8')) as { model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] }; pre_tokenizer?: { type?: string }; added_tokens?: { id: number; content: string; special?: boolean }[] };
  if (tj.model?.type !== 'BPE' || !tj.model.vocab) throw new HfConfigError(`exportGguf: ${file} is a ${tj.model?.type ?? 'unknown'} tokenizer; GGUF export writes byte-level BPE (llama.cpp "gpt2") vocabularies`);
  const tokens = new Array<string>(V).fill('');
  const types = new Array<number>(V).fill(1);
  for (const [s, id] of Object.entries(tj.model.vocab)) if (id < V) tokens[id] = s;
  let eos: number | null = null;
  for (const t of tj.added_tokens ?? []) {
    if (t.id >= V) continue;
    tokens[t.id] = t.content;
    if (t.special) { types[t.id] = 3; eos ??= t.id; }
  }
  tokens.forEach((s, i) => { if (s === '') { tokens[i] = `<moekit_unused_${i}>`; types[i] = 5; } });
  const md: Record<string, GgufValue> = {
    'tokenizer.ggml.model': 'gpt2', 'tokenizer.ggml.pre': 'gpt-2', 'tokenizer.ggml.tokens': tokens, 'tokenizer.ggml.token_type': { i32s: types },
    'tokenizer.ggml.merges': (tj.model.merges ?? []).map((m) => (typeof m === 'string' ? m : m.join(' '))), 'tokenizer.ggml.add_bos_token': false,
  };
  if (eos !== null) Object.assign(md, { 'tokenizer.ggml.eos_token_id': eos, 'tokenizer.ggml.bos_token_id': eos });
  return md;
}

/** Writes `model` to `file` as GGUF for llama.cpp's architecture of `arch`; returns the bytes written. */
export async function exportGguf(model: MoELM, arch: HfArch, file: string, o: ExportGgufOptions = {}): Promise<number> {
  const dtype = o.dtype ?? 'F32';
  const a = GGUF_ARCHS[arch];
  if (!a) throw new HfConfigError(`exportGguf: ${arch} has no GGUF writer; GGUF export writes ${Object.keys(GGUF_ARCHS).join(', ')}`);
  const problem = exportProblem(model, arch, o);
  if (problem) throw new HfConfigError(`exportGguf: ${problem}`);
  if (a === 'olmoe' && model.cfg.kvHeads !== model.cfg.heads) {
    throw new HfConfigError(`exportGguf: llama.cpp's olmoe takes k_norm over the full hidden width, so it needs kvHeads = heads; this model has kvHeads ${model.cfg.kvHeads} and heads ${model.cfg.heads}`);
  }
  if (o.tokenizerFile && !existsSync(o.tokenizerFile)) throw new HfConfigError(`exportGguf: tokenizer ${o.tokenizerFile} does not exist`);
  const metadata: Record<string, GgufValue> = {
    'general.architecture': a, 'general.name': o.name ?? path.basename(file).replace(/\.gguf$/i, ''), 'general.file_type': FILE_TYPE[dtype],
    'general.quantization_version': 2,
    ...archMetadata(model, arch), ...tokenizerMetadata(model.cfg.vocabSize, o.tokenizerFile),
  };
  return writeGguf(file, metadata, ggufTensors(model, arch, dtype));
}
