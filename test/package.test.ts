// The published declarations, as a user installs them: `npm pack` (no scripts) of the built dist/, unpacked into a
// temporary project's node_modules/moekit, type-checked by the repository's TypeScript under strict with
// skipLibCheck false, without the optional `webgpu` package and without @webgpu/types. Needs dist/ (npm ci builds it).
/// <reference types="@webgpu/types" />
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuBufferLike, GpuComputePipelineLike, GpuDeviceLike } from '../src/backend/webgpu/gpu-types.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NM = join(ROOT, 'node_modules');
/** never in the consumer projects but the one that asks for WebGPU's types */
const ABSENT = ['webgpu', '@webgpu/types'];

/** The stand-ins the declarations fall back on are subsets of WebGPU's interfaces: checked by the typecheck
 * (tsconfig.check.json), where @webgpu/types is in scope. */
export const standInsAreSubsets = (b: GPUBuffer, d: GPUDevice, p: GPUComputePipeline): [GpuBufferLike, GpuDeviceLike, GpuComputePipelineLike] => [b, d, p];

interface Tsc {
  status: number | null;
  output: string;
}

let tmp = '';
let pkgDir = '';
/** packages the shipped declarations import */
let imported: string[] = [];
/** the consumer projects' tsc runs, started together in beforeAll */
const runs = new Map<string, Promise<Tsc>>();

const walk = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));

/** bare specifiers (packages) the shipped .d.ts files import or reference */
function declarationImports(dir: string): Set<string> {
  const out = new Set<string>();
  for (const f of walk(dir).filter((f) => f.endsWith('.d.ts'))) {
    const src = readFileSync(f, 'utf8');
    for (const m of src.matchAll(/(?:from\s+|import\s*\(\s*|require\s*\(\s*|reference\s+types\s*=\s*)["']([^"'.][^"']*)["']/g)) {
      const spec = m[1]!;
      out.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return out;
}

/** the repository's TypeScript on a project */
function tsc(project: string): Promise<Tsc> {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, [join(NM, 'typescript', 'bin', 'tsc'), '-p', project, '--pretty', 'false'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', fail);
    p.on('close', (status) => done({ status, output: output.trim() }));
  });
}

/** A consumer project under the temporary folder (which holds node_modules/moekit); `links`: packages of the
 * repository's node_modules that only this project sees. */
function project(name: string, compilerOptions: Record<string, unknown>, source: string, links: readonly string[] = []): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const dep of links) {
    mkdirSync(dirname(join(dir, 'node_modules', dep)), { recursive: true });
    symlinkSync(join(NM, dep), join(dir, 'node_modules', dep), 'dir');
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, skipLibCheck: false, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, ...compilerOptions }, files: ['index.ts'] }),
  );
  writeFileSync(join(dir, 'index.ts'), source);
  return dir;
}

const CONSUMER = `import { WebGpuBackend, type WebGpuOptions, type Backend, type ModelConfig, Tensor, tensor, matmul, parseConfig, Rng, randn } from 'moekit';
import { trainBpe, loadTokenizer, type BpeModel } from 'moekit/node';

const opts: WebGpuOptions = { allowFallback: false };
const create: (o?: WebGpuOptions) => Promise<WebGpuBackend> = WebGpuBackend.create;
export async function gpu(): Promise<Backend> {
  const b = await create(opts);
  const name: string = b.name;
  const info: string = b.adapterInfo;
  const device: WebGpuBackend['device'] = b.device;
  const again: WebGpuOptions = { device };
  void [name, info, again, b.holdsGpu, b.bytesInUse(), device.label, b.stored(1).buffer.size];
  await b.flush();
  return b;
}
const x: Tensor = matmul(tensor([[1, 2], [3, 4]]), randn([2, 2], new Rng(1)));
export const shape: readonly number[] = x.shape;
export const parse: (o: unknown) => ModelConfig = parseConfig;
export const bpe: (texts: Iterable<string>, o: Parameters<typeof trainBpe>[1]) => BpeModel = trainBpe;
export const load = loadTokenizer;
`;

