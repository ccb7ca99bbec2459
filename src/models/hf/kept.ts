// Checkpoint weights kept as stored (loadDtype 'auto'): bf16/f16 bits and MXFP4 / FP8 codes are read without widening
// and arranged into moekit's (N, K) orientation — a Linear weight as it is, a layer's routed experts as gate/up
// (E, I, H) and down (E, H, I), picked row by row out of fused, per-expert or gpt-oss (interleaved) tensors.
import { packWeight, type HalfDType } from '../../nn/packed.js';
import { MoEBlock } from '../../moe/block.js';
import { tensor } from '../../tensor/api.js';
import { noGrad } from '../../tensor/engine.js';
import type { BlockFormat } from '../../tensor/ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { MoELM } from '../moe-lm.js';
import type { HfArch } from './config.js';
import { deinterleave } from './gpt-oss.js';
import type { TensorSource } from './source.js';

/** How a tensor can be kept: its half dtype or block format, or null (it is widened to f32). */
export type KeptForm = HalfDType | BlockFormat;

/** The form `name` is kept in from `src`, or null when the source stores it otherwise (or cannot keep it). */
export function keptForm(src: TensorSource, name: string): KeptForm | null {
  return src.halfDtype?.(name) ?? src.packedFormat?.(name) ?? null;
}

/** R rows of K values stored one way: half bits, or block codes with each row's group scales. */
type Rows =
  | { kind: 'half'; dtype: HalfDType; K: number; data: Uint16Array }
  | { kind: 'packed'; format: BlockFormat; K: number; groupSize: number; codes: Uint8Array; scales: Uint8Array | Float32Array };

/** Bytes of codes per row of K values. */
const codeWidth = (format: BlockFormat, K: number): number => (format === 'mxfp4' ? K / 2 : K);


/** n rows, row i a copy of r's row at(i). */
function pickRows(r: Rows, n: number, at: (i: number) => number): Rows {
  const copy = <A extends Uint16Array | Uint8Array | Float32Array>(src: A, width: number, out: A): A => {
    for (let i = 0; i < n; i++) out.set(src.subarray(at(i) * width, (at(i) + 1) * width), i * width);
    return out;
  };
  if (r.kind === 'half') return { ...r, data: copy(r.data, r.K, new Uint16Array(n * r.K)) };
  const cw = codeWidth(r.format, r.K);
  const sw = r.K / r.groupSize;
  const scales = r.scales instanceof Float32Array ? copy(r.scales, sw, new Float32Array(n * sw)) : copy(r.scales, sw, new Uint8Array(n * sw));
  return { ...r, codes: copy(r.codes, cw, new Uint8Array(n * cw)), scales };
}

/** Typed arrays of one kind, one after another. */
function joined<A extends Uint16Array | Uint8Array | Float32Array>(parts: A[], make: (n: number) => A): A {
  const out = make(parts.reduce((s, a) => s + a.length, 0));
  let at = 0;
  for (const a of parts) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** The rows of several parts (all in one form) one after another. */
function concatRows(parts: Rows[]): Rows {
  const f = parts[0]!;
  if (f.kind === 'half') return { ...f, data: joined(parts.map((p) => (p as typeof f).data), (n) => new Uint16Array(n)) };
  const ps = parts as (typeof f)[];
  const scales = f.scales instanceof Float32Array ? joined(ps.map((p) => p.scales as Float32Array), (n) => new Float32Array(n)) : joined(ps.map((p) => p.scales as Uint8Array), (n) => new Uint8Array(n));
  return { ...f, codes: joined(ps.map((p) => p.codes), (n) => new Uint8Array(n)), scales };
}

/** (n, R, C) half bits -> (n, C, R). */
function transposeHalf(x: Uint16Array, n: number, R: number, C: number): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let m = 0; m < n; m++) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[m * R * C + c * R + r] = x[m * R * C + r * C + c]!;
  return out;
}

/** A tensor's rows as stored: the last dimension is K, the rest are rows (a packed tensor in its stored orientation). */
async function readRows(src: TensorSource, name: string, form: KeptForm): Promise<Rows> {
  if (form === 'bf16' || form === 'f16') return { kind: 'half', dtype: form, K: src.shape(name).at(-1)!, data: await src.readHalf!(name) };
  const p = await src.readPacked!(name);
  return { kind: 'packed', format: p.format, K: p.shape.at(-1)!, groupSize: p.groupSize, codes: p.codes, scales: p.scales };
}

/** Rows as a kept tensor of logical shape (..., N, K). */
function rowsTensor(r: Rows, shape: readonly number[]): Tensor {
  if (r.kind === 'half') return tensor(r.data, shape, r.dtype);
  const lead = shape.slice(0, -1);
  const codes = tensor(r.codes, [...lead, codeWidth(r.format, r.K)], 'u8');
  const scales = r.scales instanceof Float32Array ? tensor(r.scales, [...lead, r.K / r.groupSize]) : tensor(r.scales, [...lead, r.K / r.groupSize], 'u8');
  return packWeight(codes, scales, r.format, r.groupSize);
}

