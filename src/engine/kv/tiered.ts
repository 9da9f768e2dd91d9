import { OllmError } from "../../errors.js";
import type { Backend } from "../backend.js";
import type { Tensor } from "../tensor.js";
import type { KvCacheDir } from "./cache-dir.js";
import type { ColdTier } from "./cold-tiers.js";
import { type GatherBuffer, GatherPool } from "./gather.js";
import {
  type KvLayer,
  type KvLayerSpec,
  type KvStore,
  type KvUsage,
  type KvView,
  regrown,
} from "./kv-store.js";

export interface TieredKvOptions {
  /** Rows a block holds (the unit moved to the cold tier). */
  blockTokens: number;
  /** Full blocks kept hot (f32, in backend memory) besides the block being filled. */
  hotBlocks: number;
  tier: ColdTier;
  /** Read the next layer's cold blocks while the current layer computes (disk tiers; default true). */
  prefetch?: boolean;
  /** The directory the tier writes into, removed with the store. */
  dir?: KvCacheDir;
}

/** Reads and waits of a tiered store (the KV side of the streaming numbers). */
export interface KvIoStats {
  bytesRead: number;
  bytesWritten: number;
  /** Wall time cold-block reads were in flight. */
  readMs: number;
  /** Time the runner waited for them in beforeLayer. */
  waitMs: number;
  blocksEvicted: number;
}

interface PendingRead {
  layer: number;
  generation: number;
  blocks: number;
  buffer: Float32Array;
  done: Promise<void>;
}

/**
 * Hot/cold KV: each layer keeps its newest rows (the block being filled plus `hotBlocks` full blocks) in
 * backend memory and moves older full blocks to a cold tier: int8 in host memory (quantized-cold-tier),
 * per-layer segment files (streamed-segmented; with hot blocks, tiered-write-back) or an append-only
 * journal (log-structured-journal). Before a layer runs, its cold blocks are loaded into a gather buffer
 * shared by all layers (for disk tiers the next layer's read is already in flight); after it runs, blocks
 * that fell out of the hot set are read back and handed to the tier.
 */
export class TieredKvStore implements KvStore {
  private readonly layers: (TieredLayer | undefined)[];
  private readonly gathers: GatherPool;
  private readonly order: number[];
  private readonly free: Float32Array[] = [];
  private pending: PendingRead | undefined;
  private readonly stats: KvIoStats = {
    bytesRead: 0,
    bytesWritten: 0,
    readMs: 0,
    waitMs: 0,
    blocksEvicted: 0,
  };
  private disposed = false;

  constructor(
    private readonly backend: Backend,
    specs: (KvLayerSpec | undefined)[],
    private readonly options: TieredKvOptions,
  ) {
    const rows = Math.max(1, Math.floor(options.blockTokens));
    this.gathers = new GatherPool(backend);
    this.layers = specs.map((s, i) => {
      if (!s) return undefined;
      const width = s.numKvHeads * s.headDim;
      return new TieredLayer(backend, i, width, rows, Math.max(0, options.hotBlocks), this.gathers.of(width));
    });
    this.order = this.layers.flatMap((l, i) => (l ? [i] : []));
  }

  layer(index: number): KvLayer {
    const layer = this.layers[index];
    if (!layer) throw new Error(`layer ${index} has no KV cache`);
    return layer;
  }

  get length(): number {
    return this.layers.find((l) => l)?.length ?? 0;
  }

  get io(): KvIoStats {
    return {
      ...this.stats,
      bytesRead: this.options.tier.io.bytesRead,
      bytesWritten: this.options.tier.io.bytesWritten,
    };
  }

  truncate(length: number): void {
    for (const l of this.layers) {
      if (!l || length >= l.length) continue;
      const dropped = l.truncate(length);
      if (dropped !== undefined) this.options.tier.truncate(l.index, dropped);
    }
    this.gathers.invalidate();
  }

  async beforeLayer(index: number): Promise<void> {
    const l = this.layers[index];
    if (!l) return;
    if (l.restore) await this.restore(l);
    const g = l.gather;
    const coldRows = l.coldBlocks * l.blockRows;
    if (l.coldBlocks > 0 && !(g.owner === index && g.rows >= coldRows)) {
      let read = this.pending?.layer === index ? this.pending : undefined;
      if (read) this.pending = undefined;
      if (read && (read.generation !== l.generation || read.blocks !== l.coldBlocks)) {
        await this.settle(read);
        read = undefined;
      }
      read ??= this.startRead(l);
      const t0 = performance.now();
      await read.done;
      this.stats.waitMs += performance.now() - t0;
      this.upload(l, read.buffer);
      this.free.push(read.buffer);
    }
    if (this.options.prefetch !== false && this.options.tier.kind === "disk") this.prefetchAfter(index);
  }

