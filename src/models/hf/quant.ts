// Quantised Hugging Face checkpoints read as float32: MXFP4 (`X_blocks` + `X_scales`, gpt-oss) and block-scaled FP8
// (`W.weight` F8_E4M3 + `W.weight_scale_inv`, DeepSeek-V3 / Kimi-K2 / -FP8 releases), dequantised at load time.
import type { StDType } from '../../io/safetensors.js';
import { MXFP4_BLOCK_BYTES, MXFP4_BLOCK_VALUES, dequantFp8Blocks, dequantMxfp4, fp8ScaleGrid, transposeLast2 } from '../../tensor/blockquant.js';
import { E4M3_VALUES, E5M2_VALUES } from '../../tensor/minifloat.js';
import type { BlockFormat } from '../../tensor/ops.js';
import { halfOfStDType, u16Words, type PackedData, type TensorSource } from './source.js';

/** config.json `quantization_config`, understood. */
export type HfQuantization = { method: 'mxfp4' } | { method: 'fp8'; blockSize: readonly [number, number] };

/** The quant_method values moekit dequantises at load time. */
export const QUANT_METHODS = ['mxfp4', 'fp8'] as const;
/** FP8 tile when config.json gives no weight_block_size (transformers' FineGrainedFP8Config default). */
export const FP8_DEFAULT_BLOCK: readonly [number, number] = [128, 128];

export class HfQuantError extends Error {
  override name = 'HfQuantError';
}

/** Reads config.json's `quantization_config` (absent or null: not quantised); another quant_method is an error naming it. */
export function parseQuantization(q: unknown, where: string): HfQuantization | null {
  if (q === undefined || q === null) return null;
  if (typeof q !== 'object' || Array.isArray(q)) throw new HfQuantError(`${where}: "quantization_config" = ${JSON.stringify(q)}: expected an object with "quant_method"`);
  const o = q as Record<string, unknown>;
  const m = o.quant_method;
  if (m === 'mxfp4') return { method: 'mxfp4' };
  if (m === 'fp8') {
    const bs = o.weight_block_size;
    if (bs === undefined) return { method: 'fp8', blockSize: FP8_DEFAULT_BLOCK };
    if (!Array.isArray(bs) || bs.length !== 2 || !bs.every((d) => Number.isSafeInteger(d) && (d as number) > 0)) {
      throw new HfQuantError(`${where}: quantization_config.weight_block_size = ${JSON.stringify(bs)}: expected [rows, cols], two positive integers (per-tensor FP8 is not supported)`);
    }
    return { method: 'fp8', blockSize: [bs[0] as number, bs[1] as number] };
  }
  throw new HfQuantError(`${where}: quantization_config.quant_method ${JSON.stringify(m)} is not supported (expected one of ${QUANT_METHODS.map((x) => `"${x}"`).join(', ')}, which moekit dequantises at load time)`);
}

/** A checkpoint as stored: element types and raw bytes (a Checkpoint). */
export interface RawTensorSource extends TensorSource {
  info(name: string): { readonly dtype: StDType; readonly shape: readonly number[] };
  readBytes(name: string): Promise<Uint8Array>;
  /** the file holding a tensor, for error messages */
  fileOf?(name: string): string;
}

export interface DequantOptions {
  /** FP8 tile (rows, cols) of `weight_scale_inv`; default [128, 128] */
  fp8Block?: readonly [number, number];
  /**
   * MXFP4 expert stacks (blocks (E, out, in/32, 16)) presented as (E, in, out), as transformers keeps gpt-oss's experts
   * (`is_transposed`: gate_up_proj (E, H, 2I), down_proj (E, I, H)); otherwise (E, out, in) as for every other model.
   */
  mxfp4ExpertsInOut?: boolean;
}

/** Architectures whose MXFP4 expert stacks transformers presents as (E, in, out). */
export const MXFP4_IN_OUT_ARCHS: ReadonlySet<string> = new Set(['gpt_oss']);

const FP8_VALUES: { [D in StDType]?: Float32Array } = { F8_E4M3: E4M3_VALUES, F8_E5M2: E5M2_VALUES };
const BLOCKS = '_blocks';
const SCALES = '_scales';
const SCALE_INV = '_scale_inv';
const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;
const count = (s: readonly number[]): number => s.reduce((a, d) => a * d, 1);

