// Hugging Face gpt_oss (GptOssForCausalLM) <-> moekit: its config.json keys, and its tensor names and layouts: attention
// sinks, biased router (mlp.router.*), experts with biases whose gate and up columns are interleaved in gate_up_proj.
import type { ModelConfig, ModelConfigInput } from '../config.js';

type Raw = Record<string, unknown>;

/** What hf/config.ts lends the reader: typed key readers that throw naming the key, value and expectation. */
export interface GptOssKeys {
  where: string;
  raw: Raw;
  int(key: string): number | undefined;
  num(key: string): number | undefined;
  bool(key: string): boolean | undefined;
  fail(message: string): never;
}

/** transformers' GptOssConfig defaults for keys config.json may leave out. */
export const GPT_OSS_DEFAULTS = {
  ropeTheta: 150000, normEps: 1e-5, slidingWindow: 128, attentionBias: true, swigluLimit: 7, swigluAlpha: 1.702,
  /** rope_parameters when config.json has none */
  rope: { rope_type: 'yarn', factor: 32, beta_fast: 32, beta_slow: 1, truncate: false, original_max_position_embeddings: 4096 },
} as const;

const LAYER_TYPES = ['sliding_attention', 'full_attention'] as const;

/**
 * Fills `c` (holding the common keys: sizes, heads, RoPE, eps, token ids) with gpt_oss's: experts of width
 * intermediate_size with biases and the clamped SwiGLU (swiglu_limit, swiglu_alpha), a biased router whose top-k
 * logits are softmaxed (= softmax top-k renormalised), q/k/v/o biases (attention_bias), sinks, and sliding windows on
 * the layers layer_types names (default: even layers). `explicit` says which common keys config.json gave.
 */
export function gptOssFromHf(r: GptOssKeys, c: ModelConfigInput, explicit: { ropeTheta: boolean; normEps: boolean }): void {
  const d = GPT_OSS_DEFAULTS;
  const I = r.int('intermediate_size');
  if (I === undefined || I < 1) r.fail(`"intermediate_size" = ${JSON.stringify(r.raw.intermediate_size)}: expected a positive integer`);
  const bias = r.bool('attention_bias') ?? d.attentionBias;
  Object.assign(c, {
    expertWidth: I, renormalize: true, qkvBias: bias, attnOutBias: bias, attnSinks: true,
    routerBias: true, expertBias: true, expertAct: 'swiglu-oai',
    swigluLimit: r.num('swiglu_limit') ?? d.swigluLimit, swigluAlpha: r.num('swiglu_alpha') ?? d.swigluAlpha,
  } satisfies ModelConfigInput);
  if (!explicit.ropeTheta) c.ropeTheta = d.ropeTheta;
  if (!explicit.normEps) c.normEps = d.normEps;
  const layers = c.layers as number;
  const rawTypes = r.raw.layer_types;
  let types: readonly string[];
  if (rawTypes === undefined || rawTypes === null) types = Array.from({ length: layers }, (_, l) => LAYER_TYPES[l % 2]!);
  else {
    if (!Array.isArray(rawTypes) || rawTypes.length !== layers) r.fail(`"layer_types" = ${JSON.stringify(rawTypes)}: expected a list of num_hidden_layers = ${layers} strings`);
    const bad = (rawTypes as unknown[]).find((t) => !LAYER_TYPES.includes(t as (typeof LAYER_TYPES)[number]));
    if (bad !== undefined) r.fail(`"layer_types" has ${JSON.stringify(bad)}: expected "sliding_attention" or "full_attention"`);
    types = rawTypes as string[];
  }
  const w = r.raw.sliding_window === null ? 0 : (r.int('sliding_window') ?? d.slidingWindow);
  const sliding = types.flatMap((t, l) => (t === 'sliding_attention' ? [l] : []));
  if (w > 0 && sliding.length > 0) {
    c.slidingWindow = w;
    c.slidingLayers = sliding;
  }
}

/** Checks that a config is a gpt_oss model and writes its keys into `out` (the common ones are already there). */
export function gptOssToHf(cfg: ModelConfig, out: Raw, fail: (message: string) => never): void {
  const want: [string, unknown, unknown][] = [
    ['renormalize', cfg.renormalize, true], ['attnSinks', cfg.attnSinks, true], ['routerBias', cfg.routerBias, true],
    ['expertBias', cfg.expertBias, true], ['expertAct', cfg.expertAct, 'swiglu-oai'], ['attnOutBias', cfg.attnOutBias, cfg.qkvBias],
    ['sharedWidth', cfg.sharedWidth, 0], ['denseLayers', cfg.denseLayers.length, 0], ['qkNorm', cfg.qkNorm, 'none'], ['clipQkv', cfg.clipQkv, undefined],
  ];
  for (const [key, got, expected] of want) {
    if (got !== expected) fail(`toHfConfig: gpt_oss needs ${key} = ${JSON.stringify(expected)} (got ${JSON.stringify(got)})`);
  }
  const sl = cfg.slidingWindow > 0 ? (cfg.slidingLayers ?? Array.from({ length: cfg.layers }, (_, l) => l)) : [];
  Object.assign(out, {
    num_local_experts: cfg.experts, intermediate_size: cfg.expertWidth, attention_bias: cfg.qkvBias,
    layer_types: Array.from({ length: cfg.layers }, (_, l) => (sl.includes(l) ? 'sliding_attention' : 'full_attention')),
    sliding_window: cfg.slidingWindow > 0 ? cfg.slidingWindow : (out.sliding_window ?? GPT_OSS_DEFAULTS.slidingWindow),
  });
  delete out.num_experts;
  // transformers 5.17 hard-codes the clamp and gain: write them only when they differ (a newer transformers reads them)
  if (cfg.swigluLimit !== GPT_OSS_DEFAULTS.swigluLimit) out.swiglu_limit = cfg.swigluLimit;
  if (cfg.swigluAlpha !== GPT_OSS_DEFAULTS.swigluAlpha) out.swiglu_alpha = cfg.swigluAlpha;
}

