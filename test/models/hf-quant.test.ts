// Quantised Hugging Face checkpoints: MXFP4 and block-FP8 checkpoints made here by the test-side quantisers, read
// through DequantSource and compared with independently dequantised values; an FP8 Mixtral end to end via loadHfModel.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as mk from '../../src/index.js';
import { writeSafetensors, type StTensorIn } from '../../src/io/safetensors.js';
import { f32ToBf16 } from '../../src/tensor/dtype.js';
import { fromHfConfig, toHfConfig } from '../../src/models/hf/config.js';
import { Checkpoint, loadHfModel } from '../../src/models/hf/load.js';
import { logicalShape, packingOf } from '../../src/nn/packed.js';
import { generate } from '../../src/serve/generate.js';
import { DequantSource, FP8_DEFAULT_BLOCK, parseQuantization, type HfQuantization } from '../../src/models/hf/quant.js';
import { loadedBytes } from '../../src/models/hf/kept.js';
import { keepsStorageDtype } from '../../src/models/hf/weights.js';
import { ids, maxAbsDiff } from '../helpers/compare.js';
import { DEVICES, JS, useDevice } from '../helpers/devices.js';
import { fixture } from '../helpers/fixtures.js';
import { readReference } from '../helpers/hf-parity.js';
import { tempDir } from '../helpers/tmp.js';
import { e4m3Value, encodeFp8Blocks, encodeMxfp4, transpose } from '../helpers/quantise.js';

beforeAll(async () => {
  await mk.setBackend('js');
});

const tmp = tempDir('moekit-hf-quant-');
const EXPERTS = /\.mlp\.experts\.(gate|up|down)_proj$/;
const LINEAR = /_proj(_with_mqa)?\.weight$/;
const f32 = (name: string, shape: number[], data: Float32Array): StTensorIn => ({ name, dtype: 'F32', shape, data });
const u8 = (name: string, shape: number[], data: Uint8Array): StTensorIn => ({ name, dtype: 'U8', shape, data });

/** Every tensor of a checkpoint directory as float32. */
async function readAll(dir: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const ck = await Checkpoint.open(dir);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  try {
    for (const n of ck.names()) out.set(n, { shape: [...ck.shape(n)], data: Float32Array.from(await ck.readF32(n)) });
  } finally {
    await ck.close();
  }
  return out;
}

/**
 * loadHfModel on the quantised directory `qDir` names its quantization and uses every tensor. Loaded with loadDtype
 * 'f32' it gives exactly the logits and parameters of the dequantised model in `dDir`. Loaded as stored (the default),
 * the weights of `kept` names stay packed in their block format (fewer bytes), the logits agree within 1e-5 and greedy
 * decoding matches, and upcast() gives the dequantised parameters exactly. Logs the diffs, and the one against `src`'s
 * transformers logits.
 */
