// Size limits of model configs: absurd sizes (a typo'd vocab_size of 1e12) are refused, naming the key, before anything is allocated.

/** The config keys that sizes are computed from (moekit's names; `SizeNames` maps them to a file's own key names). */
export type SizeKey = 'vocabSize' | 'hidden' | 'layers' | 'heads' | 'kvHeads' | 'headDim' | 'maxSeqLen' | 'experts' | 'expertWidth' | 'sharedWidth' | 'denseWidth' | 'denseLayerWidth';
export type SizeNames = Readonly<Record<SizeKey, string>>;

/** The fields sizes are computed from (a parsed ModelConfig has them all). */
export interface SizeFields {
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  maxSeqLen: number;
  experts: number;
  expertWidth: number;
  topK: number;
  ffn?: 'moe' | 'dense' | 'clustered';
  sharedWidth?: number;
  denseWidth?: number | undefined;
  denseLayers?: readonly number[];
  denseLayerWidth?: number | undefined;
  tieEmbeddings?: boolean;
}

/** moekit's own key names. */
export const MOEKIT_SIZE_NAMES: SizeNames = {
  vocabSize: 'vocabSize', hidden: 'hidden', layers: 'layers', heads: 'heads', kvHeads: 'kvHeads', headDim: 'headDim', maxSeqLen: 'maxSeqLen',
  experts: 'experts', expertWidth: 'expertWidth', sharedWidth: 'sharedWidth', denseWidth: 'denseWidth', denseLayerWidth: 'denseLayerWidth',
};

/**
 * Elements of the largest tensor a config may describe, in the reference layout (transformers 5 stores a layer's
 * experts as one [E, 2I, H] tensor): 2^37 ≈ 1.4e11. The largest such tensor of a released model is ~1.1e10
 * (Kimi K2's fused experts: 384 × 4096 × 7168; DeepSeek-V3's is 7.5e9).
 */
export const MAX_TENSOR_ELEMENTS = 2 ** 37;
/** Parameters a config may describe: 2^44 ≈ 1.8e13 (the largest released MoEs have ~1e12: DeepSeek-V3 6.7e11, Kimi K2 1.0e12). */
export const MAX_MODEL_PARAMS = 2 ** 44;
/** Token positions and ids are int32. */
export const MAX_POSITIONS = 2 ** 31 - 1;
/** Elements one typed array holds (V8, Node >= 20: 2^32); moekit keeps each tensor in one, so this bounds what it can build. */
export const MAX_TYPED_ARRAY_ELEMENTS = 2 ** 32;

const sci = (n: number): string => n.toExponential(1).replace('e+', 'e');
const pow2 = (n: number): string => (n === MAX_POSITIONS ? '2^31-1' : `2^${Math.log2(n)}`);

interface Term {
  /** e.g. "an embedding" */
  what: string;
  /** the keys multiplied, and a constant factor */
  keys: SizeKey[];
  times?: number;
}

function widths(c: SizeFields): { moe: boolean; denseW: number; denseLayerW: number } {
  const ffn = c.ffn ?? 'moe';
  const moe = ffn !== 'dense' && (c.denseLayers?.length ?? 0) < c.layers;
  const denseW = ffn === 'dense' ? (c.denseWidth ?? c.topK * c.expertWidth + (c.sharedWidth ?? 0)) : 0;
  const denseLayerW = ffn !== 'dense' && (c.denseLayers?.length ?? 0) > 0 ? (c.denseLayerWidth ?? c.denseWidth ?? c.topK * c.expertWidth + (c.sharedWidth ?? 0)) : 0;
  return { moe, denseW, denseLayerW };
}

/** The largest tensors of a config; `stacked` adds moekit's own layout (a layer's experts as (E, H, I)). */
function terms(c: SizeFields, stacked: boolean): Term[] {
  const { moe, denseW, denseLayerW } = widths(c);
  const t: Term[] = [
    { what: 'an embedding', keys: ['vocabSize', 'hidden'] },
    { what: 'a query projection', keys: ['heads', 'headDim', 'hidden'] },
    { what: 'a key/value projection', keys: ['kvHeads', 'headDim', 'hidden'] },
  ];
  if (moe) {
    t.push({ what: 'a router', keys: ['experts', 'hidden'] });
    t.push(stacked ? { what: 'a stacked expert tensor (E, H, I)', keys: ['experts', 'hidden', 'expertWidth'] } : { what: 'a fused expert tensor [E, 2I, H]', keys: ['experts', 'expertWidth', 'hidden'], times: 2 });
    if ((c.sharedWidth ?? 0) > 0) t.push({ what: 'a shared expert matrix', keys: ['sharedWidth', 'hidden'] });
  }
  if (denseW > 0) t.push({ what: 'a dense FFN matrix', keys: [c.denseWidth !== undefined ? 'denseWidth' : 'expertWidth', 'hidden'] });
  if (denseLayerW > 0) t.push({ what: 'a dense layer FFN matrix', keys: [c.denseLayerWidth !== undefined ? 'denseLayerWidth' : 'expertWidth', 'hidden'] });
  return t;
}

