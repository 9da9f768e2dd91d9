import type { Backend } from "../backend.js";
import type { Tensor } from "../tensor.js";

/** Keys and values visible to attention after an append. Row j holds absolute position j. */
export interface KvView {
  k: Tensor;
  v: Tensor;
  length: number;
}

/** One layer's cache. The model appends its new keys/values and attends over what comes back. */
export interface KvLayer {
  append(k: Tensor, v: Tensor): KvView;
  readonly length: number;
}

/** All layers' caches for one sequence. Strategies (resident, paged, disk-backed…) implement this. */
export interface KvStore {
  layer(index: number): KvLayer;
  /** Tokens cached (equal in every attention layer). */
  readonly length: number;
  /** Forget everything after `length` tokens (e.g. to reuse a shared prompt prefix). */
  truncate(length: number): void;
  dispose(): void;
}

/** Geometry of one layer's cache; `undefined` for layers without KV (e.g. linear attention). */
export interface KvLayerSpec {
  numKvHeads: number;
  headDim: number;
}

/** Everything in memory, in buffers that grow by doubling. */
export class ResidentKvStore implements KvStore {
  private readonly layers: (ResidentKvLayer | undefined)[];

  constructor(backend: Backend, specs: (KvLayerSpec | undefined)[], initialCapacity = 64) {
    this.layers = specs.map((s) =>
      s ? new ResidentKvLayer(backend, s.numKvHeads * s.headDim, initialCapacity) : undefined,
    );
  }

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

  dispose(): void {
    for (const l of this.layers) l?.dispose();
  }
}

class ResidentKvLayer implements KvLayer {
  private k: Tensor;
  private v: Tensor;
  private capacity: number;
  length = 0;

  constructor(
    private readonly backend: Backend,
    private readonly width: number,
    capacity: number,
  ) {
    this.capacity = capacity;
    this.k = backend.zeros([capacity, width]);
    this.v = backend.zeros([capacity, width]);
  }

  append(k: Tensor, v: Tensor): KvView {
    const rows = k.shape[0];
    if (this.length + rows > this.capacity) this.grow(this.length + rows);
    this.backend.writeRows(this.k, this.length, k);
    this.backend.writeRows(this.v, this.length, v);
    this.length += rows;
    return { k: this.k, v: this.v, length: this.length };
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
    while (capacity < needed) capacity *= 2;
    const k = this.backend.zeros([capacity, this.width]);
    const v = this.backend.zeros([capacity, this.width]);
    if (this.length > 0) {
      this.backend.writeRows(k, 0, this.backend.sliceRows(this.k, 0, this.length));
      this.backend.writeRows(v, 0, this.backend.sliceRows(this.v, 0, this.length));
    }
    this.k.dispose();
    this.v.dispose();
    this.k = k;
    this.v = v;
    this.capacity = capacity;
  }
}
