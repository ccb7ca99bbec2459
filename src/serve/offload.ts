// Expert offloading for CPU inference of clustered models. Each (layer, group) is one unit: its FP16 bases and the
// INT4/INT8 factors of its experts. Units live in a safetensors file; at most `budgetBytes` of them are resident.
// A forward pass that routes tokens to a missing unit reads it by byte range (a stall, timed); when the budget
// would be exceeded the least recently used unit leaves, and units that saw no tokens for `idleSteps` forward
// passes leave on their own. Peak resident bytes, loads, evictions and stall time are recorded.
import fs from 'node:fs';
import { checkFinite, parseHeader, writeSafetensors, MAX_HEADER_BYTES, type StTensorIn, type StTensorInfo } from '../io/safetensors.js';
import type { MoELM } from '../models/moe-lm.js';
import { composedExperts, type ClusteredExpertsForm, type ClusteredExpertsResult, type ExpertMatmuls, type ExpertMatrix } from '../moe/clustered-ffn.js';
import { quantizeClustered, segmented, type QuantFactor } from '../moe/clustered-quant.js';
import { Module } from '../nn/module.js';
import { quantMatmul, tensor } from '../tensor/api.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import type { QuantFormat } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

const MATRICES: ExpertMatrix[] = ['gate', 'up', 'down'];

/** The layout of an offload file: per clustered layer its shape, and the format of the factors. */
interface OffloadLayout {
  format: QuantFormat;
  layers: { layer: number; G: number; E: number; H: number; I: number; r: number; groupSizes: Record<ExpertMatrix, [number, number]> }[];
}

/**
 * Writes the inference form (FP16 bases, INT4/INT8 factors) of every clustered layer of `model` to a safetensors
 * file, one contiguous byte range per (layer, group) unit. Returns the bytes of each unit.
 */
export async function writeOffloadFile(model: MoELM, file: string, opts: { format?: QuantFormat; groupSize?: number } = {}): Promise<{ unitBytes: number[][] }> {
  const blocks = model.clusteredBlocks();
  if (blocks.length === 0) throw new Error('writeOffloadFile: the model has no clustered MoE layers (ffn "clustered")');
  const format = opts.format ?? 'int4';
  const tensors: StTensorIn[] = [];
  const layout: OffloadLayout = { format, layers: [] };
  const unitBytes: number[][] = [];
  for (const [l, b] of blocks) {
    const qc = quantizeClustered(b.f32Experts('writeOffloadFile'), { format, ...(opts.groupSize ? { groupSize: opts.groupSize } : {}) });
    try {
      const { G, E, H, I, r } = qc;
      const M = E / G;
      const gsz = (m: ExpertMatrix): [number, number] => [qc.a[m][0]!.groupSize, qc.b[m][0]!.groupSize];
      layout.layers.push({ layer: l, G, E, H, I, r, groupSizes: { gate: gsz('gate'), up: gsz('up'), down: gsz('down') } });
      const bytesOf: number[] = [];
      for (let g = 0; g < G; g++) {
        let n = 0;
        const add = (name: string, t: Tensor): void => {
          const data = t.dataSync() as Uint16Array | Uint8Array | Int8Array;
          const dtype = t.dtype === 'f16' ? 'F16' : t.dtype === 'u8' ? 'U8' : t.dtype === 'i8' ? 'I8' : null;
          if (!dtype) throw new Error(`writeOffloadFile: unexpected ${t.dtype} tensor for ${name}`);
          tensors.push({ name, dtype, shape: t.shape, data });
          n += data.byteLength;
        };
        for (const m of MATRICES) add(`layers.${l}.group.${g}.${m}.base`, qc.bases[m][g]!);
        for (let e = g * M; e < (g + 1) * M; e++) {
          for (const m of MATRICES) {
            for (const [k, f] of [['a', qc.a[m][e]!], ['b', qc.b[m][e]!]] as const) {
              add(`layers.${l}.expert.${e}.${m}.${k}.data`, f.data);
              add(`layers.${l}.expert.${e}.${m}.${k}.scales`, f.scales);
            }
          }
        }
        bytesOf.push(n);
      }
      unitBytes.push(bytesOf);
    } finally {
      qc.dispose();
    }
  }
  await writeSafetensors(file, tensors, { format: 'pt', moekit: 'clustered-offload', layout: JSON.stringify(layout) });
  return { unitBytes };
}

