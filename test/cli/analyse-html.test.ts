// moekit analyse --html: the report is one self-contained page that opens in headless Chromium with no network
// (every request refused and counted), shows the load table and the charts as SVG, and is saved as a screenshot.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/tensor/random.js';
import { writeNpy } from '../../src/trace/npy.js';
import { eplb } from '../../src/plan/eplb.js';
import { migrationCost } from '../../src/plan/migrate.js';
import { writePlanFile } from '../../src/plan/plan-file.js';
import { readNpyTrace } from '../../src/trace/npy.js';
import { traceLoads } from '../../src/cli/plan-input.js';

const CHROMIUM = process.env.MOEKIT_CHROMIUM ?? '/usr/bin/chromium';
const dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-analyse-html-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('moekit analyse --html', () => {
  it('writes a page that renders offline: load table, heatmaps and activated-experts curves as SVG', async () => {
    // a skewed synthetic trace: 2000 tokens, 4 layers, top-2 of 16 experts (expert e drawn with weight ∝ 1/(e+1))
    const [N, L, K, E] = [2000, 4, 2, 16];
    const rng = new Rng(4);
    const w = Array.from({ length: E }, (_, e) => 1 / (e + 1));
    const total = w.reduce((a, b) => a + b, 0);
    const draw = (): number => {
      let u = rng.uniform() * total;
      for (let e = 0; e < E; e++) if ((u -= w[e]!) <= 0) return e;
      return E - 1;
    };
    const ids = new Int16Array(N * L * K);
    for (let i = 0; i < N * L; i++) {
      const a = draw();
      let b = draw();
      while (b === a) b = draw();
      ids[2 * i] = a;
      ids[2 * i + 1] = b;
    }
    const npy = path.join(dir, 't.npy');
    writeNpy(npy, ids, [N, L, K], '<i2');
    const html = path.join(dir, 'report.html');
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'analyse', npy, '--experts', String(E), '--html', html], { encoding: 'utf8' });
    expect(out).toContain(`HTML report: ${html}`);
    const page = readFileSync(html, 'utf8');
    expect(page).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/); // no script, no remote resource
    if (!existsSync(CHROMIUM)) return console.warn(`[skip] Chromium at ${CHROMIUM} not found: the page was checked as text only`);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    try {
      const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const requests: string[] = [];
      await p.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith('file:')) return route.continue();
        requests.push(url);
        return route.abort();
      });
      await p.goto(`file://${html}`);
      expect(requests).toEqual([]);
      expect(await p.locator('h1').textContent()).toContain('moekit analyse');
      expect(await p.locator('table').first().locator('tbody tr').count()).toBe(L);
      const charts = await p.locator('figure svg').count();
      expect(charts).toBe(1 + 2 + 3 + 3); // load heatmap, two curves, co-activation at 3 layers, transitions at 3 pairs
      const box = await p.locator('figure svg').first().boundingBox();
      expect(box!.width).toBeGreaterThan(200);
      const shot = path.join(os.tmpdir(), 'moekit-analyse-report.png');
      await p.screenshot({ path: shot, fullPage: true });
      console.log(`analyse --html: ${charts} charts, ${(page.length / 1024).toFixed(0)} KiB; screenshot ${shot}`);
    } finally {
      await browser.close();
    }
  }, 60_000);

  it('--plan adds the plan page: per-GPU load before and after, slots per layer, the copies a move from --prev costs', async () => {
    const npy = path.join(dir, 't.npy'); // written by the test above
    const loads = traceLoads(readNpyTrace(npy, { experts: 16 }), 16);
    const prevPlan = eplb(loads.map((row) => row.slice().reverse()), { replicas: 16, groups: 1, nodes: 1, gpus: 4 });
    const plan = eplb(loads, { replicas: 20, groups: 1, nodes: 1, gpus: 4 });
    const [planFile, prevFile, html] = ['plan.json', 'prev.json', 'plan.html'].map((f) => path.join(dir, f)) as [string, string, string];
    await writePlanFile(planFile, plan, 'moekit');
    await writePlanFile(prevFile, prevPlan, 'moekit');
    execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'analyse', npy, '--experts', '16', '--html', html, '--plan', planFile, '--prev', prevFile, '--expert-bytes', '1000'], { encoding: 'utf8' });
    const page = readFileSync(html, 'utf8');
    const m = migrationCost(prevPlan.phy2log, plan.phy2log, 4, 1000);
    const copies = m.copies.reduce((a, b) => a + b, 0);
    expect(copies).toBeGreaterThan(0);
    expect(page).toContain(`Moving from the current plan copies ${copies} experts onto GPUs that lacked them (per layer: ${m.copies.join(', ')}): ${m.bytes.toLocaleString('en-US')} bytes`);
    expect(page).toContain('Tokens per GPU at each layer: before (current plan');
    expect(page).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
    if (!existsSync(CHROMIUM)) return;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    try {
      const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await p.goto(`file://${html}`);
      expect(await p.locator('figure svg').count()).toBe(9 + 2); // the analysis's charts, then per-GPU loads and slots per layer
      expect(await p.locator('h2', { hasText: 'Plan:' }).count()).toBe(1);
      expect(await p.locator('table').last().locator('tbody tr').count()).toBe(4);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