  async afterLayer(index: number): Promise<void> {
    const l = this.layers[index];
    if (!l) return;
    const evict = Math.floor(l.hotRows / l.blockRows) - l.hotBlocks;
    if (evict <= 0) return;
    const b = this.backend;
    const rows = evict * l.blockRows;
    const k = await b.sliceRows(l.hotK, 0, rows).read();
    const v = await b.sliceRows(l.hotV, 0, rows).read();
    const n = l.blockRows * l.width;
    for (let j = 0; j < evict; j++)
      await this.options.tier.put(
        index,
        l.coldBlocks + j,
        k.subarray(j * n, (j + 1) * n),
        v.subarray(j * n, (j + 1) * n),
      );
    l.dropHot(evict);
    // Attention must see what the tier gives back: after a lossy put, the next chunk reloads the blocks.
    if (this.options.tier.lossy && l.gather.owner === index) l.gather.invalidate();
    this.stats.blocksEvicted += evict;
    await this.options.tier.flush?.();
  }

  usage(): KvUsage {
    let deviceBytes = this.gathers.bytes;
    for (const l of this.layers) deviceBytes += l?.bytes ?? 0;
    const tier = this.options.tier.usage();
    let staging = 0;
    for (const f of this.free) staging += f.byteLength;
    if (this.pending) staging += this.pending.buffer.byteLength;
    return { deviceBytes, hostBytes: tier.hostBytes + staging, diskBytes: tier.diskBytes };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const l of this.layers) l?.dispose();
    this.gathers.dispose();
    this.options.tier.dispose();
    this.options.dir?.remove();
    this.free.length = 0;
  }

  /** Writes a layer's cold rows (read into `buffer`, block after block, k then v) into its gather buffer. */
  private upload(l: TieredLayer, buffer: Float32Array): void {
    const b = this.backend;
    const g = l.gather;
    const n = l.blockRows * l.width;
    g.invalidate();
    g.reserve(l.coldBlocks * l.blockRows + l.hotRows);
    for (let j = 0; j < l.coldBlocks; j++) {
      const k = b.fromFloat32(buffer.subarray(2 * j * n, (2 * j + 1) * n), [l.blockRows, l.width]);
      const v = b.fromFloat32(buffer.subarray((2 * j + 1) * n, (2 * j + 2) * n), [l.blockRows, l.width]);
      g.write(l.index, j * l.blockRows, k, v);
      k.dispose();
      v.dispose();
    }
  }

  private acquire(floats: number): Float32Array {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) if (this.free[i].length >= floats) best = i;
    if (best >= 0) return this.free.splice(best, 1)[0];
    // Replace the smallest spare buffer, so a store holds at most two (current + prefetch).
    if (this.free.length >= 1) this.free.shift();
    return new Float32Array(Math.ceil((floats * 1.25) / 4096) * 4096);
  }

  private startRead(l: TieredLayer): PendingRead {
    const floats = l.coldBlocks * 2 * l.blockRows * l.width;
    const buffer = this.acquire(floats);
    const t0 = performance.now();
    const done = this.options.tier.load(l.index, 0, l.coldBlocks, buffer).then(() => {
      this.stats.readMs += performance.now() - t0;
    });
    return { layer: l.index, generation: l.generation, blocks: l.coldBlocks, buffer, done };
  }

  private async settle(read: PendingRead): Promise<void> {
    await read.done.catch(() => undefined);
    this.free.push(read.buffer);
  }

  /** Starts reading the next layer's cold blocks (the next layer in order that has some). */
  private prefetchAfter(index: number): void {
    if (this.pending) return;
    const at = this.order.indexOf(index);
    for (let step = 1; step < this.order.length; step++) {
      const l = this.layers[this.order[(at + step) % this.order.length]]!;
      if (l.coldBlocks === 0 || l.restore) continue;
      if (l.gather.owner === l.index) return;
      const read = this.startRead(l);
      read.done.catch(() => undefined);
      this.pending = read;
      return;
    }
  }

  /** After a truncate inside a cold block: its first rows come back as hot rows, the rest is dropped. */
  private async restore(l: TieredLayer): Promise<void> {
    const r = l.restore!;
    const n = l.blockRows * l.width;
    const buffer = new Float32Array(2 * n);
    await this.options.tier.load(l.index, r.block, 1, buffer);
    const b = this.backend;
    l.setHot(
      b.fromFloat32(buffer.slice(0, r.rows * l.width), [r.rows, l.width]),
      b.fromFloat32(buffer.slice(n, n + r.rows * l.width), [r.rows, l.width]),
    );
    this.options.tier.truncate(l.index, r.block);
    l.restore = undefined;
    l.generation++;
  }
}