export interface OffloadStats {
  budgetBytes: number;
  /** bytes of every unit together (what a fully resident model holds) */
  totalBytes: number;
  residentBytes: number;
  peakResidentBytes: number;
  /** unit reads from the file */
  loads: number;
  bytesRead: number;
  /** units dropped for the budget (LRU) and for idleness */
  evictions: number;
  idleEvictions: number;
  /** unit lookups that found the unit resident */
  hits: number;
  /** time spent reading and decoding units inside forward passes */
  stallMs: number;
  /** forward passes seen */
  steps: number;
}

interface Unit {
  layer: number;
  group: number;
  bytes: number;
  bases: Record<ExpertMatrix, Tensor>;
  /** per member expert (in order), per matrix: the A and B factors */
  factors: Record<ExpertMatrix, { a: QuantFactor; b: QuantFactor }>[];
  lastUsed: number;
  lastStep: number;
}

export interface OffloadOptions {
  /** resident bytes allowed for expert units (at least one unit per concurrently routed group) */
  budgetBytes: number;
  /** a unit that received no tokens for this many forward passes leaves (0: only the budget evicts); default 16 */
  idleSteps?: number;
}

/** Resident-budgeted expert store over an offload file; `attach` makes a model's clustered layers use it. */
export class ExpertStore {
  readonly file: string;
  readonly format: QuantFormat;
  readonly idleSteps: number;
  private fd: number;
  private infos: Map<string, StTensorInfo>;
  private layout: OffloadLayout;
  private units = new Map<string, Unit>();
  private unitRanges = new Map<string, { begin: number; end: number }>();
  private clock = 0;
  private detachers: (() => void)[] = [];
  readonly stats: OffloadStats;

  private constructor(file: string, fd: number, infos: Map<string, StTensorInfo>, layout: OffloadLayout, opts: OffloadOptions) {
    this.file = file;
    this.fd = fd;
    this.infos = infos;
    this.layout = layout;
    this.format = layout.format;
    this.idleSteps = opts.idleSteps ?? 16;
    if (!Number.isInteger(this.idleSteps) || this.idleSteps < 0) throw new RangeError(`ExpertStore: idleSteps = ${opts.idleSteps} must be an integer >= 0`);
    let total = 0;
    let largest = 0;
    for (const L of layout.layers) {
      for (let g = 0; g < L.G; g++) {
        const prefix = [`layers.${L.layer}.group.${g}.`, ...Array.from({ length: L.E / L.G }, (_, j) => `layers.${L.layer}.expert.${g * (L.E / L.G) + j}.`)];
        let begin = Infinity;
        let end = 0;
        let bytes = 0;
        for (const t of infos.values()) {
          if (!prefix.some((p) => t.name.startsWith(p))) continue;
          begin = Math.min(begin, t.begin);
          end = Math.max(end, t.end);
          bytes += t.end - t.begin;
        }
        if (bytes === 0 || end - begin !== bytes) throw new Error(`ExpertStore: ${file} has no contiguous unit for layer ${L.layer} group ${g}`);
        this.unitRanges.set(`${L.layer}/${g}`, { begin, end });
        total += bytes;
        largest = Math.max(largest, bytes);
      }
    }
    if (!(opts.budgetBytes >= largest)) throw new RangeError(`ExpertStore: budgetBytes = ${opts.budgetBytes} is below the largest unit (${largest} bytes, one group of one layer)`);
    this.stats = { budgetBytes: opts.budgetBytes, totalBytes: total, residentBytes: 0, peakResidentBytes: 0, loads: 0, bytesRead: 0, evictions: 0, idleEvictions: 0, hits: 0, stallMs: 0, steps: 0 };
  }

