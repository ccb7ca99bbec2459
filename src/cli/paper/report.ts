// The HTML report of `moekit bench paper --html FILE`: the claims and the per-model table, plus charts rendered to
// static SVG with Vega-Lite at write time (the page needs no script and no network to be read).
import os from 'node:os';
import { BASE, esc, renderSvg, type VlSpec } from '../charts.js';
import type { Agg, ModelResult, PaperResult } from './experiment.js';

/** Bars of a per-model mean with a ±std error bar. */
function barsWithError(title: string, unit: string, rows: { model: string; mean: number; std: number }[]): VlSpec {
  const data = rows.map((r) => ({ ...r, lo: r.mean - r.std, hi: r.mean + r.std }));
  return {
    ...BASE, title, width: 60 * rows.length, height: 220, data: { values: data },
    encoding: { x: { field: 'model', type: 'nominal', sort: null, axis: { labelAngle: -30, title: null } } },
    layer: [
      { mark: { type: 'bar', color: '#4c78a8' }, encoding: { y: { field: 'mean', type: 'quantitative', title: unit } } },
      { mark: { type: 'rule', color: 'black' }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
      { mark: { type: 'text', dy: -8, fontSize: 10 }, encoding: { y: { field: 'hi', type: 'quantitative' }, text: { field: 'mean', type: 'quantitative', format: '.4~g' } } },
    ],
  };
}

/** One color per model in every chart. */
const COLORS = { domain: ['dense', 'moe', 'clustered', 'clustered FP16/INT4'], range: ['#9d9d9d', '#f58518', '#4c78a8', '#72b7b2'] };

/** The color scale of a chart showing `shown` series: the same color per model everywhere, a legend of only these. */
export function colorScale(shown: Iterable<string>): { domain: string[]; range: string[] } {
  const set = new Set(shown);
  const idx = COLORS.domain.flatMap((d, i) => (set.has(d) ? [i] : []));
  const extra = [...set].filter((s) => !COLORS.domain.includes(s));
  return { domain: [...idx.map((i) => COLORS.domain[i]!), ...extra], range: [...idx.map((i) => COLORS.range[i]!), ...extra.map(() => '#bab0ac')] };
}

/** Grouped bars: one group per x value, one bar per series; `rule` draws a dashed reference line (a target). */
function groupedBars(title: string, x: string, unit: string, rows: { x: string; series: string; value: number }[], rule?: { y: number; label: string }): VlSpec {
  const scale = colorScale(rows.map((r) => r.series));
  const bars = {
    mark: 'bar',
    encoding: {
      x: { field: 'x', type: 'nominal', sort: null, title: x },
      xOffset: { field: 'series', sort: scale.domain },
      y: { field: 'value', type: 'quantitative', title: unit },
      color: { field: 'series', title: null, scale },
      tooltip: [{ field: 'series' }, { field: 'value', format: '.4~g' }],
    },
  };
  if (!rule) return { ...BASE, title, height: 220, data: { values: rows }, ...bars };
  // the reference line and its label get one datum of their own: drawn once, not once per bar
  const once = { values: [{}] };
  return {
    ...BASE, title, height: 220,
    layer: [
      { data: { values: rows }, ...bars },
      { data: once, mark: { type: 'rule', strokeDash: [4, 3], color: 'black' }, encoding: { y: { datum: rule.y } } },
      { data: once, mark: { type: 'text', align: 'left', dx: 4, dy: -6, fontSize: 10 }, encoding: { y: { datum: rule.y }, x: { value: 0 }, text: { value: rule.label } } },
    ],
  };
}

/** Per-expert load of every MoE layer, standard MoE against clustered (seed 0, held-out tokens). */
function loadProfile(r: PaperResult): VlSpec | null {
  const rows: { layer: string; slot: number; model: string; share: number }[] = [];
  for (const name of ['moe', 'clustered']) {
    const tpe = r.runs[name]?.[0]?.per_layer?.tokens_per_expert;
    if (!tpe) return null;
    tpe.forEach((counts, l) => {
      const n = counts.reduce((a, c) => a + c, 0) || 1;
      counts.forEach((c, e) => rows.push({ layer: `layer ${l}`, slot: e, model: name, share: (c / n) * counts.length }));
    });
  }
  const scale = colorScale(rows.map((x) => x.model));
  return {
    ...BASE, title: 'Expert load on held-out tokens (seed 0): routed share × E, 1 = perfectly even', data: { values: rows },
    facet: { column: { field: 'layer', type: 'nominal', title: null } },
    spec: {
      width: 200, height: 160,
      layer: [
        { mark: 'bar', encoding: { x: { field: 'slot', type: 'ordinal', title: 'expert slot' }, xOffset: { field: 'model', sort: scale.domain }, y: { field: 'share', type: 'quantitative', title: 'load / mean load' }, color: { field: 'model', title: null, scale } } },
        { mark: { type: 'rule', strokeDash: [4, 3], color: 'black' }, encoding: { y: { datum: 1 } } },
      ],
    },
  };
}

const aggOf = (r: PaperResult, model: string, field: keyof ModelResult): Agg | undefined => r.models[model]?.[field];

/** The report page: claims, the model table (Markdown rendered as HTML), and the charts; `note` (smoke) above the tables. */
export async function paperHtml(r: PaperResult, markdown: string, note?: string): Promise<string> {
  const names = Object.keys(r.models).filter((n) => Object.keys(r.models[n]!).length > 0);
  const series = (field: keyof ModelResult, models = names): { model: string; mean: number; std: number }[] =>
    models.flatMap((m) => { const a = aggOf(r, m, field); return a && Number.isFinite(a.mean) ? [{ model: m, mean: a.mean, std: a.std }] : []; });
  // speed relative to the standard MoE (the claims are ratios; absolute rates follow the machine)
  const speed: { x: string; series: string; value: number }[] = [];
  for (const [label, model, suffix] of [['dense', 'dense', ''], ['moe', 'moe', ''], ['clustered', 'clustered', ''], ['clustered FP16/INT4', 'clustered', '_int4']] as const) {
    for (const kind of ['prefill', 'decode'] as const) {
      const a = aggOf(r, model, `${kind}_tokens_per_s${suffix}` as keyof ModelResult);
      const ref = aggOf(r, 'moe', `${kind}_tokens_per_s` as keyof ModelResult);
      if (a && ref && Number.isFinite(a.mean) && ref.mean > 0) speed.push({ x: kind, series: label, value: a.mean / ref.mean });
    }
  }
  const layers: { x: string; series: string; value: number }[] = [];
  for (const model of ['moe', 'clustered']) {
    const runs = r.runs[model] ?? [];
    const L = runs[0]?.per_layer?.load_variance.length ?? 0;
    for (let l = 0; l < L; l++) layers.push({ x: `layer ${l}`, series: model, value: runs.reduce((a, x) => a + x.per_layer!.load_variance[l]!, 0) / runs.length });
  }
  const specs: VlSpec[] = [
    barsWithError('Validation perplexity (mean ± std over seeds; lower is better)', 'perplexity', series('ppl')),
    barsWithError('Expert parameters (mean over seeds)', 'parameters', series('params_expert').filter((s) => s.mean > 0)),
    groupedBars('Inference tokens/s relative to the standard MoE (timed in alternation; mean over seeds)', 'phase', '× standard MoE', speed, { y: 1.15, label: 'paper: +15%' }),
    groupedBars('Expert-load variance per layer (mean over seeds; lower is more even)', 'layer', 'variance of expert load share', layers),
  ];
  const profile = loadProfile(r);
  if (profile) specs.push(profile);
  const svgs = await renderSvg(specs);
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moekit bench paper --preset ${esc(r.preset)}</title>
<style>
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.no { color: #b00; font-weight: bold; } .yes { color: #070; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; }
figure { margin: 1.5em 0; overflow-x: auto; }
</style></head><body>
<h1>moekit bench paper — preset ${esc(r.preset)}</h1>
<p>${r.seeds} seed(s), ${r.steps} steps per model, ${r.seconds.toFixed(0)} s. ${esc(cpu)}, ${os.cpus().length} cores, Node ${esc(process.version)}, ${esc(new Date().toISOString())}.</p>
${note ? `<p class="note"><strong>Note:</strong> ${esc(note)}</p>\n` : ''}${markdownTables(markdown)}
${svgs.map((s) => `<figure>${s}</figure>`).join('\n')}
</body></html>
`;
}

/** The Markdown tables of `paperMarkdown` as HTML tables ("**no**" cells marked). */
export function markdownTables(md: string): string {
  const out: string[] = [];
  let rows: string[][] = [];
  const flush = (): void => {
    if (rows.length === 0) return;
    const [head, , ...body] = rows;
    const cell = (c: string, tag: string): string => {
      const no = c === '**no**';
      return `<${tag}${no ? ' class="no"' : c === 'yes' ? ' class="yes"' : ''}>${esc(no ? 'no' : c)}</${tag}>`;
    };
    out.push(`<table><thead><tr>${head!.map((c) => cell(c, 'th')).join('')}</tr></thead><tbody>${body.map((r) => `<tr>${r.map((c) => cell(c, 'td')).join('')}</tr>`).join('')}</tbody></table>`);
    rows = [];
  };
  for (const line of md.split('\n')) {
    if (line.startsWith('|')) rows.push(line.slice(1, -1).split('|').map((c) => c.trim()));
    else flush();
  }
  flush();
  return out.join('\n');
}