async function matchesDequantised(label: string, qDir: string, dDir: string, src: string, quantization: HfQuantization, kept: (name: string, shape: number[]) => boolean): Promise<void> {
  const ref = readReference(src);
  const q = await loadHfModel(qDir, { loadDtype: 'f32' });
  const d = await loadHfModel(dDir);
  const k = await loadHfModel(qDir);
  try {
    expect(q.quantization).toEqual(quantization);
    expect(q.unused).toEqual([]);
    expect(k.unused).toEqual([]);
    const lq = mk.noGrad(() => q.model.forward(ids(ref.input_ids)).logits.dataSync());
    const ld = mk.noGrad(() => d.model.forward(ids(ref.input_ids)).logits.dataSync());
    const diff = maxAbsDiff(lq, ld);
    console.log(`${label}: f32 load: logits max |diff| vs dequantised model ${diff}, vs the unquantised transformers logits ${maxAbsDiff(lq, ref.logits.flat()).toExponential(2)}`);
    expect(diff).toBe(0);
    const dParams = new Map(d.model.parameters());
    for (const [name, p] of q.model.parameters()) expect(maxAbsDiff(p.dataSync(), dParams.get(name)!.dataSync()), name).toBe(0);

    const format = quantization.method;
    const packed = k.model.parameters().filter(([, p]) => packingOf(p)?.format === format).map(([n]) => n);
    expect(packed.length).toBeGreaterThan(0);
    for (const [n, p] of k.model.parameters()) expect(`${n}: ${packingOf(p)?.format ?? p.dtype}`).toBe(`${n}: ${kept(n, logicalShape(p)) ? format : 'f32'}`);
    const lk = mk.noGrad(() => k.model.forward(ids(ref.input_ids)).logits.dataSync());
    const kd = maxAbsDiff(lk, ld);
    const prompt = ref.input_ids.slice(0, 8);
    const gk = generate(k.model, prompt, { maxNewTokens: 8, greedy: true });
    const gd = generate(d.model, prompt, { maxNewTokens: 8, greedy: true });
    console.log(`${label}: kept ${format} (${packed.length} tensors, ${k.model.paramBytes()} bytes vs ${d.model.paramBytes()} f32): logits max |diff| vs dequantised model ${kd.toExponential(2)}; greedy ${gk.ids.join(' ')} vs ${gd.ids.join(' ')}`);
    expect(kd).toBeLessThanOrEqual(1e-5);
    expect(gk.ids).toEqual(gd.ids);
    expect(k.model.paramBytes()).toBeLessThan(d.model.paramBytes());
    // `moekit info`'s estimate from the headers equals what each load holds (parameters and buffers)
    const ck = await Checkpoint.open(qDir);
    const stored = [...ck.names()].map((n) => ({ ...ck.info(n), name: n }));
    await ck.close();
    const est = loadedBytes(stored, quantization.method === 'fp8' ? quantization.blockSize : FP8_DEFAULT_BLOCK, keepsStorageDtype);
    const bufferBytes = k.model.buffers().filter(([n]) => n.endsWith('e_score_correction_bias')).reduce((a, [, b]) => a + b.size * 4, 0);
    expect(est).toEqual({ auto: k.model.paramBytes() + bufferBytes, f32: q.model.paramBytes() + bufferBytes });
    const up = k.model.upcast();
    expect(up.tensors).toBe(packed.length);
    for (const [name, p] of k.model.parameters()) expect(maxAbsDiff(p.dataSync(), dParams.get(name)!.dataSync()), name).toBe(0);
  } finally {
    q.model.dispose();
    d.model.dispose();
    k.model.dispose();
  }
}

describe('quantization_config', () => {
  it('mxfp4 and fp8 (default and given weight_block_size) are accepted; other methods and bad block sizes name what was expected', () => {
    expect(parseQuantization(undefined, 'c')).toBeNull();
    expect(parseQuantization({ quant_method: 'mxfp4', modules_to_not_convert: ['model.layers.*.self_attn'] }, 'c')).toEqual({ method: 'mxfp4' });
    expect(parseQuantization({ quant_method: 'fp8', activation_scheme: 'dynamic', fmt: 'e4m3' }, 'c')).toEqual({ method: 'fp8', blockSize: [128, 128] });
    expect(parseQuantization({ quant_method: 'fp8', weight_block_size: [64, 32] }, 'c')).toEqual({ method: 'fp8', blockSize: [64, 32] });
    expect(() => parseQuantization({ quant_method: 'fp8', weight_block_size: null }, 'c')).toThrow('c: quantization_config.weight_block_size = null: expected [rows, cols], two positive integers');
    expect(() => parseQuantization({ quant_method: 'fp8', weight_block_size: [128] }, 'c')).toThrow('weight_block_size = [128]');
    expect(() => parseQuantization({ quant_method: 'awq' }, 'c')).toThrow('c: quantization_config.quant_method "awq" is not supported (expected one of "mxfp4", "fp8"');
    expect(() => parseQuantization('fp8', 'c')).toThrow('"quantization_config" = "fp8": expected an object');
  });

  it('fromHfConfig reads it (errors name config.json); toHfConfig drops it, since moekit writes dequantised weights', () => {
    const raw = JSON.parse(readFileSync(fixture('hf/mixtral/config.json'), 'utf8')) as Record<string, unknown>;
    expect(fromHfConfig(raw).quantization).toBeNull();
    const q = fromHfConfig({ ...raw, quantization_config: { quant_method: 'fp8', weight_block_size: [32, 32] } });
    expect(q.quantization).toEqual({ method: 'fp8', blockSize: [32, 32] });
    expect(() => fromHfConfig({ ...raw, quantization_config: { quant_method: 'gptq', bits: 4 } }, 'dir/config.json')).toThrow(
      mk.HfConfigError,
    );
    expect(() => fromHfConfig({ ...raw, quantization_config: { quant_method: 'gptq' } }, 'dir/config.json')).toThrow('dir/config.json: quantization_config.quant_method "gptq" is not supported');
    expect(toHfConfig(q.config, 'mixtral', q.raw).quantization_config).toBeUndefined();
  });
});

