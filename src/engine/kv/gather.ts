import type { Backend } from "../backend.js";
import type { Tensor } from "../tensor.js";

/**
 * One contiguous k/v buffer that block-based strategies assemble a layer's history into right before its
 * attention runs. It is shared by every layer of the same width, so a store holds one layer's worth of
 * contiguous KV instead of all of them; it remembers whose rows it holds so consecutive chunks of one
 * layer (layer-major prefill) only add their new rows.
 */
export class GatherBuffer {
  k: Tensor;
  v: Tensor;
  private capacity: number;
  /** Layer whose rows [0, rows) the buffer holds, or -1. */
  owner = -1;
  rows = 0;

  constructor(
    private readonly backend: Backend,
    readonly width: number,
    capacity = 256,
  ) {
    this.capacity = capacity;
    this.k = backend.zeros([capacity, width]);
    this.v = backend.zeros([capacity, width]);
  }

  get bytes(): number {
    return 2 * this.capacity * this.width * 4;
  }

  /** Makes room for `rows` rows, keeping the rows held (doubling, so growth is rare). */
  reserve(rows: number): void {
    if (rows <= this.capacity) return;
    let capacity = this.capacity;
    while (capacity < rows) capacity *= 2;
    const k = this.backend.zeros([capacity, this.width]);
    const v = this.backend.zeros([capacity, this.width]);
    if (this.rows > 0) {
      this.backend.writeRows(k, 0, this.backend.sliceRows(this.k, 0, this.rows));
      this.backend.writeRows(v, 0, this.backend.sliceRows(this.v, 0, this.rows));
    }
    this.k.dispose();
    this.v.dispose();
    this.k = k;
    this.v = v;
    this.capacity = capacity;
  }

  /** Writes rows at `row` (which must be ≤ the rows held) and marks the buffer as holding `owner`'s rows up to there. */
  write(owner: number, row: number, k: Tensor, v: Tensor): void {
    const n = k.shape[0];
    this.reserve(row + n);
    this.backend.writeRows(this.k, row, k);
    this.backend.writeRows(this.v, row, v);
    this.owner = owner;
    this.rows = row + n;
  }

  invalidate(): void {
    this.owner = -1;
    this.rows = 0;
  }

  dispose(): void {
    this.k.dispose();
    this.v.dispose();
  }
}

/** Gather buffers by row width (layers of one model usually share one). */
export class GatherPool {
  private readonly buffers = new Map<number, GatherBuffer>();

  constructor(private readonly backend: Backend) {}

  of(width: number): GatherBuffer {
    let g = this.buffers.get(width);
    if (!g) {
      g = new GatherBuffer(this.backend, width);
      this.buffers.set(width, g);
    }
    return g;
  }

  get bytes(): number {
    let n = 0;
    for (const g of this.buffers.values()) n += g.bytes;
    return n;
  }

  invalidate(): void {
    for (const g of this.buffers.values()) g.invalidate();
  }

  dispose(): void {
    for (const g of this.buffers.values()) g.dispose();
    this.buffers.clear();
  }
}