/** A Linear weight (N, K) kept as stored in `form`. */
export async function readKeptLinear(src: TensorSource, name: string, form: KeptForm, shape: readonly number[]): Promise<Tensor> {
  return rowsTensor(await readRows(src, name, form), shape);
}

type Resolve = (names: readonly string[], shape: readonly number[], what: string) => string;

/** Per-expert tensor names of layer l on disk (legacy layout), given by the loader. */
export type LegacyNames = (e: number) => readonly [gate: readonly string[], up: readonly string[], down: readonly string[]];

/**
 * Layer l's routed experts kept as stored, when every expert tensor of the layer is in one kept form (BF16, F16, MXFP4
 * or FP8 E4M3): gate/up (E, I, H), down (E, H, I) in (N, K) orientation, gpt-oss biases in f32. False (nothing read)
 * when the layer is not all in one such form: the caller widens it.
 */
export async function loadKeptExperts(model: MoELM, arch: HfArch, l: number, src: TensorSource, resolve: Resolve, legacy: LegacyNames): Promise<boolean> {
  const block = model.layers[l]?.mlp;
  if (!(block instanceof MoEBlock)) return false;
  const { experts: E, hidden: H, expertWidth: I } = model.cfg;
  if (arch === 'gpt_oss') return loadGptOss(model, block, l, src, resolve);
  const prefixes = arch === 'mixtral' ? [`model.layers.${l}.mlp.experts`, `model.layers.${l}.block_sparse_moe.experts`] : [`model.layers.${l}.mlp.experts`];
  const fused = prefixes.find((pre) => src.has(`${pre}.gate_up_proj`));
  const pick = (names: readonly string[]): string | undefined => names.find((n) => src.has(n));
  const names: (string | undefined)[] = fused ? [`${fused}.gate_up_proj`, `${fused}.down_proj`] : [];
  if (!fused) for (let e = 0; e < E; e++) names.push(...legacy(e).map(pick));
  const form = oneForm(src, names);
  if (!form) return false;
  let gate: Rows;
  let up: Rows;
  let down: Rows;
  if (fused) {
    const gu = await readRows(src, resolve([`${fused}.gate_up_proj`], [E, 2 * I, H], `layer ${l} fused experts`), form); // (E·2I) rows
    gate = pickRows(gu, E * I, (i) => Math.floor(i / I) * 2 * I + (i % I));
    up = pickRows(gu, E * I, (i) => Math.floor(i / I) * 2 * I + I + (i % I));
    down = await readRows(src, resolve([`${fused}.down_proj`], [E, H, I], `layer ${l} fused experts`), form); // (E·H) rows
  } else {
    const part = (k: number, shape: number[], what: string): Promise<Rows>[] => Array.from({ length: E }, (_, e) => readRows(src, resolve([names[3 * e + k]!], shape, `layer ${l} expert ${e} ${what}`), form));
    gate = concatRows(await Promise.all(part(0, [I, H], 'gate')));
    up = concatRows(await Promise.all(part(1, [I, H], 'up')));
    down = concatRows(await Promise.all(part(2, [H, I], 'down')));
  }
  noGrad(() => block.experts.setKept(rowsTensor(gate, [E, I, H]), rowsTensor(up, [E, I, H]), rowsTensor(down, [E, H, I])));
  return true;
}

/** The one kept form of every named tensor, or null (a name missing, forms differing, or one not keepable). */
function oneForm(src: TensorSource, names: readonly (string | undefined)[]): KeptForm | null {
  if (names.length === 0 || names.some((n) => n === undefined)) return null; // the f32 path names what is missing
  const form = keptForm(src, names[0]!);
  return form && names.every((n) => keptForm(src, n!) === form) ? form : null;
}

/**
 * gpt_oss experts: gate_up_proj presented (E, H, 2I) with gate and up interleaved column by column, down_proj (E, I, H)
 * — bf16 stored so (transposed here), MXFP4 stored (E, out, in) already — plus their biases (f32).
 */
