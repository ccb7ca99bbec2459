// The plan page of `moekit analyse TRACE --html FILE --plan PLAN`: per-GPU load before and after the plan at every
// layer (before = experts in order without replication, or `--prev`), replicas per layer, and the bytes a move from
// `--prev` copies. Charts are static SVG (charts.ts).
import { balance, gpuLoads } from '../plan/metrics.js';
import { migrationCost } from '../plan/migrate.js';
import type { Plan } from '../plan/types.js';
import { BASE, esc, renderSvg, type VlSpec } from './charts.js';

export interface PlanPageInput {
  plan: Plan;
  planFile: string;
  /** [L][E] loads the plan is scored on (the trace's) */
  loads: number[][];
  /** the current placement (a --prev plan); without it, before = expert e in slot e when E % gpus == 0 */
  prev?: Plan;
  prevFile?: string;
  /** bytes of one expert, for the migration in bytes */
  expertBytes?: number;
}

/** The plan section: an HTML fragment with its charts. */
export async function planSection(p: PlanPageInput): Promise<string> {
  const { plan, loads } = p;
  const L = loads.length, E = loads[0]!.length, M = plan.gpus;
  if (plan.phy2log.length !== L) throw new Error(`--plan ${p.planFile} has ${plan.phy2log.length} layers; the trace has ${L}`);
  if (plan.logcnt[0]!.length !== E) throw new Error(`--plan ${p.planFile} has ${plan.logcnt[0]!.length} experts per layer; the trace has ${E}`);
  const beforePhy = p.prev ? p.prev.phy2log : E % M === 0 ? loads.map(() => Array.from({ length: E }, (_, e) => e)) : null;
  const beforeName = p.prev ? `current plan (${p.prevFile})` : 'no replication (experts in order)';
  const after = gpuLoads(plan.phy2log, loads, M);
  const before = beforePhy ? gpuLoads(beforePhy, loads, M) : null;
  const bA = balance(after), bB = before ? balance(before) : null;
  const values = [
    ...(before ? before.flatMap((row, l) => row.map((v, g) => ({ layer: `layer ${l}`, gpu: g, load: v, placement: 'before' }))) : []),
    ...after.flatMap((row, l) => row.map((v, g) => ({ layer: `layer ${l}`, gpu: g, load: v, placement: 'after' }))),
  ];
  const specs: VlSpec[] = [
    {
      ...BASE, title: `Tokens per GPU at each layer: before (${beforeName}) and after the plan`, data: { values },
      facet: { row: { field: 'layer', type: 'nominal', title: null, sort: Array.from({ length: L }, (_, l) => `layer ${l}`) } },
      spec: {
        width: Math.min(900, Math.max(240, 22 * M)), height: 90, mark: 'bar',
        encoding: {
          x: { field: 'gpu', type: 'ordinal', title: 'GPU' },
          xOffset: { field: 'placement', sort: ['before', 'after'] },
          y: { field: 'load', type: 'quantitative', title: 'tokens' },
          color: { field: 'placement', type: 'nominal', sort: ['before', 'after'], title: null },
        },
      },
    },
    {
      ...BASE, title: 'Physical experts (slots) per layer', width: Math.min(600, Math.max(200, 30 * L)), height: 160,
      data: { values: plan.phy2log.map((r, l) => ({ layer: l, slots: r.length, redundant: r.length - E })) },
      mark: 'bar', encoding: { x: { field: 'layer', type: 'ordinal' }, y: { field: 'slots', type: 'quantitative', title: `slots (E = ${E})` } },
    },
  ];
  const svgs = await renderSvg(specs);
  const f = (x: number): string => x.toFixed(3);
  const rows = after.map((_, l) => `<tr><td>${l}</td><td>${plan.phy2log[l]!.length}</td><td>${bB ? f(bB.balancedness[l]!) : '—'}</td><td>${f(bA.balancedness[l]!)}</td><td>${f(bA.imbalance[l]!)}</td></tr>`).join('');
  let moved = '';
  if (p.prev) {
    const m = migrationCost(p.prev.phy2log, plan.phy2log, M, p.expertBytes ?? 0);
    const copies = m.copies.reduce((a, b) => a + b, 0);
    moved = `<p>Moving from the current plan copies ${copies} experts onto GPUs that lacked them (per layer: ${m.copies.join(', ')})${p.expertBytes ? `: ${m.bytes.toLocaleString('en-US')} bytes at ${p.expertBytes.toLocaleString('en-US')} bytes per expert` : ' (pass --expert-bytes for bytes)'}; ${m.changed_slots.reduce((a, b) => a + b, 0)} slots change.</p>`;
  }
  return `<h2>Plan: ${esc(p.planFile)}</h2>
<p>${esc(plan.policy)} plan for ${M} GPUs on ${plan.nodes} node(s), scored on this trace's loads (an expert's tokens split evenly over its replicas). Balancedness = mean GPU load / max GPU load; over all layers Σ mean / Σ max: ${bB ? `${f(bB.total_balancedness)} before → ` : ''}${f(bA.total_balancedness)} after.</p>
<table><thead><tr><th>layer</th><th>slots</th><th>balancedness before</th><th>after</th><th>imbalance after (max / mean)</th></tr></thead><tbody>${rows}</tbody></table>
${moved}
${svgs.map((s) => `<figure>${s}</figure>`).join('\n')}`;
}
