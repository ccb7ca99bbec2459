// Plans in the forms serving engines load. SGLang reads an initial expert placement from `--init-expert-location`
// (python/sglang/srt/eplb/expert_location.py, compute_initial_expert_location_metadata): "trivial", or a .json/.pt
// file (or inline JSON) holding a dict with `physical_to_logical_map` [layers][physical experts] or `logical_count`
// [layers][logical experts] (also [steps][layers][logical experts], summed over steps), which SGLang then balances
// itself. The dict is passed to ExpertLocationMetadata.init_by_mapping as keyword arguments, so the mapping form must
// hold that one key and nothing else. Its layer dimension is every decoder layer of the model (num_hidden_layers, from
// the model class's get_model_config_for_expert_location), dense ones included, indexed by the model's layer id; the
// physical dimension is n_routed_experts + --ep-num-redundant-experts, split evenly over --ep-size ranks in order
// (slot p lives on rank p // (physical / ep_size)), as in moekit's plans. vLLM has no released way to load a
// placement (docs/PLANNING.md, "Plans for serving engines"), so there is no vLLM form here.
import type { Plan } from './types.js';

/** What SGLang's `--init-expert-location <file>.json` reads for a fixed placement. */
export interface SglangExpertLocation {
  /** [model layers][physical experts] the logical expert in each physical slot (int64 once SGLang loads it) */
  physical_to_logical_map: number[][];
}

/**
 * Where the plan's layers sit in the model. SGLang's map has a row for every decoder layer, while a plan has one per
 * traced MoE layer: plan row i becomes model layer `layers[i]`; every other row gets SGLang's own trivial placement
 * (slot p holds expert p mod E), which dense layers never read.
 */
export interface SglangLayout {
  /** the model's decoder layers (config.json num_hidden_layers) */
  numLayers: number;
  /** the model layer id of each plan layer (a trace's `layers`), increasing */
  layers: number[];
}

/** A layout for DeepSeek-style models: the first `firstKDense` layers dense (first_k_dense_replace), MoE after. */
export function firstKDenseLayout(numLayers: number, firstKDense: number): SglangLayout {
  if (!Number.isInteger(numLayers) || numLayers < 1) throw new Error(`numLayers must be a positive integer, got ${numLayers}`);
  if (!Number.isInteger(firstKDense) || firstKDense < 0 || firstKDense >= numLayers) {
    throw new Error(`firstKDense must be an integer in [0, ${numLayers}), got ${firstKDense}`);
  }
  return { numLayers, layers: Array.from({ length: numLayers - firstKDense }, (_, i) => firstKDense + i) };
}

/** Logical experts of a plan (the width of logcnt). */
export function planExperts(plan: Plan): number {
  const E = plan.logcnt[0]?.length ?? 0;
  if (E === 0) throw new Error('plan: logcnt is empty, so the number of experts is unknown');
  return E;
}

function checkLayout(layout: SglangLayout, planLayers: number): void {
  const { numLayers, layers } = layout;
  if (!Number.isInteger(numLayers) || numLayers < 1) throw new Error(`layout.numLayers must be a positive integer, got ${JSON.stringify(numLayers)}`);
  if (!Array.isArray(layers) || layers.length !== planLayers) {
    throw new Error(`layout.layers has ${Array.isArray(layers) ? layers.length : 'no'} entries; expected ${planLayers}, one model layer id per plan layer`);
  }
  layers.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= numLayers) throw new Error(`layout.layers[${i}] = ${JSON.stringify(id)}; expected an integer in [0, ${numLayers})`);
    if (i > 0 && id <= layers[i - 1]!) throw new Error(`layout.layers[${i}] = ${id} is not above layout.layers[${i - 1}] = ${layers[i - 1]}; expected increasing layer ids`);
  });
}

/**
 * The plan as SGLang's `physical_to_logical_map`. Without a layout the plan's layers are taken to be all of the
 * model's layers (a model whose every layer is MoE); with one, rows are placed at the model's layer ids.
 */
