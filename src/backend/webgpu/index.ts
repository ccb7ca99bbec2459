/// <reference types="@webgpu/types" />
// The WebGPU backend: WGSL compute kernels over GPU buffers. Node via the `webgpu` package (Dawn), browsers via
// navigator.gpu. Buffers come from a size-bucketed pool; pipelines are cached by shader source; every op of a step
// records into one command encoder, submitted only when data is read or the queue is flushed.
import type { Backend, BackendInput, DataId } from '../backend.js';
import { bytesPerElement, allocTyped, type DType, type TypedArray } from '../../tensor/dtype.js';
import type { Op, OpParams, TensorInfo } from '../../tensor/ops.js';
import type { DeviceContext, Stored } from './context.js';
import { KERNELS } from './kernels.js';
import type { GpuBuffer, GpuComputePipeline, GpuDevice } from './gpu-types.js';

export type { GpuBuffer, GpuBufferLike, GpuComputePipeline, GpuComputePipelineLike, GpuDevice, GpuDeviceLike } from './gpu-types.js';

export interface WebGpuOptions {
  /** a device to use (e.g. one the page already has); default: request one */
  device?: GpuDevice;
  /** allow a software adapter (SwiftShader) when there is no hardware one; default true */
  allowFallback?: boolean;
}

/**
 * navigator.gpu in browsers; in Node the `webgpu` package (Dawn), whose globals (GPUBufferUsage, ...) it installs.
 * Dawn's instance lives exactly as long as the object `create()` returns: when that object is garbage-collected while
 * a device is in use, Dawn's threads crash (futex errors, segfaults). So every backend keeps it (`gpu`) until disposed.
 */
async function gpuEntry(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    const pkg = ['web', 'gpu'].join(''); // not a literal: bundlers for the browser must not try to pack Dawn
    mod = (await import(/* @vite-ignore */ pkg)) as typeof mod;
  } catch (e) {
    throw new Error(`webgpu: no navigator.gpu and the "webgpu" package cannot be loaded (${(e as Error).message}); install it with npm install webgpu`);
  }
  Object.assign(globalThis, mod.globals);
  return mod.create([]);
}

const bucket = (bytes: number): number => {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  // powers of two up to 1 MiB, then 1 MiB steps: reuse without wasting much
  if (b <= 1 << 20) return 2 ** Math.ceil(Math.log2(b));
  return Math.ceil(b / (1 << 20)) * (1 << 20);
};

export class WebGpuBackend implements Backend, DeviceContext {
  readonly name = 'webgpu';
  readonly device: GpuDevice;
  readonly adapterInfo: string;
  /** the GPU object the device came from, kept alive with the backend (see gpuEntry); null once disposed */
  private gpu: GPU | null;
  private readonly bufs = new Map<DataId, Stored>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private transient: GPUBuffer[] = [];
  private nextId = 1;
  private inUse = 0;

  private constructor(device: GPUDevice, info: string, gpu: GPU | null) {
    this.device = device;
    this.adapterInfo = info;
    this.gpu = gpu;
  }