describe('MXFP4 (gpt-oss layout) through DequantSource', () => {
  const src = path.dirname(fixture('hf/gpt_oss/config.json'));
  const dir = path.join(tmp, 'gpt_oss_mxfp4');
  const dDir = path.join(tmp, 'gpt_oss_dequantised');
  // per fused tensor: the in-memory shape (E, in, out) and the values the quantised parts stand for
  const expected = new Map<string, { shape: number[]; data: Float32Array; original: Float32Array }>();
  let plain = new Map<string, { shape: number[]; data: Float32Array }>();

  beforeAll(async () => {
    plain = await readAll(src);
    mkdirSync(dir, { recursive: true });
    const tensors: StTensorIn[] = [];
    for (const [name, t] of plain) {
      if (!/experts\.(gate_up_proj|down_proj)$/.test(name)) {
        tensors.push(f32(name, t.shape, t.data));
        continue;
      }
      const [E, IN, OUT] = t.shape as [number, number, number]; // in memory (E, in, out): gate_up (E, H, 2I), down (E, I, H)
      const onDisk = transpose(t.data, E, IN, OUT); // (E, out, in): quantised along `in`
      const q = encodeMxfp4(onDisk);
      tensors.push(u8(`${name}_blocks`, [E, OUT, IN / 32, 16], q.blocks), u8(`${name}_scales`, [E, OUT, IN / 32], q.scales));
      expected.set(name, { shape: [E, IN, OUT], data: transpose(q.dequantised, E, OUT, IN), original: t.data });
    }
    await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
    // the same model with the dequantised experts in float32, for the end-to-end comparison
    const config = JSON.parse(readFileSync(path.join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    const mxfp4 = { quant_method: 'mxfp4', modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'] };
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, quantization_config: mxfp4 }));
    mkdirSync(dDir, { recursive: true });
    writeFileSync(path.join(dDir, 'config.json'), JSON.stringify(config));
    await writeSafetensors(path.join(dDir, 'model.safetensors'), [...plain].map(([name, t]) => f32(name, t.shape, expected.get(name)?.data ?? t.data)));
  });

  it('names are the dequantised ones (no _blocks / _scales); shapes are the in-memory (E, in, out); values equal the encoder\'s exactly', async () => {
    const ck = await Checkpoint.open(dir);
    try {
      const q = new DequantSource(ck, { mxfp4ExpertsInOut: true });
      expect([...q.names()].sort()).toEqual([...plain.keys()].sort());
      expect([...ck.names()].some((n) => n.endsWith('_blocks'))).toBe(true);
      expect(expected.size).toBe(4);
      for (const [name, e] of expected) {
        expect(q.has(name)).toBe(true);
        expect(q.shape(name)).toEqual(e.shape);
        const got = await q.readF32(name);
        const d = maxAbsDiff(got, e.data);
        const amax = e.original.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
        const lossy = maxAbsDiff(got, e.original);
        console.log(`MXFP4 ${name} ${JSON.stringify(e.shape)}: max |diff| vs encoder ${d}, vs the unquantised fixture ${lossy.toExponential(2)} (max |w| ${amax.toExponential(2)})`);
        expect(d).toBe(0);
        expect(lossy).toBeLessThanOrEqual(amax / 4); // E2M1 steps are at most a quarter of the block's largest value
      }
      for (const [name, t] of plain) if (!expected.has(name)) expect(maxAbsDiff(await q.readF32(name), t.data)).toBe(0);
    } finally {
      await ck.close();
    }
  });

  it('without the in-out option an expert stack reads as (E, out, in), as transformers presents it for other models', async () => {
    const ck = await Checkpoint.open(dir);
    try {
      const q = new DequantSource(ck);
      const name = 'model.layers.0.mlp.experts.down_proj';
      const e = expected.get(name)!;
      const [E, IN, OUT] = e.shape as [number, number, number];
      expect(q.shape(name)).toEqual([E, OUT, IN]);
      expect(maxAbsDiff(await q.readF32(name), transpose(e.data, E, IN, OUT))).toBe(0);
    } finally {
      await ck.close();
    }
  });

  describe.each([JS, ...DEVICES])('end to end on $name', (device) => {
    const dev = useDevice(device);
    it('loadHfModel on the MXFP4 gpt_oss checkpoint: f32 load exact, kept MXFP4 experts within 1e-5 of the dequantised model', async (ctx) => {
      dev.use(ctx);
      await matchesDequantised(`MXFP4 gpt_oss on ${device.name}`, dir, dDir, src, { method: 'mxfp4' }, (n) => EXPERTS.test(n));
    });
  });
});

