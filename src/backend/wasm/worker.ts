// Source of the kernel worker (a string, so it runs as a Node eval worker or a browser Blob worker).

/**
 * Control block layout (Int32 slots at ctrl, Float64 args at ctrl + ARGS_OFFSET); shared with runtime.ts.
 * GEN: bumped by the main thread for each dispatch (workers wake on it); SEQ: seqlock over the dispatch description
 * (odd while the main thread writes it, 2·gen once complete); KERNEL: index into the name list; NARGS; NCHUNKS;
 * QUIT: workers exit; ERROR: a worker's kernel threw; DONE: chunks finished (chunked) or workers acknowledged
 * (static); TICKET: (gen tag << CHUNK_BITS) | next unclaimed chunk; MODE: 0 chunked, 1 static; SLEEPERS: workers in
 * Atomics.wait; NTHREADS: threads taking part (static); STALL_MS: workers sleep this long at their next wake-up (a
 * descheduled worker, simulated for tests; WasmRuntime.stallWorkers); ACTIVE: threads that take part (chunked pool;
 * the main thread sets it from the cores the machine has to spare), PARK: bumped to wake parked workers, PARKED: how
 * many are parked.
 */
export const CTRL = { GEN: 0, DONE: 1, KERNEL: 2, NARGS: 3, NCHUNKS: 4, QUIT: 5, ERROR: 6, SEQ: 7, TICKET: 8, MODE: 9, SLEEPERS: 10, NTHREADS: 11, STALL_MS: 12, ACTIVE: 13, PARK: 14, PARKED: 15 } as const;
export const ARGS_OFFSET = 64;
export const MAX_ARGS = 32;
export const CTRL_BYTES = ARGS_OFFSET + MAX_ARGS * 8;
/** Low bits of TICKET: the next chunk to claim; the high bits tag the dispatch it belongs to. */
export const CHUNK_BITS = 10;
export const MAX_CHUNKS = (1 << CHUNK_BITS) - 1;

/** What the worker receives: module, shared memory, control block pointer, its thread id, kernel names. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctrl: number;
  tid: number;
  names: string[];
  relaxed: boolean;
  spin: number;
}

/*
 * Chunked dispatch: the main thread writes the dispatch (seqlock SEQ), sets TICKET to (tag << CHUNK_BITS) | 0 and
 * bumps GEN. Every thread that runs - the main thread included - claims chunks by compare-and-swap on TICKET, runs
 * them and counts them in DONE; the main thread returns when DONE reaches NCHUNKS. A descheduled worker claims
 * nothing and stalls nothing; one that wakes late finds the dispatch's chunks all claimed, or its tag outdated.
 * The main thread rewrites the dispatch only once every chunk is done, so a worker holding a claim always holds the
 * arguments it read under the seqlock. (A false claim would need a worker to stall between reading the arguments
 * and its compare-and-swap for a multiple of 2^22 dispatches.)
 * Static dispatch (MOEKIT_POOL=static, the pool as it was): thread tid runs chunks tid, tid + n, ... and every
 * worker acknowledges every dispatch in DONE, so one descheduled worker stalls the op.
 */
