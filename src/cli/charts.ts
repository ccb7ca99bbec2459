// Charts of the HTML reports (`bench paper --html`, `analyse --html`): Vega-Lite specs rendered to static SVG at
// write time, so a page needs no script and no network to be read.

export type VlSpec = Record<string, unknown>;

export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Renders Vega-Lite specs to SVG strings (vega's headless renderer, no canvas). */
export async function renderSvg(specs: VlSpec[]): Promise<string[]> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const out: string[] = [];
  for (const s of specs) {
    const view = new vega.View(vega.parse(vl.compile(s as never).spec), { renderer: 'none' });
    out.push(await view.toSVG());
    view.finalize();
  }
  return out;
}

export const BASE = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', config: { font: 'sans-serif', view: { stroke: null } } };

