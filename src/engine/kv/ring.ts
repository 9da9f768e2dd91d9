import { OllmError } from "../../errors.js";
import type { Backend } from "../backend.js";
import type { Tensor } from "../tensor.js";
import { InMemoryKvStore, type KvLayerSpec, type KvView, type MemoryKvLayer } from "./kv-store.js";

/**
 * Backends whose attention honours `kvPositionOffset` (key row j at absolute position offset + j), which a
 * ring buffer needs. A backend adds its name here once its attention implements the field.
 */
export const BACKENDS_WITH_KEY_OFFSET: ReadonlySet<string> = new Set(["cpu", "webgpu"]);

/**
 * Sliding-window ring buffer: each layer keeps only the last `windowTokens` positions, and attention is
 * limited to them. For layers whose own sliding window is no wider this is exact; for full-attention
 * layers it is a bounded-memory approximation (the model stops seeing tokens older than the window).
 *
 * The ring is mirrored: position q is written at slot q mod C and at slot q mod C + C of a 2C-row buffer,
 * so the last C positions are always contiguous rows [s, s + C) and attention reads them in place, with
 * `positionOffset` telling it which absolute position row 0 stands for (rows before s are older than
 * the window and masked by it). C ≥ window − 1 + the rows of the chunk, so a chunk's queries find every
 * key of their window.
 */
export class SlidingWindowKvStore extends InMemoryKvStore<RingLayer> {
  constructor(backend: Backend, specs: (KvLayerSpec | undefined)[], windowTokens: number) {
    if (!Number.isInteger(windowTokens) || windowTokens < 1)
      throw new OllmError(
        "INVALID_ARGUMENT",
        `kvCacheWindowTokens must be a positive integer, not ${windowTokens}`,
      );
    if (!BACKENDS_WITH_KEY_OFFSET.has(backend.name))
      throw new OllmError(
        "NOT_IMPLEMENTED",
        `the sliding-window ring buffer needs attention with key position offsets, which the ${backend.name} backend does not implement yet`,
        { hint: 'use the cpu backend, or another kvCacheStrategy such as "paged"' },
      );
    super(specs.map((s) => (s ? new RingLayer(backend, s.numKvHeads * s.headDim, windowTokens) : undefined)));
  }
}

class RingLayer implements MemoryKvLayer {
  private k: Tensor;
  private v: Tensor;
  /** Slots of the ring (the buffers have 2C rows). */
  private capacity: number;
  length = 0;

  constructor(
    private readonly backend: Backend,
    private readonly width: number,
    private readonly window: number,
  ) {
    this.capacity = window + 63;
    this.k = backend.zeros([2 * this.capacity, width]);
    this.v = backend.zeros([2 * this.capacity, width]);
  }

  get bytes(): number {
    return 2 * 2 * this.capacity * this.width * 4;
  }

  append(k: Tensor, v: Tensor): KvView {
    const n = k.shape[0];
    if (this.window - 1 + n > this.capacity) this.grow(this.window - 1 + n);
    this.writeAt(this.k, this.length, k);
    this.writeAt(this.v, this.length, v);
    this.length += n;
    const L = this.length;
    const C = this.capacity;
    if (L <= C) return { k: this.k, v: this.v, length: L, positionOffset: 0, window: this.window };
    const s = L % C;
    return { k: this.k, v: this.v, length: s + C, positionOffset: L - C - s, window: this.window };
  }

  truncate(length: number): void {
    if (length >= this.length) return;
    // Positions [length - window + 1, length) must still be in the ring (slots hold [L - C, L)).
    if (length > 0 && length - this.window + 1 < this.length - this.capacity)
      throw new OllmError(
        "INVALID_ARGUMENT",
        `the sliding-window KV cache cannot go back to ${length} tokens: it only holds the last ${this.capacity} of ${this.length}`,
      );
    this.length = Math.max(0, length);
  }

  dispose(): void {
    this.k.dispose();
    this.v.dispose();
  }

  /** Writes the rows of `t` for positions q0, q0+1, … at their slots in both halves. */
  private writeAt(buf: Tensor, q0: number, t: Tensor): void {
    const b = this.backend;
    const C = this.capacity;
    const m = t.shape[0];
    for (let done = 0; done < m; ) {
      const slot = (q0 + done) % C;
      const len = Math.min(C - slot, m - done);
      const src = done === 0 && len === m ? t : b.sliceRows(t, done, len);
      b.writeRows(buf, slot, src);
      b.writeRows(buf, slot + C, src);
      done += len;
    }
  }

  private grow(needed: number): void {
    const b = this.backend;
    const old = { k: this.k, v: this.v, C: this.capacity };
    const keep = Math.min(this.length, this.window - 1, old.C);
    // The last `keep` positions, in order: rows [s + C - keep, s + C) of the mirror (or [L - keep, L) before it wraps).
    const end = this.length <= old.C ? this.length : (this.length % old.C) + old.C;
    const tailK = keep > 0 ? b.sliceRows(old.k, end - keep, keep) : undefined;
    const tailV = keep > 0 ? b.sliceRows(old.v, end - keep, keep) : undefined;
    this.capacity = Math.ceil(needed / 64) * 64;
    this.k = b.zeros([2 * this.capacity, this.width]);
    this.v = b.zeros([2 * this.capacity, this.width]);
    if (tailK && tailV) {
      this.writeAt(this.k, this.length - keep, tailK);
      this.writeAt(this.v, this.length - keep, tailV);
    }
    old.k.dispose();
    old.v.dispose();
  }
}
