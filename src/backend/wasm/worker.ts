// Source of the kernel worker (a string, so it runs as a Node eval worker or a browser Blob worker).

/**
 * Control block layout (Int32 slots at ctrl, Float64 args at ctrl + ARGS_OFFSET); shared with runtime.ts.
 * GEN: bumped by the main thread for each dispatch; DONE: workers finished; KERNEL: index into the name list;
 * NARGS, NTHREADS; QUIT: workers exit; ERROR: a worker's kernel threw.
 */
export const CTRL = { GEN: 0, DONE: 1, KERNEL: 2, NARGS: 3, NTHREADS: 4, QUIT: 5, ERROR: 6 } as const;
export const ARGS_OFFSET = 64;
export const MAX_ARGS = 32;
export const CTRL_BYTES = ARGS_OFFSET + MAX_ARGS * 8;

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

export const WORKER_SOURCE = `'use strict';
function moekitStart(d, post) {
  const ex = new WebAssembly.Instance(d.module, { env: { memory: d.memory } }).exports;
  const fns = d.names.map((n) => ex[n]);
  const I = new Int32Array(d.memory.buffer, d.ctrl, ${ARGS_OFFSET / 4});
  const F = new Float64Array(d.memory.buffer, d.ctrl + ${ARGS_OFFSET}, ${MAX_ARGS});
  const tid = d.tid, spin = d.spin;
  let gen = Atomics.load(I, ${CTRL.GEN});
  const args = [];
  post('ready');
  for (;;) {
    let s = 0;
    while (Atomics.load(I, ${CTRL.GEN}) === gen) {
      if (++s > spin) { Atomics.wait(I, ${CTRL.GEN}, gen); s = 0; }
    }
    gen = Atomics.load(I, ${CTRL.GEN});
    if (Atomics.load(I, ${CTRL.QUIT})) return;
    const nt = I[${CTRL.NTHREADS}];
    if (tid < nt) {
      const n = I[${CTRL.NARGS}];
      args.length = n + 2;
      for (let i = 0; i < n; i++) args[i] = F[i];
      args[n] = tid; args[n + 1] = nt;
      try { fns[I[${CTRL.KERNEL}]].apply(null, args); } catch (e) { Atomics.store(I, ${CTRL.ERROR}, 1); }
    }
    // Every worker acknowledges every dispatch (idle ones at once), so the control block is never rewritten
    // while a worker may still read it.
    Atomics.add(I, ${CTRL.DONE}, 1);
    Atomics.notify(I, ${CTRL.DONE});
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
