// The wasm and webgpu backends in a real browser (headless Chromium): the wasm backend on Web Workers over shared
// memory, the webgpu backend through navigator.gpu on SwiftShader; results equal js.
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CHROMIUM = process.env.MOEKIT_CHROMIUM ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available) console.warn(`[skip] browser tests: no Chromium at ${CHROMIUM} (apt-get install -y chromium; .ci/run installs it)`);
// CI installs Chromium, so there the suite always runs (and fails loudly if the browser is missing).
const run = available || process.env.CI === 'true';

/**
 * Bundles a page script, serves it on 127.0.0.1 (a secure context; cross-origin isolated, which shared wasm memory
 * needs) and launches Chromium with the given extra flags.
 */
async function open(entry: string, flags: string[]): Promise<{ server: http.Server; browser: Browser; url: string }> {
  if (!available) throw new Error(`CI must provide Chromium at ${CHROMIUM}`);
  const bundle = await build({
    entryPoints: [new URL(entry, import.meta.url).pathname],
    bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false,
    external: ['node:*'],
  });
  const js = bundle.outputFiles[0]!.text;
  const html = '<!doctype html><meta charset="utf-8"><script type="module" src="/entry.js"></script>';
  const server = http.createServer((req, res) => {
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    if (req.url === '/entry.js') res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(js);
    else res.writeHead(200, { 'Content-Type': 'text/html' }).end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...flags],
  });
  return { server, browser, url };
}

describe.skipIf(!run)('wasm backend in headless Chromium', () => {
  let server: http.Server;
  let browser: Browser;
  let url = '';

  beforeAll(async () => {
    ({ server, browser, url } = await open('./entry.ts', ['--disable-gpu']));
  });

  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  it('runs matmul, grouped matmul, attention, softmax and int4 matmul on 2 Web Worker threads, equal to js', async () => {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => (globalThis as { moekitReport?: unknown }).moekitReport !== undefined, undefined, { timeout: 110_000 });
    const report = await page.evaluate(() => (globalThis as { moekitReport?: unknown }).moekitReport) as {
      crossOriginIsolated: boolean; threads: number; relaxedSimd: boolean; diffs: Record<string, number>; error?: string;
    };
    console.log('browser report', JSON.stringify(report), logs.join('\n'));
    expect(report.error).toBeUndefined();
    expect(report.crossOriginIsolated).toBe(true);
    expect(report.threads).toBe(2);
    expect(Object.keys(report.diffs)).toHaveLength(5);
    for (const [op, d] of Object.entries(report.diffs)) expect(d, op).toBeLessThan(1e-5);
  });
});

describe.skipIf(!run)('webgpu backend in headless Chromium (navigator.gpu)', () => {
  let server: http.Server;
  let browser: Browser;
  let url = '';

  beforeAll(async () => {
    ({ server, browser, url } = await open('./webgpu-entry.ts', ['--enable-unsafe-webgpu']));
  });

  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  it('hot ops, a small MoE model (logits, greedy generation, two training steps) equal js', async () => {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => (globalThis as { moekitReport?: unknown }).moekitReport !== undefined, undefined, { timeout: 110_000 });
    const report = await page.evaluate(() => (globalThis as { moekitReport?: unknown }).moekitReport) as { adapter: string; diffs: Record<string, number>; sameTokens: boolean; error?: string };
    console.log('browser webgpu report', JSON.stringify(report), logs.join('\n'));
    expect(report.error).toBeUndefined();
    expect(Object.keys(report.diffs)).toHaveLength(8);
    for (const [what, d] of Object.entries(report.diffs)) expect(d, what).toBeLessThan(1e-5);
    expect(report.sameTokens).toBe(true);
  });
});
