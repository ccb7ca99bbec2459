// The closed op set: every operation a backend implements, with its typed parameters and its contract.
import type { DType } from './dtype.js';

/** Weight formats moekit quantises to (Quantize): symmetric int8 / int4 with f16 scales per group of a row. */
export type QuantFormat = 'int8' | 'int4';
/**
 * Block-scaled formats of quantised checkpoints, read (never written) by the quantised ops: 'mxfp4' (OCP MX FP4:
 * E2M1 codes two per byte, low nibble first, one E8M0 exponent byte per 32 values; gpt-oss) and 'fp8' (E4M3FN codes,
 * one byte each, with an f32 factor per group of a row; DeepSeek-V3's block-scaled `weight_scale_inv`).
 */
export type BlockFormat = 'mxfp4' | 'fp8';
/** Formats with per-group scales (data + scales), the ones Dequantize reads. */
export type ScaledFormat = QuantFormat | BlockFormat;
/** Formats a quantised matmul reads on the fly. */
export type WeightFormat = ScaledFormat | 'f16' | 'bf16';
export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

/**
 * Every op. Shapes use one symbol set: B batch, T tokens, H hidden, I expert width, E experts,
 * K top-k (or the inner matmul size where stated), G groups, R rank, V vocab, D head dim.
 * All float tensors are f32 unless stated; index tensors are i32.
 */