  /** Opens an offload file written by `writeOffloadFile` (reads only its header). */
  static open(file: string, opts: OffloadOptions): ExpertStore {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new Error(`ExpertStore: cannot open ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < 8) throw new Error(`ExpertStore: ${file} has ${size} bytes, not a safetensors file`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const len = lenBuf.readBigUInt64LE(0);
      if (len > BigInt(MAX_HEADER_BYTES) || 8n + len > BigInt(size)) throw new Error(`ExpertStore: ${file}: header length ${len} does not fit the file (${size} bytes)`);
      const hb = Buffer.alloc(Number(len));
      fs.readSync(fd, hb, 0, hb.length, 8);
      const { tensors, metadata } = parseHeader(hb.toString('utf8'), hb.length, size, file);
      if (metadata.moekit !== 'clustered-offload' || !metadata.layout) throw new Error(`ExpertStore: ${file} is not an offload file (write one with writeOffloadFile)`);
      return new ExpertStore(file, fd, new Map(tensors.map((t) => [t.name, t])), JSON.parse(metadata.layout) as OffloadLayout, opts);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private read(name: string): Uint8Array {
    const t = this.infos.get(name);
    if (!t) throw new Error(`ExpertStore: ${this.file} has no tensor "${name}"`);
    const out = new Uint8Array(t.end - t.begin);
    let done = 0;
    while (done < out.length) {
      const n = fs.readSync(this.fd, out, done, out.length - done, t.begin + done);
      if (n === 0) throw new Error(`ExpertStore: ${this.file} shrank while reading "${name}"`);
      done += n;
    }
    this.stats.bytesRead += out.length;
    return out;
  }

  /** One tensor of a unit, checked for NaN/Infinity, kept past the loading scope and recorded in `made`. */
  private tensorOf(name: string, made: Tensor[]): Tensor {
    const info = this.infos.get(name);
    if (!info) throw new Error(`ExpertStore: ${this.file} has no tensor "${name}"`);
    const bytes = this.read(name);
    checkFinite(bytes, info.dtype, `ExpertStore: ${this.file}: tensor "${name}" (${info.dtype} [${info.shape.join(', ')}])`);
    const buf = bytes.buffer;
    let t: Tensor;
    if (info.dtype === 'F16') t = tensor(new Uint16Array(buf, 0, bytes.length / 2), info.shape, 'f16');
    else if (info.dtype === 'U8') t = tensor(bytes, info.shape, 'u8');
    else if (info.dtype === 'I8') t = tensor(new Int8Array(buf), info.shape, 'i8');
    else throw new Error(`ExpertStore: tensor "${name}" has dtype ${info.dtype}, expected F16, U8 or I8`);
    made.push(keep(t));
    return t;
  }

  /** The resident unit of (layer, group), loaded (and others evicted) if needed. */
  unit(layer: number, group: number): Unit {
    const key = `${layer}/${group}`;
    const tick = ++this.clock;
    const have = this.units.get(key);
    if (have) {
      this.stats.hits++;
      have.lastUsed = tick;
      have.lastStep = this.stats.steps;
      return have;
    }
    const range = this.unitRanges.get(key);
    const L = this.layout.layers.find((x) => x.layer === layer);
    if (!range || !L) throw new Error(`ExpertStore: no unit for layer ${layer} group ${group} in ${this.file}`);
    const bytes = range.end - range.begin;
    while (this.stats.residentBytes + bytes > this.stats.budgetBytes) {
      let lru: Unit | null = null;
      for (const u of this.units.values()) if (!lru || u.lastUsed < lru.lastUsed) lru = u;
      this.drop(lru!);
      this.stats.evictions++;
    }
    const t0 = performance.now();
    const made: Tensor[] = []; // freed if the unit fails to load (e.g. a NaN in one of its tensors)
    let u: Unit;
    try {
      u = this.loadUnit(layer, group, L, bytes, tick, made);
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
    this.stats.stallMs += performance.now() - t0;
    this.stats.loads++;
    this.units.set(key, u);
    this.stats.residentBytes += bytes;
    this.stats.peakResidentBytes = Math.max(this.stats.peakResidentBytes, this.stats.residentBytes);
    return u;
  }

  private loadUnit(layer: number, group: number, L: OffloadLayout['layers'][number], bytes: number, tick: number, made: Tensor[]): Unit {
    const M = L.E / L.G;
    return noGrad(() => tidy(() => {
      const bases = {} as Record<ExpertMatrix, Tensor>;
      for (const m of MATRICES) bases[m] = this.tensorOf(`layers.${layer}.group.${group}.${m}.base`, made);
      const factors = Array.from({ length: M }, (_, j) => {
        const e = group * M + j;
        const f = {} as Record<ExpertMatrix, { a: QuantFactor; b: QuantFactor }>;
        for (const m of MATRICES) {
          const q = (k: 'a' | 'b', gs: number): QuantFactor => ({
            data: this.tensorOf(`layers.${layer}.expert.${e}.${m}.${k}.data`, made), scales: this.tensorOf(`layers.${layer}.expert.${e}.${m}.${k}.scales`, made), groupSize: gs,
          });
          f[m] = { a: q('a', L.groupSizes[m][0]), b: q('b', L.groupSizes[m][1]) };
        }
        return f;
      });
      return { layer, group, bytes, bases, factors, lastUsed: tick, lastStep: this.stats.steps };
    }));
  }

  private drop(u: Unit): void {
    for (const m of MATRICES) {
      u.bases[m].dispose();
      for (const f of u.factors) for (const q of [f[m].a, f[m].b]) {
        q.data.dispose();
        q.scales.dispose();
      }
    }
    this.units.delete(`${u.layer}/${u.group}`);
    this.stats.residentBytes -= u.bytes;
  }

  /** Marks the start of a forward pass; units idle for more than `idleSteps` passes leave the fast tier. */
  tick(): void {
    this.stats.steps++;
    if (this.idleSteps === 0) return;
    for (const u of [...this.units.values()]) {
      if (this.stats.steps - u.lastStep > this.idleSteps) {
        this.drop(u);
        this.stats.idleEvictions++;
      }
    }
  }

  /** Which units are resident now, as [layer, group]. */
  resident(): [number, number][] {
    return [...this.units.values()].map((u) => [u.layer, u.group]);
  }

  /** The ExpertMatmuls of one clustered layer, served from this store. */
  matmuls(layer: number): ExpertMatmuls {
    const L = this.layout.layers.find((x) => x.layer === layer);
    if (!L) throw new Error(`ExpertStore: layer ${layer} is not a clustered layer of ${this.file} (it has ${this.layout.layers.map((x) => x.layer).join(', ')})`);
    const M = L.E / L.G;
    const outDim = (m: ExpertMatrix): number => (m === 'down' ? L.H : L.I);
    const qmm = (x: Tensor, f: QuantFactor): Tensor => quantMatmul(x, f.data, f.scales, this.format, f.groupSize);
    return {
      base: (x, m, off) => segmented(x, off, outDim(m), (seg, g) => quantMatmul(seg, this.unit(layer, g).bases[m], null, 'f16')),
      lowRank: (x, m, off) => segmented(x, off, outDim(m), (seg, e) => {
        const f = this.unit(layer, Math.floor(e / M)).factors[e % M]![m];
        return qmm(qmm(seg, f.a), f.b);
      }),
    };
  }

  /** One clustered layer's experts served from this store, as an experts module (`ClusteredMoEBlock.setExperts`). */
  experts(layer: number): OffloadedClusteredExperts {
    const L = this.layout.layers.find((x) => x.layer === layer);
    if (!L) throw new Error(`ExpertStore: layer ${layer} is not a clustered layer of ${this.file} (it has ${this.layout.layers.map((x) => x.layer).join(', ')})`);
    return new OffloadedClusteredExperts(L, this.matmuls(layer));
  }

  /**
   * Makes every clustered layer of `model` multiply through this store, and counts its forward passes (for
   * idle eviction). `detach` restores the FP32 path.
   */
  attach(model: MoELM): void {
    this.detach();
    const blocks = model.clusteredBlocks();
    for (const [l, b] of blocks) {
      const L = this.layout.layers.find((x) => x.layer === l);
      if (!L || L.E !== b.cfg.experts || L.G !== b.cfg.groups || L.H !== b.cfg.hidden || L.I !== b.cfg.expertWidth || L.r !== b.cfg.rank) {
        throw new Error(`ExpertStore.attach: layer ${l} of the model (E=${b.cfg.experts}, G=${b.cfg.groups}, H=${b.cfg.hidden}, I=${b.cfg.expertWidth}, r=${b.cfg.rank}) does not match ${this.file}`);
      }
      const prev = b.setExperts(this.experts(l));
      this.detachers.push(() => void b.setExperts(prev));
    }
    const forward = model.forward;
    model.forward = (...args: Parameters<MoELM['forward']>) => {
      this.tick();
      return forward.apply(model, args);
    };
    this.detachers.push(() => (model.forward = forward));
  }

  detach(): void {
    for (const d of this.detachers.reverse()) d();
    this.detachers = [];
  }

  /** Drops every resident unit and closes the file. */
  close(): void {
    this.detach();
    for (const u of [...this.units.values()]) this.drop(u);
    fs.closeSync(this.fd);
  }
}

/** A clustered layer's experts in their inference form, multiplied through an `ExpertStore` (units read on demand). */
export class OffloadedClusteredExperts extends Module implements ClusteredExpertsForm {
  readonly form = 'offloaded';
  readonly G: number;
  readonly E: number;
  readonly H: number;
  readonly I: number;
  readonly r: number;
  readonly #matmuls: ExpertMatmuls;
  constructor(dims: { G: number; E: number; H: number; I: number; r: number }, matmuls: ExpertMatmuls) {
    super();
    ({ G: this.G, E: this.E, H: this.H, I: this.I, r: this.r } = dims);
    this.#matmuls = matmuls;
  }
  run(xt: Tensor, ids: Tensor, weights: Tensor, opts: { inputSums?: boolean } = {}): ClusteredExpertsResult {
    return composedExperts(xt, ids, weights, this, this.#matmuls, opts.inputSums ?? false);
  }
}
