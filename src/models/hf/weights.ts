// Hugging Face tensor names and layouts <-> MoELM parameters, for both expert layouts: legacy per-expert tensors
// (`experts.E.gate_proj.weight` [I, H], Mixtral `w1/w3/w2`) and the fused transformers-5 tensors
// (`experts.gate_up_proj` [E, 2I, H], `experts.down_proj` [E, H, I]).
import type { MoELM } from '../moe-lm.js';
import { canReadSync, tensor } from '../../tensor/api.js';
import { isKept, logicalShape, widenWeight } from '../../nn/packed.js';
import { noGrad } from '../../tensor/engine.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { HfArch } from './config.js';
import type { TensorSource } from './source.js';
import { keptForm, loadKeptExperts, readKeptLinear, type KeptForm } from './kept.js';
import { gptOssExpertLayer, gptOssExpertTensors, gptOssName, readGptOssExperts } from './gpt-oss.js';

export type { TensorSource } from './source.js';

export type ExpertLayout = 'legacy' | 'fused';

export class HfWeightsError extends Error {
  override name = 'HfWeightsError';
}

/** Parameters that are Linear weights (attention, dense and shared MLP projections, lm_head): kept in bf16/f16. */
const LINEAR_WEIGHT = /(?:^lm_head|_proj|_proj_with_mqa)\.weight$/;
/** Whether a loaded tensor of this (Hugging Face or moekit) name may stay as stored (`loadDtype: 'auto'`): Linear
 *  weights and routed-expert weights; norms, biases, routers and embeddings are widened to f32. */
export const keepsStorageDtype = (name: string): boolean => LINEAR_WEIGHT.test(name) || (name.includes('.experts.') && !/_bias$/.test(name));

const EXPERT_PARAM = /^model\.layers\.(\d+)\.mlp\.experts\.(gate_proj|up_proj|down_proj)$/;
const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;

/** Per-expert tensor names of layer l, in the architecture's on-disk (legacy) style. */
function legacyExpertNames(arch: HfArch, l: number, e: number): { gate: string; up: string; down: string } {
  if (arch === 'mixtral') {
    const p = `model.layers.${l}.block_sparse_moe.experts.${e}`;
    return { gate: `${p}.w1.weight`, up: `${p}.w3.weight`, down: `${p}.w2.weight` };
  }
  const p = `model.layers.${l}.mlp.experts.${e}`;
  return { gate: `${p}.gate_proj.weight`, up: `${p}.up_proj.weight`, down: `${p}.down_proj.weight` };
}

/** Architectures whose routers keep e_score_correction_bias in the checkpoint and name shared experts `shared_experts`. */
const deepseekStyle = (arch: HfArch): boolean => arch === 'glm4_moe' || arch === 'deepseek_v3';

/** The HF name of a non-expert parameter (Mixtral's router lives in block_sparse_moe on disk; DeepSeek-style
 *  checkpoints call the shared expert `shared_experts`). */
function hfName(arch: HfArch, name: string, layout: ExpertLayout): string {
  if (arch === 'gpt_oss') return gptOssName(name);
  if (arch === 'mixtral' && layout === 'legacy') {
    const m = /^model\.layers\.(\d+)\.mlp\.gate\.weight$/.exec(name);
    if (m) return `model.layers.${m[1]}.block_sparse_moe.gate.weight`;
  }
  if (deepseekStyle(arch)) return name.replace(/^(model\.layers\.\d+\.mlp)\.shared_expert\./, '$1.shared_experts.');
  return name;
}


/** (R, C) row-major -> (C, R), written at out[offset..]. */
function transposeInto(src: Float32Array, srcOff: number, R: number, C: number, out: Float32Array, outOff: number): void {
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[outOff + c * R + r] = src[srcOff + r * C + c]!;
}

export interface LoadWeightsOptions {
  /** 'auto' (default): Linear and routed-expert weights stored as BF16/F16 stay in that dtype (half the memory of
   *  f32; computed with quantMatmul); 'f32': every tensor is widened to float32 (needed to train) */
  loadDtype?: LoadDtype;
}
export type LoadDtype = 'auto' | 'f32';

/**
 * Loads a checkpoint's weights into `model` (built from the checkpoint's config). Either expert layout is read,
 * whichever the source holds. A missing tensor or a shape mismatch is an error naming it. Returns the source's
 * tensors that were not used (transformers would warn about them).
 */