describe('DequantSource on hand-made parts', () => {
  const dir = path.join(tmp, 'parts');
  const file = path.join(dir, 'model.safetensors');
  let expect2d: Float32Array = new Float32Array(0);
  let expect3d: Float32Array = new Float32Array(0);
  let expectBf16: Float32Array = new Float32Array(0);
  let expectE5: Float32Array = new Float32Array(0);
  let expectPerExpert: Float32Array = new Float32Array(0);

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    const rnd = (n: number, seed: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * (1 + (i % 7)));
    // FP8: a (48, 64) weight in (32, 32) tiles (partial rows) and a (2, 40, 24) stack
    const w2 = encodeFp8Blocks(rnd(48 * 64, 1), 1, 48, 64, 32, 32);
    const w3 = encodeFp8Blocks(rnd(2 * 40 * 24, 2), 2, 40, 24, 32, 32);
    expect2d = w2.dequantised;
    expect3d = w3.dequantised;
    // BF16 scale_inv: powers of two, exact in bf16
    const codes = Uint8Array.from({ length: 40 * 8 }, (_, i) => (i * 53) % 0x7e);
    const sc = Float32Array.of(0.5, 4); // (2, 1) tiles of (32, 32)
    expectBf16 = Float32Array.from(codes, (c, i) => e4m3Value(c) * sc[Math.floor(i / 8 / 32)]!);
    // E5M2 codes 0x3c = 1.0, 0x40 = 2.0, 0xbc = -1.0
    expectE5 = Float32Array.of(3, 6, -3, 3);
    // MXFP4 per-expert `weight_blocks` (rows, G, 16) -> `weight` (rows, G * 32), never transposed
    const pe = encodeMxfp4(rnd(3 * 64, 3));
    expectPerExpert = pe.dequantised;
    await writeSafetensors(file, [
      { name: 'a.weight', dtype: 'F8_E4M3', shape: [48, 64], data: w2.codes },
      f32('a.weight_scale_inv', [2, 2], w2.scaleInv),
      { name: 'experts.gate_up_proj', dtype: 'F8_E4M3', shape: [2, 40, 24], data: w3.codes },
      f32('experts.gate_up_proj_scale_inv', [2, 2, 1], w3.scaleInv),
      { name: 'b.weight', dtype: 'F8_E4M3', shape: [40, 8], data: codes },
      { name: 'b.weight_scale_inv', dtype: 'BF16', shape: [2, 1], data: Uint16Array.from(sc, f32ToBf16) },
      { name: 'e.weight', dtype: 'F8_E5M2', shape: [2, 2], data: Uint8Array.of(0x3c, 0x40, 0xbc, 0x3c) },
      f32('e.weight_scale_inv', [1, 1], Float32Array.of(3)),
      u8('experts.0.up_proj.weight_blocks', [3, 2, 16], pe.blocks),
      u8('experts.0.up_proj.weight_scales', [3, 2], pe.scales),
      f32('norm.weight', [4], Float32Array.of(1, 2, 3, 4)),
      f32('plain.weight', [2, 2], Float32Array.of(1, 2, 3, 4)), // not FP8: its scale_inv is not applied, and stays visible
      f32('plain.weight_scale_inv', [1, 1], Float32Array.of(8)),
      // broken ones
      u8('bad_last.w_blocks', [2, 4, 1, 8], new Uint8Array(64)),
      u8('bad_last.w_scales', [2, 4, 1], new Uint8Array(8)),
      u8('bad_scales.w_blocks', [2, 4, 1, 16], new Uint8Array(128)),
      u8('bad_scales.w_scales', [2, 4, 2], new Uint8Array(16)),
      u8('no_scales.w_blocks', [1, 2, 1, 16], new Uint8Array(32)),
      { name: 'bad_inv.weight', dtype: 'F8_E4M3', shape: [200, 64], data: new Uint8Array(200 * 64) },
      f32('bad_inv.weight_scale_inv', [1, 1], Float32Array.of(1)),
      { name: 'no_inv.weight', dtype: 'F8_E4M3', shape: [2, 2], data: new Uint8Array(4) },
      u8('huge.w_blocks', [1, 1, 1, 16], new Uint8Array(16).fill(0x77)),
      u8('huge.w_scales', [1, 1, 1], Uint8Array.of(254)),
    ]);
  });

  it('FP8 weights times their block scale_inv (F32 or BF16, partial edge tiles, stacks, E5M2) equal the quantiser\'s values exactly', async () => {
    const ck = await Checkpoint.open(dir);
    try {
      const q = new DequantSource(ck, { fp8Block: [32, 32] });
      const names = [...q.names()];
      expect(names.filter((n) => n.endsWith('_scale_inv') || n.endsWith('_scales') || n.endsWith('_blocks'))).toEqual(['plain.weight_scale_inv']);
      expect([...(await q.readF32('plain.weight'))]).toEqual([1, 2, 3, 4]);
      expect(names).toContain('experts.0.up_proj.weight');
      expect(q.shape('a.weight')).toEqual([48, 64]);
      const diffs = {
        '2d (48, 64)': maxAbsDiff(await q.readF32('a.weight'), expect2d),
        'stack (2, 40, 24)': maxAbsDiff(await q.readF32('experts.gate_up_proj'), expect3d),
        'bf16 scale_inv': maxAbsDiff(await q.readF32('b.weight'), expectBf16),
        e5m2: maxAbsDiff(await q.readF32('e.weight'), expectE5),
        'mxfp4 per-expert weight_blocks': maxAbsDiff(await q.readF32('experts.0.up_proj.weight'), expectPerExpert),
      };
      console.log('FP8 / MXFP4 parts, max |diff| vs the test quantisers:', diffs);
      for (const d of Object.values(diffs)) expect(d).toBe(0);
      expect(q.shape('experts.0.up_proj.weight')).toEqual([3, 64]);
      expect([...(await q.readF32('norm.weight'))]).toEqual([1, 2, 3, 4]);
    } finally {
      await ck.close();
    }
  });

  it('errors name the file, the tensor and what was expected', async () => {
    const ck = await Checkpoint.open(dir);
    try {
      const q = new DequantSource(ck, { fp8Block: [128, 128] });
      expect(() => q.shape('bad_last.w')).toThrow(`${file}: MXFP4 blocks "bad_last.w_blocks" (U8 [2, 4, 1, 8]) must have shape [..., rows, groups, 16]`);
      expect(() => q.shape('bad_scales.w')).toThrow(`${file}: MXFP4 scales "bad_scales.w_scales" has shape [2, 4, 2], expected [2, 4, 1] (one per block of "bad_scales.w_blocks" [2, 4, 1, 16])`);
      await expect(q.readF32('no_scales.w')).rejects.toThrow(`${file}: MXFP4 blocks "no_scales.w_blocks" (U8 [1, 2, 1, 16]) has no "no_scales.w_scales" (expected its E8M0 exponents, shape [1, 2, 1])`);
      expect(() => q.shape('bad_inv.weight')).toThrow(`${file}: "bad_inv.weight_scale_inv" has shape [1, 1], expected [2, 1]: ceil(200/128) x ceil(64/128) tiles of "bad_inv.weight" [200, 64] (weight_block_size [128, 128])`);
      await expect(q.readF32('no_inv.weight')).rejects.toThrow(`${file}: FP8 tensor "no_inv.weight" (F8_E4M3 [2, 2]) has no "no_inv.weight_scale_inv" (expected its block scales)`);
      await expect(q.readF32('huge.w')).rejects.toThrow(`${file}: MXFP4 tensor "huge.w" (from "huge.w_blocks" and "huge.w_scales") dequantises to 32 non-finite values among 32`);
      expect(() => q.shape('nothing')).toThrow('checkpoint has no tensor "nothing"');
    } finally {
      await ck.close();
    }
  });

  it('a tensor stored both plain and as MXFP4 blocks is ambiguous', async () => {
    const f = path.join(tmp, 'both.safetensors');
    await writeSafetensors(f, [f32('x', [1], Float32Array.of(1)), u8('x_blocks', [1, 1, 1, 16], new Uint8Array(16)), u8('x_scales', [1, 1, 1], new Uint8Array(1))]);
    const ck = await Checkpoint.open(f);
    try {
      expect(() => new DequantSource(ck)).toThrow(`${f}: checkpoint has both "x" and its MXFP4 blocks "x_blocks" (expected one of them)`);
    } finally {
      await ck.close();
    }
  });
});