type Plan =
  | { kind: 'raw'; shape: readonly number[] }
  | { kind: 'mxfp4'; shape: readonly number[]; blocks: string; scales: string; lead: number; rows: number; cols: number; transpose: boolean }
  | { kind: 'fp8'; shape: readonly number[]; scale: string; values: Float32Array; n: number; rows: number; cols: number };

/**
 * The tensors of a checkpoint under their dequantised (in-memory) names, shapes and float32 values: `X` for
 * `X_blocks` + `X_scales` (MXFP4, two E2M1 codes per byte, low nibble first, one E8M0 exponent per 32 values) and `W`
 * for an F8_E4M3 / F8_E5M2 `W` with `W_scale_inv` (one factor per tile; `W.weight` pairs with `W.weight_scale_inv`).
 * The quantised parts never appear in `names()`; every other tensor passes through.
 */
export class DequantSource implements TensorSource {
  private readonly logical = new Map<string, string | null>(); // logical name -> its MXFP4 blocks tensor (or null)
  private readonly hidden = new Set<string>();

  constructor(
    readonly raw: RawTensorSource,
    private readonly opts: DequantOptions = {},
  ) {
    const all = new Set(raw.names());
    for (const n of all) {
      // `X_blocks` is MXFP4 when `X_scales` exists, or when it holds bytes (then a missing `X_scales` is an error)
      if (n.endsWith(BLOCKS) && (all.has(n.slice(0, -BLOCKS.length) + SCALES) || raw.info(n).dtype === 'U8')) {
        const x = n.slice(0, -BLOCKS.length);
        if (all.has(x)) throw new HfQuantError(`${this.where(n)}: checkpoint has both "${x}" and its MXFP4 blocks "${n}" (expected one of them)`);
        this.logical.set(x, n);
        if (all.has(x + SCALES)) this.hidden.add(x + SCALES);
      } else if (n.endsWith(SCALE_INV) && all.has(n.slice(0, -SCALE_INV.length)) && FP8_VALUES[raw.info(n.slice(0, -SCALE_INV.length)).dtype]) {
        this.hidden.add(n); // consumed by its FP8 weight (beside a weight of another dtype it stays visible, unused)
      }
    }
    const blockNames = new Set(this.logical.values());
    for (const n of all) if (!blockNames.has(n) && !this.hidden.has(n)) this.logical.set(n, null);
  }

  private where(name: string): string {
    return this.raw.fileOf?.(name) ?? 'checkpoint';
  }

  has(name: string): boolean {
    return this.logical.has(name);
  }
  names(): Iterable<string> {
    return this.logical.keys();
  }
  shape(name: string): readonly number[] {
    return this.plan(name).shape;
  }

  /** How `name` is read, its quantised parts checked against each other (dtypes and shapes). */
  private plan(name: string): Plan {
    const blocks = this.logical.get(name);
    if (blocks === undefined) throw new HfQuantError(`checkpoint has no tensor "${name}"`);
    if (blocks !== null) return this.mxfp4Plan(name, blocks);
    const info = this.raw.info(name);
    const values = FP8_VALUES[info.dtype];
    if (!values) return { kind: 'raw', shape: info.shape };
    const scale = name + SCALE_INV;
    const what = `${this.where(name)}: FP8 tensor "${name}" (${info.dtype} ${fmt(info.shape)})`;
    if (!this.raw.has(scale)) throw new HfQuantError(`${what} has no "${scale}" (expected its block scales)`);
    if (info.shape.length < 2) throw new HfQuantError(`${what} must have at least 2 dimensions (rows, cols) to be block-scaled`);
    const [bR, bC] = this.opts.fp8Block ?? FP8_DEFAULT_BLOCK;
    const rows = info.shape.at(-2)!;
    const cols = info.shape.at(-1)!;
    const want = [...info.shape.slice(0, -2), ...fp8ScaleGrid(rows, cols, bR, bC)];
    const s = this.raw.info(scale);
    if (s.shape.length !== want.length || s.shape.some((d, i) => d !== want[i])) {
      throw new HfQuantError(`${this.where(scale)}: "${scale}" has shape ${fmt(s.shape)}, expected ${fmt(want)}: ceil(${rows}/${bR}) x ceil(${cols}/${bC}) tiles of "${name}" ${fmt(info.shape)} (weight_block_size [${bR}, ${bC}])`);
    }
    return { kind: 'fp8', shape: info.shape, scale, values, n: count(info.shape.slice(0, -2)), rows, cols };
  }

