// Plan files: moekit's own JSON (the Plan object, every field checked on reading) and SGLang's expert-location JSON
// (write only; engines.ts has the format). Written atomically, so a reader never sees half a plan.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../io/safetensors.js';
import { sglangExpertLocation, type SglangLayout } from './engines.js';
import type { Plan } from './types.js';

export type PlanFormat = 'moekit' | 'sglang';

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

const posInt = (o: Record<string, unknown>, k: string, what: string): number => {
  const v = o[k];
  if (!Number.isInteger(v) || (v as number) < 1) throw new Error(`${what}: ${k} = ${show(v)}; expected a positive integer`);
  return v as number;
};

const intArray = (v: unknown, field: string, len: number, lo: number, hi: number, what: string): number[] => {
  if (!Array.isArray(v)) throw new Error(`${what}: ${field} = ${show(v)}; expected an array of ${len} integers`);
  if (v.length !== len) throw new Error(`${what}: ${field} has ${v.length} entries; expected ${len}`);
  v.forEach((x, i) => {
    if (!Number.isInteger(x) || x < lo || x >= hi) throw new Error(`${what}: ${field}[${i}] = ${show(x)}; expected an integer in [${lo}, ${hi})`);
  });
  return v as number[];
};

/**
 * Checks that `obj` is a complete, self-consistent plan and returns it typed. Errors name the field, the value and what
 * was expected: positive integer sizes with gpus | replicas and nodes | gpus; phy2log [L][replicas] with entries in
 * [0, E); logcnt [L][E] equal to each expert's slot count in phy2log (so ≥ 1: every expert has a slot); log2phy
 * [L][E][maxcount], maxcount the largest logcnt, each row the expert's slots (each once) then −1 padding. Keys beyond
 * these are ignored, so later versions can add fields.
 */
export function parsePlan(obj: unknown, what = 'plan'): Plan {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new Error(`${what}: expected a JSON object (a moekit plan), got ${show(obj)}`);
  const o = obj as Record<string, unknown>;
  if ('physical_to_logical_map' in o && !('phy2log' in o)) {
    throw new Error(`${what}: this is SGLang's expert-location format (physical_to_logical_map), not a moekit plan; it has no gpus, replicas or log2phy`);
  }
  for (const k of ['policy', 'gpus', 'nodes', 'groups', 'replicas', 'phy2log', 'log2phy', 'logcnt']) {
    if (!(k in o)) throw new Error(`${what}: no ${k} field`);
  }
  if (typeof o.policy !== 'string' || o.policy === '') throw new Error(`${what}: policy = ${show(o.policy)}; expected a non-empty string`);
  const gpus = posInt(o, 'gpus', what), nodes = posInt(o, 'nodes', what), groups = posInt(o, 'groups', what), R = posInt(o, 'replicas', what);
  if (gpus % nodes !== 0) throw new Error(`${what}: gpus = ${gpus} is not a multiple of nodes = ${nodes}; expected every node to have the same GPUs`);
  if (R % gpus !== 0) throw new Error(`${what}: replicas = ${R} is not a multiple of gpus = ${gpus}; expected every GPU to hold the same number of slots`);

  const { phy2log, logcnt, log2phy } = o;
  if (!Array.isArray(logcnt) || logcnt.length === 0) throw new Error(`${what}: logcnt = ${show(logcnt)}; expected a non-empty [layers][experts] array`);
  const L = logcnt.length;
  const E = Array.isArray(logcnt[0]) ? logcnt[0].length : 0;
  if (E === 0) throw new Error(`${what}: logcnt[0] = ${show(logcnt[0])}; expected a non-empty array of replica counts`);
  if (E > R) throw new Error(`${what}: ${E} experts (logcnt[0] length) but replicas = ${R}; expected replicas ≥ experts`);
  if (!Array.isArray(phy2log) || phy2log.length !== L) throw new Error(`${what}: phy2log has ${Array.isArray(phy2log) ? phy2log.length : 'no'} layers; expected ${L} like logcnt`);
  if (!Array.isArray(log2phy) || log2phy.length !== L) throw new Error(`${what}: log2phy has ${Array.isArray(log2phy) ? log2phy.length : 'no'} layers; expected ${L} like logcnt`);

  let maxcount = 0;
  const counts = phy2log.map((row, l) => {
    // layers may differ in slots (CRAFT's per-layer budgets): each a multiple of gpus, at least E, at most replicas
    if (Array.isArray(row) && (row.length > R || row.length < E || row.length % gpus !== 0)) {
      throw new Error(`${what}: phy2log[${l}] has ${row.length} slots; expected replicas = ${R}, or fewer for a layer with a smaller budget (a multiple of gpus = ${gpus}, at least the ${E} experts)`);
    }
    const slots = intArray(row, `phy2log[${l}]`, Array.isArray(row) ? row.length : R, 0, E, what);
    const c = new Array<number>(E).fill(0);
    for (const e of slots) c[e]!++;
    const none = c.indexOf(0);
    if (none >= 0) throw new Error(`${what}: phy2log[${l}] has no slot holding expert ${none}; expected every expert in at least one slot`);
    const cnt = intArray(logcnt[l], `logcnt[${l}]`, E, 1, R + 1, what);
    cnt.forEach((n, e) => {
      if (n !== c[e]) throw new Error(`${what}: logcnt[${l}][${e}] = ${n}, but phy2log[${l}] holds expert ${e} in ${c[e]} slot(s); expected them equal`);
    });
    maxcount = Math.max(maxcount, ...cnt);
    return cnt;
  });

  (log2phy as unknown[]).forEach((layer, l) => {
    if (!Array.isArray(layer) || layer.length !== E) throw new Error(`${what}: log2phy[${l}] has ${Array.isArray(layer) ? layer.length : 'no'} experts; expected ${E}`);
    layer.forEach((row: unknown, e) => {
      const f = `log2phy[${l}][${e}]`;
      const slots = intArray(row, f, maxcount, -1, (phy2log[l] as number[]).length, what);
      const n = counts[l]![e]!;
      const seen = new Set<number>();
      slots.forEach((s, j) => {
        if (j >= n) {
          if (s !== -1) throw new Error(`${what}: ${f}[${j}] = ${s}; expected −1 padding after the expert's ${n} slot(s) (logcnt[${l}][${e}] = ${n})`);
          return;
        }
        if (s === -1) throw new Error(`${what}: ${f}[${j}] = −1; expected a slot, the expert has ${n} (logcnt[${l}][${e}] = ${n})`);
        if ((phy2log[l] as number[])[s] !== e) throw new Error(`${what}: ${f}[${j}] = ${s}, but phy2log[${l}][${s}] = ${(phy2log[l] as number[])[s]}; expected the slot to hold expert ${e}`);
        if (seen.has(s)) throw new Error(`${what}: ${f} lists slot ${s} twice; expected each of the expert's slots once`);
        seen.add(s);
      });
    });
  });
  const widest = Math.max(...(phy2log as number[][]).map((r) => r.length));
  if (widest !== R) throw new Error(`${what}: replicas = ${R}, but the most slots any layer has is ${widest}; expected them equal`);
  return {
    policy: o.policy, gpus, nodes, groups, replicas: R,
    phy2log: phy2log as number[][], log2phy: log2phy as number[][][], logcnt: logcnt as number[][],
  };
}

