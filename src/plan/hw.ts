// The hardware and model figures the expert-parallel simulator prices a step with: a GPU's dense FLOP/s, HBM and link
// bandwidths and GPUs per node (a JSON hardware file), and the expert dimensions (hidden size, expert width, bytes per
// weight and per dispatched element). Every figure is checked, and an error names the field and what it must be.

/** A hardware file (hw/h200.json is the default): one GPU's figures and the node size. */
export interface Hardware {
  name: string;
  /** dense BF16 FLOP/s of one GPU */
  flops: number;
  /** HBM bytes/s of one GPU */
  hbm_bytes_per_s: number;
  /** NVLink bytes/s of one GPU, one direction */
  nvlink_bytes_per_s: number;
  /** RDMA (InfiniBand) bytes/s of one GPU, one direction */
  rdma_bytes_per_s: number;
  /** GPUs per node (NVLink domain) */
  gpus_per_node: number;
}

const NUMERIC = ['flops', 'hbm_bytes_per_s', 'nvlink_bytes_per_s', 'rdma_bytes_per_s', 'gpus_per_node'] as const;
export const HW_FIELDS = ['name', ...NUMERIC] as const;

/** Checks a parsed hardware file: every field present, positive finite numbers, gpus_per_node an integer, no unknown field. */
export function parseHardware(json: unknown, what = 'hardware file'): Hardware {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${what}: expected a JSON object with fields ${HW_FIELDS.join(', ')}`);
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(HW_FIELDS as readonly string[]).includes(k)) throw new Error(`${what}: unknown field "${k}"; expected only ${HW_FIELDS.join(', ')}`);
  }
  if (typeof o.name !== 'string' || o.name === '') throw new Error(`${what}: "name" must be a non-empty string, got ${JSON.stringify(o.name)}`);
  for (const k of NUMERIC) {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`${what}: "${k}" must be a positive finite number, got ${JSON.stringify(v)}`);
  }
  if (!Number.isInteger(o.gpus_per_node)) throw new Error(`${what}: "gpus_per_node" must be a positive integer, got ${JSON.stringify(o.gpus_per_node)}`);
  return o as unknown as Hardware;
}

/** Format of the dispatched activations: bf16 (2 bytes per element), or fp8 (1 byte + one float32 scale per 128 elements, as DeepEP). */
export type DispatchFormat = 'bf16' | 'fp8';

/** The expert dimensions the simulator needs. */
export interface ModelDims {
  /** H: hidden size (width of a dispatched token) */
  hidden: number;
  /** I: width of one routed expert (gate and up project H -> I, down I -> H) */
  expertWidth: number;
  /** bytes per expert weight (2 for bf16, 1 for fp8, 0.5 for int4) */
  weightBytes: number;
  /** format of the dispatched activations; the combine always returns bf16 */
  dispatch: DispatchFormat;
}

/** Checks model dims: H and I positive integers, weightBytes a positive number. */
export function checkDims(d: ModelDims): ModelDims {
  if (!Number.isInteger(d.hidden) || d.hidden < 1) throw new Error(`hidden size must be a positive integer, got ${d.hidden}`);
  if (!Number.isInteger(d.expertWidth) || d.expertWidth < 1) throw new Error(`expert width must be a positive integer, got ${d.expertWidth}`);
  if (!Number.isFinite(d.weightBytes) || d.weightBytes <= 0) throw new Error(`bytes per weight must be a positive number, got ${d.weightBytes}`);
  if (d.dispatch !== 'bf16' && d.dispatch !== 'fp8') throw new Error(`dispatch format must be bf16 or fp8, got ${String(d.dispatch)}`);
  return d;
}

/** Bytes of one token sent by dispatch: 2·H in bf16; H + 4·⌈H/128⌉ in fp8 (the float32 scale of each 128-element block). */
export const dispatchTokenBytes = (d: ModelDims): number => (d.dispatch === 'bf16' ? 2 * d.hidden : d.hidden + 4 * Math.ceil(d.hidden / 128));

/** Bytes of one token returned by combine: 2·H (bf16). */
export const combineTokenBytes = (d: ModelDims): number => 2 * d.hidden;

/** FLOPs of one token through one expert: gate, up and down projections, 2 FLOPs per multiply-add: 2·3·H·I. */
export const expertTokenFlops = (d: ModelDims): number => 6 * d.hidden * d.expertWidth;

/** Bytes of one expert's weights: 3·H·I·weightBytes. */
export const expertWeightBytes = (d: ModelDims): number => 3 * d.hidden * d.expertWidth * d.weightBytes;

/**
 * The default hardware (hw/h200.json holds the same figures): NVIDIA H200 SXM, 989 TFLOP/s dense BF16, 4.8 TB/s HBM3e,
 * NVLink 4 at 900 GB/s bidirectional (450 GB/s per direction), one ConnectX-7 400 Gb/s InfiniBand port per GPU
 * (50 GB/s), 8 GPUs per node (HGX H200).
 */
export const H200: Hardware = {
  name: 'NVIDIA H200 SXM (8 per node, NVLink 4, ConnectX-7 400 Gb/s per GPU)',
  flops: 989e12,
  hbm_bytes_per_s: 4.8e12,
  nvlink_bytes_per_s: 450e9,
  rdma_bytes_per_s: 50e9,
  gpus_per_node: 8,
};