/** without WebGPU's types the device is the stand-in: its members, not the rest of GPUDevice */
const WITHOUT_TYPES = `${CONSUMER}
export function standIn(b: WebGpuBackend): void {
  b.device.destroy();
  // @ts-expect-error createBuffer is WebGPU's, not the stand-in's
  b.device.createBuffer({ size: 16, usage: 0 });
}
`;

/** with WebGPU's types in scope the same declarations give the real GPUDevice, GPUBuffer, GPUComputePipeline */
const WITH_TYPES = `${CONSUMER}
export function real(b: WebGpuBackend, d: GPUDevice): GPUBuffer {
  const o: WebGpuOptions = { device: d };
  const p: GPUComputePipeline = b.pipeline('');
  void [o, p.getBindGroupLayout(0)];
  const dev: GPUDevice = b.device;
  return dev.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
}
`;

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist', 'src', 'index.d.ts')) || !existsSync(join(ROOT, 'dist', 'src', 'node.d.ts'))) {
    throw new Error('dist/src/*.d.ts is missing: build the declarations first (npm ci runs `prepare`, or npx tsc -p tsconfig.json)');
  }
  tmp = mkdtempSync(join(tmpdir(), 'moekit-pack-'));
  const packed = execFileSync('npm', ['pack', '--ignore-scripts', '--offline', '--silent', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8' })
    .trim()
    .split('\n')
    .pop()!;
  const nm = join(tmp, 'node_modules');
  pkgDir = join(nm, 'moekit');
  mkdirSync(pkgDir, { recursive: true });
  execFileSync('tar', ['-xzf', join(tmp, packed), '-C', pkgDir, '--strip-components=1']);
  imported = [...declarationImports(join(pkgDir, 'dist'))].filter((s) => !s.startsWith('node:'));
  // what the declarations import, and Node's types (moekit/node and the CLI's declarations use them)
  for (const dep of new Set([...imported.filter((d) => !ABSENT.includes(d)), '@types/node'])) {
    mkdirSync(dirname(join(nm, dep)), { recursive: true });
    symlinkSync(join(NM, dep), join(nm, dep), 'dir');
  }
  // tsc's default libraries for es2022 (DOM included) and Node's types; the second project adds WebGPU's types
  runs.set('plain', tsc(project('consumer', { types: ['node'] }, WITHOUT_TYPES)));
  // a Node project without the DOM library: WebAssembly, GPU and browser types must not be needed either
  runs.set('no-dom', tsc(project('consumer-no-dom', { types: ['node'], lib: ['es2022'] }, WITHOUT_TYPES)));
  runs.set('webgpu-types', tsc(project('consumer-webgpu-types', { types: ['node', '@webgpu/types'] }, WITH_TYPES, ['@webgpu/types'])));
}, 60_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('published declarations', () => {
  it('ship the entries package.json names, and import only moekit\'s dependencies (not webgpu)', () => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { exports: Record<string, { types: string }>; dependencies: Record<string, string> };
    for (const entry of Object.values(pkg.exports)) expect(existsSync(join(pkgDir, entry.types)), entry.types).toBe(true);
    for (const dep of imported) expect(Object.keys(pkg.dependencies), `the declarations import ${dep}`).toContain(dep);
    for (const dep of ABSENT) expect(existsSync(join(tmp, 'node_modules', dep)), dep).toBe(false);
  });

  it('type-check under strict, skipLibCheck false, without webgpu or @webgpu/types', async () => {
    const r = await runs.get('plain')!;
    if (r.status !== 0) console.error(r.output);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('type-check in a Node project with lib ["es2022"] alone (no DOM)', async () => {
    const r = await runs.get('no-dom')!;
    if (r.status !== 0) console.error(r.output);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('give the real WebGPU types to a project that has @webgpu/types', async () => {
    const r = await runs.get('webgpu-types')!;
    if (r.status !== 0) console.error(r.output);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });
});
