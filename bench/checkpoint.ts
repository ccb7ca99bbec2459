// Checkpoint benchmark: a generated ~1 GB Hugging Face (Qwen3-MoE layout) checkpoint. Measures, each in a fresh
// process: lazy open (header only) time and RSS, reading one expert by byte range, a full load into a MoELM
// (time, peak RSS), and decode tokens/s on CPU against the bytes-per-token bandwidth limit (memory bandwidth
// measured in the same process by streaming over a buffer larger than the caches).
// usage: npx tsx bench/checkpoint.ts [--dir DIR] [--layers 4] [--experts 32] [--decode 16] [--backend wasm]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
const SELF = fileURLToPath(import.meta.url);

interface Shape { layers: number; experts: number; hidden: number; width: number; vocab: number; topK: number }

function hfConfig(s: Shape): Record<string, unknown> {
  return {
    architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', hidden_act: 'silu', dtype: 'float32',
    vocab_size: s.vocab, hidden_size: s.hidden, num_hidden_layers: s.layers, num_attention_heads: 16, num_key_value_heads: 4, head_dim: 64,
    intermediate_size: 4 * s.hidden, moe_intermediate_size: s.width, num_experts: s.experts, num_experts_per_tok: s.topK, norm_topk_prob: true,
    decoder_sparse_step: 1, mlp_only_layers: [], max_position_embeddings: 4096, rms_norm_eps: 1e-6, rope_parameters: { rope_theta: 1e6, rope_type: 'default' },
    tie_word_embeddings: false, attention_bias: false, router_aux_loss_coef: 0.001, eos_token_id: null, bos_token_id: null,
  };
}

/** Child: writes the checkpoint (weights from a fast generator: scaled uniform noise, norms at 1). */
async function generate(dir: string, s: Shape): Promise<void> {
  const { writeSafetensors } = await import('../src/io/safetensors.js');
  const { writeFileSync } = await import('node:fs');
  let x = 12345;
  const fill = (n: number, scale: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      a[i] = ((x / 4294967296) * 2 - 1) * scale;
    }
    return a;
  };
  const H = s.hidden;
  const D = 64;
  const t: { name: string; dtype: 'F32'; shape: number[]; data: Float32Array }[] = [];
  const w = (name: string, shape: number[], scale = 1 / Math.sqrt(shape.at(-1)!)): void => void t.push({ name, dtype: 'F32', shape, data: name.endsWith('norm.weight') ? new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(1) : fill(shape.reduce((a, b) => a * b, 1), scale) });
  w('model.embed_tokens.weight', [s.vocab, H], 0.02);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    w(`${p}.input_layernorm.weight`, [H]);
    w(`${p}.post_attention_layernorm.weight`, [H]);
    w(`${p}.self_attn.q_proj.weight`, [16 * D, H]);
    w(`${p}.self_attn.k_proj.weight`, [4 * D, H]);
    w(`${p}.self_attn.v_proj.weight`, [4 * D, H]);
    w(`${p}.self_attn.o_proj.weight`, [H, 16 * D]);
    w(`${p}.self_attn.q_norm.weight`, [D]);
    w(`${p}.self_attn.k_norm.weight`, [D]);
    w(`${p}.mlp.gate.weight`, [s.experts, H]);
    for (let e = 0; e < s.experts; e++) {
      w(`${p}.mlp.experts.${e}.gate_proj.weight`, [s.width, H]);
      w(`${p}.mlp.experts.${e}.up_proj.weight`, [s.width, H]);
      w(`${p}.mlp.experts.${e}.down_proj.weight`, [H, s.width]);
    }
  }
  w('model.norm.weight', [H]);
  w('lm_head.weight', [s.vocab, H]);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfig(s), null, 2));
  await writeSafetensors(path.join(dir, 'model.safetensors'), t);
  console.log(JSON.stringify({ what: 'generate', tensors: t.length }));
}

const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

