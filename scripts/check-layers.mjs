#!/usr/bin/env node
// The layer map of src/ (docs/ENGINE.md, "Layer map") as a check: no file over 500 lines, no import cycle (type
// imports included), no import against the map. Prints each violation as file:line and exits 1 if there is any.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

/** The most lines a source file may have. */
export const MAX_LINES = 500;

/**
 * What every backend needs from tensor/ and what the engine needs from backend/: the op set, dtypes, shapes, the
 * minifloat decoders, the host MoE plans and the Backend interface. They import only each other.
 */
export const CONTRACT = ['tensor/ops.ts', 'tensor/dtype.ts', 'tensor/shape.ts', 'tensor/minifloat.ts', 'tensor/moe-plan.ts', 'backend/backend.ts'];

/** Layer -> the layers it may import (besides itself). Read top-down: nothing reaches up. */
export const LAYERS = {
  entry: ['cli', 'plan', 'trace', 'eval', 'serve', 'train', 'compress', 'models', 'io', 'moe', 'cluster', 'nn', 'tensor', 'registry', 'backend', 'contract'],
  cli: ['plan', 'trace', 'eval', 'serve', 'train', 'compress', 'models', 'io', 'moe', 'cluster', 'nn', 'tensor', 'registry', 'backend', 'contract'],
  plan: ['trace', 'io', 'tensor', 'contract'],
  trace: ['models', 'io', 'moe', 'cluster', 'nn', 'tensor', 'contract'],
  eval: ['serve', 'train', 'models', 'io', 'moe', 'cluster', 'nn', 'tensor', 'contract'],
  serve: ['models', 'io', 'moe', 'cluster', 'nn', 'tensor', 'contract'],
  train: ['compress', 'models', 'io', 'moe', 'cluster', 'nn', 'tensor', 'contract'],
  compress: ['models', 'io', 'moe', 'cluster', 'nn', 'tensor', 'contract'],
  models: ['io', 'moe', 'cluster', 'nn', 'tensor', 'contract'],
  moe: ['cluster', 'nn', 'tensor', 'contract'],
  nn: ['tensor', 'contract'],
  cluster: ['tensor', 'contract'],
  io: ['tensor', 'contract'],
  registry: ['backend', 'tensor', 'contract'],
  tensor: ['contract'],
  backend: ['contract'],
  contract: [],
};

/** The layer of a file, by its path relative to src/ ('/'-separated). */
export function layerOf(rel) {
  if (CONTRACT.includes(rel)) return 'contract';
  if (rel === 'backend/registry.ts' || rel === 'backend/gradcheck.ts') return 'registry';
  const top = rel.split('/')[0];
  if (!rel.includes('/')) return 'entry';
  return top in LAYERS ? top : null;
}

function sourceFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The .ts file a relative specifier names ('./x.js' -> x.ts, './dir' -> dir/index.ts), or null. */
function resolve(from, spec, known) {
  const base = path.resolve(path.dirname(from), spec);
  const candidates = [base.replace(/\.(m?js)$/, (_, e) => (e === 'mjs' ? '.mts' : '.ts')), base, `${base}.ts`, path.join(base, 'index.ts')];
  return candidates.find((c) => known.has(c)) ?? null;
}

/**
 * Relative imports of one file: `import … from`, `import type`, `export … from`, `import '…'` and `import('…')` with a
 * string literal, each with the line its statement (or call) starts on. Parsed with TypeScript, so imports written in
 * comments or strings do not count.
 */
