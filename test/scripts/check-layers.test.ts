// scripts/check-layers.mjs: over src/ it finds nothing; over a small tree with a cycle, an oversize file and upward
// imports it finds each, at its line, and nothing in the clean files beside them.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLayers, importsOf, layerOf } from '../../scripts/check-layers.mjs';
import { tempDir } from '../helpers/tmp.js';

function tree(files: Record<string, string>): string {
  const root = path.join(tempDir('moekit-layers-'), 'src');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), text);
  }
  return root;
}

describe('check-layers', () => {
  it('src/ keeps the layer map: no file over 500 lines, no import cycle, no upward import', () => {
    const found = checkLayers('src');
    expect(found.map((v) => `${v.file}:${v.line}: ${v.kind}: ${v.message}`)).toEqual([]);
  });

  it('finds a type-import cycle, an oversize file and upward imports (static, export-from, dynamic), each at its line', () => {
    const root = tree({
      'tensor/ops.ts': "export const A = 1;\n",
      // a cycle through a type import
      'tensor/a.ts': "// tensor/a\nimport { b } from './b.js';\nexport const a = (): number => b + 1;\n",
      'tensor/b.ts': "import type { Cfg } from './c.js';\nexport const b = 2;\nexport type B = Cfg;\n",
      'tensor/c.ts': "import type { a } from './a.js';\nexport type Cfg = typeof a;\n",
      // 501 lines; 500 are allowed
      'nn/big.ts': 'export const x = 1;\n'.repeat(501),
      'nn/ok.ts': 'export const y = 1;\n'.repeat(500),
      // upward: tensor reaches moe, backend reaches the engine
      'tensor/low.ts': [
        "// import { nope } from '../moe/block.js' (a comment: not an import)",
        "const s = \"import x from '../moe/block.js'\";",
        "import { Op } from './ops.js';",
        "export { route } from '../moe/route.js';",
        "export const load = async () => (await import('../moe/block.js')).block + s + Op;",
      ].join('\n'),
      'backend/js/index.ts': "import type { A } from '../../tensor/ops.js';\nimport { a } from '../../tensor/a.js';\nexport const js: A | number = a;\n",
      // allowed: moe over cluster and nn, models over moe, the registry over backends and the engine
      'moe/route.ts': "import { k } from '../cluster/kmeans.js';\nimport { y } from '../nn/ok.js';\nexport const route = k + y;\n",
      'moe/block.ts': "export const block = 1;\n",
      'cluster/kmeans.ts': "export const k = 1;\n",
      'models/lm.ts': "import { block } from '../moe/block.js';\nexport const lm = block;\n",
      'backend/registry.ts': "import { js } from './js/index.js';\nimport { a } from '../tensor/a.js';\nexport const r = [js, a];\n",
      'index.ts': "export * from './models/lm.js';\nexport * from './backend/registry.js';\n",
    });
    const found = checkLayers(root).map((v) => ({ ...v, file: path.relative(root, path.resolve(v.file)) }));
    expect(found).toEqual([
      { kind: 'layer', file: 'backend/js/index.ts', line: 2, message: expect.stringContaining('backend may not import tensor: tensor/a.ts') },
      { kind: 'size', file: 'nn/big.ts', line: 1, message: '501 lines (at most 500)' },
      { kind: 'cycle', file: 'tensor/a.ts', line: 2, message: 'import cycle: tensor/a.ts -> tensor/b.ts -> tensor/c.ts -> tensor/a.ts' },
      { kind: 'layer', file: 'tensor/low.ts', line: 4, message: expect.stringContaining('tensor may not import moe: moe/route.ts') },
      { kind: 'layer', file: 'tensor/low.ts', line: 5, message: expect.stringContaining('tensor may not import moe: moe/block.ts') },
    ]);
  });

  it('reads imports past comments and strings, and names each file\'s layer', () => {
    expect(importsOf("/* import './x.js' */\nimport type {\n  A,\n} from './a.js';\nconst r = /'/;\nexport * from \"./b.js\";\nimport('./c.js');\nimport 'node:fs';\n")).toEqual([
      { spec: './a.js', line: 2 },
      { spec: './b.js', line: 6 },
      { spec: './c.js', line: 7 },
    ]);
    expect(['tensor/ops.ts', 'tensor/engine.ts', 'backend/backend.ts', 'backend/registry.ts', 'backend/wasm/table.ts', 'index.ts', 'cli/main.ts', 'web/x.ts'].map(layerOf))
      .toEqual(['contract', 'tensor', 'contract', 'registry', 'backend', 'entry', 'cli', null]);
  });
});
