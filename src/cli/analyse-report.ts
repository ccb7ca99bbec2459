// The HTML report of `moekit analyse --html FILE`: the per-layer load table, and as charts the layer × expert load,
// the activated-experts curves against uniform routing, tokens per activated expert, co-activation and layer-to-layer
// transitions. Charts are static SVG (charts.ts): the page works offline.
import os from 'node:os';
import type { AnalyseReport } from '../trace/analyse.js';
import { BASE, esc, renderSvg, type VlSpec } from './charts.js';

/** At most this many layers get a co-activation heatmap, and this many layer pairs a transition heatmap. */
const MATRIX_LAYERS = 3;

const heat = (title: string, x: string, y: string, rows: { x: number; y: number; v: number }[], size: number, value: string): VlSpec => ({
  ...BASE, title, width: size, height: size, data: { values: rows },
  mark: 'rect',
  encoding: {
    x: { field: 'x', type: 'ordinal', title: x, axis: { labels: size / Math.max(1, new Set(rows.map((r) => r.x)).size) >= 8 } },
    y: { field: 'y', type: 'ordinal', title: y, axis: { labels: size / Math.max(1, new Set(rows.map((r) => r.y)).size) >= 8 } },
    color: { field: 'v', type: 'quantitative', title: value, scale: { scheme: 'viridis' } },
  },
});

/** The layers whose matrices are drawn: first, middle and last (all of them when there are few). */
function pick(L: number, n: number): number[] {
  if (L <= n) return Array.from({ length: L }, (_, i) => i);
  return [...new Set([0, Math.floor((L - 1) / 2), L - 1])].slice(0, n);
}

function specs(r: AnalyseReport, ridge: number): VlSpec[] {
  const { E, L } = r.trace;
  const EE = E * E;
  const side = Math.min(480, Math.max(160, 6 * E));
  const load = r.layers.flatMap((l) => l.counts.map((c, e) => ({ x: e, y: l.layer, v: l.total > 0 ? c / l.total : 0 })));
  const out: VlSpec[] = [{ ...heat('Expert load share per layer (row sums to 1; uniform = 1/E)', 'expert', 'layer', load, Math.min(900, Math.max(300, 8 * E)), 'share'), height: Math.min(600, Math.max(120, 14 * L)) }];
  if (r.activated.length > 0) {
    const order = r.layers.map((l) => `layer ${l.layer}`); // legend in layer order, not "layer 0, layer 1, layer 10"
    const curves = r.activated.flatMap((a) => [
      ...a.mean_unique.map((u, i) => ({ batch: a.batch, experts: u, series: `layer ${r.layers[i]!.layer}` })),
      { batch: a.batch, experts: a.theory_uniform, series: 'uniform routing' },
    ]);
    out.push({
      ...BASE, title: `Distinct experts a batch activates (of ${E}), per layer, against uniform routing E·(1 − (1 − K/E)^B)`, width: 520, height: 300, data: { values: curves },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'batch', type: 'quantitative', scale: { type: 'log' }, title: 'batch size B (tokens)' },
        y: { field: 'experts', type: 'quantitative', title: 'mean distinct experts' },
        color: { field: 'series', type: 'nominal', title: null, sort: [...order, 'uniform routing'] },
        strokeDash: { condition: { test: "datum.series === 'uniform routing'", value: [5, 4] }, value: [1, 0] },
      },
    });
    const per = r.activated.flatMap((a) => a.tokens_per_expert.map((t, i) => ({ batch: a.batch, tokens: t, series: `layer ${r.layers[i]!.layer}` })));
    const x = { field: 'batch', type: 'quantitative', scale: { type: 'log' }, title: 'batch size B (tokens)' };
    const y = { field: 'tokens', type: 'quantitative', scale: { type: 'log' }, title: 'slots per activated expert' };
    out.push({
      ...BASE, title: `Routed slots per activated expert (rows each expert's GEMM gets); dashed: compute-bound from ${ridge} rows`, width: 520, height: 260,
      layer: [
        { data: { values: per }, mark: { type: 'line', point: true }, encoding: { x, y, color: { field: 'series', type: 'nominal', title: null, sort: order } } },
        { data: { values: [{ tokens: ridge }] }, mark: { type: 'rule', strokeDash: [6, 4], color: '#c00' }, encoding: { y } },
      ],
    });
  }
  if (r.coactivation) {
    for (const i of pick(L, MATRIX_LAYERS)) {
      const rows: { x: number; y: number; v: number }[] = [];
      for (let a = 0; a < E; a++) for (let b = 0; b < E; b++) if (a !== b) rows.push({ x: a, y: b, v: r.coactivation[i * EE + a * E + b]! });
      out.push(heat(`Co-activation at layer ${r.layers[i]!.layer}: tokens choosing both experts`, 'expert', 'expert', rows, side, 'tokens'));
    }
  }
  if (r.transitions && L > 1) {
    for (const i of pick(L - 1, MATRIX_LAYERS)) {
      const rows: { x: number; y: number; v: number }[] = [];
      for (let a = 0; a < E; a++) for (let b = 0; b < E; b++) rows.push({ x: b, y: a, v: r.transitions[i * EE + a * E + b]! });
      out.push(heat(`Transitions layer ${r.layers[i]!.layer} → ${r.layers[i + 1]!.layer}: expert at l (rows) → expert at l+1`, `expert at layer ${r.layers[i + 1]!.layer}`, `expert at layer ${r.layers[i]!.layer}`, rows, side, 'slot pairs'));
    }
  }
  return out;
}