export function sglangExpertLocation(plan: Plan, layout?: SglangLayout): SglangExpertLocation {
  const E = planExperts(plan);
  const R = plan.replicas;
  const uneven = plan.phy2log.findIndex((r) => r.length !== R);
  if (uneven >= 0) throw new Error(`plan layer ${uneven} has ${plan.phy2log[uneven]!.length} slots and others ${R}: SGLang takes one --ep-num-redundant-experts for every layer, so a plan with per-layer budgets (CRAFT) cannot be loaded as is`);
  if (R < E) throw new Error(`plan has ${R} slots per layer, fewer than its ${E} experts; SGLang needs n_routed_experts + redundant ≥ n_routed_experts`);
  const rows = plan.phy2log.map((r) => r.slice());
  if (!layout) return { physical_to_logical_map: rows };
  checkLayout(layout, rows.length);
  const trivial = Array.from({ length: R }, (_, p) => p % E);
  const out = Array.from({ length: layout.numLayers }, () => trivial.slice());
  layout.layers.forEach((id, i) => { out[id] = rows[i]!; });
  return { physical_to_logical_map: out };
}

/** The launch flags a plan fixes: the placement's rank count and how many slots beyond one per expert it has. */
export interface SglangFlags {
  /** --ep-size (alias --expert-parallel-size): the ranks the physical experts are split over */
  epSize: number;
  /** --ep-num-redundant-experts: physical experts per layer minus logical ones */
  epNumRedundantExperts: number;
  /** --nnodes: the nodes the plan was made for */
  nnodes: number;
}

export function sglangFlags(plan: Plan): SglangFlags {
  return { epSize: plan.gpus, epNumRedundantExperts: plan.replicas - planExperts(plan), nnodes: plan.nodes };
}

/** The flags as launch_server arguments, with `--init-expert-location <file>`. */
export function sglangLaunchArgs(plan: Plan, file: string): string[] {
  const f = sglangFlags(plan);
  return ['--ep-size', String(f.epSize), '--ep-num-redundant-experts', String(f.epNumRedundantExperts), '--nnodes', String(f.nnodes), '--init-expert-location', file];
}

export interface SglangCheck {
  /** n_routed_experts of the model */
  experts: number;
  /** num_hidden_layers of the model, when known */
  numLayers?: number;
  /** --ep-size, when known */
  epSize?: number;
}

/**
 * Checks an object against what SGLang's init_by_mapping accepts, as errors naming the key, the value and the rule:
 * exactly the key physical_to_logical_map; a [layers][physical] matrix of integers in [0, experts); the same physical
 * count in every layer, at least `experts`, a multiple of epSize; every logical expert in at least one slot of every
 * layer (an expert without a slot would get no weights and no dispatch target).
 */