/** Child: one measurement, printed as a JSON line. */
async function measure(what: string, dir: string, decode: number, backend: string): Promise<void> {
  const base = peakRss();
  if (what === 'open') {
    const { Checkpoint } = await import('../src/models/hf/load.js');
    const t0 = performance.now();
    const ck = await Checkpoint.open(dir);
    const openMs = performance.now() - t0;
    const openRss = process.memoryUsage().rss;
    const t1 = performance.now();
    const one = await ck.readF32('model.layers.0.mlp.experts.0.down_proj.weight');
    const readMs = performance.now() - t1;
    console.log(JSON.stringify({ what, open_ms: openMs, tensors: [...ck.names()].length, rss_after_open: openRss, read_expert_ms: readMs, expert_bytes: one.byteLength, peak_rss: peakRss(), base_rss: base }));
    await ck.close();
    return;
  }
  const mk = await import('../src/index.js');
  const { loadHfModel } = await import('../src/models/hf/load.js');
  await mk.setBackend(backend);
  const t0 = performance.now();
  const hf = await loadHfModel(dir);
  const loadMs = performance.now() - t0;
  const loadPeak = peakRss();
  if (what === 'load') {
    console.log(JSON.stringify({ what, load_ms: loadMs, params: hf.model.numParams(), peak_rss: loadPeak, rss: process.memoryUsage().rss }));
    return;
  }
  // decode: greedy tokens with a KV cache after an 8-token prompt
  const r = mk.generate(hf.model, [1, 2, 3, 4, 5, 6, 7, 8], { maxNewTokens: decode + 1, greedy: true });
  const tps = decode / (r.decodeMs / 1000);
  // bytes one decode token must read (f32): every non-expert weight except the embedding table (one row),
  // plus K of E experts per MoE layer
  const cfg = hf.config;
  const c = hf.model.paramCounts();
  const bytesPerToken = 4 * (c.active - cfg.vocabSize * cfg.hidden + cfg.hidden);
  // memory bandwidth, best of 3 each: a summing loop over a 512 MiB Float32Array, and memcpy of it (bytes read / s)
  const buf = new Float32Array(128 * 1024 * 1024).fill(1);
  const dst = Buffer.allocUnsafe(buf.byteLength);
  const src = Buffer.from(buf.buffer);
  let best = 0;
  for (let k = 0; k < 3; k++) {
    let t = performance.now();
    let s = 0;
    for (let i = 0; i < buf.length; i += 4) s += buf[i]! + buf[i + 1]! + buf[i + 2]! + buf[i + 3]!;
    if (s !== buf.length) throw new Error('bandwidth probe: wrong sum');
    best = Math.max(best, buf.byteLength / ((performance.now() - t) / 1000));
    t = performance.now();
    src.copy(dst);
    best = Math.max(best, buf.byteLength / ((performance.now() - t) / 1000));
  }
  // and the engine's own streaming rate: a GEMV x (1, 8192) · W (8192, 8192) f32 (256 MiB of weights) on the backend
  const W = mk.noGrad(() => mk.tensor(buf.subarray(0, 8192 * 8192), [8192, 8192]));
  const xv = mk.tensor(new Float32Array(8192).fill(1e-3), [1, 8192]);
  let gemv = 0;
  for (let k = 0; k < 4; k++) {
    const t = performance.now();
    mk.tidy(() => mk.matmul(xv, W).dataSync());
    gemv = Math.max(gemv, (8192 * 8192 * 4) / ((performance.now() - t) / 1000));
  }
  const probeJs = best;
  best = Math.max(best, gemv);
  console.log(JSON.stringify({ what, backend, decode_tokens_per_s: tps, bytes_per_token: bytesPerToken, stream_bytes_per_s: best, js_probe_bytes_per_s: probeJs, gemv_bytes_per_s: gemv, limit_tokens_per_s: best / bytesPerToken, peak_rss: peakRss() }));
}