export async function loadHfWeights(model: MoELM, arch: HfArch, src: TensorSource, opts: LoadWeightsOptions = {}): Promise<{ unused: string[] }> {
  const used = new Set<string>();
  const resolve = (names: readonly string[], shape: readonly number[], what: string): string => {
    const name = names.find((n) => src.has(n));
    if (name === undefined) throw new HfWeightsError(`checkpoint has no tensor ${names.map((n) => `"${n}"`).join(' or ')} (${what})`);
    const s = src.shape(name);
    if (s.length !== shape.length || s.some((d, i) => d !== shape[i])) throw new HfWeightsError(`tensor "${name}" has shape ${fmt(s)}, expected ${fmt(shape)} (${what})`);
    used.add(name);
    return name;
  };
  const read = async (names: readonly string[], shape: readonly number[], what: string): Promise<Float32Array> => src.readF32(resolve(names, shape, what));
  const keep = (opts.loadDtype ?? 'auto') === 'auto';
  const keptOf = (name: string): KeptForm | null => (keep ? keptForm(src, name) : null);
  const { experts: E, hidden: H, expertWidth: I } = model.cfg;
  const set = (name: string, data: Float32Array, shape: readonly number[]): void => noGrad(() => model.setTensor(name, tensor(data, shape)));
  const doneLayers = new Set<number>();
  for (const [name, p] of model.parameters()) {
    const gl = arch === 'gpt_oss' ? gptOssExpertLayer(name) : null;
    if (gl !== null) {
      // gpt_oss: one layout on disk and in memory, gate and up interleaved in gate_up_proj, with biases
      if (doneLayers.has(gl)) continue;
      doneLayers.add(gl);
      if (keep && canReadSync() && (await loadKeptExperts(model, arch, gl, src, resolve, () => [[], [], []]))) continue;
      const ex = await readGptOssExperts(gl, E, H, I, (n, shape) => read([n], shape, `layer ${gl} experts`));
      for (const [n, t] of Object.entries(ex)) set(n, t.data, t.shape);
      continue;
    }
    const m = EXPERT_PARAM.exec(name);
    if (!m) {
      const candidates = [hfName(arch, name, 'legacy'), name];
      const hn = resolve([...new Set(candidates)], p.shape, `parameter ${name}`);
      const form = LINEAR_WEIGHT.test(name) ? keptOf(hn) : null;
      if (form) {
        const w = await readKeptLinear(src, hn, form, p.shape); // (out, in) as stored
        noGrad(() => model.setTensor(name, w));
      }
      else set(name, await src.readF32(hn), p.shape);
      continue;
    }
    const l = Number(m[1]);
    if (doneLayers.has(l)) continue;
    doneLayers.add(l);
    // kept experts run per expert segment with host-side offsets: on a backend that reads only asynchronously (webgpu)
    // they are widened, while kept Linear weights stay (quantMatmul runs there)
    const legacy = (e: number): [string[], string[], string[]] => {
      const n = legacyExpertNames(arch, l, e);
      const alt = arch === 'mixtral' ? legacyExpertNames('qwen2_moe', l, e) : n;
      return [[n.gate, alt.gate], [n.up, alt.up], [n.down, alt.down]];
    };
    if (keep && canReadSync() && (await loadKeptExperts(model, arch, l, src, resolve, legacy))) continue;
    const gate = new Float32Array(E * H * I); // (E, H, I)
    const up = new Float32Array(E * H * I); // (E, H, I)
    const down = new Float32Array(E * I * H); // (E, I, H)
    const prefixes = arch === 'mixtral' ? [`model.layers.${l}.mlp.experts`, `model.layers.${l}.block_sparse_moe.experts`] : [`model.layers.${l}.mlp.experts`];
    const fused = prefixes.find((pre) => src.has(`${pre}.gate_up_proj`));
    if (fused) {
      const gu = await read([`${fused}.gate_up_proj`], [E, 2 * I, H], `layer ${l} fused experts`); // (E, 2I, H)
      const dn = await read([`${fused}.down_proj`], [E, H, I], `layer ${l} fused experts`); // (E, H, I)
      for (let e = 0; e < E; e++) {
        transposeInto(gu, e * 2 * I * H, I, H, gate, e * H * I);
        transposeInto(gu, e * 2 * I * H + I * H, I, H, up, e * H * I);
        transposeInto(dn, e * H * I, H, I, down, e * I * H);
      }
    } else {
      for (let e = 0; e < E; e++) {
        const n = legacyExpertNames(arch, l, e);
        const alt = arch === 'mixtral' ? legacyExpertNames('qwen2_moe', l, e) : n;
        transposeInto(await read([n.gate, alt.gate], [I, H], `layer ${l} expert ${e} gate`), 0, I, H, gate, e * H * I);
        transposeInto(await read([n.up, alt.up], [I, H], `layer ${l} expert ${e} up`), 0, I, H, up, e * H * I);
        transposeInto(await read([n.down, alt.down], [H, I], `layer ${l} expert ${e} down`), 0, H, I, down, e * I * H);
      }
    }
    set(`model.layers.${l}.mlp.experts.gate_proj`, gate, [E, H, I]);
    set(`model.layers.${l}.mlp.experts.up_proj`, up, [E, H, I]);
    set(`model.layers.${l}.mlp.experts.down_proj`, down, [E, I, H]);
  }
  if (deepseekStyle(arch)) {
    // the correction bias is a buffer, not a parameter: read it where the checkpoint has it (zeros otherwise, as transformers)
    for (const [name, b] of model.selectionBiasBuffers()) if (src.has(name)) set(name, await read([name], b.shape, `buffer ${name}`), b.shape);
  }
  // DeepSeek-V3 / GLM-4.5 checkpoints append num_nextn_predict_layers multi-token-prediction layers after the last
  // decoder layer (model.layers.61.*, model.layers.92.*): transformers skips them, and so does moekit
  const mtp = (n: string): boolean => deepseekStyle(arch) && Number(/^model\.layers\.(\d+)\./.exec(n)?.[1] ?? -1) >= model.cfg.layers;
  const unused = [...src.names()].filter((n) => !used.has(n) && !/rotary_emb\.inv_freq$/.test(n) && !mtp(n));
  return { unused };
}

