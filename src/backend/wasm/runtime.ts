// WebAssembly runtime: one shared memory, the kernel module on the main thread + workers, synchronous dispatch.
import { Allocator } from './alloc.js';
import { loadavgProbe, PROBE_MS, type ContentionProbe } from './contention.js';
import { KERNELS_PLAIN_B64, KERNELS_RELAXED_B64 } from './gen/kernels.js';
import { ARGS_OFFSET, CHUNK_BITS, CTRL, CTRL_BYTES, MAX_ARGS, MAX_CHUNKS, WORKER_SOURCE, type WorkerInit } from './worker.js';

/**
 * A kernel export of the module (its own args followed by (tid, nthreads)): the GEMM family named here, or any
 * other function export (e.g. the nn_* kernels).
 */
export type KernelName = 'matmul' | 'groupedMatmul' | 'groupedMatmulWeightGrad' | 'qmatmul' | (string & {});

export interface WasmRuntimeOptions {
  /** Threads including the main thread (default: available parallelism). */
  threads?: number;
  /** true: require the relaxed-SIMD build; false: plain SIMD; 'auto' (default): relaxed when it validates. */
  relaxedSimd?: boolean | 'auto';
  /**
   * Worker spin iterations before Atomics.wait (default 200000, about a millisecond). Decode runs a multi-threaded op
   * every few dozen µs with small single-threaded ones between; a worker that went to sleep in between costs a
   * futex wake-up per op, which on a virtual machine can exceed the op itself.
   */
  spin?: number;
  /**
   * 'chunked' (default): the threads that run claim an op's chunks from a shared counter, so a descheduled worker
   * stalls nothing. 'static': thread t runs chunks t, t + n, ... and every op waits for every worker (the pool
   * before chunking; kept for comparison, e.g. bench:contention). Results are the same bits either way.
   * Default: MOEKIT_POOL in Node, else 'chunked'.
   */
  pool?: PoolMode;
}

export type PoolMode = 'chunked' | 'static';



/**
 * WebAssembly.Memory where the compiler knows WebAssembly (lib "DOM" or "WebWorker"), else the members moekit's
 * callers use: so the published declarations also compile for a Node project with lib "ES2022" alone.
 */
export type WasmMemory = typeof globalThis extends { WebAssembly: { Memory: { prototype: infer M } } } ? M : { readonly buffer: ArrayBufferLike; grow(delta: number): number };

function envPool(): PoolMode {
  const v = isNode ? process.env.MOEKIT_POOL : undefined;
  if (v === undefined || v === '' || v === 'chunked') return 'chunked';
  if (v === 'static') return 'static';
  throw new Error(`MOEKIT_POOL must be "chunked" or "static", got "${v}"`);
}

type KernelFn = (...args: number[]) => void;
interface KernelExports {
  heapBase(): number;
  scratchBytes(): number;
}

/** Minimal common surface of Node's worker_threads.Worker and the browser Worker. */
interface AnyWorker { terminate(): unknown }

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
const INITIAL_PAGES = 256;
const MAX_PAGES = 65536;

