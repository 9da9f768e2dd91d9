/**
 * Arenas: shared WebAssembly memories that hold weights (and per-call scratch) where the WASM kernels of
 * every thread can read them. wasm32 addresses 4 GiB, so a model larger than that spans several arenas;
 * a kernel only touches one arena per call (its weight's), and activations are copied into that arena.
 */
import { type WasmMemory, wasm } from "./wasm-api.js";

export const PAGE_BYTES = 65536;
/** wasm32: 65536 pages of 64 KiB. */
export const MAX_ARENA_BYTES = 65536 * PAGE_BYTES;
/** Bytes below this offset are never handed out (null pointer, space the compiler may assume is its own). */
const RESERVED_BYTES = PAGE_BYTES;
const ALIGN = 64;

/** Arenas by every SharedArrayBuffer object their memory has exposed (one per growth). */
const byBuffer = new WeakMap<ArrayBufferLike, Arena>();

let nextArenaId = 1;

/**
 * One shared memory plus a first-fit allocator over it. Blocks are 64-byte aligned; free blocks coalesce.
 * The memory only grows, on the JavaScript thread, between kernel calls.
 */
export class Arena {
  readonly id = nextArenaId++;
  readonly memory: WasmMemory;
  /** Free blocks, sorted by offset, never adjacent. */
  private readonly free: { offset: number; size: number }[] = [];
  private readonly used = new Map<number, number>();
  private top = RESERVED_BYTES;
  private lastBuffer: ArrayBufferLike | undefined;
  private bytesInUse = 0;

  constructor(
    /** Upper bound for this arena's memory in bytes (≤ 4 GiB). */
    readonly capacity = MAX_ARENA_BYTES,
  ) {
    const maximum = Math.ceil(Math.min(capacity, MAX_ARENA_BYTES) / PAGE_BYTES);
    this.memory = new wasm.Memory({ initial: RESERVED_BYTES / PAGE_BYTES, maximum, shared: true });
    void this.buffer;
  }

  /**
   * The memory's current buffer (older ones stay valid). V8 hands out a new buffer object after this
   * memory grows, and also after any other shared memory of the thread grows (Node 20), so each new
   * object is registered here, where every view of an arena is made.
   */
  get buffer(): SharedArrayBuffer {
    const buffer = this.memory.buffer as unknown as SharedArrayBuffer;
    if (buffer !== this.lastBuffer) {
      byBuffer.set(buffer, this);
      this.lastBuffer = buffer;
    }
    return buffer;
  }

  /** Bytes allocated and not yet freed. */
  get allocated(): number {
    return this.bytesInUse;
  }

  /** Offset of a new block of `bytes`, or undefined when the arena cannot hold it. */
  alloc(bytes: number): number | undefined {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const block = this.free[i];
      if (block.size < size) continue;
      const offset = block.offset;
      if (block.size === size) this.free.splice(i, 1);
      else {
        block.offset += size;
        block.size -= size;
      }
      return this.take(offset, size);
    }
    if (this.top + size > this.capacity) return undefined;
    const offset = this.top;
    const needed = offset + size;
    if (needed > this.memory.buffer.byteLength) {
      // Grow geometrically (up to the capacity) so that loading a model takes few growths.
      const current = this.memory.buffer.byteLength;
      const target = Math.min(this.capacity, Math.max(needed, current + Math.min(current, 1 << 30)));
      const pages = Math.ceil(target / PAGE_BYTES) - current / PAGE_BYTES;
      try {
        this.memory.grow(pages);
      } catch {
        try {
          this.memory.grow(Math.ceil(needed / PAGE_BYTES) - current / PAGE_BYTES);
        } catch {
          return undefined;
        }
      }
      void this.buffer;
    }
    this.top = needed;
    return this.take(offset, size);
  }

  /** Returns a block from `alloc` to the arena. */
  release(offset: number): void {
    const size = this.used.get(offset);
    if (size === undefined) throw new Error(`arena ${this.id}: no block at ${offset}`);
    this.used.delete(offset);
    this.bytesInUse -= size;
    let lo = 0;
    let hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.free[mid].offset < offset) lo = mid + 1;
      else hi = mid;
    }
    this.free.splice(lo, 0, { offset, size });
    // Coalesce with the next block, then the previous one.
    const next = this.free[lo + 1];
    const block = this.free[lo];
    if (next && block.offset + block.size === next.offset) {
      block.size += next.size;
      this.free.splice(lo + 1, 1);
    }
    const prev = this.free[lo - 1];
    if (prev && prev.offset + prev.size === block.offset) {
      prev.size += block.size;
      this.free.splice(lo, 1);
    }
    // A free block at the top shrinks the used region instead.
    const last = this.free[this.free.length - 1];
    if (last && last.offset + last.size === this.top) {
      this.top = last.offset;
      this.free.pop();
    }
  }

  private take(offset: number, size: number): number {
    this.used.set(offset, size);
    this.bytesInUse += size;
    return offset;
  }
}

/** The arena whose memory backs `buffer`, if any. */
export function arenaOf(buffer: ArrayBufferLike): Arena | undefined {
  return byBuffer.get(buffer);
}