/** The self-contained HTML page of an analysis. */
export async function analyseHtml(r: AnalyseReport, file: string, ridge: number, extra = ''): Promise<string> {
  const svgs = await renderSvg(specs(r, ridge));
  const { N, L, K, E } = r.trace;
  const f = (x: number, d = 3): string => x.toFixed(d);
  const rows = r.layers.map((l) => `<tr><td>${l.layer}</td><td>${l.total}</td><td>${f(l.max_over_mean)}</td><td>${f(l.cv)}</td><td>${f(l.gini)}</td><td>${f(l.entropy_bits)} / ${f(Math.log2(E))}</td><td>${esc(l.hot.join(', ') || '—')}</td></tr>`).join('');
  const act = r.activated.map((a) => `<tr><td>${a.batch}</td><td>${a.batches}</td><td>${f(a.theory_uniform, 2)}</td>${a.mean_unique.map((u) => `<td>${f(u, 2)}</td>`).join('')}</tr>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moekit analyse ${esc(file)}</title>
<style>
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5em 0; overflow-x: auto; }
</style></head><body>
<h1>moekit analyse — ${esc(file)}</h1>
<p>${N} tokens, ${L} MoE layers, top-${K} of ${E} experts${r.trace.format ? ` (${esc(r.trace.format)})` : ''}. ${esc(os.cpus()[0]?.model ?? '')}, Node ${esc(process.version)}, ${esc(new Date().toISOString())}.</p>
<h2>Load per layer</h2>
<table><thead><tr><th>layer</th><th>routed slots</th><th>max / mean</th><th>cv</th><th>Gini</th><th>entropy (bits) / max</th><th>hot experts</th></tr></thead><tbody>${rows}</tbody></table>
${act ? `<h2>Activated experts per batch</h2>
<table><thead><tr><th>batch B</th><th>batches</th><th>uniform routing</th>${r.layers.map((l) => `<th>layer ${l.layer}</th>`).join('')}</tr></thead><tbody>${act}</tbody></table>
<p>The grouped GEMM is compute-bound from ${ridge} rows per expert (<code>--ridge</code>; measure a machine's with <code>npm run bench:grouped -- --rows 1,2,4,…</code>).</p>` : ''}
${svgs.map((s) => `<figure>${s}</figure>`).join('\n')}
${extra}
</body></html>
`;
}
