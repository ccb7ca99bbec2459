// What `moekit plan` reads: expert loads [L][E] from a JSON matrix, an `analyse --json` report, or a routing trace
// (.safetensors, .npy, .jsonl: tokens per expert counted), and earlier plans.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { checkLoads } from '../plan/eplb.js';
import { expertsOf, layerCounts } from '../trace/stats.js';
import type { RoutingTrace } from '../trace/types.js';
import { loadTrace } from './analyse.js';

export interface Loads {
  loads: number[][];
  /** the trace, when the loads came from one */
  trace?: RoutingTrace;
  what: string;
}

/** [L][E] loads of a trace: tokens per expert per layer. */
export function traceLoads(t: RoutingTrace, experts?: number): number[][] {
  const E = expertsOf(t, experts);
  const c = layerCounts(t, E);
  return Array.from({ length: t.L }, (_, l) => Array.from(c.subarray(l * E, (l + 1) * E)));
}

/** Loads from FILE: a trace by extension, else JSON — a [L][E] array or an `analyse --json` object (`layers[].counts`). */
export function readLoads(file: string, experts?: number): Loads {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.safetensors' || ext === '.npy' || ext === '.jsonl') {
    const trace = loadTrace(file, experts);
    return { loads: traceLoads(trace, experts), trace, what: `${file} (${trace.N} tokens counted)` };
  }
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`--loads ${file}: not a trace (.safetensors, .npy, .jsonl) and not readable JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  let loads: unknown = j;
  if (j !== null && typeof j === 'object' && !Array.isArray(j)) {
    const layers = (j as { layers?: unknown }).layers;
    if (!Array.isArray(layers)) throw new Error(`--loads ${file}: a JSON object must be an \`analyse --json\` report with layers[].counts; expected that or a [layers][experts] array`);
    loads = layers.map((l: unknown, i) => {
      const c = (l as { counts?: unknown } | null)?.counts;
      if (!Array.isArray(c)) throw new Error(`--loads ${file}: layers[${i}] has no counts array`);
      return c;
    });
  }
  checkLoads(loads as number[][], `--loads ${file}`);
  if (experts !== undefined && (loads as number[][])[0]!.length !== experts) {
    throw new Error(`--loads ${file} has ${(loads as number[][])[0]!.length} experts per layer but --experts is ${experts}`);
  }
  return { loads: loads as number[][], what: file };
}
