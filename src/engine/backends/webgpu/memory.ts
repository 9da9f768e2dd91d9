/// <reference types="@webgpu/types" />
/**
 * GPU memory plumbing: a size-bucketed pool of storage buffers for activations, the per-submission
 * parameter arena (uniform blocks and small host arrays written once per submit), and the ring of
 * mapped staging buffers uploads go through.
 */

const STORAGE = 0x80; // GPUBufferUsage.STORAGE
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const UNIFORM = 0x40;
const MAP_WRITE = 0x02;
const MAP_READ = 0x01;

export const USAGE = { STORAGE, COPY_SRC, COPY_DST, UNIFORM, MAP_WRITE, MAP_READ };

/** Default sizes of the backend's own buffers (the runtime's GPU memory plan counts them). */
export const WEBGPU_BUFFER_DEFAULTS = {
  /** The upload staging ring: chunks × chunk bytes of MAP_WRITE buffers. */
  stagingChunkBytes: 16 << 20,
  stagingChunks: 8,
  /** Free activation buffers the pool keeps for reuse. */
  poolBytes: 1 << 30,
  /** An activation heap page at most (the binding limit may make it smaller); two heaps. */
  heapPageBytes: 128 << 20,
  heaps: 2,
} as const;

/** Bucket sizes: 256 B granularity up to 4 KiB, then 2^k and 1.5·2^k (≤ 33% waste). */
export function bucketSize(bytes: number): number {
  if (bytes <= 4096) return Math.max(256, Math.ceil(bytes / 256) * 256);
  const p = 2 ** Math.floor(Math.log2(bytes));
  if (bytes === p) return p;
  if (bytes <= p * 1.5) return p * 1.5;
  return p * 2;
}

/** Storage buffers for activations, reused by size. Free buffers beyond `keepBytes` are destroyed. */
export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private freeBytes = 0;
  liveBytes = 0;
  peakBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly keepBytes: number,
  ) {}

  acquire(bytes: number): GPUBuffer {
    const size = bucketSize(bytes);
    const list = this.free.get(size);
    const buffer = list?.pop();
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    if (buffer) {
      this.freeBytes -= size;
      return buffer;
    }
    return this.device.createBuffer({ size, usage: STORAGE | COPY_SRC | COPY_DST });
  }

  /** Back to the pool; `destroy` gets the buffers the pool does not keep. */
  release(buffer: GPUBuffer, destroy: (b: GPUBuffer) => void): void {
    const size = buffer.size;
    this.liveBytes -= size;
    if (this.freeBytes + size > this.keepBytes) {
      destroy(buffer);
      return;
    }
    let list = this.free.get(size);
    if (!list) {
      list = [];
      this.free.set(size, list);
    }
    list.push(buffer);
    this.freeBytes += size;
  }

  clear(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.freeBytes = 0;
  }
}

interface ArenaChunk {
  buffer: GPUBuffer;
  host: ArrayBuffer;
  u32: Uint32Array;
  f32: Float32Array;
  i32: Int32Array;
  used: number;
}

/** A binding into the arena. */
export interface ArenaSlice {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/**
 * Parameters and small host arrays of the ops recorded for one submission. Written into host memory
 * while recording and copied with one writeBuffer per chunk just before the submit (queue-ordered, so a
 * chunk is reused by the next submission safely).
 */
export class ParamArena {
  private chunks: ArenaChunk[] = [];
  private current = 0;
  private readonly spare: ArenaChunk[] = [];

  constructor(
    private readonly device: GPUDevice,
    private readonly align: number,
    private readonly chunkBytes = 1 << 16,
  ) {}

  /** Room for `bytes`, aligned for uniform and storage bindings. */
  alloc(bytes: number): ArenaSlice {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    let chunk = this.chunks[this.current];
    if (!chunk || chunk.used + size > chunk.host.byteLength) {
      chunk = this.newChunk(size);
    }
    const offset = chunk.used;
    chunk.used = Math.ceil((offset + size) / this.align) * this.align;
    this.last = chunk;
    return { buffer: chunk.buffer, offset, size };
  }

  /** Word views of the chunk of the last `alloc` (index = byte offset / 4). */
  get u32(): Uint32Array {
    return (this.last as ArenaChunk).u32;
  }

  get f32(): Float32Array {
    return (this.last as ArenaChunk).f32;
  }

  get i32(): Int32Array {
    return (this.last as ArenaChunk).i32;
  }

  private last: ArenaChunk | undefined;

  /** Copies what was written to the GPU (call right before submitting). */
  upload(queue: GPUQueue): void {
    for (const c of this.chunks)
      if (c.used > 0) queue.writeBuffer(c.buffer, 0, c.host, 0, Math.min(c.used, c.host.byteLength));
  }