export enum Op {
  // elementwise binary with numpy broadcasting: (a, b) -> broadcast(a, b)
  Add = 'add',
  Sub = 'sub',
  Mul = 'mul',
  Div = 'div',
  Pow = 'pow',
  Maximum = 'maximum',
  /** (a, b) -> f32 mask of 0/1 */
  Compare = 'compare',
  /** (cond, a, b) -> a where cond != 0 else b, all broadcast */
  Where = 'where',
  // elementwise unary
  Neg = 'neg',
  Abs = 'abs',
  Exp = 'exp',
  Log = 'log',
  Sqrt = 'sqrt',
  Rsqrt = 'rsqrt',
  Sigmoid = 'sigmoid',
  Tanh = 'tanh',
  Silu = 'silu',
  Gelu = 'gelu',
  /** (x, dy) -> dx for Gelu */
  GeluGrad = 'gelu_grad',
  // reductions over axes
  Sum = 'sum',
  Mean = 'mean',
  Max = 'max',
  LogSumExp = 'logsumexp',
  /** -> i32 index of the first maximum */
  Argmax = 'argmax',
  Softmax = 'softmax',
  LogSoftmax = 'log_softmax',
  /** x (..., N) -> [values (..., k), indices i32 (..., k)], descending, ties to the lower index */
  TopK = 'topk',
  /** x (..., N), idx i32 (..., k) -> (..., k) = x[..., idx] */
  TakeAlong = 'take_along',
  /** src (..., k), idx i32 (..., k) -> (..., width) zeros with src added at idx */
  ScatterAlong = 'scatter_along',
  // layout
  Reshape = 'reshape',
  Transpose = 'transpose',
  Slice = 'slice',
  Concat = 'concat',
  Pad = 'pad',
  /** table (N, ...rest), idx i32 (...) -> (..., ...rest): rows of table (embedding lookup) */
  Gather = 'gather',
  /** src (M, ...rest), idx i32 (M) -> (rows, ...rest): zeros with src rows added at idx (duplicates add) */
  ScatterAdd = 'scatter_add',
  Cast = 'cast',
  /**
   * data + scales (N, K/groupSize) -> f32 (N, K). int8: data i8 (N, K), scales f16; int4: u8 (N, K/2) low nibble
   * first, scales f16; mxfp4: u8 (N, K/2) E2M1 low nibble first, scales u8 E8M0, groupSize 32; fp8: u8 (N, K) E4M3FN,
   * scales f32.
   */
  Dequantize = 'dequantize',
  /** w f32 (N, K) -> [data, scales f16]: symmetric, scale = max|w| / qmax per group */
  Quantize = 'quantize',
  // linear algebra
  /** a (...b, M, K), b (...b, K, N) or (K, N), optional bias (N) -> (...b, M, N) */
  Matmul = 'matmul',
  /** x (T, K) rows sorted by expert, w (E, K, N) [(E, N, K) if transW], offsets i32 (E+1) -> (T, N) */
  GroupedMatmul = 'grouped_matmul',
  /** x (T, K), dy (T, N), offsets i32 (E+1) -> dW (E, K, N) [(E, N, K) if transW] */
  GroupedMatmulWeightGrad = 'grouped_matmul_weight_grad',
  /** x (M, K), w (N, K) stored in `format` (f16/bf16 bits, or data + scales as for Dequantize) -> (M, N) = x·Wᵀ */
  QuantMatmul = 'quant_matmul',
  /**
   * ids i32 (T, K) -> [order i32 (N), tokens i32 (N), offsets i32 (E+1)], N = T·K: the routing slots (t·K + k)
   * sorted by expert, stable; the token of each sorted slot; expert e owns sorted rows offsets[e]..offsets[e+1].
   * The device-side form of the host binning (dropless), for backends that do not read synchronously
   */
  ExpertBins = 'expert_bins',
  // fused MoE inference ops (no gradient: training composes the ops above)
  /**
   * logits (T, E)[, bias (E)] -> [weights (T, K), ids i32 (T, K)]: p = softmax(logits), selection score s = p + bias
   * (bias 0 when absent); the top `topGroups` of `groups` contiguous expert groups by Σ s of their members, then the
   * top K experts inside them by s (descending, ties to the lower index); weights = p (unbiased) of the chosen experts,
   * divided by their sum when `renormalize`
   */
  RouteTopK = 'route_topk',
  /**
   * x (T, H), ids i32 (T, K), weights (T, K), gate (E, H, I), up (E, H, I), down (E, I, H) -> y (T, H) =
   * Σ_k weights[t, k]·(silu(x·gate_e)⊙(x·up_e))·down_e with e = ids[t, k]
   */
  MoeFfn = 'moe_ffn',
  /**
   * x (T, H), ids i32 (T, K), weights (T, K), bases gate (G, H, I), up (G, H, I), down (G, I, H), factors gateA (E, H, R),
   * gateB (E, R, I), upA (E, H, R), upB (E, R, I), downA (E, I, R), downB (E, R, H) -> y (T, H): the MoeFfn of the
   * experts W̃_e = base_{⌊e/(E/G)⌋} + A_e·B_e, with x·base computed once per (token, group) pair. The three bases are
   * f32, or all three f16 (the inference form: FP16 bases read and widened in the kernel); the factors are f32
   */
  ClusteredFfn = 'clustered_ffn',
  // fused neural-network ops
  /** x (..., H), w (H) -> x / rms(x) * w */
  RMSNorm = 'rms_norm',
  /** x, w, dy -> [dx, dw] */
  RMSNormGrad = 'rms_norm_grad',
  /** x (B, T, nH, D), positions i32 (T) or (B, T), invFreq f32 (R/2) with R <= D -> rotated x */
  RoPE = 'rope',
  /** q (B, T, Hq, D), k (B, S, Hkv, D), v (B, S, Hkv, Dv) -> [o (B, T, Hq, Dv), lse (B, Hq, T)] */
  Attention = 'attention',
  /** q, k, v, o, lse, dO -> [dq, dk, dv] */
  AttentionGrad = 'attention_grad',
  /**
   * Attention of several sequences in one call, each over its own slot of a KV pool (continuous batching): q (N, Hq, D),
   * k (P, C, Hkv, D), v (P, C, Hkv, Dv), seqs i32 (B, 4) -> [o (N, Hq, Dv), lse (N, Hq)]. Row b of seqs is
   * [qStart, rows, slot, length]: query rows qStart..qStart+rows-1 belong to a sequence whose keys are rows
   * 0..length-1 of that slot, the queries being its last `rows` positions (length - rows + i), causal, with the
   * sliding window; rows no sequence claims give o = 0 and lse = -Infinity. Inference only (no gradient)
   */
  RaggedAttention = 'ragged_attention',
  /** logits (N, V), targets i32 (N) -> [loss (N) (0 where ignored), lse (N)] */
  CrossEntropy = 'cross_entropy',
  /** logits, targets, lse, dloss (N) -> dlogits (N, V) */
  CrossEntropyGrad = 'cross_entropy_grad',
}