  private mxfp4Plan(name: string, blocks: string): Plan {
    const b = this.raw.info(blocks);
    const what = `${this.where(blocks)}: MXFP4 blocks "${blocks}" (${b.dtype} ${fmt(b.shape)})`;
    if (b.dtype !== 'U8') throw new HfQuantError(`${what} must be U8 (two E2M1 codes per byte)`);
    if (b.shape.length < 3 || b.shape.at(-1) !== MXFP4_BLOCK_BYTES) {
      throw new HfQuantError(`${what} must have shape [..., rows, groups, ${MXFP4_BLOCK_BYTES}] (${MXFP4_BLOCK_BYTES} bytes = ${MXFP4_BLOCK_VALUES} FP4 values per group)`);
    }
    const scales = name + SCALES;
    if (!this.raw.has(scales)) throw new HfQuantError(`${what} has no "${scales}" (expected its E8M0 exponents, shape ${fmt(b.shape.slice(0, -1))})`);
    const s = this.raw.info(scales);
    const want = b.shape.slice(0, -1);
    if (s.dtype !== 'U8' && s.dtype !== 'F8_E8M0') throw new HfQuantError(`${this.where(scales)}: MXFP4 scales "${scales}" has dtype ${s.dtype}, expected U8 or F8_E8M0 (E8M0 exponents)`);
    if (s.shape.length !== want.length || s.shape.some((d, i) => d !== want[i])) {
      throw new HfQuantError(`${this.where(scales)}: MXFP4 scales "${scales}" has shape ${fmt(s.shape)}, expected ${fmt(want)} (one per block of "${blocks}" ${fmt(b.shape)})`);
    }
    const rows = b.shape.at(-3)!;
    const cols = b.shape.at(-2)! * MXFP4_BLOCK_VALUES;
    const lead = b.shape.slice(0, -3);
    const transpose = lead.length === 1 && (this.opts.mxfp4ExpertsInOut ?? false);
    return { kind: 'mxfp4', shape: transpose ? [...lead, cols, rows] : [...lead, rows, cols], blocks, scales, lead: count(lead), rows, cols, transpose };
  }

  /** bf16/f16 of a tensor stored plainly in that dtype (a quantised tensor is null: it is dequantised to f32) */
  halfDtype(name: string): 'bf16' | 'f16' | null {
    return this.plan(name).kind === 'raw' ? halfOfStDType(this.raw.info(name).dtype) : null;
  }
  async readHalf(name: string): Promise<Uint16Array> {
    if (!this.halfDtype(name)) throw new HfQuantError(`${this.where(name)}: tensor "${name}" is not stored as BF16 or F16`);
    return u16Words(await this.raw.readBytes(name));
  }

  /** The block format `name` is kept in as stored: MXFP4, or FP8 E4M3 whose tiles' columns divide its rows (FP8 E5M2
   *  and ragged tiles are read dequantised); null for every other tensor. */
  packedFormat(name: string): BlockFormat | null {
    const p = this.plan(name);
    if (p.kind === 'mxfp4') return 'mxfp4';
    if (p.kind === 'fp8' && p.values === E4M3_VALUES && p.cols % (this.opts.fp8Block ?? FP8_DEFAULT_BLOCK)[1] === 0) return 'fp8';
    return null;
  }

