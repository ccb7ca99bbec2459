// Load-memory benchmark: a generated BF16 Hugging Face checkpoint (Mixtral layout, ~0.5 G parameters = ~1 GB by
// default) loaded in a fresh process twice, with --load-dtype f32 (every weight widened, moekit's behaviour before
// kept dtypes) and auto (Linear and expert weights kept in bf16); reports each child's peak RSS and parameter bytes.
// The generator writes one shard per layer (writeSafetensors per shard) so it holds at most one layer in memory.
// usage: npx tsx bench/load-memory.ts [--dir DIR] [--size full|small] [--keep] [--json]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
const SELF = fileURLToPath(import.meta.url);

interface Shape { layers: number; hidden: number; width: number; experts: number; vocab: number; heads: number; kvHeads: number }
const SHAPES: Record<string, Shape> = {
  // 11 × (8 experts × 3 × 1024 × 1536 + attention 2.6 M) + 2 × 32000 × 1024 ≈ 0.55 G parameters ≈ 1.1 GB in BF16
  full: { layers: 11, hidden: 1024, width: 1536, experts: 8, vocab: 32000, heads: 16, kvHeads: 4 },
  small: { layers: 2, hidden: 256, width: 384, experts: 8, vocab: 4000, heads: 8, kvHeads: 2 },
};

const count = (s: Shape): number => {
  const D = s.hidden / s.heads;
  const attn = s.hidden * D * (2 * s.heads + 2 * s.kvHeads);
  return s.layers * (s.experts * 3 * s.hidden * s.width + attn + s.experts * s.hidden + 2 * s.hidden) + 2 * s.vocab * s.hidden + s.hidden;
};

function hfConfig(s: Shape): Record<string, unknown> {
  return {
    architectures: ['MixtralForCausalLM'], model_type: 'mixtral', hidden_act: 'silu', dtype: 'bfloat16',
    vocab_size: s.vocab, hidden_size: s.hidden, intermediate_size: s.width, num_hidden_layers: s.layers,
    num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, num_local_experts: s.experts, num_experts_per_tok: 2,
    max_position_embeddings: 4096, rms_norm_eps: 1e-6, rope_parameters: { rope_theta: 1e6, rope_type: 'default' },
    tie_word_embeddings: false, router_aux_loss_coef: 0.001, bos_token_id: 1, eos_token_id: 2,
  };
}

/** Writes the checkpoint: shard 0 embeddings + final norm + lm_head, then one shard per layer; uniform noise, norms 1. */
async function generate(dir: string, s: Shape): Promise<void> {
  const { writeSafetensors } = await import('../src/io/safetensors.js');
  let x = 12345;
  const bf16 = (n: number, scale: number, one = false): Uint16Array => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    const a = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      f[0] = one ? 1 : ((x / 4294967296) * 2 - 1) * scale;
      a[i] = u[0]! >>> 16; // truncation is fine for noise
    }
    return a;
  };
  type T = { name: string; dtype: 'BF16'; shape: number[]; data: Uint16Array };
  const w = (out: T[], name: string, shape: number[], scale = 1 / Math.sqrt(shape.at(-1)!)): void =>
    void out.push({ name, dtype: 'BF16', shape, data: bf16(shape.reduce((a, b) => a * b, 1), scale, name.endsWith('norm.weight')) });
  mkdirSync(dir, { recursive: true });
  const shards = s.layers + 1;
  const file = (i: number): string => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
  const map: Record<string, string> = {};
  const H = s.hidden;
  const D = H / s.heads;
  for (let i = 0; i < shards; i++) {
    const t: T[] = [];
    if (i === 0) {
      w(t, 'model.embed_tokens.weight', [s.vocab, H], 0.02);
      w(t, 'model.norm.weight', [H]);
      w(t, 'lm_head.weight', [s.vocab, H]);
    } else {
      const p = `model.layers.${i - 1}`;
      w(t, `${p}.input_layernorm.weight`, [H]);
      w(t, `${p}.post_attention_layernorm.weight`, [H]);
      w(t, `${p}.self_attn.q_proj.weight`, [s.heads * D, H]);
      w(t, `${p}.self_attn.k_proj.weight`, [s.kvHeads * D, H]);
      w(t, `${p}.self_attn.v_proj.weight`, [s.kvHeads * D, H]);
      w(t, `${p}.self_attn.o_proj.weight`, [H, s.heads * D]);
      w(t, `${p}.block_sparse_moe.gate.weight`, [s.experts, H]);
      for (let e = 0; e < s.experts; e++) {
        w(t, `${p}.block_sparse_moe.experts.${e}.w1.weight`, [s.width, H]);
        w(t, `${p}.block_sparse_moe.experts.${e}.w3.weight`, [s.width, H]);
        w(t, `${p}.block_sparse_moe.experts.${e}.w2.weight`, [H, s.width]);
      }
    }
    await writeSafetensors(path.join(dir, file(i)), t, { format: 'pt' });
    for (const x of t) map[x.name] = file(i);
  }
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }, null, 2));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hfConfig(s), null, 2));
}

