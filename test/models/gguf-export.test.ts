// GGUF export: the tensor names, shapes and metadata keys of llama.cpp's converter (Mixtral as `llama` with its q/k rows
// permuted, Qwen3-MoE, Qwen2-MoE and OLMoE as `qwen3moe`, `qwen2moe`, `olmoe`), the tokenizer as a gpt2 vocabulary; and, where the llama.cpp peer is installed
// (npm run peers:install), the files run in llama.cpp: greedy ids equal moekit's / transformers', next-token
// log-probabilities within 1e-3 (F32). Without the peer those cases are skipped, and the reason is printed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { readGgufHeader } from '../../src/io/gguf.js';
import { loadModelDir, materialize } from '../../src/models/dir.js';
import { exportGguf, ggufTensors } from '../../src/models/gguf/export.js';
import { generate } from '../../src/serve/generate.js';
import { fixture } from '../helpers/fixtures.js';

const dir = mkdtempSync(path.join(tmpdir(), 'moekit-gguf-export-'));
const TRAINED = path.resolve('test/fixtures/legacy-model');
const MIXTRAL = path.dirname(fixture('hf/mixtral/config.json'));
const PEER = path.resolve('bench/peers/node_modules/node-llama-cpp');
const peerMissing = existsSync(PEER) ? null : `the llama.cpp peer is not installed (${PEER}); run npm run peers:install to compare GGUF files in llama.cpp`;

beforeAll(async () => {
  await mk.setBackend('wasm');
  if (peerMissing) console.log(`gguf export: skipping the llama.cpp cases: ${peerMissing}`);
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await mk.setBackend('js');
});

