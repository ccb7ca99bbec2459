// Option parsing shared by the commands: numbers from strings, with errors naming the flag and the value.

/** An integer option: `fallback` when absent; below `min` (default 0) is an error naming the flag. */
export function intOption(name: string, v: string | undefined, fallback: number, min = 0): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    const what = min === 0 ? 'a non-negative integer' : min === 1 ? 'a positive integer' : `an integer >= ${min}`;
    throw new Error(`--${name} must be ${what}, got "${v}"`);
  }
  return n;
}

/** A positive finite number option. */
export function numOption(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got "${v}"`);
  return n;
}

/** --load-dtype: how a Hugging Face checkpoint's BF16/F16 weights are loaded. */
export const LOAD_DTYPE_HELP = 'auto (keep BF16/F16 Linear and expert weights as stored: half the memory of f32) | f32 (widen every weight)';

/** The --load-dtype option: 'auto' or 'f32'. */
export function loadDtypeOption(v: string | undefined): 'auto' | 'f32' {
  if (v === undefined || v === 'auto' || v === 'f32') return v ?? 'auto';
  throw new Error(`--load-dtype must be auto or f32, got "${v}"`);
}
