import type { Backend } from "../backend.js";
import type { Tensor } from "../tensor.js";

/**
 * Keys and values visible to attention after an append. Row j holds absolute position
 * `positionOffset + j` (0 unless the strategy keeps only a window, see the ring buffer).
 */
export interface KvView {
  k: Tensor;
  v: Tensor;
  /** Rows of k/v attention reads. */
  length: number;
  /** Absolute position of row 0 (default 0). */
  positionOffset?: number;
  /**
   * Keys older than this many positions are gone from the cache: attention must mask them (it combines
   * this with the layer's own sliding window, taking the smaller).
   */
  window?: number;
}

/** One layer's cache. The model appends its new keys/values and attends over what comes back. */
export interface KvLayer {
  append(k: Tensor, v: Tensor): KvView;
  /** Tokens appended to this layer (its absolute length, whatever the strategy keeps). */
  readonly length: number;
}

/** Bytes a cache holds right now, by where they are. */
export interface KvUsage {
  /** Backend memory (on the CPU backend: host RAM too). */
  deviceBytes: number;
  /** JavaScript-side host buffers (quantized blocks, staging of disk reads). */
  hostBytes: number;
  diskBytes: number;
}

/**
 * All layers' caches for one sequence. Strategies (resident, paged, quantized, ring, disk-backed…)
 * implement this; the model code never knows which one runs.
 *
 * The runner calls `beforeLayer(i)` before each chunk it runs through layer i and `afterLayer(i)`
 * after it: strategies that keep history off the device load it there (and start reading the next
 * layer's), and move full blocks to their cold tier. Both are optional; stores without them work with
 * any caller.
 */
export interface KvStore {
  layer(index: number): KvLayer;
  /** Tokens cached (equal in every attention layer between forward passes). */
  readonly length: number;
  /** Forget everything after `length` tokens (e.g. to reuse a shared prompt prefix). */
  truncate(length: number): void;
  beforeLayer?(index: number): Promise<void>;
  afterLayer?(index: number): Promise<void>;
  usage(): KvUsage;
  /** Frees memory and removes the store's disk files. */
  dispose(): void;
}

/** Geometry of one layer's cache; `undefined` for layers without KV (e.g. linear attention). */
export interface KvLayerSpec {
  numKvHeads: number;
  headDim: number;
}

export interface ResidentKvOptions {
  /** Rows allocated per layer up front (default 64). */
  initialCapacity?: number;
  /**
   * How buffers grow: "double" (default; amortised O(1) appends, up to 2× the rows held) or "chunked"
   * (in steps of `chunkTokens` rows: at most one chunk of slack per layer, a copy per chunk).
   */
  growth?: "double" | "chunked";
  chunkTokens?: number;
  /** Attention only sees the last `window` tokens (everything is kept: the reference for lossy windows). */
  window?: number;
}

/** A layer of an in-memory store: what it holds in bytes, and how to drop rows and free it. */
export interface MemoryKvLayer extends KvLayer {
  readonly bytes: number;
  truncate(length: number): void;
  dispose(): void;
}

/** The per-layer bookkeeping the in-memory strategies share: they differ only in their layers. */
export abstract class InMemoryKvStore<L extends MemoryKvLayer> implements KvStore {
  constructor(protected readonly layers: readonly (L | undefined)[]) {}

  layer(index: number): KvLayer {
    const layer = this.layers[index];
    if (!layer) throw new Error(`layer ${index} has no KV cache`);
    return layer;
  }

  get length(): number {
    return this.layers.find((l) => l)?.length ?? 0;
  }

  truncate(length: number): void {
    for (const l of this.layers) l?.truncate(length);
  }

  usage(): KvUsage {
    let deviceBytes = 0;
    for (const l of this.layers) deviceBytes += l?.bytes ?? 0;
    return { deviceBytes, hostBytes: 0, diskBytes: 0 };
  }

  dispose(): void {
    for (const l of this.layers) l?.dispose();
  }
}

/** Everything in backend memory, one contiguous buffer per layer. */
export class ResidentKvStore extends InMemoryKvStore<ResidentKvLayer> {
  constructor(
    backend: Backend,
    specs: (KvLayerSpec | undefined)[],
    options: ResidentKvOptions | number = {},
  ) {
    const o = typeof options === "number" ? { initialCapacity: options } : options;
    const step = o.growth === "chunked" ? Math.max(1, o.chunkTokens ?? 256) : 0;
    super(
      specs.map((s) =>
        s
          ? new ResidentKvLayer(
              backend,
              s.numKvHeads * s.headDim,
              o.initialCapacity ?? (step || 64),
              step,
              o.window,
            )
          : undefined,
      ),
    );
  }
}

class ResidentKvLayer implements MemoryKvLayer {
  private k: Tensor;
  private v: Tensor;
  private capacity: number;
  length = 0;

  constructor(
    private readonly backend: Backend,
    private readonly width: number,
    capacity: number,
    /** Growth step in rows; 0 doubles. */
    private readonly step: number,
    private readonly window: number | undefined,
  ) {
    this.capacity = capacity;
    this.k = backend.zeros([capacity, width]);
    this.v = backend.zeros([capacity, width]);
  }

  get bytes(): number {
    return 2 * this.capacity * this.width * 4;
  }

  append(k: Tensor, v: Tensor): KvView {
    const rows = k.shape[0];
    if (this.length + rows > this.capacity) this.grow(this.length + rows);
    this.backend.writeRows(this.k, this.length, k);
    this.backend.writeRows(this.v, this.length, v);
    this.length += rows;
    return { k: this.k, v: this.v, length: this.length, window: this.window };
  }

  truncate(length: number): void {
    this.length = Math.min(this.length, length);
  }

  dispose(): void {
    this.k.dispose();
    this.v.dispose();
  }

  private grow(needed: number): void {
    let capacity = this.capacity;
    if (this.step > 0) capacity = Math.ceil(needed / this.step) * this.step;
    else while (capacity < needed) capacity *= 2;
    this.k = regrown(this.backend, this.k, this.length, capacity, this.width);
    this.v = regrown(this.backend, this.v, this.length, capacity, this.width);
    this.capacity = capacity;
  }
}

/** A [capacity, width] buffer holding the first `rows` rows of `old`, which is freed. */
export function regrown(
  backend: Backend,
  old: Tensor,
  rows: number,
  capacity: number,
  width: number,
): Tensor {
  const fresh = backend.zeros([capacity, width]);
  if (rows > 0) backend.writeRows(fresh, 0, backend.sliceRows(old, 0, rows));
  old.dispose();
  return fresh;
}