function child(args: string[]): Record<string, number | string> {
  const out = execFileSync(TSX, [SELF, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`bench/checkpoint: no result from ${args.join(' ')}`);
  return JSON.parse(line) as Record<string, number | string>;
}

const program = new Command();
program
  .option('--dir <dir>', 'where to write the generated checkpoint', path.join(os.tmpdir(), 'moekit-bench-1gb'))
  .option('--layers <n>', 'decoder layers', '4')
  .option('--experts <n>', 'experts per layer', '32')
  .option('--decode <n>', 'decode tokens to time', '16')
  .option('--backend <name>', 'backend of the load/decode children', 'wasm')
  .option('--keep', 'keep the generated checkpoint')
  .option('--child <what>', 'internal')
  .action(async (o: { dir: string; layers: string; experts: string; decode: string; backend: string; keep?: boolean; child?: string }) => {
    const s: Shape = { layers: Number(o.layers), experts: Number(o.experts), hidden: 1024, width: 512, vocab: 32000, topK: 4 };
    if (o.child === 'generate') return generate(o.dir, s);
    if (o.child) return measure(o.child, o.dir, Number(o.decode), o.backend);
    if (!existsSync(path.join(o.dir, 'model.safetensors'))) {
      const t0 = performance.now();
      child(['--child', 'generate', '--dir', o.dir, '--layers', o.layers, '--experts', o.experts]);
      console.error(`generated ${o.dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const size = statSync(path.join(o.dir, 'model.safetensors')).size;
    const open = child(['--child', 'open', '--dir', o.dir]);
    const load = child(['--child', 'load', '--dir', o.dir, '--backend', o.backend]);
    const dec = child(['--child', 'decode', '--dir', o.dir, '--backend', o.backend, '--decode', o.decode]);
    const mib = (b: number | string): string => `${(Number(b) / 2 ** 20).toFixed(0)} MiB`;
    const n = (v: number | string, d = 1): string => Number(v).toFixed(d);
    console.log(`\nmachine: ${os.cpus()[0]?.model ?? 'cpu'}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}; backend ${o.backend}`);
    console.log(`checkpoint: qwen3_moe, ${s.layers} layers, H ${s.hidden}, ${s.experts} experts of width ${s.width}, top-${s.topK}, vocab ${s.vocab}: ${mib(size)} (${size} bytes), ${open.tensors} tensors\n`);
    console.log('| step | time | RSS | RSS / file size |');
    console.log('|---|---|---|---|');
    console.log(`| lazy open (header only) | ${n(open.open_ms)} ms | ${mib(open.rss_after_open)} | ${(Number(open.rss_after_open) / size).toFixed(3)} |`);
    console.log(`| read one expert matrix (${mib(open.expert_bytes)}) by byte range | ${n(open.read_expert_ms)} ms | peak ${mib(open.peak_rss)} | ${(Number(open.peak_rss) / size).toFixed(3)} |`);
    console.log(`| full load into a MoELM (${backend(o.backend)}) | ${n(Number(load.load_ms) / 1000, 2)} s | peak ${mib(load.peak_rss)} | ${(Number(load.peak_rss) / size).toFixed(2)} |`);
    console.log(`\n| decode (greedy, KV cache) | tokens/s | bytes per token | stream bandwidth | bandwidth limit | share of limit |`);
    console.log('|---|---|---|---|---|---|');
    console.log(`| ${o.decode} tokens after an 8-token prompt | ${n(dec.decode_tokens_per_s, 2)} | ${mib(dec.bytes_per_token)} | ${n(Number(dec.stream_bytes_per_s) / 1e9, 2)} GB/s | ${n(dec.limit_tokens_per_s, 2)} tokens/s | ${((Number(dec.decode_tokens_per_s) / Number(dec.limit_tokens_per_s)) * 100).toFixed(0)}% |`);
    console.log(`\nstream bandwidth = the best of a summing loop and memcpy over 512 MiB (${n(Number(dec.js_probe_bytes_per_s) / 1e9, 2)} GB/s) and a ${o.backend} GEMV over 256 MiB of weights (${n(Number(dec.gemv_bytes_per_s) / 1e9, 2)} GB/s)`);
    console.log(JSON.stringify({ file_bytes: size, open, load, decode: dec }));
    if (!o.keep) rmSync(o.dir, { recursive: true, force: true });
  });
const backend = (b: string): string => `${b} backend`;
await program.parseAsync(process.argv);