// [32, 32]: 48-wide experts, 24-row kv_a_proj give partial tiles (weights whose columns are not whole tiles are widened);
// [16, 16]: every Linear and expert weight is kept
describe.each([
  ['mixtral', [32, 32]], ['deepseek_v3', [32, 32]], ['mixtral', [16, 16]], ['deepseek_v3', [16, 16]],
] as const)('FP8 %s end to end, tiles %j', (arch, tile) => {
  const src = path.dirname(fixture(`hf/${arch}/config.json`));
  const qDir = path.join(tmp, `${arch}-fp8-${tile[0]}`);
  const dDir = path.join(tmp, `${arch}-dequantised-${tile[0]}`);
  const block: [number, number] = [tile[0], tile[1]];

  beforeAll(async () => {
    const plain = await readAll(src);
    const qT: StTensorIn[] = [];
    const dT: StTensorIn[] = [];
    for (const [name, t] of plain) {
      const linear = t.shape.length === 2 && name.endsWith('.weight') && !/embed_tokens|lm_head|\.gate\.weight$/.test(name);
      if (!linear) {
        qT.push(f32(name, t.shape, t.data));
        dT.push(f32(name, t.shape, t.data));
        continue;
      }
      const [R, C] = t.shape as [number, number];
      const q = encodeFp8Blocks(t.data, 1, R, C, block[0], block[1]);
      qT.push({ name, dtype: 'F8_E4M3', shape: [R, C], data: q.codes }, f32(`${name}_scale_inv`, [Math.ceil(R / block[0]), Math.ceil(C / block[1])], q.scaleInv));
      dT.push(f32(name, [R, C], q.dequantised));
    }
    const config = JSON.parse(readFileSync(path.join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const d of [qDir, dDir]) mkdirSync(d, { recursive: true });
    writeFileSync(path.join(qDir, 'config.json'), JSON.stringify({ ...config, quantization_config: { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: block } }));
    writeFileSync(path.join(dDir, 'config.json'), JSON.stringify(config));
    await writeSafetensors(path.join(qDir, 'model.safetensors'), qT);
    await writeSafetensors(path.join(dDir, 'model.safetensors'), dT);
  });

  describe.each([JS, ...DEVICES])('on $name', (device) => {
    const dev = useDevice(device);
    it('loadHfModel on the FP8 checkpoint: f32 load exact, kept FP8 within 1e-5 of the model built from the dequantised weights', async (ctx) => {
      dev.use(ctx);
      // a weight stays FP8 when its columns are whole tiles; a layer's experts when all of their matrices are
      const kept = (n: string, shape: number[]): boolean => (LINEAR.test(n) ? shape.at(-1)! % block[1] === 0 : EXPERTS.test(n) && shape.slice(1).every((d) => d % block[1] === 0));
      await matchesDequantised(`FP8 ${arch} ${block.join('x')} on ${device.name}`, qDir, dDir, src, { method: 'fp8', blockSize: block }, kept);
    });
  });
});
