// Learning-rate schedules: linear warm-up then cosine decay to a floor.

export interface CosineSchedule {
  /** peak learning rate reached at the end of warm-up */
  peak: number;
  /** steps of linear warm-up from peak / warmup to peak */
  warmup: number;
  /** total steps; after it the rate stays at `floor` */
  total: number;
  /** final learning rate, default peak / 10 (Chinchilla, LLaMA) */
  floor?: number;
}

/** Learning rate for update `step` (0-based). */
export function cosineLr(s: CosineSchedule, step: number): number {
  const floor = s.floor ?? s.peak / 10;
  if (s.warmup > 0 && step < s.warmup) return (s.peak * (step + 1)) / s.warmup;
  const span = Math.max(1, s.total - s.warmup);
  const progress = Math.min(1, (step - s.warmup) / span);
  return floor + 0.5 * (s.peak - floor) * (1 + Math.cos(Math.PI * progress));
}