/** llama.cpp on a GGUF file: greedy continuation and next-token probabilities (bench/peers/llama-eval.mjs). */
function llamaCpp(file: string, ids: number[], n: number): { greedy: number[]; probs: [number, number][] } {
  const r = spawnSync(process.execPath, ['bench/peers/llama-eval.mjs', file, ids.join(','), String(n)], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`llama-eval failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { greedy: number[]; probs: [number, number][] };
}

/** max |log p_llama.cpp − log p_moekit| over llama.cpp's 50 most probable next tokens. */
const topDiff = (probs: [number, number][], lp: Float64Array): number => Math.max(...probs.slice(0, 50).map(([id, p]) => Math.abs(Math.log(p) - lp[id]!)));

/** moekit's next-token log-probabilities after `ids`. */
function logProbs(m: mk.MoELM, ids: number[]): Float64Array {
  const V = m.cfg.vocabSize;
  const l = Float64Array.from(mk.noGrad(() => mk.tidy(() => m.forward(mk.tensor(Int32Array.from(ids), [1, ids.length], 'i32'), { aux: false }).logits.dataSync().slice((ids.length - 1) * V))));
  const mx = Math.max(...l);
  const lse = mx + Math.log(l.reduce((a, v) => a + Math.exp(v - mx), 0));
  return Float64Array.from(l, (v) => v - lse);
}

describe('GGUF export', () => {
  it('a trained moekit model (clustered experts materialised) as llama: converter names and shapes, q/k rows permuted, metadata and vocabulary', async () => {
    const m = { model: materialize((await loadModelDir(TRAINED)).model) }; // its clustered experts as plain experts
    const file = path.join(dir, 'trained.gguf');
    await exportGguf(m.model, 'mixtral', file, { tokenizerFile: path.join(TRAINED, 'tokenizer.json'), dropBias: true });
    const h = readGgufHeader(file);
    const c = m.model.cfg;
    const names = h.tensors.map((t) => t.name);
    expect(names).toContain('token_embd.weight');
    expect(names).toContain('output_norm.weight');
    for (const n of ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate_inp', 'ffn_gate_exps', 'ffn_up_exps', 'ffn_down_exps']) {
      expect(names.filter((x) => x.endsWith(`.${n}.weight`))).toHaveLength(c.layers);
    }
    const shape = (n: string): number[] => h.tensors.find((t) => t.name === n)!.shape;
    expect(shape('blk.0.ffn_gate_exps.weight')).toEqual([c.experts, c.expertWidth, c.hidden]);
    expect(shape('blk.0.ffn_down_exps.weight')).toEqual([c.experts, c.hidden, c.expertWidth]);
    expect(shape('blk.0.ffn_gate_inp.weight')).toEqual([c.experts, c.hidden]);
    expect(h.metadata).toMatchObject({
      'general.architecture': 'llama', 'llama.block_count': c.layers, 'llama.expert_count': c.experts, 'llama.expert_used_count': c.topK,
      'llama.attention.head_count': c.heads, 'llama.attention.head_count_kv': c.kvHeads, 'tokenizer.ggml.model': 'gpt2', 'tokenizer.ggml.pre': 'gpt-2',
    });
    const tj = JSON.parse(readFileSync(path.join(TRAINED, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number>; merges: unknown[] } };
    const tokens = h.metadata['tokenizer.ggml.tokens'] as string[];
    expect(tokens).toHaveLength(c.vocabSize);
    for (const [s, id] of Object.entries(tj.model.vocab)) expect(tokens[id]).toBe(s);
    expect(h.metadata['tokenizer.ggml.merges']).toHaveLength(tj.model.merges.length);
    // q rows: head h's rotate-half pairs (i, i + D/2) become neighbours (2i, 2i + 1), as llama.cpp's RoPE reads them
    const hf = m.model.layers[0]!.selfAttn as mk.Attention;
    const wq = hf.qProj.weight.dataSync();
    const q = ggufTensors(m.model, 'mixtral', 'F32').find((t) => t.name === 'blk.0.attn_q.weight')!.data;
    const D = c.headDim, H = c.hidden;
    for (const [head, i] of [[0, 0], [1, 3], [c.heads - 1, D / 2 - 1]] as const) {
      for (const two of [0, 1]) {
        const src = head * D + two * (D / 2) + i, dst = head * D + 2 * i + two;
        expect(Array.from(q.subarray(dst * H, dst * H + H))).toEqual(Array.from(wq.subarray(src * H, src * H + H)));
      }
    }
  });

  it('refuses architectures it does not write and models that do not fit', async () => {
    const m = await loadModelDir(TRAINED);
    await expect(exportGguf(m.model, 'gpt_oss', path.join(dir, 'x.gguf'))).rejects.toThrow('exportGguf: gpt_oss has no GGUF writer; GGUF export writes mixtral, qwen3_moe, qwen2_moe, olmoe');
    await expect(exportGguf(m.model, 'qwen3_moe', path.join(dir, 'x.gguf'))).rejects.toThrow(/exportGguf: the model does not fit qwen3_moe/);
    const plain = materialize(m.model);
    await expect(exportGguf(plain, 'mixtral', path.join(dir, 'x.gguf'))).rejects.toThrow(/routes with a selection bias .* that mixtral cannot hold/);
  });

  it('in llama.cpp: the trained model (F32) gives moekit\'s greedy ids and log-probabilities within 1e-3', async (ctx) => {
    if (peerMissing) return ctx.skip(peerMissing);
    const m = { model: materialize((await loadModelDir(TRAINED)).model) };
    // Mixtral holds no selection bias: the file is the model without it, which moekit runs with its biases at zero
    for (const [, b] of m.model.selectionBiasBuffers()) mk.assign(b, mk.zeros([...b.shape]));
    const ids = [5, 17, 42, 99, 7, 200, 11, 64];
    const want = generate(m.model, ids, { maxNewTokens: 12 }).newIds;
    const file = path.join(dir, 'trained.gguf');
    await exportGguf(m.model, 'mixtral', file, { tokenizerFile: path.join(TRAINED, 'tokenizer.json'), dropBias: true });
    const got = llamaCpp(file, ids, 12);
    const diff = topDiff(got.probs, logProbs(m.model, ids));
    console.log(`llama.cpp, trained model as llama F32: top-50 next-token log-prob max |diff| ${diff.toExponential(2)}`);
    expect(got.greedy).toEqual(want);
    expect(diff).toBeLessThan(1e-3);
  }, 180_000);

  it('in llama.cpp: the Mixtral fixture as llama gives transformers\' greedy ids in F32; Q8_0 and Q4_0 are reported', async (ctx) => {
    if (peerMissing) return ctx.skip(peerMissing);
    const m = await loadModelDir(MIXTRAL);
    const ref = JSON.parse(readFileSync(path.join(MIXTRAL, 'reference.json'), 'utf8')) as { input_ids: number[]; greedy_from_first8: number[] };
    const ids = ref.input_ids.slice(0, 8), want = ref.greedy_from_first8.slice(8);
    const lp = logProbs(m.model, ids);
    for (const dtype of ['F32', 'Q8_0', 'Q4_0'] as const) {
      const file = path.join(dir, `mixtral-${dtype}.gguf`);
      await exportGguf(m.model, 'mixtral', file, { dtype });
      const types = new Set(readGgufHeader(file).tensors.filter((t) => t.name.endsWith('attn_q.weight')).map((t) => t.type));
      expect([...types]).toEqual([dtype]);
      const got = llamaCpp(file, ids, want.length);
      const diff = topDiff(got.probs, lp);
      const same = got.greedy.filter((t, i) => t === want[i]).length;
      console.log(`llama.cpp, Mixtral fixture as llama ${dtype}: greedy ${same}/${want.length} as transformers; top-50 next-token log-prob max |diff| ${diff.toExponential(2)}`);
      if (dtype === 'F32') {
        expect(got.greedy).toEqual(want);
        expect(diff).toBeLessThan(1e-3);
      }
    }
  }, 180_000);

  for (const [arch, as] of [['qwen3_moe', 'qwen3moe'], ['qwen2_moe', 'qwen2moe']] as const) {
    it(`in llama.cpp: the ${arch} fixture as ${as} (placeholder vocabulary) gives transformers' greedy ids and log-probs within 1e-3`, async (ctx) => {
      if (peerMissing) return ctx.skip(peerMissing);
      const fx = path.dirname(fixture(`hf/${arch}/config.json`));
      const m = await loadModelDir(fx);
      const ref = JSON.parse(readFileSync(path.join(fx, 'reference.json'), 'utf8')) as { input_ids: number[]; greedy_from_first8: number[] };
      const file = path.join(dir, `${arch}.gguf`);
      await exportGguf(m.model, arch, file);
      const h = readGgufHeader(file);
      expect(h.metadata['general.architecture']).toBe(as);
      expect(h.metadata['tokenizer.ggml.tokens']).toHaveLength(m.model.cfg.vocabSize);
      const got = llamaCpp(file, ref.input_ids.slice(0, 8), ref.greedy_from_first8.length - 8);
      expect(got.greedy).toEqual(ref.greedy_from_first8.slice(8));
      const diff = topDiff(got.probs, logProbs(m.model, ref.input_ids.slice(0, 8)));
      console.log(`llama.cpp ${as} F32: top-50 next-token log-prob max |diff| ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-3);
    }, 180_000);
  }

  it('olmoe: the fixture (kvHeads < heads) is refused, since llama.cpp\'s olmoe norms k over the full width; with kvHeads = heads it runs in llama.cpp with moekit\'s greedy ids', async (ctx) => {
    const fx = await loadModelDir(path.dirname(fixture('hf/olmoe/config.json')));
    await expect(exportGguf(fx.model, 'olmoe', path.join(dir, 'x.gguf'))).rejects.toThrow(/llama.cpp's olmoe takes k_norm over the full hidden width, so it needs kvHeads = heads; this model has kvHeads \d+ and heads \d+/);
    if (peerMissing) return ctx.skip(peerMissing);
    const m = new mk.MoELM({ ...fx.model.cfg, kvHeads: fx.model.cfg.heads, seed: 3 });
    const file = path.join(dir, 'olmoe-mha.gguf');
    await exportGguf(m, 'olmoe', file);
    const ids = [3, 17, 42, 99, 250, 7, 7, 123];
    const got = llamaCpp(file, ids, 8);
    expect(got.greedy).toEqual(generate(m, ids, { maxNewTokens: 8 }).newIds);
    const diff = topDiff(got.probs, logProbs(m, ids));
    console.log(`llama.cpp olmoe F32 (kvHeads = heads, random weights): top-50 next-token log-prob max |diff| ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-3);
  }, 180_000);
});