async function loadGptOss(model: MoELM, block: MoEBlock, l: number, src: TensorSource, resolve: Resolve): Promise<boolean> {
  const { experts: E, hidden: H, expertWidth: I } = model.cfg;
  const p = `model.layers.${l}.mlp.experts`;
  const form = oneForm(src, [`${p}.gate_up_proj`, `${p}.down_proj`].map((n) => (src.has(n) ? n : undefined)));
  if (form !== 'bf16' && form !== 'f16' && form !== 'mxfp4') return false; // FP8 tiles run along the presented (in, out)
  let gu = await readRows(src, resolve([`${p}.gate_up_proj`], [E, H, 2 * I], `layer ${l} experts`), form);
  let down = await readRows(src, resolve([`${p}.down_proj`], [E, I, H], `layer ${l} experts`), form);
  if (gu.kind === 'half' && down.kind === 'half') {
    gu = { ...gu, K: H, data: transposeHalf(gu.data, E, H, 2 * I) }; // (E, 2I, H)
    down = { ...down, K: I, data: transposeHalf(down.data, E, I, H) }; // (E, H, I)
  }
  const gate = pickRows(gu, E * I, (i) => Math.floor(i / I) * 2 * I + 2 * (i % I)); // even rows
  const up = pickRows(gu, E * I, (i) => Math.floor(i / I) * 2 * I + 2 * (i % I) + 1); // odd rows
  const [gateBias, upBias] = deinterleave(await src.readF32(resolve([`${p}.gate_up_proj_bias`], [E, 2 * I], `layer ${l} experts`)), E, I); // (E, I) each
  const downBias = await src.readF32(resolve([`${p}.down_proj_bias`], [E, H], `layer ${l} experts`)); // (E, H)
  noGrad(() => {
    block.experts.setKept(rowsTensor(gate, [E, I, H]), rowsTensor(up, [E, I, H]), rowsTensor(down, [E, H, I]));
    model.setTensor(`${p}.gate_proj_bias`, tensor(gateBias, [E, I]));
    model.setTensor(`${p}.up_proj_bias`, tensor(upBias, [E, I]));
    model.setTensor(`${p}.down_proj_bias`, tensor(downBias, [E, H]));
  });
  return true;
}

/** A checkpoint tensor as `moekit info` sees it before loading: its name, dtype and shape as stored. */
export interface StoredTensor {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

/**
 * Bytes the weights of a checkpoint take once loaded, by --load-dtype, following the loader's rules: 'auto' keeps
 * BF16/F16 Linear and expert weights at 2 bytes, MXFP4 at its blocks and scales, FP8 E4M3 whose columns are whole
 * tiles at 1 byte plus an f32 scale per row and tile (a layer's experts only when all of them are kept in one form);
 * everything else, and everything with 'f32', at 4 bytes per value. `keeps(name)` says which names are Linear or
 * expert weights (weights.ts).
 */
export function loadedBytes(stored: readonly StoredTensor[], fp8Block: readonly [number, number], keeps: (name: string) => boolean): { auto: number; f32: number } {
  const names = new Set(stored.map((t) => t.name));
  const byName = new Map(stored.map((t) => [t.name, t]));
  const count = (s: readonly number[]): number => s.reduce((a, d) => a * d, 1);
  type Entry = { f32: number; kept: number | null; form: string | null; layer: string | null };
  const entries: Entry[] = [];
  for (const t of stored) {
    if ((t.name.endsWith('_scales') && names.has(t.name.slice(0, -'_scales'.length) + '_blocks')) || (t.name.endsWith('_scale_inv') && names.has(t.name.slice(0, -'_scale_inv'.length)))) continue;
    const layer = /^(model\.layers\.\d+\.)/.exec(t.name)?.[1] ?? null;
    if (t.name.endsWith('_blocks') && names.has(t.name.slice(0, -'_blocks'.length) + '_scales')) {
      const logical = t.name.slice(0, -'_blocks'.length);
      const values = count(t.shape) * 2;
      const scales = byName.get(`${logical}_scales`)!;
      entries.push({ f32: values * 4, kept: keeps(logical) ? count(t.shape) + count(scales.shape) : null, form: 'mxfp4', layer: logical.includes('.experts.') && keeps(logical) ? layer : null });
      continue;
    }
    const values = count(t.shape);
    const expertLayer = t.name.includes('.experts.') && keeps(t.name) ? layer : null; // expert weights, not their biases
    let kept: number | null = null;
    let form: string | null = null;
    if ((t.dtype === 'BF16' || t.dtype === 'F16') && keeps(t.name)) [kept, form] = [values * 2, t.dtype];
    else if (t.dtype === 'F8_E4M3' && names.has(`${t.name}_scale_inv`) && keeps(t.name) && t.shape.length >= 2 && t.shape.at(-1)! % fp8Block[1] === 0) {
      [kept, form] = [values + (values / fp8Block[1]) * 4, 'fp8'];
    }
    entries.push({ f32: values * 4, kept, form, layer: expertLayer });
  }
  // a layer's experts are kept only when all of them are, in one form
  const layerForms = new Map<string, Set<string | null>>();
  for (const e of entries) if (e.layer) layerForms.set(e.layer, (layerForms.get(e.layer) ?? new Set()).add(e.kept === null ? null : e.form));
  let auto = 0;
  let f32 = 0;
  for (const e of entries) {
    const forms = e.layer ? layerForms.get(e.layer)! : null;
    const keptHere = e.kept !== null && (!forms || (forms.size === 1 && !forms.has(null)));
    auto += keptHere ? e.kept! : e.f32;
    f32 += e.f32;
  }
  return { auto, f32 };
}
