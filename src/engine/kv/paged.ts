import type { Backend } from "../backend.js";
import type { Tensor } from "../tensor.js";
import { type GatherBuffer, GatherPool } from "./gather.js";
import {
  InMemoryKvStore,
  type KvLayerSpec,
  type KvUsage,
  type KvView,
  type MemoryKvLayer,
} from "./kv-store.js";

interface Block {
  k: Tensor;
  v: Tensor;
}

/**
 * Paged KV: each layer's history in fixed-size blocks of `blockTokens` rows, allocated one at a time (at
 * most one partly filled block of slack per layer, no copies when the cache grows, truncation frees whole
 * blocks). Attention reads a contiguous view assembled in one gather buffer shared by all layers.
 */
export class PagedKvStore extends InMemoryKvStore<PagedLayer> {
  private readonly gathers: GatherPool;

  constructor(backend: Backend, specs: (KvLayerSpec | undefined)[], blockTokens = 64) {
    const gathers = new GatherPool(backend);
    super(
      specs.map((s, i) => {
        if (!s) return undefined;
        const width = s.numKvHeads * s.headDim;
        return new PagedLayer(backend, i, width, Math.max(1, blockTokens), gathers.of(width));
      }),
    );
    this.gathers = gathers;
  }

  override truncate(length: number): void {
    super.truncate(length);
    this.gathers.invalidate();
  }

  override usage(): KvUsage {
    const usage = super.usage();
    return { ...usage, deviceBytes: usage.deviceBytes + this.gathers.bytes };
  }

  override dispose(): void {
    super.dispose();
    this.gathers.dispose();
  }
}

class PagedLayer implements MemoryKvLayer {
  private readonly blocks: Block[] = [];
  length = 0;

  constructor(
    private readonly backend: Backend,
    private readonly index: number,
    private readonly width: number,
    private readonly blockRows: number,
    private readonly gather: GatherBuffer,
  ) {}

  get bytes(): number {
    return this.blocks.length * 2 * this.blockRows * this.width * 4;
  }

  append(k: Tensor, v: Tensor): KvView {
    const b = this.backend;
    const n = k.shape[0];
    const start = this.length;
    for (let done = 0; done < n; ) {
      const pos = start + done;
      const bi = Math.floor(pos / this.blockRows);
      const row = pos % this.blockRows;
      if (bi === this.blocks.length)
        this.blocks.push({
          k: b.zeros([this.blockRows, this.width]),
          v: b.zeros([this.blockRows, this.width]),
        });
      const m = Math.min(this.blockRows - row, n - done);
      const whole = done === 0 && m === n;
      b.writeRows(this.blocks[bi].k, row, whole ? k : b.sliceRows(k, done, m));
      b.writeRows(this.blocks[bi].v, row, whole ? v : b.sliceRows(v, done, m));
      done += m;
    }
    this.length += n;

    const g = this.gather;
    if (g.owner === this.index && g.rows === start) g.write(this.index, start, k, v);
    else {
      g.invalidate();
      for (let bi = 0; bi * this.blockRows < this.length; bi++)
        g.write(this.index, bi * this.blockRows, this.blocks[bi].k, this.blocks[bi].v);
      g.rows = this.length;
    }
    return { k: g.k, v: g.v, length: this.length };
  }

  truncate(length: number): void {
    this.length = Math.min(this.length, length);
    const keep = Math.ceil(this.length / this.blockRows);
    for (const block of this.blocks.splice(keep)) {
      block.k.dispose();
      block.v.dispose();
    }
  }

  dispose(): void {
    this.truncate(0);
  }
}