/** Child: loads the directory and prints one JSON line (peak RSS, parameter bytes, seconds). */
async function measure(dir: string, loadDtype: 'f32' | 'auto'): Promise<void> {
  const { loadHfModel } = await import('../src/models/hf/load.js');
  const { setBackend } = await import('../src/backend/registry.js');
  await setBackend('js'); // weights in JS typed arrays: RSS is what the process holds
  const t0 = performance.now();
  const hf = await loadHfModel(dir, { loadDtype });
  const seconds = (performance.now() - t0) / 1000;
  const maxRss = process.resourceUsage().maxRSS * 1024; // KiB on Linux/macOS
  console.log(JSON.stringify({ loadDtype, peakRss: maxRss, paramBytes: hf.model.paramBytes(), params: hf.model.numParams(), seconds }));
}

const program = new Command()
  .option('--dir <dir>', 'checkpoint directory (generated when absent)')
  .option('--size <name>', 'full (~0.55 G params, ~1.1 GB BF16) | small (~7 M params)', 'full')
  .option('--keep', 'keep the generated checkpoint')
  .option('--json', 'print JSON rows')
  .option('--child <loadDtype>', '(internal) measure one load');
program.parse();
const o = program.opts<{ dir?: string; size: string; keep?: boolean; json?: boolean; child?: string }>();

if (o.child) {
  await measure(o.dir!, o.child as 'f32' | 'auto');
} else {
  const shape = SHAPES[o.size];
  if (!shape) throw new Error(`--size must be full or small, got "${o.size}"`);
  const dir = o.dir ?? path.join(os.tmpdir(), `moekit-load-memory-${o.size}`);
  const made = !existsSync(path.join(dir, 'config.json'));
  if (made) {
    console.error(`generating ${(count(shape) / 1e6).toFixed(0)} M parameters (${((count(shape) * 2) / 2 ** 30).toFixed(2)} GiB BF16) in ${dir}`);
    await generate(dir, shape);
  }
  const rows: { loadDtype: string; peakRss: number; paramBytes: number; params: number; seconds: number }[] = [];
  for (const d of ['f32', 'auto']) {
    const out = execFileSync(TSX, [SELF, '--child', d, '--dir', dir], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 });
    rows.push(JSON.parse(out.trim().split('\n').at(-1)!));
  }
  if (made && !o.keep) rmSync(dir, { recursive: true, force: true });
  if (o.json) for (const r of rows) console.log(JSON.stringify(r));
  else {
    const GiB = (b: number): string => (b / 2 ** 30).toFixed(2);
    console.log(`checkpoint: ${(rows[0]!.params / 1e6).toFixed(0)} M parameters, BF16, Mixtral layout (${o.size})`);
    console.log('| --load-dtype | parameter memory (GiB) | peak RSS (GiB) | load (s) |');
    console.log('|---|---:|---:|---:|');
    for (const r of rows) console.log(`| ${r.loadDtype} | ${GiB(r.paramBytes)} | ${GiB(r.peakRss)} | ${r.seconds.toFixed(1)} |`);
    console.log(`peak RSS auto / f32: ${(rows[1]!.peakRss / rows[0]!.peakRss).toFixed(2)}`);
  }
}