/** A parameter's (or its gradient's) values as f32 in the f32 layout: weights kept as stored (bf16/f16, MXFP4, FP8)
 *  widened, and kept routed experts (stored (E, N, K)) turned back to (E, K, N). */
export const parameterF32 = (name: string, t: Tensor): Float32Array => valuesF32(t, EXPERT_PARAM.test(name));

function valuesF32(t: Tensor, expert: boolean): Float32Array {
  if (!isKept(t)) return Float32Array.from(t.dataSync());
  const wide = widenWeight(t); // logical shape, f32
  const d = wide.dataSync();
  if (!expert) {
    const out = Float32Array.from(d);
    wide.dispose();
    return out;
  }
  const [E, N, K] = wide.shape as [number, number, number];
  const out = new Float32Array(d.length);
  for (let e = 0; e < E; e++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[e * K * N + k * N + n] = d[e * N * K + n * K + k]!;
  wide.dispose();
  return out;
}

/** One tensor in Hugging Face naming and layout. */
export interface HfTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * The model's tensors under Hugging Face names, in the architecture's layout: `legacy` (per-expert tensors, what
 * save_pretrained writes) or `fused` (transformers 5 in-memory names; also how its gradients are named).
 * `pick` chooses what to export of each parameter (default its values; e.g. `(p) => p.grad` for gradients).
 */
export function* hfTensors(model: MoELM, arch: HfArch, layout: ExpertLayout = 'legacy', pick: (p: Tensor) => Tensor | null = (p) => p): Generator<HfTensor> {
  const { experts: E, hidden: H, expertWidth: I } = model.cfg;
  const params = new Map(model.parameters());
  const values = (name: string): Float32Array | null => {
    const t = pick(params.get(name)!);
    return t ? valuesF32(t, EXPERT_PARAM.test(name)) : null;
  };
  const layersDone = new Set<number>();
  for (const [name, p] of params) {
    const gl = arch === 'gpt_oss' ? gptOssExpertLayer(name) : null;
    if (gl !== null) {
      // gpt_oss: the same names and layout in both expert layouts (transformers saves what it keeps in memory)
      if (!layersDone.has(gl)) yield* gptOssExpertTensors(gl, E, H, I, (n) => (params.has(n) ? values(n) : null));
      layersDone.add(gl);
      continue;
    }
    const m = EXPERT_PARAM.exec(name);
    if (!m) {
      const v = values(name);
      if (v) yield { name: hfName(arch, name, layout), shape: logicalShape(p), data: v };
      continue;
    }
    const l = Number(m[1]);
    if (layersDone.has(l)) continue;
    layersDone.add(l);
    const gate = values(`model.layers.${l}.mlp.experts.gate_proj`); // (E, H, I)
    const up = values(`model.layers.${l}.mlp.experts.up_proj`); // (E, H, I)
    const down = values(`model.layers.${l}.mlp.experts.down_proj`); // (E, I, H)
    if (layout === 'fused') {
      if (gate && up) {
        const gu = new Float32Array(E * 2 * I * H); // (E, 2I, H)
        for (let e = 0; e < E; e++) {
          transposeInto(gate, e * H * I, H, I, gu, e * 2 * I * H);
          transposeInto(up, e * H * I, H, I, gu, e * 2 * I * H + I * H);
        }
        yield { name: `model.layers.${l}.mlp.experts.gate_up_proj`, shape: [E, 2 * I, H], data: gu };
      }
      if (down) {
        const dn = new Float32Array(E * H * I); // (E, H, I)
        for (let e = 0; e < E; e++) transposeInto(down, e * I * H, I, H, dn, e * H * I);
        yield { name: `model.layers.${l}.mlp.experts.down_proj`, shape: [E, H, I], data: dn };
      }
      continue;
    }
    for (let e = 0; e < E; e++) {
      const n = legacyExpertNames(arch, l, e);
      for (const [w, key, R, C] of [[gate, 'gate', H, I], [up, 'up', H, I], [down, 'down', I, H]] as const) {
        if (!w) continue;
        const out = new Float32Array(R * C);
        transposeInto(w, e * R * C, R, C, out, 0);
        yield { name: n[key], shape: [C, R], data: out };
      }
    }
  }
  if (deepseekStyle(arch)) {
    for (const [name, b] of model.selectionBiasBuffers()) {
      const t = pick(b); // a buffer: no gradient
      if (t) yield { name, shape: [...b.shape], data: Float32Array.from(t.dataSync()) };
    }
  }
}