  /** After a submit: chunks of the standard size are reused, oversized ones dropped. */
  reset(): void {
    for (const c of this.chunks) {
      c.used = 0;
      if (c.host.byteLength === this.chunkBytes) this.spare.push(c);
      else c.buffer.destroy();
    }
    this.chunks = [];
    this.current = 0;
  }

  get pending(): boolean {
    return this.chunks.length > 0;
  }

  private newChunk(size: number): ArenaChunk {
    let chunk: ArenaChunk | undefined;
    if (size <= this.chunkBytes) chunk = this.spare.pop();
    if (!chunk) {
      const bytes = Math.max(this.chunkBytes, Math.ceil(size / 256) * 256);
      const host = new ArrayBuffer(bytes);
      chunk = {
        buffer: this.device.createBuffer({ size: bytes, usage: UNIFORM | STORAGE | COPY_DST }),
        host,
        u32: new Uint32Array(host),
        f32: new Float32Array(host),
        i32: new Int32Array(host),
        used: 0,
      };
    }
    this.chunks.push(chunk);
    this.current = this.chunks.length - 1;
    return chunk;
  }
}

/**
 * Uploads through a ring of MAP_WRITE staging buffers: a mapped one is filled synchronously, copied with
 * copyBufferToBuffer in its own submit, and re-mapped asynchronously. When none is mapped yet, the
 * destination is created mappedAtCreation instead (never queue.writeBuffer, measured 6-8× slower).
 */
export class StagingRing {
  private readonly ready: GPUBuffer[] = [];
  private pendingMaps = 0;
  uploadedBytes = 0;
  uploadMs = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly chunkBytes: number,
    count: number,
  ) {
    for (let i = 0; i < count; i++) {
      this.ready.push(
        device.createBuffer({ size: chunkBytes, usage: MAP_WRITE | COPY_SRC, mappedAtCreation: true }),
      );
    }
  }

  /** A new buffer of `size` bytes (multiple of 4) holding `bytes` (zero-padded). */
  upload(bytes: Uint8Array, size: number, usage: number): GPUBuffer {
    const t0 = performance.now();
    // The ring when it can take the whole tensor now; else the destination mapped at creation.
    const viaRing = this.ready.length * this.chunkBytes >= bytes.byteLength;
    const dst = this.device.createBuffer({ size, usage, mappedAtCreation: !viaRing });
    if (!viaRing) {
      new Uint8Array(dst.getMappedRange()).set(bytes);
      dst.unmap();
    } else {
      const encoder = this.device.createCommandEncoder();
      const used: GPUBuffer[] = [];
      for (let at = 0; at < bytes.byteLength; at += this.chunkBytes) {
        const staging = this.ready.pop() as GPUBuffer;
        const n = Math.min(this.chunkBytes, bytes.byteLength - at);
        const n4 = Math.ceil(n / 4) * 4;
        const view = new Uint8Array(staging.getMappedRange(0, n4));
        view.set(bytes.subarray(at, at + n));
        if (n4 > n) view.fill(0, n);
        staging.unmap();
        encoder.copyBufferToBuffer(staging, 0, dst, at, n4);
        used.push(staging);
      }
      this.device.queue.submit([encoder.finish()]);
      for (const s of used) this.remap(s);
    }
    this.uploadedBytes += bytes.byteLength;
    this.uploadMs += performance.now() - t0;
    return dst;
  }

  /** Resolves when every staging buffer is mapped again. */
  async drain(): Promise<void> {
    while (this.pendingMaps > 0) await new Promise((r) => setTimeout(r, 1));
  }

  destroy(): void {
    for (const b of this.ready) b.destroy();
    this.ready.length = 0;
  }

  private remap(buffer: GPUBuffer): void {
    this.pendingMaps++;
    buffer.mapAsync(MAP_WRITE).then(
      () => {
        this.pendingMaps--;
        this.ready.push(buffer);
      },
      () => {
        this.pendingMaps--;
        buffer.destroy();
      },
    );
  }
}

/** A block of an activation heap page. */
export interface HeapBlock {
  buffer: GPUBuffer;
  /** Byte offset in the page. */
  offset: number;
  size: number;
  /** The heap the block goes back to. */
  heap: ActivationHeap;
}

/**
 * Small activations are sub-allocated from a few large pages, so consecutive ops touch the same buffers
 * and their bind groups can be cached (creating a buffer or a bind group per op costs ~15 µs each in
 * Dawn). Blocks are bucketed by size and recycled; pages are never returned.
 */
