// The WebGPU types that the webgpu backend's public declarations name. WebGPU's own types (@webgpu/types) reach a
// user only through the optional `webgpu` package or their own setup, so the published .d.ts files must not name
// GPUBuffer & co. directly: a project without them fails on `Cannot find name 'GPUBuffer'` (with skipLibCheck off).
// Each alias here is the real WebGPU type wherever it is in scope (moekit's own build references @webgpu/types, so
// inside moekit they are exactly GPUDevice, GPUBuffer, ...; so they are in a user's project that has the types, from
// @webgpu/types or a lib.dom that includes WebGPU), and otherwise a structural stand-in listing members every such
// object has. The test is `typeof globalThis`: WebGPU's types declare each interface with a global `var` of the same
// name (`declare var GPUBuffer: { prototype: GPUBuffer; ... }`).

type Globals = typeof globalThis;

/** A GPUBuffer where WebGPU's types are in scope, else the members of one that moekit's declarations rely on. */
export type GpuBuffer = Globals extends { GPUBuffer: { prototype: infer T } } ? T : GpuBufferLike;
/** A GPUDevice where WebGPU's types are in scope, else the members of one that moekit's declarations rely on. */
export type GpuDevice = Globals extends { GPUDevice: { prototype: infer T } } ? T : GpuDeviceLike;
/** A GPUComputePipeline where WebGPU's types are in scope, else the members of one that moekit's declarations rely on. */
export type GpuComputePipeline = Globals extends { GPUComputePipeline: { prototype: infer T } } ? T : GpuComputePipelineLike;

/** Members of every GPUBuffer (a subset of WebGPU's interface), for projects without WebGPU's types. */
export interface GpuBufferLike {
  label: string;
  /** the size in bytes */
  readonly size: number;
  /** GPUBufferUsage flags */
  readonly usage: number;
  destroy(): void;
}

/** Members of every GPUDevice (a subset of WebGPU's interface), for projects without WebGPU's types. */
export interface GpuDeviceLike {
  label: string;
  /** the device's GPUQueue */
  readonly queue: object;
  /** resolves (with a GPUDeviceLostInfo) when the device is lost or destroyed */
  readonly lost: Promise<unknown>;
  destroy(): void;
}

/** Members of every GPUComputePipeline (a subset of WebGPU's interface), for projects without WebGPU's types. */
export interface GpuComputePipelineLike {
  label: string;
  /** the GPUBindGroupLayout at a group index */
  getBindGroupLayout(index: number): object;
}