/** Reads and checks a moekit plan file (JSON); errors name the file. */
export function readPlanFile(path: string): Plan {
  const text = readFileSync(path, 'utf8');
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path}: not JSON (${(err as Error).message}); expected a moekit plan`);
  }
  return parsePlan(obj, path);
}

/** JSON with the top level's keys one per line and each innermost-but-one array (one layer's row) on a line. */
function planJson(obj: Record<string, unknown>): string {
  const rows = (v: unknown): string => {
    if (!Array.isArray(v) || !v.every(Array.isArray)) return JSON.stringify(v);
    return `[\n${v.map((r) => `    ${JSON.stringify(r)}`).join(',\n')}\n  ]`;
  };
  const body = Object.entries(obj).map(([k, v]) => `  ${JSON.stringify(k)}: ${rows(v)}`);
  return `{\n${body.join(',\n')}\n}\n`;
}

export interface WritePlanOptions {
  /** for 'sglang': where the plan's layers sit among the model's decoder layers (engines.ts) */
  sglang?: SglangLayout;
}

/**
 * Writes a plan as moekit's JSON (read back by readPlanFile) or SGLang's --init-expert-location JSON. The plan is
 * checked first, so a file is never written from a broken plan.
 */
export async function writePlanFile(path: string, plan: Plan, format: PlanFormat, options: WritePlanOptions = {}): Promise<void> {
  parsePlan(plan, 'plan to write');
  let out: Record<string, unknown>;
  if (format === 'moekit') {
    out = { policy: plan.policy, gpus: plan.gpus, nodes: plan.nodes, groups: plan.groups, replicas: plan.replicas, phy2log: plan.phy2log, log2phy: plan.log2phy, logcnt: plan.logcnt };
  } else if (format === 'sglang') {
    // SGLang reads a file only when the argument ends in .json (or .pt); any other string it parses as inline JSON
    if (!path.endsWith('.json')) throw new Error(`${path}: SGLang reads --init-expert-location as a file only when it ends in .json; name the file *.json`);
    out = { ...sglangExpertLocation(plan, options.sglang) };
  } else throw new Error(`plan format ${show(format)}: expected 'moekit' or 'sglang'`);
  await writeFileAtomic(path, planJson(out));
}