function decodeBase64(b64: string): Uint8Array<ArrayBuffer> {
  if (typeof Buffer !== 'undefined') return new Uint8Array(Buffer.from(b64, 'base64'));
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

let relaxedFlagSet = false;
async function enableRelaxedFlag(): Promise<void> {
  if (!isNode || relaxedFlagSet) return;
  const v8 = await import('node:v8');
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  relaxedFlagSet = true;
}

async function defaultThreads(): Promise<number> {
  if (isNode) return (await import('node:os')).availableParallelism();
  return (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
}

export class WasmRuntime {
  readonly memory: WasmMemory;
  readonly threads: number;
  /** How threads share an op's chunks (see WasmRuntimeOptions.pool). */
  readonly pool: PoolMode;
  /** Whether the relaxed-SIMD build runs. */
  readonly relaxed: boolean;
  private readonly exports: KernelExports & Record<string, KernelFn | undefined>;
  /** Function exports in module order; the control block names a kernel by its index here. */
  private readonly names: string[];
  private readonly index = new Map<string, number>();
  private readonly allocator: Allocator;
  private readonly ctrl: number;
  private readonly ctrlI32: Int32Array;
  private readonly ctrlF64: Float64Array;
  private readonly workers: AnyWorker[];
  private readonly canWait: boolean;
  private scratchPtr = 0;
  private disposed = false;
  /** dispatch counter (30 bits: SEQ holds 2·gen) */
  private gen = 0;
  /** chunked pool: how many threads the machine has cores for (null: all, always) */
  private probe: ContentionProbe | null = null;
  private nextProbe = 0;

  private constructor(memory: WebAssembly.Memory & WasmMemory, instance: WebAssembly.Instance, relaxed: boolean, threads: number, pool: PoolMode) {
    this.memory = memory;
    this.pool = pool;
    this.relaxed = relaxed;
    this.threads = threads;
    this.exports = instance.exports as unknown as KernelExports & Record<string, KernelFn | undefined>;
    this.names = Object.keys(instance.exports).filter((n) => typeof instance.exports[n] === 'function');
    this.names.forEach((n, i) => this.index.set(n, i));
    this.allocator = new Allocator(memory, this.exports.heapBase());
    this.ctrl = this.allocator.alloc(CTRL_BYTES);
    this.ctrlI32 = new Int32Array(memory.buffer, this.ctrl, ARGS_OFFSET / 4);
    this.ctrlF64 = new Float64Array(memory.buffer, this.ctrl + ARGS_OFFSET, MAX_ARGS);
    this.ctrlI32.fill(0);
    this.ctrlI32[CTRL.MODE] = pool === 'static' ? 1 : 0;
    this.ctrlI32[CTRL.ACTIVE] = threads;
    this.workers = [];
    // Atomics.wait is forbidden on a browser main thread; Node's main thread and workers allow it.
    this.canWait = isNode || typeof (globalThis as { document?: unknown }).document === 'undefined';
  }

  /** Creates the memory, instantiates the module here and in threads - 1 workers; resolves when all are ready. */
  static async create(opts: WasmRuntimeOptions = {}): Promise<WasmRuntime> {
    const threads = Math.max(1, Math.floor(opts.threads ?? (await defaultThreads())));
    const want = opts.relaxedSimd ?? 'auto';
    let relaxed = false;
    if (want !== false) {
      await enableRelaxedFlag();
      const bytes = decodeBase64(KERNELS_RELAXED_B64);
      relaxed = WebAssembly.validate(bytes);
      if (!relaxed && want === true) throw new Error('WasmRuntime: relaxed SIMD requested but not supported by this runtime');
    }
    const module = await WebAssembly.compile(decodeBase64(relaxed ? KERNELS_RELAXED_B64 : KERNELS_PLAIN_B64) as Uint8Array<ArrayBuffer>);
    const memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared: true });
    const instance = await WebAssembly.instantiate(module, { env: { memory } });
    const pool = opts.pool ?? envPool();
    if (pool !== 'chunked' && pool !== 'static') throw new Error(`WasmRuntime: pool must be "chunked" or "static", got "${String(pool)}"`);
    const rt = new WasmRuntime(memory, instance, relaxed, threads, pool);
    try {
      await rt.startWorkers(module, opts.spin ?? 200000);
      if (pool === 'chunked' && threads > 1) rt.probe = await loadavgProbe(await defaultThreads());
    } catch (e) {
      rt.dispose();
      throw e;
    }
    return rt;
  }

  private async startWorkers(module: WebAssembly.Module, spin: number): Promise<void> {
    const ready: Promise<void>[] = [];
    for (let tid = 1; tid < this.threads; tid++) {
      const init: WorkerInit = { module, memory: this.memory, ctrl: this.ctrl, tid, names: this.names, relaxed: this.relaxed, spin };
      if (isNode) {
        const { Worker } = await import('node:worker_threads');
        const w = new Worker(WORKER_SOURCE, { eval: true, workerData: init });
        this.workers.push(w);
        ready.push(new Promise<void>((resolve, reject) => {
          // Unref only once ready: an unref'ed worker's messages would not keep create() alive.
          w.once('message', () => { w.unref(); resolve(); });
          w.once('error', reject);
        }));
      } else {
        const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
        const w = new Worker(url);
        this.workers.push(w);
        ready.push(new Promise<void>((resolve, reject) => {
          w.onmessage = () => resolve();
          w.onerror = (e) => reject(new Error(`wasm worker failed: ${e.message}`));
        }));
        w.postMessage(init);
      }
    }
    await Promise.all(ready);
  }

  /** Runs exports[kernel](...args, 0, 1) on the calling thread (one chunk). */
  call(kernel: KernelName, args: readonly number[]): void {
    this.check();
    this.fn(kernel)(...args, 0, 1);
  }

  /** Every PROBE_MS: how many threads the machine has cores for; parks workers beyond it, unparks them when it rises. */
  private probeCores(I: Int32Array): void {
    const now = performance.now();
    if (now < this.nextProbe) return;
    this.nextProbe = now + PROBE_MS;
    const active = this.probe!.update(this.threads, Atomics.load(I, CTRL.SLEEPERS) + Atomics.load(I, CTRL.PARKED));
    const was = I[CTRL.ACTIVE]!;
    if (active === was) return;
    Atomics.store(I, CTRL.ACTIVE, active);
    if (active > was) {
      Atomics.add(I, CTRL.PARK, 1);
      Atomics.notify(I, CTRL.PARK);
    }
  }

  /** The number exports[name](...args) returns (size queries such as packedABytes). */
  call1(name: string, args: readonly number[]): number {
    this.check();
    return (this.fn(name) as unknown as (...a: number[]) => number)(...args);
  }

  private fn(kernel: string): KernelFn {
    const f = this.exports[kernel];
    if (typeof f !== 'function' || !this.index.has(kernel)) throw new Error(`wasm kernel ${kernel} does not exist`);
    return f;
  }

  /**
   * Runs exports[kernel](...args, c, nchunks) for every chunk c < nchunks, on as many threads as take part (the main
   * thread always does); synchronous. The chunk layout is the caller's, from the problem's shape alone, so the
   * numbers do not depend on the thread count or on which thread ran which chunk.
   */
  parallel(kernel: KernelName, args: readonly number[], nchunks: number): void {
    this.check();
    const n = Math.floor(nchunks);
    if (!(n >= 1 && n <= MAX_CHUNKS)) throw new RangeError(`parallel: nchunks must be in [1, ${MAX_CHUNKS}], got ${nchunks}`);
    if (args.length > MAX_ARGS) throw new RangeError(`parallel: at most ${MAX_ARGS} args`);
    const fn = this.fn(kernel);
    const I = this.ctrlI32;
    if (n > 1 && this.probe) this.probeCores(I);
    // one chunk, no workers, or (chunked) none taking part while the machine is busy: the calling thread alone
    if (n === 1 || this.workers.length === 0 || (this.pool === 'chunked' && I[CTRL.ACTIVE] === 1)) {
      for (let c = 0; c < n; c++) fn(...args, c, n);
      return;
    }
    const F = this.ctrlF64;
    const gen = (this.gen = (this.gen + 1) & 0x3fffffff);
    const chunked = this.pool === 'chunked';
    Atomics.store(I, CTRL.SEQ, 2 * gen - 1);
    for (let i = 0; i < args.length; i++) F[i] = args[i]!;
    I[CTRL.KERNEL] = this.index.get(kernel)!;
    I[CTRL.NARGS] = args.length;
    I[CTRL.NCHUNKS] = n;
    const nt = Math.min(this.threads, n);
    I[CTRL.NTHREADS] = nt;
    I[CTRL.ERROR] = 0;
    Atomics.store(I, CTRL.DONE, 0);
    const tag = gen & ((1 << (32 - CHUNK_BITS)) - 1);
    Atomics.store(I, CTRL.TICKET, (tag << CHUNK_BITS) | 0);
    Atomics.store(I, CTRL.SEQ, 2 * gen);
    Atomics.store(I, CTRL.GEN, gen);
    if (!chunked || Atomics.load(I, CTRL.SLEEPERS) > 0) Atomics.notify(I, CTRL.GEN);
    let mainError: unknown;
    const run = (c: number): void => {
      try {
        fn(...args, c, n);
      } catch (e) {
        mainError ??= e;
      }
    };
    let target: number;
    if (chunked) {
      // claim chunks until none is left; workers that run claim the rest
      for (;;) {
        const t = Atomics.load(I, CTRL.TICKET);
        const c = t & MAX_CHUNKS;
        if (c >= n) break;
        if (Atomics.compareExchange(I, CTRL.TICKET, t, t + 1) !== t) continue;
        run(c);
        Atomics.add(I, CTRL.DONE, 1);
      }
      target = n;
    } else {
      for (let c = 0; c < n; c += nt) run(c);
      target = this.workers.length; // every worker acknowledges, see worker.ts
    }
    let spins = 0;
    for (;;) {
      const done = Atomics.load(I, CTRL.DONE);
      if (done >= target) break;
      // a worker is finishing a chunk; when the machine is busy, yield the core it may need instead of spinning
      if (this.canWait && ++spins > (I[CTRL.ACTIVE]! < this.threads ? 1000 : 100000)) Atomics.wait(I, CTRL.DONE, done, 1);
    }
    if (mainError !== undefined) throw mainError;
    if (Atomics.load(I, CTRL.ERROR)) throw new Error(`wasm kernel ${kernel} failed in a worker thread`);
  }

  /** Threads taking part now (chunked pool): all, or fewer while the machine has fewer cores to spare; see contention.ts. */
  get active(): number {
    return this.ctrlI32[CTRL.ACTIVE]!;
  }

  /**
   * Makes one worker sleep `ms` milliseconds at its next wake-up, as if the OS had descheduled it (for tests of the
   * pool under contention: the chunked pool finishes ops without it, the static one waits).
   */
  stallWorkers(ms: number): void {
    this.check();
    Atomics.store(this.ctrlI32, CTRL.STALL_MS, Math.max(0, Math.floor(ms)));
  }

  /** Per-thread packing scratch for the GEMM kernels: threads × scratchStride bytes, allocated once. */
  scratch(): { ptr: number; stride: number } {
    const stride = this.exports.scratchBytes();
    if (this.scratchPtr === 0) this.scratchPtr = this.alloc(stride * this.threads);
    return { ptr: this.scratchPtr, stride };
  }

  alloc(bytes: number): number { this.check(); return this.allocator.alloc(bytes); }
  free(ptr: number): void { this.check(); this.allocator.free(ptr); }
  get bytesInUse(): number { return this.allocator.bytesInUse; }
  get peakBytes(): number { return this.allocator.peakBytes; }

  f32(ptr: number, len: number): Float32Array { return new Float32Array(this.memory.buffer, ptr, len); }
  i32(ptr: number, len: number): Int32Array { return new Int32Array(this.memory.buffer, ptr, len); }
  u8(ptr: number, len: number): Uint8Array { return new Uint8Array(this.memory.buffer, ptr, len); }
  u16(ptr: number, len: number): Uint16Array { return new Uint16Array(this.memory.buffer, ptr, len); }
  i8(ptr: number, len: number): Int8Array { return new Int8Array(this.memory.buffer, ptr, len); }

  /** Stops the workers; the runtime is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.ctrlI32, CTRL.QUIT, 1);
    Atomics.notify(this.ctrlI32, CTRL.QUIT);
    Atomics.add(this.ctrlI32, CTRL.PARK, 1);
    Atomics.notify(this.ctrlI32, CTRL.PARK);
    Atomics.add(this.ctrlI32, CTRL.GEN, 1);
    Atomics.notify(this.ctrlI32, CTRL.GEN);
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }

  private check(): void {
    if (this.disposed) throw new Error('WasmRuntime is disposed');
  }
}
