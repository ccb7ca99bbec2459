// The built-in backends by name: importing this module registers js, wasm and webgpu with the engine. The public entry
// points (index.ts, node.ts) and the CLI import it; tensor/ itself never imports a backend implementation.
import { envThreads, ready, registerBackend, setBackend } from '../tensor/engine.js';
import { JsBackend } from './js/index.js';
import { WasmBackend } from './wasm/index.js';

registerBackend('js', async () => new JsBackend(), () => new JsBackend());
registerBackend('wasm', () => WasmBackend.create(envThreads()));
// loaded on demand: Dawn (the `webgpu` package) in Node, navigator.gpu in browsers
registerBackend('webgpu', async () => (await import('./webgpu/index.js')).WebGpuBackend.create());

/** setBackend and ready with the built-in backends registered (the same functions as the engine's). */
export { ready, setBackend };