export const ALL_OPS: readonly Op[] = Object.values(Op);

type NoParams = Record<string, never>;
export interface ReduceParams {
  /** axes to reduce (negative counts from the end); empty = all axes */
  axes: number[];
  keepDims: boolean;
}
export interface AttentionParams {
  /** key j is visible to query i only if j <= i + (S - T) */
  causal: boolean;
  /** sliding window: query i sees keys with (i + S - T) - j < window; 0 = unlimited */
  window: number;
  /** multiplies q·k; usually 1/sqrt(D) */
  scale: number;
}

/** The typed parameter record of every op. */
export interface OpParams {
  [Op.Add]: NoParams;
  [Op.Sub]: NoParams;
  [Op.Mul]: NoParams;
  [Op.Div]: NoParams;
  [Op.Pow]: NoParams;
  [Op.Maximum]: NoParams;
  [Op.Compare]: { cmp: CompareOp };
  [Op.Where]: NoParams;
  [Op.Neg]: NoParams;
  [Op.Abs]: NoParams;
  [Op.Exp]: NoParams;
  [Op.Log]: NoParams;
  [Op.Sqrt]: NoParams;
  [Op.Rsqrt]: NoParams;
  [Op.Sigmoid]: NoParams;
  [Op.Tanh]: NoParams;
  [Op.Silu]: NoParams;
  [Op.Gelu]: { approximate: 'none' | 'tanh' };
  [Op.GeluGrad]: { approximate: 'none' | 'tanh' };
  [Op.Sum]: ReduceParams;
  [Op.Mean]: ReduceParams;
  [Op.Max]: ReduceParams;
  [Op.LogSumExp]: { axis: number; keepDims: boolean };
  [Op.Argmax]: { axis: number; keepDims: boolean };
  [Op.Softmax]: { axis: number };
  [Op.LogSoftmax]: { axis: number };
  [Op.TopK]: { k: number };
  [Op.TakeAlong]: NoParams;
  [Op.ScatterAlong]: { width: number };
  [Op.Reshape]: { shape: number[] };
  [Op.Transpose]: { perm: number[] };
  [Op.Slice]: { begin: number[]; size: number[] };
  [Op.Concat]: { axis: number };
  [Op.Pad]: { pads: [number, number][]; value: number };
  [Op.Gather]: NoParams;
  [Op.ScatterAdd]: { rows: number };
  [Op.Cast]: { dtype: DType };
  [Op.Dequantize]: { format: ScaledFormat; groupSize: number };
  [Op.Quantize]: { format: QuantFormat; groupSize: number };
  [Op.Matmul]: { transA: boolean; transB: boolean };
  [Op.GroupedMatmul]: { transW: boolean };
  [Op.GroupedMatmulWeightGrad]: { transW: boolean };
  [Op.QuantMatmul]: { format: WeightFormat; groupSize: number };
  [Op.ExpertBins]: { experts: number };
  [Op.RouteTopK]: { k: number; groups: number; topGroups: number; renormalize: boolean };
  [Op.MoeFfn]: NoParams;
  [Op.ClusteredFfn]: NoParams;
  [Op.RMSNorm]: { eps: number };
  [Op.RMSNormGrad]: { eps: number };
  [Op.RoPE]: { interleaved: boolean; inverse: boolean };
  [Op.Attention]: AttentionParams;
  [Op.AttentionGrad]: AttentionParams;
  [Op.RaggedAttention]: { window: number; scale: number };
  [Op.CrossEntropy]: { ignoreIndex: number };
  [Op.CrossEntropyGrad]: { ignoreIndex: number };
}

/** The shape and dtype of a tensor, as shape inference sees it. */
export interface TensorInfo {
  readonly shape: readonly number[];
  readonly dtype: DType;
}