// ---- tensors ----

/** The gpt_oss name of a moekit parameter outside the experts: the router is `mlp.router.{weight,bias}` (moekit `mlp.gate.*`). */
export const gptOssName = (name: string): string => name.replace(/^(model\.layers\.\d+\.mlp)\.gate\.(weight|bias)$/, '$1.router.$2');

/** The layer of a moekit expert parameter (gate_proj, up_proj, down_proj and their _bias), or null for any other. */
export function gptOssExpertLayer(name: string): number | null {
  const m = /^model\.layers\.(\d+)\.mlp\.experts\.(gate_proj|up_proj|down_proj)(_bias)?$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** moekit's six expert tensors of a layer, by parameter name: gate/up (E, H, I), down (E, I, H), biases (E, I), (E, I), (E, H). */
export type GptOssExperts = Record<string, { data: Float32Array; shape: number[] }>;

/** (R, 2C) with columns interleaved [a0, b0, a1, b1, ...] -> a (R, C), b (R, C) (transformers' gate_up[..., ::2], [..., 1::2]). */
export function deinterleave(src: Float32Array, R: number, C: number): [Float32Array, Float32Array] {
  const a = new Float32Array(R * C);
  const b = new Float32Array(R * C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      a[r * C + c] = src[r * 2 * C + 2 * c]!;
      b[r * C + c] = src[r * 2 * C + 2 * c + 1]!;
    }
  }
  return [a, b];
}

/** a (R, C), b (R, C) -> (R, 2C) with their columns interleaved. */
function interleave(a: Float32Array, b: Float32Array, R: number, C: number): Float32Array {
  const out = new Float32Array(R * 2 * C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      out[r * 2 * C + 2 * c] = a[r * C + c]!;
      out[r * 2 * C + 2 * c + 1] = b[r * C + c]!;
    }
  }
  return out;
}

/**
 * Layer l's experts from gpt_oss tensors (`read(name, shape)` checks the shape): gate_up_proj [E, H, 2I] (gate in the
 * even columns, up in the odd ones), gate_up_proj_bias [E, 2I], down_proj [E, I, H], down_proj_bias [E, H] — the
 * layout transformers keeps in memory and saves (MXFP4 checkpoints: as their dequantising source presents them).
 */
export async function readGptOssExperts(l: number, E: number, H: number, I: number, read: (name: string, shape: readonly number[]) => Promise<Float32Array>): Promise<GptOssExperts> {
  const p = `model.layers.${l}.mlp.experts`;
  const [gate, up] = deinterleave(await read(`${p}.gate_up_proj`, [E, H, 2 * I]), E * H, I); // (E, H, I) each
  const [gateBias, upBias] = deinterleave(await read(`${p}.gate_up_proj_bias`, [E, 2 * I]), E, I); // (E, I) each
  return {
    [`${p}.gate_proj`]: { data: gate, shape: [E, H, I] },
    [`${p}.up_proj`]: { data: up, shape: [E, H, I] },
    [`${p}.down_proj`]: { data: await read(`${p}.down_proj`, [E, I, H]), shape: [E, I, H] },
    [`${p}.gate_proj_bias`]: { data: gateBias, shape: [E, I] },
    [`${p}.up_proj_bias`]: { data: upBias, shape: [E, I] },
    [`${p}.down_proj_bias`]: { data: await read(`${p}.down_proj_bias`, [E, H]), shape: [E, H] },
  };
}

/** Layer l's experts as gpt_oss tensors; `values(name)` gives a moekit expert parameter's data (null: leave it out). */
export function gptOssExpertTensors(l: number, E: number, H: number, I: number, values: (name: string) => Float32Array | null): { name: string; shape: number[]; data: Float32Array }[] {
  const p = `model.layers.${l}.mlp.experts`;
  const v = (n: string): Float32Array | null => values(`${p}.${n}`);
  const out: { name: string; shape: number[]; data: Float32Array }[] = [];
  const [gate, up, gb, ub, down, db] = [v('gate_proj'), v('up_proj'), v('gate_proj_bias'), v('up_proj_bias'), v('down_proj'), v('down_proj_bias')];
  if (gate || up) out.push({ name: `${p}.gate_up_proj`, shape: [E, H, 2 * I], data: interleave(gate ?? new Float32Array(E * H * I), up ?? new Float32Array(E * H * I), E * H, I) });
  if (gb || ub) out.push({ name: `${p}.gate_up_proj_bias`, shape: [E, 2 * I], data: interleave(gb ?? new Float32Array(E * I), ub ?? new Float32Array(E * I), E, I) });
  if (down) out.push({ name: `${p}.down_proj`, shape: [E, I, H], data: down });
  if (db) out.push({ name: `${p}.down_proj_bias`, shape: [E, H], data: db });
  return out;
}
