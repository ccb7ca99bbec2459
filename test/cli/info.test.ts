// moekit info end to end: a checkpoint written by saveCheckpoint, described by the CLI in a child process.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { PRESETS } from '../../src/models/config.js';
import { MoELM } from '../../src/models/moe-lm.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { AdamW } from '../../src/train/optim.js';
import { saveModelDir } from '../../src/models/dir.js';
import { fixture } from '../helpers/fixtures.js';

const run = (args: string[]): string =>
  execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function fail(args: string[]): { status: number | null; stderr: string } {
  try {
    run(args);
  } catch (e) {
    const err = e as { status: number | null; stderr: string };
    return { status: err.status, stderr: err.stderr };
  }
  throw new Error(`moekit ${args.join(' ')} succeeded; expected an error`);
}

interface Info {
  checkpoint: string;
  step: number;
  config: typeof PRESETS.tiny;
  params: { total: number; expert: number; active: number };
  tensors: number;
  bytes: number;
  files: { name: string; bytes: number }[];
}

let root = '';
let counts = { total: 0, expert: 0, active: 0 };
let nParams = 0;

beforeAll(async () => {
  await mk.setBackend('js');
  root = mkdtempSync(path.join(os.tmpdir(), 'moekit-info-'));
  const model = new MoELM(PRESETS.tiny);
  const params = model.parameters();
  nParams = params.length;
  counts = model.paramCounts();
  await saveCheckpoint(path.join(root, 'ckpt'), params, new AdamW(params), { step: 3, config: PRESETS.tiny });
  await saveModelDir(model, path.join(root, 'moekit-model'), { provenance: { method: 'test' } });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('moekit info', () => {
  it('--json on a checkpoint root reports step, config, parameter counts, tensors, bytes and files', () => {
    const r = JSON.parse(run(['info', path.join(root, 'ckpt'), '--json'])) as Info;
    expect(r.checkpoint).toBe(path.join(root, 'ckpt', 'step-3'));
    expect(r.step).toBe(3);
    expect(r.config).toEqual(PRESETS.tiny);
    expect(r.params.total).toBe(counts.total);
    expect(r.params.expert).toBe(counts.expert);
    expect(r.params.active).toBe(counts.active);
    expect(r.tensors).toBe(nParams);
    expect(r.files.map((f) => f.name)).toEqual(['model.safetensors', 'optimizer.safetensors', 'state.json']);
    const model = r.files.find((f) => f.name === 'model.safetensors')!;
    expect(model.bytes).toBeGreaterThan(4 * counts.total);
    expect(r.bytes).toBe(r.files.reduce((a, f) => a + f.bytes, 0));
  });

  it('accepts a step-N directory, and prints a readable summary without --json', () => {
    const step = path.join(root, 'ckpt', 'step-3');
    const r = JSON.parse(run(['info', step, '--json'])) as Info;
    expect(r.checkpoint).toBe(step);
    expect(r.step).toBe(3);
    const text = run(['info', step]);
    expect(text).toContain('step       3');
    expect(text).toContain(`(${counts.total})`);
    expect(text).toContain('MoE 4 experts, top-2');
    expect(text).toContain('model.safetensors');
  });

  it('a missing directory errors with its path (exit code 1)', () => {
    const missing = path.join(root, 'no-such-checkpoint');
    const r = fail(['info', missing]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`info: ${missing} does not exist`);
  });

  it('a malformed checkpoint errors naming the file', () => {
    const bad = path.join(root, 'bad');
    mkdirSync(bad);
    writeFileSync(path.join(bad, 'latest.json'), '{"checkpoint": ');
    let r = fail(['info', bad]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`info: ${path.join(bad, 'latest.json')} is not valid JSON`);
    const empty = path.join(root, 'empty');
    mkdirSync(empty);
    r = fail(['info', empty]);
    expect(r.stderr).toContain(`info: ${empty} is not a checkpoint`);
    const step = path.join(root, 'badstep');
    mkdirSync(step);
    writeFileSync(path.join(step, 'model.safetensors'), 'garbage');
    writeFileSync(path.join(step, 'state.json'), '{"step": 1}');
    r = fail(['info', step]);
    expect(r.stderr).toContain(path.join(step, 'model.safetensors'));
  });
});

interface ModelInfo {
  kind: string;
  architecture: string;
  model_type: string;
  supported: boolean;
  config: { layers: number; hidden: number; experts: number; top_k: number; expert_width: number; vocab: number; heads: number; kv_heads: number };
  params: { total: number; expert: number; active: number };
  dtypes: Record<string, number>;
  tensors: number;
  weight_bytes: number;
  files: { name: string; bytes: number }[];
}

describe('moekit info on a model directory', () => {
  it('a Hugging Face directory (config.json + safetensors): architecture, sizes, parameter counts, dtypes, bytes', () => {
    const dir = path.dirname(fixture('hf/olmoe/config.json'));
    const r = JSON.parse(run(['info', dir, '--json'])) as ModelInfo;
    expect(r.kind).toBe('hf');
    expect(r.architecture).toBe('OlmoeForCausalLM');
    expect(r.model_type).toBe('olmoe');
    expect(r.supported).toBe(true);
    expect(r.config).toEqual({ layers: 2, hidden: 64, experts: 8, top_k: 2, expert_width: 32, vocab: 320, heads: 4, kv_heads: 2 });
    const expert = 2 * 8 * 3 * 64 * 32; // L·E·3·H·I
    expect(r.params.expert).toBe(expert);
    expect(r.params.active).toBe(r.params.total - expert + expert / 4);
    expect(r.dtypes).toEqual({ F32: r.params.total });
    expect(r.weight_bytes).toBe(statSync(path.join(dir, 'model.safetensors')).size);
    expect(r.weight_bytes).toBeGreaterThan(4 * r.params.total);
    const text = run(['info', dir]);
    expect(text).toContain('OlmoeForCausalLM');
    expect(text).toContain('2 layers, hidden 64, 8 experts, top-2, expert width 32');
    expect(text).toContain('F32');
    expect(text).not.toContain('state.json');
  });

  it('Mixtral expert names (block_sparse_moe.experts.N.w1) count as experts; an architecture moekit does not load is still described', () => {
    const mix = JSON.parse(run(['info', path.dirname(fixture('hf/mixtral/config.json')), '--json'])) as ModelInfo;
    expect(mix.params.expert).toBe(2 * 8 * 3 * 64 * 48);
    const gpt = JSON.parse(run(['info', path.dirname(fixture('hf/gpt_oss/config.json')), '--json'])) as ModelInfo;
    expect(gpt.architecture).toBe('GptOssForCausalLM');
    expect(gpt.config.experts).toBe(8);
    expect(gpt.params.expert).toBeGreaterThan(0);
  });

  it('glm4_moe and deepseek_v3 (shared_experts, a first dense layer, latent attention): loaded and counted', () => {
    for (const [arch, cls, kv, total] of [['glm4_moe', 'Glm4MoeForCausalLM', 2, 140160], ['deepseek_v3', 'DeepseekV3ForCausalLM', 4, 138144]] as const) {
      const r = JSON.parse(run(['info', path.dirname(fixture(`hf/${arch}/config.json`)), '--json'])) as ModelInfo;
      expect([r.architecture, r.model_type, r.supported, r.config.kv_heads]).toEqual([cls, arch, true, kv]);
      // one MoE layer (layer 0 is dense); e_score_correction_bias is a buffer, not a parameter (as transformers counts)
      expect(r.params).toEqual({ total, expert: 8 * 3 * 64 * 32, active: total - 8 * 3 * 64 * 32 + (2 * 3 * 64 * 32) });
    }
  });

  it('a moekit model directory (moekit.json)', () => {
    const r = JSON.parse(run(['info', path.join(root, 'moekit-model'), '--json'])) as ModelInfo;
    expect(r.kind).toBe('moekit');
    expect(r.config.experts).toBe(PRESETS.tiny.experts);
    expect(r.params.total).toBe(counts.total);
    expect(r.params.expert).toBe(counts.expert);
  });
});

describe('moekit info --budget: memory per --load-dtype before loading', () => {
  it('a BF16 export of the mixtral fixture: auto keeps Linear and expert weights at 2 bytes, f32 widens all; the budget verdicts follow', async () => {
    await mk.setBackend('js');
    const { loadHfModel } = await import('../../src/models/hf/load.js');
    const { exportHf } = await import('../../src/models/hf/export.js');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-info-budget-'));
    try {
      const hf = await loadHfModel(path.dirname(fixture('hf/mixtral/config.json')), { loadDtype: 'f32' });
      await exportHf(hf.model, 'mixtral', dir, { dtype: 'BF16' });
      const kept = await loadHfModel(dir);
      const params = hf.model.numParams();
      hf.model.dispose();
      const j = JSON.parse(run(['info', dir, '--budget', String(kept.model.paramBytes()), '--json'])) as { memory: { auto: number; f32: number }; budget: { bytes: number; auto: boolean; f32: boolean } };
      // the estimate from the headers equals what the load really holds
      expect(j.memory.auto).toBe(kept.model.paramBytes());
      expect(j.memory.f32).toBe(params * 4);
      expect(j.budget).toEqual({ bytes: kept.model.paramBytes(), auto: true, f32: false });
      kept.model.dispose();
      expect(run(['info', dir, '--budget', '1GiB'])).toMatch(/memory {5}weights once loaded: .* with --load-dtype auto \(BF16\/F16\/MXFP4\/FP8 kept\) fits --budget 1024\.0 MiB; .* with --load-dtype f32 fits/);
      expect(fail(['info', dir, '--budget', 'lots']).stderr).toContain('--budget must be a size such as 8GB, 512MiB or a number of bytes, got "lots"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