class TieredLayer implements KvLayer {
  hotK: Tensor;
  hotV: Tensor;
  private capacity: number;
  hotRows = 0;
  coldBlocks = 0;
  /** Bumped whenever the cold blocks change, so a prefetch started before is not used after. */
  generation = 0;
  restore: { block: number; rows: number } | undefined;

  constructor(
    private readonly backend: Backend,
    readonly index: number,
    readonly width: number,
    readonly blockRows: number,
    readonly hotBlocks: number,
    readonly gather: GatherBuffer,
  ) {
    this.capacity = blockRows * (hotBlocks + 1);
    this.hotK = backend.zeros([this.capacity, width]);
    this.hotV = backend.zeros([this.capacity, width]);
  }

  get length(): number {
    return this.coldBlocks * this.blockRows + this.hotRows + (this.restore?.rows ?? 0);
  }

  get bytes(): number {
    return 2 * this.capacity * this.width * 4;
  }

  append(k: Tensor, v: Tensor): KvView {
    if (this.restore)
      throw new OllmError(
        "INTERNAL",
        `KV layer ${this.index}: beforeLayer must run before append after a truncate`,
      );
    const b = this.backend;
    const n = k.shape[0];
    const before = this.hotRows;
    if (before + n > this.capacity) this.grow(before + n);
    b.writeRows(this.hotK, before, k);
    b.writeRows(this.hotV, before, v);
    this.hotRows += n;
    if (this.coldBlocks === 0) return { k: this.hotK, v: this.hotV, length: this.hotRows };
    const coldRows = this.coldBlocks * this.blockRows;
    const g = this.gather;
    if (g.owner !== this.index || g.rows < coldRows)
      throw new OllmError(
        "INTERNAL",
        `KV layer ${this.index}: its cold blocks were not loaded (beforeLayer)`,
      );
    if (g.rows === coldRows + before) g.write(this.index, g.rows, k, v);
    else
      g.write(
        this.index,
        coldRows,
        b.sliceRows(this.hotK, 0, this.hotRows),
        b.sliceRows(this.hotV, 0, this.hotRows),
      );
    return { k: g.k, v: g.v, length: coldRows + this.hotRows };
  }

  /** The first `blocks` hot blocks went to the cold tier: the hot rows shift down. */
  dropHot(blocks: number): void {
    const b = this.backend;
    const rows = blocks * this.blockRows;
    const rest = this.hotRows - rows;
    if (rest > 0) {
      const k = b.sliceRows(this.hotK, rows, rest);
      const v = b.sliceRows(this.hotV, rows, rest);
      b.writeRows(this.hotK, 0, k);
      b.writeRows(this.hotV, 0, v);
    }
    this.hotRows = rest;
    this.coldBlocks += blocks;
    this.generation++;
    // The gather (if it holds this layer) still has every row where it was.
  }

  setHot(k: Tensor, v: Tensor): void {
    const rows = k.shape[0];
    if (rows > this.capacity) this.grow(rows);
    this.backend.writeRows(this.hotK, 0, k);
    this.backend.writeRows(this.hotV, 0, v);
    this.hotRows = rows;
  }

  /** Cuts to `length` tokens; returns how many cold blocks the tier keeps when that changed. */
  truncate(length: number): number | undefined {
    this.restore = undefined;
    const coldRows = this.coldBlocks * this.blockRows;
    if (length >= coldRows) {
      this.hotRows = length - coldRows;
      return undefined;
    }
    const keep = Math.floor(length / this.blockRows);
    const rows = length - keep * this.blockRows;
    this.coldBlocks = keep;
    this.hotRows = 0;
    this.generation++;
    if (rows > 0) {
      this.restore = { block: keep, rows };
      return keep + 1;
    }
    return keep;
  }

  dispose(): void {
    this.hotK.dispose();
    this.hotV.dispose();
  }

  private grow(needed: number): void {
    // To whole blocks, not doubling: the hot rows are bounded (kept blocks, a partial one, one prefill
    // chunk), so the buffer grows at most once per chunk size, and predictKvBytes counts exactly this.
    const capacity = Math.ceil(needed / this.blockRows) * this.blockRows;
    this.hotK = regrown(this.backend, this.hotK, this.hotRows, capacity, this.width);
    this.hotV = regrown(this.backend, this.hotV, this.hotRows, capacity, this.width);
    this.capacity = capacity;
  }
}
