// config.json as transformers writes it: JSON with 2-space indents, where float-typed fields keep a decimal point.
// JSON.parse loses "0.0" (it becomes 0), and transformers' strict config classes refuse an int for a float field
// (`router_jitter_noise` expected float, got int), so the writer restores the type from the field's name.

/**
 * Fields that transformers' MoE config classes type as float (or float | None), at the top level or inside
 * rope_parameters / rope_scaling. Values of these that are whole numbers are written as `0.0`, `10000.0`.
 */
export const HF_FLOAT_FIELDS: ReadonlySet<string> = new Set([
  'attention_dropout', 'hidden_dropout', 'embedding_dropout', 'resid_pdrop', 'embd_pdrop', 'attn_pdrop',
  'initializer_range', 'rms_norm_eps', 'layer_norm_eps', 'norm_eps',
  'router_aux_loss_coef', 'router_jitter_noise', 'router_z_loss_coef', 'routed_scaling_factor', 'clip_qkv',
  'partial_rotary_factor', 'rope_theta', 'factor', 'beta_fast', 'beta_slow', 'mscale', 'mscale_all_dim',
  'attention_factor', 'low_freq_factor', 'high_freq_factor', 'swiglu_limit',
]);

function value(v: unknown, key: string | null, indent: string): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`config.json: "${key}" is ${v}, which JSON cannot hold`);
    const s = JSON.stringify(v);
    return key !== null && HF_FLOAT_FIELDS.has(key) && Number.isInteger(v) && !/[eE.]/.test(s) ? `${s}.0` : s;
  }
  if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => `${inner}${value(x, key, inner)}`).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${value(x, k, inner)}`).join(',\n')}\n${indent}}`;
}

/** `config` as config.json text (with a final newline), float fields typed as floats. */
export function hfConfigJson(config: Record<string, unknown>): string {
  return `${value(config, null, '')}\n`;
}