  async readPacked(name: string): Promise<PackedData> {
    const p = this.plan(name);
    const format = this.packedFormat(name);
    if (p.kind === 'mxfp4') {
      const codes = await this.raw.readBytes(p.blocks); // (lead, rows, G, 16) = (lead, rows, cols/2)
      const scales = await this.raw.readBytes(p.scales); // (lead, rows, G)
      const what = `${this.where(p.blocks)}: MXFP4 tensor "${name}" (from "${p.blocks}" and "${p.scales}")`;
      for (let g = 0; g < scales.length; g++) {
        if (scales[g]! < 0xfe) continue;
        // 0xFF is NaN; 2^127 takes the codes of magnitude 2 and above past float32
        const bad = scales[g] === 0xff || codes.subarray(g * MXFP4_BLOCK_BYTES, (g + 1) * MXFP4_BLOCK_BYTES).some((b) => (b & 7) >= 4 || ((b >> 4) & 7) >= 4);
        if (bad) throw new HfQuantError(`${what} dequantises to non-finite values in block ${g} (scale 0x${scales[g]!.toString(16)}) (expected scales that keep weights within float32)`);
      }
      return { format: 'mxfp4', shape: [...p.shape.slice(0, -2), p.rows, p.cols], codes, scales, groupSize: MXFP4_BLOCK_VALUES };
    }
    if (p.kind !== 'fp8' || format !== 'fp8') throw new HfQuantError(`${this.where(name)}: tensor "${name}" is not stored in a block format moekit keeps (MXFP4, or FP8 E4M3 with whole tiles across its columns)`);
    const [bR, bC] = this.opts.fp8Block ?? FP8_DEFAULT_BLOCK;
    const codes = await this.raw.readBytes(name); // (n, rows, cols)
    const grid = await this.raw.readF32(p.scale); // (n, gR, gC)
    const [gR, gC] = fp8ScaleGrid(p.rows, p.cols, bR, bC);
    const what = `${this.where(name)}: FP8 tensor "${name}" times "${p.scale}"`;
    for (let i = 0; i < codes.length; i++) if ((codes[i]! & 0x7f) === 0x7f) throw new HfQuantError(`${what} has the NaN code 0x${codes[i]!.toString(16)} at flat index ${i} (expected finite weights)`);
    for (let i = 0; i < grid.length; i++) if (!Number.isFinite(grid[i]! * 448)) throw new HfQuantError(`${what} has the scale ${grid[i]} at flat index ${i}, which takes weights beyond float32 (expected scales that keep weights within float32)`);
    const scales = new Float32Array(p.n * p.rows * gC); // (n, rows, cols / bC): each tile's factor on each of its rows
    for (let m = 0; m < p.n; m++) for (let r = 0; r < p.rows; r++) scales.set(grid.subarray((m * gR + Math.floor(r / bR)) * gC, (m * gR + Math.floor(r / bR) + 1) * gC), (m * p.rows + r) * gC);
    return { format: 'fp8', shape: p.shape, codes, scales, groupSize: bC };
  }

  async readF32(name: string): Promise<Float32Array> {
    const p = this.plan(name);
    switch (p.kind) {
      case 'raw':
        return this.raw.readF32(name);
      case 'mxfp4': {
        const x = dequantMxfp4(await this.raw.readBytes(p.blocks), await this.raw.readBytes(p.scales)); // (lead, rows, cols)
        checkFinite(x, `${this.where(p.blocks)}: MXFP4 tensor "${name}" (from "${p.blocks}" and "${p.scales}")`);
        return p.transpose ? transposeLast2(x, p.lead, p.rows, p.cols) : x;
      }
      case 'fp8': {
        const [blockRows, blockCols] = this.opts.fp8Block ?? FP8_DEFAULT_BLOCK;
        const codes = await this.raw.readBytes(name); // (n, rows, cols)
        const x = dequantFp8Blocks(codes, p.values, await this.raw.readF32(p.scale), { n: p.n, rows: p.rows, cols: p.cols, blockRows, blockCols });
        checkFinite(x, `${this.where(name)}: FP8 tensor "${name}" times "${p.scale}"`);
        return x;
      }
      default:
        return p satisfies never;
    }
  }
}

/** Dequantised values overflowing float32 (a huge scale) are an error naming the tensor, how many and the first. */
function checkFinite(x: Float32Array, what: string): void {
  let bad = 0;
  let first = -1;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!) && bad++ === 0) first = i;
  if (bad > 0) throw new HfQuantError(`${what} dequantises to ${bad} non-finite value${bad === 1 ? '' : 's'} among ${x.length}, the first at flat index ${first} (expected scales that keep weights within float32)`);
}

/** A source reading `raw` dequantised, set up for a checkpoint's quantisation and architecture. */
export function dequantSource(raw: RawTensorSource, quant: HfQuantization | null, arch: string): DequantSource {
  return new DequantSource(raw, { fp8Block: quant?.method === 'fp8' ? quant.blockSize : FP8_DEFAULT_BLOCK, mxfp4ExpertsInOut: MXFP4_IN_OUT_ARCHS.has(arch) });
}

/**
 * How `moekit info` counts a stored tensor: `skip` for quantisation parts that are not parameters (MXFP4 `_scales`
 * beside their `_blocks`, FP8 `_scale_inv` beside their weight), `mxfp4` for blocks (two parameters per byte).
 */
export function quantRole(name: string, has: (n: string) => boolean): 'skip' | 'mxfp4' | null {
  if (name.endsWith(BLOCKS) && has(name.slice(0, -BLOCKS.length) + SCALES)) return 'mxfp4';
  if (name.endsWith(SCALES) && has(name.slice(0, -SCALES.length) + BLOCKS)) return 'skip';
  if (name.endsWith(SCALE_INV) && has(name.slice(0, -SCALE_INV.length))) return 'skip';
  return null;
}