export function checkSglangExpertLocation(obj: unknown, o: SglangCheck): { layers: number; physical: number; redundant: number } {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new Error('expert location: expected a JSON object {"physical_to_logical_map": [[...], ...]}');
  const keys = Object.keys(obj);
  if (!keys.includes('physical_to_logical_map')) throw new Error(`expert location: no physical_to_logical_map key (keys: ${JSON.stringify(keys)})`);
  const extra = keys.filter((k) => k !== 'physical_to_logical_map');
  if (extra.length > 0) throw new Error(`expert location: extra keys ${JSON.stringify(extra)}; SGLang passes the dict as keyword arguments to init_by_mapping, which takes only physical_to_logical_map`);
  const map = (obj as Record<string, unknown>).physical_to_logical_map;
  if (!Array.isArray(map) || map.length === 0) throw new Error('expert location: physical_to_logical_map must be a non-empty [layers][physical experts] array');
  if (o.numLayers !== undefined && map.length !== o.numLayers) throw new Error(`expert location: physical_to_logical_map has ${map.length} layers; expected ${o.numLayers} (num_hidden_layers, dense layers included)`);
  const P = Array.isArray(map[0]) ? map[0].length : 0;
  if (P < o.experts) throw new Error(`expert location: ${P} physical experts per layer, fewer than the ${o.experts} logical ones`);
  if (o.epSize !== undefined && P % o.epSize !== 0) throw new Error(`expert location: ${P} physical experts do not divide over --ep-size ${o.epSize}`);
  map.forEach((row, l) => {
    if (!Array.isArray(row) || row.length !== P) throw new Error(`expert location: physical_to_logical_map[${l}] has ${Array.isArray(row) ? row.length : 'no'} entries; expected ${P} like layer 0`);
    const seen = new Uint8Array(o.experts);
    row.forEach((e, p) => {
      if (!Number.isInteger(e) || e < 0 || e >= o.experts) throw new Error(`expert location: physical_to_logical_map[${l}][${p}] = ${JSON.stringify(e)}; expected an integer in [0, ${o.experts})`);
      seen[e as number] = 1;
    });
    const missing = seen.indexOf(0);
    if (missing >= 0) throw new Error(`expert location: layer ${l} has no slot for logical expert ${missing}; every expert needs at least one`);
  });
  return { layers: map.length, physical: P, redundant: P - o.experts };
}

/**
 * [L][E] loads from SGLang's `logical_count` ([layers][experts], or [steps][layers][experts] summed over steps), the
 * key of the expert distribution recorder's dump and of the counts form of --init-expert-location. SGLang writes the
 * dump with torch.save (a .pt pickle, not readable here); this reads its JSON conversion, e.g.
 * `python -c "import torch,json,sys; d=torch.load(sys.argv[1]); json.dump({'logical_count': d['logical_count'].sum(0).tolist()}, open(sys.argv[2],'w'))" dump.pt counts.json`.
 * Rows cover every decoder layer (dense ones are all zero); `layers` picks the MoE layers' rows.
 */
export function sglangLoads(obj: unknown, layers?: number[]): number[][] {
  if (typeof obj !== 'object' || obj === null || !('logical_count' in obj)) throw new Error('SGLang counts: expected a JSON object with a logical_count key');
  const lc = (obj as Record<string, unknown>).logical_count;
  const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  const matrix = (m: unknown, what: string): number[][] => {
    if (!Array.isArray(m) || m.length === 0 || !Array.isArray(m[0])) throw new Error(`SGLang counts: ${what} must be a non-empty [layers][experts] array`);
    const E = (m[0] as unknown[]).length;
    return m.map((row, l) => {
      if (!Array.isArray(row) || row.length !== E) throw new Error(`SGLang counts: ${what}[${l}] has ${Array.isArray(row) ? row.length : 'no'} entries; expected ${E}`);
      return row.map((v, e) => {
        if (!isNum(v)) throw new Error(`SGLang counts: ${what}[${l}][${e}] = ${JSON.stringify(v)}; expected a count ≥ 0`);
        return v;
      });
    });
  };
  let counts: number[][];
  if (Array.isArray(lc) && Array.isArray(lc[0]) && Array.isArray((lc[0] as unknown[])[0])) {
    const steps = lc.map((s, i) => matrix(s, `logical_count[${i}]`));
    const [L, E] = [steps[0]!.length, steps[0]![0]!.length];
    steps.forEach((s, i) => {
      if (s.length !== L || s[0]!.length !== E) throw new Error(`SGLang counts: logical_count[${i}] is ${s.length}×${s[0]!.length}; expected ${L}×${E} like step 0`);
    });
    counts = Array.from({ length: L }, (_, l) => Array.from({ length: E }, (_, e) => steps.reduce((a, s) => a + s[l]![e]!, 0)));
  } else counts = matrix(lc, 'logical_count');
  if (!layers) return counts;
  return layers.map((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= counts.length) throw new Error(`SGLang counts: layers[${i}] = ${JSON.stringify(id)}; expected an integer in [0, ${counts.length})`);
    return counts[id]!;
  });
}