export const WORKER_SOURCE = `'use strict';
function moekitStart(d, post) {
  const ex = new WebAssembly.Instance(d.module, { env: { memory: d.memory } }).exports;
  ex.setSlot(d.tid);
  const fns = d.names.map((n) => ex[n]);
  const I = new Int32Array(d.memory.buffer, d.ctrl, ${ARGS_OFFSET / 4});
  const F = new Float64Array(d.memory.buffer, d.ctrl + ${ARGS_OFFSET}, ${MAX_ARGS});
  const tid = d.tid, spin = d.spin;
  const TAG = ${(1 << (32 - CHUNK_BITS)) - 1}, CB = ${CHUNK_BITS}, CM = ${MAX_CHUNKS};
  let gen = Atomics.load(I, ${CTRL.GEN});
  const args = [];
  const chunked = Atomics.load(I, ${CTRL.MODE}) === 0;
  post('ready');
  for (;;) {
    // ACTIVE (chunked pool; set by the main thread from the cores the machine has to spare): a worker whose slot is
    // not below it parks - neither spins nor is woken per op - until ACTIVE rises (PARK bumped) or the pool quits
    if (chunked) {
      const park = Atomics.load(I, ${CTRL.PARK});
      if (tid >= Atomics.load(I, ${CTRL.ACTIVE}) && !Atomics.load(I, ${CTRL.QUIT})) {
        Atomics.add(I, ${CTRL.PARKED}, 1);
        Atomics.wait(I, ${CTRL.PARK}, park);
        Atomics.sub(I, ${CTRL.PARKED}, 1);
        gen = Atomics.load(I, ${CTRL.GEN});
        continue;
      }
    }
    let s = 0;
    while (Atomics.load(I, ${CTRL.GEN}) === gen) {
      if (++s > spin) {
        Atomics.add(I, ${CTRL.SLEEPERS}, 1);
        Atomics.wait(I, ${CTRL.GEN}, gen);
        Atomics.sub(I, ${CTRL.SLEEPERS}, 1);
        s = 0;
      }
    }
    gen = Atomics.load(I, ${CTRL.GEN});
    if (Atomics.load(I, ${CTRL.QUIT})) return;
    const stall = Atomics.exchange(I, ${CTRL.STALL_MS}, 0);
    if (stall > 0) Atomics.wait(I, ${CTRL.QUIT}, 0, stall);
    if (Atomics.load(I, ${CTRL.MODE}) === 1) {
      const nt = I[${CTRL.NTHREADS}];
      if (tid < nt) {
        const n = I[${CTRL.NARGS}], nc = I[${CTRL.NCHUNKS}];
        const fn = fns[I[${CTRL.KERNEL}]];
        args.length = n + 2;
        for (let i = 0; i < n; i++) args[i] = F[i];
        args[n + 1] = nc;
        for (let c = tid; c < nc; c += nt) {
          args[n] = c;
          try { fn.apply(null, args); } catch (e) { Atomics.store(I, ${CTRL.ERROR}, 1); }
        }
      }
      // every worker acknowledges every static dispatch, so the block is never rewritten while one may read it
      Atomics.add(I, ${CTRL.DONE}, 1);
      Atomics.notify(I, ${CTRL.DONE});
      continue;
    }
    const seq = Atomics.load(I, ${CTRL.SEQ});
    if (seq & 1) continue;
    const n = I[${CTRL.NARGS}], nc = I[${CTRL.NCHUNKS}];
    const k = I[${CTRL.KERNEL}];
    args.length = n + 2;
    for (let i = 0; i < n; i++) args[i] = F[i];
    args[n + 1] = nc;
    if (Atomics.load(I, ${CTRL.SEQ}) !== seq) continue;
    const tag = (seq >>> 1) & TAG;
    const fn = fns[k];
    for (;;) {
      const t = Atomics.load(I, ${CTRL.TICKET});
      if ((t >>> CB) !== tag) break;
      const c = t & CM;
      if (c >= nc) break;
      if (Atomics.compareExchange(I, ${CTRL.TICKET}, t, t + 1) !== t) continue;
      args[n] = c;
      try { fn.apply(null, args); } catch (e) { Atomics.store(I, ${CTRL.ERROR}, 1); }
      if (Atomics.add(I, ${CTRL.DONE}, 1) + 1 === nc) Atomics.notify(I, ${CTRL.DONE});
    }
  }
}
if (typeof require === 'function' && typeof process !== 'undefined' && process.versions && process.versions.node) {
  const wt = require('node:worker_threads');
  if (wt.workerData.relaxed) require('node:v8').setFlagsFromString('--experimental-wasm-relaxed-simd');
  moekitStart(wt.workerData, (m) => wt.parentPort.postMessage(m));
} else {
  self.onmessage = (e) => { self.onmessage = null; moekitStart(e.data, (m) => self.postMessage(m)); };
}
`;