export function importsOf(text, fileName = 'file.ts') {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out = [];
  const add = (node, spec) => {
    if (spec && ts.isStringLiteralLike(spec) && spec.text.startsWith('.')) {
      out.push({ spec: spec.text, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
    }
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node, node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node, node.moduleReference.expression);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node, node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node, node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out.sort((a, b) => a.line - b.line);
}

const lineCount = (text) => (text.length === 0 ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0));

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(graph) {
  const index = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const out = [];
  let next = 0;
  const visit = (root) => {
    // iterative Tarjan: frames of (node, iterator over its edges)
    const frames = [[root, graph.get(root)[Symbol.iterator]()]];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    on.add(root);
    while (frames.length > 0) {
      const [u, it] = frames[frames.length - 1];
      const step = it.next();
      if (!step.done) {
        const v = step.value.to;
        if (!index.has(v)) {
          index.set(v, next);
          low.set(v, next++);
          stack.push(v);
          on.add(v);
          frames.push([v, graph.get(v)[Symbol.iterator]()]);
        } else if (on.has(v)) low.set(u, Math.min(low.get(u), index.get(v)));
        continue;
      }
      frames.pop();
      if (frames.length > 0) {
        const parent = frames[frames.length - 1][0];
        low.set(parent, Math.min(low.get(parent), low.get(u)));
      }
      if (low.get(u) === index.get(u)) {
        const scc = [];
        let w;
        do {
          w = stack.pop();
          on.delete(w);
          scc.push(w);
        } while (w !== u);
        if (scc.length > 1 || graph.get(u).some((e) => e.to === u)) out.push(scc);
      }
    }
  };
  for (const f of [...graph.keys()].sort()) if (!index.has(f)) visit(f);
  return out;
}

/** A shortest cycle through `start` inside one component: its edges in order. */
function cycleThrough(graph, scc, start) {
  const inside = new Set(scc);
  const prev = new Map();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const u = queue[i];
    for (const e of graph.get(u)) {
      if (!inside.has(e.to)) continue;
      if (e.to === start) {
        const edges = [e];
        for (let x = u; x !== start; x = prev.get(x).from) edges.unshift(prev.get(x));
        return edges;
      }
      if (!prev.has(e.to)) {
        prev.set(e.to, e);
        queue.push(e.to);
      }
    }
  }
  return [];
}

/**
 * Checks every .ts file under `srcDir`. Returns the violations, each { kind: 'size' | 'cycle' | 'layer', file (relative
 * to the current directory), line, message }, sorted by file and line.
 */
export function checkLayers(srcDir, { maxLines = MAX_LINES } = {}) {
  const root = path.resolve(srcDir);
  const files = sourceFiles(root).sort();
  const known = new Set(files);
  const rel = (f) => path.relative(root, f).split(path.sep).join('/');
  const shown = (f) => path.relative(process.cwd(), f) || f;
  const violations = [];
  const graph = new Map();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const lines = lineCount(text);
    if (lines > maxLines) violations.push({ kind: 'size', file: shown(file), line: 1, message: `${lines} lines (at most ${maxLines})` });
    const edges = [];
    const from = layerOf(rel(file));
    if (from === null) violations.push({ kind: 'layer', file: shown(file), line: 1, message: `folder "${rel(file).split('/')[0]}" is not in the layer map` });
    for (const { spec, line } of importsOf(text, file)) {
      const to = resolve(file, spec, known);
      if (to === null) continue; // not a source file under src/ (json, or a path outside); tsc reports missing ones
      edges.push({ from: file, to, line });
      const target = layerOf(rel(to));
      if (from === null || target === null || target === from) continue;
      if (!LAYERS[from].includes(target)) {
        violations.push({ kind: 'layer', file: shown(file), line, message: `${from} may not import ${target}: ${rel(to)} (layer map: ${from} imports ${LAYERS[from].join(', ') || 'only itself'})` });
      }
    }
    graph.set(file, edges);
  }
  for (const scc of cycles(graph)) {
    const start = [...scc].sort()[0];
    const edges = cycleThrough(graph, scc, start);
    const chain = [rel(start), ...edges.map((e) => rel(e.to))].join(' -> ');
    const more = scc.length > edges.length ? ` (${scc.length} files import each other in all)` : '';
    violations.push({ kind: 'cycle', file: shown(start), line: edges[0]?.line ?? 1, message: `import cycle: ${chain}${more}` });
  }
  const order = { size: 0, cycle: 1, layer: 2 };
  return violations.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || order[a.kind] - order[b.kind]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const src = process.argv[2] ?? path.join(here, '..', 'src');
  const found = checkLayers(src);
  for (const v of found) console.log(`${v.file}:${v.line}: ${v.kind}: ${v.message}`);
  if (found.length > 0) {
    console.log(`check-layers: ${found.length} violation${found.length === 1 ? '' : 's'} (layer map: docs/ENGINE.md)`);
    process.exitCode = 1;
  } else console.log('check-layers: ok');
}
