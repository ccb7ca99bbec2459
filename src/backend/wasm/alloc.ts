// JS-side allocator over the shared wasm memory: 64-byte aligned blocks, size-class free lists, growth on demand.

const ALIGN = 64;
const PAGE = 65536;
const MAX_PAGES = 65536;

/** Rounds a request to its size class: multiples of 64 up to 4 KiB, then 8 steps per power of two. */
export function sizeClass(bytes: number): number {
  const b = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  if (b <= 4096) return b;
  const step = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

/** A first-fit-by-class allocator; pointers are byte offsets into `memory`. */
export class Allocator {
  private top: number;
  private readonly live = new Map<number, number>(); // ptr -> class size
  private readonly freeLists = new Map<number, number[]>(); // class size -> free ptrs
  private inUse = 0;
  private peak = 0;

  constructor(private readonly memory: WebAssembly.Memory, readonly heapStart: number) {
    this.top = Math.ceil(heapStart / ALIGN) * ALIGN;
  }

  get bytesInUse(): number { return this.inUse; }
  get peakBytes(): number { return this.peak; }
  /** End of the bump region (bytes); memory above it is unused. */
  get heapTop(): number { return this.top; }

  alloc(bytes: number): number {
    if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError(`wasm alloc: invalid size ${bytes}`);
    const size = sizeClass(bytes);
    let ptr = this.freeLists.get(size)?.pop();
    let got = size;
    if (ptr === undefined) ptr = this.bump(size);
    if (ptr === undefined) {
      const larger = this.takeLarger(size);
      if (!larger) {
        throw new RangeError(`wasm alloc: out of memory allocating ${bytes} bytes (heap top ${this.top} bytes, ` +
          `memory ${this.memory.buffer.byteLength} bytes, limit ${MAX_PAGES * PAGE} bytes)`);
      }
      [ptr, got] = larger;
    }
    this.live.set(ptr, got);
    this.inUse += got;
    if (this.inUse > this.peak) this.peak = this.inUse;
    return ptr;
  }

  free(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`wasm free: ${ptr} is not a live allocation (unknown pointer or double free)`);
    this.live.delete(ptr);
    this.inUse -= size;
    if (ptr + size === this.top) {
      this.top = ptr;
      this.trimTop();
    } else {
      let list = this.freeLists.get(size);
      if (!list) { list = []; this.freeLists.set(size, list); }
      list.push(ptr);
    }
  }

  /** Size in bytes of a live allocation (its class size), or undefined. */
  sizeOf(ptr: number): number | undefined { return this.live.get(ptr); }

  /** Lowers the bump pointer over free blocks that end at it. */
  private trimTop(): void {
    for (;;) {
      let moved = false;
      for (const [size, list] of this.freeLists) {
        const i = list.indexOf(this.top - size);
        if (i >= 0) { list.splice(i, 1); this.top -= size; moved = true; break; }
      }
      if (!moved) return;
    }
  }

  /** Extends the heap top by `size`, growing memory; undefined when memory cannot grow enough. */
  private bump(size: number): number | undefined {
    const ptr = this.top;
    const end = ptr + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const cur = have / PAGE;
      const need = Math.ceil((end - have) / PAGE);
      if (need > MAX_PAGES - cur) return undefined;
      // Grow geometrically (at least 1/8 of the current size) so repeated growth stays cheap.
      const want = Math.min(MAX_PAGES - cur, Math.max(need, Math.ceil(cur / 8)));
      try {
        this.memory.grow(want);
      } catch {
        try { this.memory.grow(need); } catch { return undefined; }
      }
    }
    this.top = end;
    return ptr;
  }

  /** Last resort before failing: a free block of a larger class, as [ptr, its size]. */
  private takeLarger(size: number): [number, number] | undefined {
    let best: number | undefined;
    for (const [s, list] of this.freeLists) if (s >= size && list.length > 0 && (best === undefined || s < best)) best = s;
    if (best === undefined) return undefined;
    return [this.freeLists.get(best)!.pop()!, best];
  }
}