  static async create(o: WebGpuOptions = {}): Promise<WebGpuBackend> {
    if (o.device) return new WebGpuBackend(o.device, 'given device', null);
    const gpu = await gpuEntry();
    let adapter = await gpu.requestAdapter();
    if (!adapter && (o.allowFallback ?? true)) adapter = await gpu.requestAdapter({ forceFallbackAdapter: true });
    if (!adapter) throw new Error('webgpu: no adapter (no GPU, and no software adapter; on Linux install libvulkan1 and set VK_ICD_FILENAMES to a Vulkan driver such as /usr/lib/chromium/vk_swiftshader_icd.json)');
    // ask for the adapter's real limits, not the defaults (128 MiB bindings)
    const L = adapter.limits;
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: L.maxStorageBufferBindingSize, maxBufferSize: L.maxBufferSize,
        maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize, maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
        maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup, maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
      },
    });
    const ai = (adapter as unknown as { info?: { vendor?: string; architecture?: string; description?: string } }).info;
    const info = ai ? [ai.vendor, ai.architecture, ai.description].filter(Boolean).join(' ') : 'adapter';
    return new WebGpuBackend(device, info, gpu);
  }

  // ---- storage ----
  allocate(dtype: DType, size: number): DataId {
    const bytes = bucket(size * bytesPerElement(dtype));
    const free = this.pool.get(bytes);
    const buffer = free?.pop() ?? this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    const id = this.nextId++;
    this.bufs.set(id, { buffer, dtype, size, bytes });
    this.inUse += bytes;
    return id;
  }

  free(id: DataId): void {
    const s = this.bufs.get(id);
    if (!s) return;
    this.bufs.delete(id);
    this.inUse -= s.bytes;
    // recorded but unsubmitted work may still use it: the pool hands it out only for work recorded later
    let list = this.pool.get(s.bytes);
    if (!list) this.pool.set(s.bytes, (list = []));
    list.push(s.buffer);
  }

  stored(id: DataId): Stored {
    const s = this.bufs.get(id);
    if (!s) throw new Error(`webgpu: unknown or freed buffer ${id}`);
    return s;
  }

  write(id: DataId, data: TypedArray): void {
    const s = this.stored(id);
    // queue writes run before any unsubmitted commands: submit those first so the order stays the program's
    this.submit();
    const n = data.byteLength;
    const padded = n % 4 === 0 ? data : (() => {
      const p = new Uint8Array(Math.ceil(n / 4) * 4);
      p.set(new Uint8Array(data.buffer, data.byteOffset, n));
      return p;
    })();
    this.device.queue.writeBuffer(s.buffer, 0, padded.buffer, padded.byteOffset, padded.byteLength);
  }

  async read(id: DataId): Promise<TypedArray> {
    const s = this.stored(id);
    const n = s.size * bytesPerElement(s.dtype);
    const bytes = Math.max(4, Math.ceil(n / 4) * 4);
    const staging = this.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.enc().copyBufferToBuffer(s.buffer, 0, staging, 0, bytes);
    this.submit();
    await staging.mapAsync(GPUMapMode.READ);
    const out = allocTyped(s.dtype, s.size);
    new Uint8Array(out.buffer, out.byteOffset, n).set(new Uint8Array(staging.getMappedRange(), 0, n));
    staging.unmap();
    staging.destroy();
    return out;
  }

  copy(src: DataId, dst: DataId): void {
    const a = this.stored(src);
    const b = this.stored(dst);
    const n = Math.ceil((a.size * bytesPerElement(a.dtype)) / 4) * 4;
    if (n === 0) return;
    this.endPass();
    this.enc().copyBufferToBuffer(a.buffer, 0, b.buffer, 0, n);
  }

  copyRange(src: DataId, dst: DataId, srcOffset: number, dstOffset: number, count: number): void {
    const a = this.stored(src);
    const b = this.stored(dst);
    const bytes = bytesPerElement(a.dtype);
    if (count === 0) return;
    if ((srcOffset * bytes) % 4 !== 0 || (dstOffset * bytes) % 4 !== 0 || (count * bytes) % 4 !== 0) {
      throw new Error(`webgpu backend: copyRange of ${count} ${a.dtype} elements from ${srcOffset} to ${dstOffset} is not in whole 4-byte words`);
    }
    this.endPass();
    this.enc().copyBufferToBuffer(a.buffer, srcOffset * bytes, b.buffer, dstOffset * bytes, count * bytes);
  }

  // ---- commands ----
  private enc(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Submits what has been recorded. */
  submit(): void {
    this.endPass();
    if (!this.encoder) return;
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    for (const b of this.transient) b.destroy();
    this.transient = [];
  }

  /**
   * The pipeline of a WGSL source, cached by the source. Its bind-group layout is explicit, read from the source's
   * storage declarations: an 'auto' layout drops bindings a shader never reads, which would invalidate the bind group
   * (and with it the whole command buffer) of a kernel that binds an input it does not need in one of its passes.
   */
  pipeline(code: string): GpuComputePipeline {
    let p = this.pipelines.get(code);
    if (!p) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (const m of code.matchAll(/@group\(0\) @binding\((\d+)\) var<storage, (read_write|read)>/g)) {
        entries.push({ binding: Number(m[1]), visibility: GPUShaderStage.COMPUTE, buffer: { type: m[2] === 'read' ? 'read-only-storage' : 'storage' } });
      }
      const layout = this.device.createPipelineLayout({ bindGroupLayouts: [this.device.createBindGroupLayout({ entries })] });
      p = this.device.createComputePipeline({ layout, compute: { module: this.device.createShaderModule({ code }), entryPoint: 'main' } });
      this.pipelines.set(code, p);
    }
    return p;
  }

  /** Records one dispatch: buffers bound in order at group 0, bindings 0.., the u32 meta array last. */
  dispatch(code: string, buffers: readonly GpuBuffer[], meta: readonly number[], groups: [number, number?, number?]): void {
    const pipe = this.pipeline(code);
    const m = new Uint32Array(Math.max(4, meta.length));
    meta.forEach((v, i) => (m[i] = v >>> 0));
    const metaBuf = this.device.createBuffer({ size: m.byteLength, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
    new Uint32Array(metaBuf.getMappedRange()).set(m);
    metaBuf.unmap();
    const bg = this.device.createBindGroup({
      layout: pipe.getBindGroupLayout(0),
      entries: [...buffers, metaBuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    this.pass ??= this.enc().beginComputePass();
    this.pass.setPipeline(pipe);
    this.pass.setBindGroup(0, bg);
    this.pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
    this.transient.push(metaBuf); // destroyed once submitted
  }

  /** Whether the backend still holds Dawn's GPU object (false once disposed, or when a device was given). */
  get holdsGpu(): boolean {
    return this.gpu !== null;
  }

  supports(op: Op): boolean {
    return KERNELS[op] !== undefined;
  }

  run<O extends Op>(op: O, inputs: readonly BackendInput[], params: OpParams[O], outputs: readonly TensorInfo[]): DataId[] {
    const k = KERNELS[op];
    if (!k) throw new Error(`webgpu: op ${op} is not implemented on the webgpu backend yet`);
    const outs = outputs.map((o) => this.allocate(o.dtype, o.shape.reduce((a, b) => a * b, 1)));
    k(this, inputs, params, outputs.map((o, i) => ({ ...o, id: outs[i]! })));
    return outs;
  }

  async flush(): Promise<void> {
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
  }

  bytesInUse(): number {
    return this.inUse;
  }

  async dispose(): Promise<void> {
    await this.flush();
    for (const s of this.bufs.values()) s.buffer.destroy();
    for (const l of this.pool.values()) for (const b of l) b.destroy();
    this.bufs.clear();
    this.pool.clear();
    this.device.destroy();
    this.gpu = null; // lets Dawn's instance go, so the process can exit
  }
}