export class ActivationHeap {
  private readonly pages: GPUBuffer[] = [];
  private bump = 0;
  private readonly free = new Map<number, HeapBlock[]>();
  liveBytes = 0;
  peakBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly pageBytes: number,
  ) {}

  /** A block, or undefined when `bytes` is too large for the heap (use a buffer of its own). */
  acquire(bytes: number): HeapBlock | undefined {
    const size = bucketSize(bytes);
    if (size > this.pageBytes / 8) return undefined;
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    const reused = this.free.get(size)?.pop();
    if (reused) return reused;
    let page = this.pages[this.pages.length - 1];
    if (!page || this.bump + size > this.pageBytes) {
      page = this.device.createBuffer({ size: this.pageBytes, usage: STORAGE | COPY_SRC | COPY_DST });
      this.pages.push(page);
      this.bump = 0;
    }
    const block: HeapBlock = { buffer: page, offset: this.bump, size, heap: this };
    this.bump += size;
    return block;
  }

  release(block: HeapBlock): void {
    this.liveBytes -= block.size;
    let list = this.free.get(block.size);
    if (!list) {
      list = [];
      this.free.set(block.size, list);
    }
    list.push(block);
  }

  destroy(): void {
    for (const p of this.pages) p.destroy();
    this.pages.length = 0;
    this.free.clear();
  }
}

/** Chunks of a MappedHostBuffer by default (large single mappings were seen to abort Dawn). */
export const HOST_CHUNK_BYTES = 64 << 20;

/**
 * Host memory copied to the GPU by copyBufferToBuffer: MAP_WRITE buffers of ≤ 64 MiB that the caller fills
 * while mapped (a streamed layer read straight from disk, or a host-resident layer written once). Sealed,
 * the device copies from it with no staging copy; `map()` submits what still uses it, then waits.
 */
export class MappedHostBuffer {
  private readonly buffers: GPUBuffer[] = [];
  private ranges: ArrayBuffer[] | undefined;
  /** The backend's submission count when a copy from it was last recorded (see `copyTo`). */
  private usedIn = -1;

  constructor(
    device: GPUDevice,
    readonly byteLength: number,
    private readonly backend: { readonly epoch: number; submitPending(): void },
    private readonly chunkBytes = HOST_CHUNK_BYTES,
  ) {
    if (chunkBytes <= 0 || chunkBytes % 4)
      throw new RangeError("host buffer chunks are multiples of 4 bytes");
    try {
      for (let at = 0; at < byteLength; at += this.chunkBytes) {
        const size = Math.ceil(Math.min(this.chunkBytes, byteLength - at) / 4) * 4;
        this.buffers.push(device.createBuffer({ size, usage: MAP_WRITE | COPY_SRC, mappedAtCreation: true }));
      }
    } catch (error) {
      this.dispose();
      throw error;
    }
    this.ranges = this.buffers.map((b) => b.getMappedRange());
  }

  views(offset: number, length: number): Uint8Array[] {
    const ranges = this.ranges;
    if (!ranges) throw new Error("host buffer written while sealed");
    if (offset < 0 || offset + length > this.byteLength)
      throw new RangeError("host buffer view out of range");
    const out: Uint8Array[] = [];
    for (let at = offset, end = offset + length; at < end; ) {
      const k = Math.floor(at / this.chunkBytes);
      const from = at - k * this.chunkBytes;
      const n = Math.min(end - at, this.chunkBytes - from);
      out.push(new Uint8Array(ranges[k], from, n));
      at += n;
    }
    return out;
  }

  seal(): void {
    if (!this.ranges) return;
    this.ranges = undefined;
    for (const b of this.buffers) b.unmap();
  }

  async map(): Promise<void> {
    if (this.ranges) return;
    if (this.usedIn === this.backend.epoch) this.backend.submitPending();
    await Promise.all(this.buffers.map((b) => b.mapAsync(MAP_WRITE)));
    this.ranges = this.buffers.map((b) => b.getMappedRange());
  }

  /** Records copies of bytes [offset, offset + bytes) (multiples of 4) into dst at dstOffset. */
  copyTo(encoder: GPUCommandEncoder, offset: number, bytes: number, dst: GPUBuffer, dstOffset: number): void {
    if (this.ranges) throw new Error("host buffer copied while mapped: seal it first");
    if (offset + bytes > this.buffers.length * this.chunkBytes || offset % 4 || bytes % 4)
      throw new RangeError("host buffer copy out of range or unaligned");
    this.usedIn = this.backend.epoch;
    for (let at = offset, end = offset + bytes; at < end; ) {
      const k = Math.floor(at / this.chunkBytes);
      const from = at - k * this.chunkBytes;
      const n = Math.min(end - at, this.chunkBytes - from, this.buffers[k].size - from);
      if (n <= 0) throw new RangeError("host buffer copy out of range");
      encoder.copyBufferToBuffer(this.buffers[k], from, dst, dstOffset + (at - offset), n);
      at += n;
    }
  }

  dispose(): void {
    if (this.usedIn === this.backend.epoch) this.backend.submitPending();
    for (const b of this.buffers) b.destroy();
    this.buffers.length = 0;
    this.ranges = undefined;
  }
}