const valueOf = (c: SizeFields, k: SizeKey): number => (c as unknown as Record<SizeKey, number | undefined>)[k] ?? 0;

function check(c: SizeFields, names: SizeNames, list: Term[], limit: number, unit: string): string | null {
  for (const term of list) {
    const n = term.keys.reduce((a, k) => a * valueOf(c, k), term.times ?? 1);
    if (n <= limit) continue;
    const worst = term.keys.reduce((a, k) => (valueOf(c, k) > valueOf(c, a) ? k : a));
    const factors = [...(term.times ? [String(term.times)] : []), ...term.keys.map((k) => `${names[k]} ${valueOf(c, k)}`)].join(' × ');
    return `${names[worst]} ${valueOf(c, worst)} gives ${term.what} of ${sci(n)} elements (${factors}), above the limit of ${pow2(limit)} (${sci(limit)}) ${unit}`;
  }
  return null;
}

/** Parameters a config describes, roughly (weights only; norms and biases left out). */
export function approxParams(c: SizeFields): { perLayer: number; total: number } {
  const { hidden: H, experts: E, expertWidth: I, heads, kvHeads, headDim: D, layers: L } = c;
  const { moe, denseW, denseLayerW } = widths(c);
  const nDense = c.ffn === 'dense' ? L : (c.denseLayers?.length ?? 0);
  const attn = H * D * (2 * heads + 2 * kvHeads);
  const moeFfn = moe ? E * H + 3 * E * H * I + 3 * H * (c.sharedWidth ?? 0) : 0;
  const ffn = ((L - nDense) * moeFfn + nDense * 3 * H * (c.ffn === 'dense' ? denseW : denseLayerW)) / L;
  const perLayer = attn + ffn;
  return { perLayer, total: (c.tieEmbeddings === false ? 2 : 1) * c.vocabSize * H + L * perLayer };
}

/**
 * The first absurd size of a config, in words naming the key (by `names`: moekit's, or the file's own such as
 * config.json's vocab_size), or null: a tensor above MAX_TENSOR_ELEMENTS, a model above MAX_MODEL_PARAMS, a
 * maxSeqLen above MAX_POSITIONS. Real models pass with a wide margin (DeepSeek-V3, Kimi K2).
 */
export function sizeProblem(c: SizeFields, names: SizeNames = MOEKIT_SIZE_NAMES): string | null {
  const t = check(c, names, terms(c, false), MAX_TENSOR_ELEMENTS, 'elements per tensor');
  if (t) return t;
  if (c.maxSeqLen > MAX_POSITIONS) return `${names.maxSeqLen} ${c.maxSeqLen} is above the limit of 2^31-1 positions (token positions are int32)`;
  if (c.vocabSize > MAX_POSITIONS) return `${names.vocabSize} ${c.vocabSize} is above the limit of 2^31-1 token ids (ids are int32)`;
  const p = approxParams(c);
  if (p.total > MAX_MODEL_PARAMS) {
    return `${names.layers} ${c.layers} × about ${sci(p.perLayer)} parameters per layer (+ embeddings) gives about ${sci(p.total)} parameters, above the limit of ${pow2(MAX_MODEL_PARAMS)} (${sci(MAX_MODEL_PARAMS)}) parameters per model`;
  }
  return null;
}

/**
 * The first tensor moekit would build for this config that one typed array cannot hold (MAX_TYPED_ARRAY_ELEMENTS),
 * in words naming the key, or null. Checked before a model is allocated, so the error names the key instead of
 * "Invalid typed array length".
 */
export function allocationProblem(c: SizeFields, names: SizeNames = MOEKIT_SIZE_NAMES): string | null {
  const t = check(c, names, terms(c, true), MAX_TYPED_ARRAY_ELEMENTS, 'elements one typed array holds (moekit keeps each tensor in one)');
  return t;
}
