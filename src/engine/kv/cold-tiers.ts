import { type FileHandle, open, rename } from "node:fs/promises";
import { join } from "node:path";
import { OllmError } from "../../errors.js";
import { readAt } from "../weights/io.js";
import { type KvCacheDir, writeFileAtomic } from "./cache-dir.js";
import type { KvLayerSpec } from "./kv-store.js";

/**
 * Where a tiered KV store keeps full blocks it moved off the device. A block of layer i is `blockRows`
 * rows of keys and the same rows of values, f32 [blockRows, width] each. Blocks of a layer arrive in
 * order (block = number stored so far).
 */
export interface ColdTier {
  readonly kind: "memory" | "disk";
  /** Loads return something other than what was put (quantization). */
  readonly lossy: boolean;
  put(layer: number, block: number, k: Float32Array, v: Float32Array): Promise<void>;
  /**
   * Reads blocks [first, first + count) of `layer` into `out`, laid out block after block, each block
   * its keys then its values (2 · blockRows · width values a block).
   */
  load(layer: number, first: number, count: number, out: Float32Array): Promise<void>;
  /** Forgets the blocks of `layer` from `count` on. */
  truncate(layer: number, count: number): void;
  /** Blocks of `layer` held. */
  blocks(layer: number): number;
  /** Work after a batch of puts (the journal persists its index, compacts). */
  flush?(): Promise<void>;
  usage(): { hostBytes: number; diskBytes: number };
  readonly io: TierIo;
  dispose(): void;
}

export interface TierIo {
  bytesRead: number;
  bytesWritten: number;
}

function widthOf(spec: KvLayerSpec | undefined): number {
  return spec ? spec.numKvHeads * spec.headDim : 0;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// --- int8 ------------------------------------------------------------------------------------------------

interface Int8Block {
  k: Int8Array;
  v: Int8Array;
  /** Per channel over the block's rows (keys have outlier channels). */
  kScale: Float32Array;
  /** Per row and head (values vary by token). */
  vScale: Float32Array;
}

/**
 * Keys quantized per channel over the block (one scale per column), values per row and head, both
 * symmetric int8 (KIVI's split): 1 byte a value plus (width + rows · heads) f32 scales a block.
 */
export function quantizeBlock(
  k: Float32Array,
  v: Float32Array,
  rows: number,
  width: number,
  headDim: number,
): Int8Block {
  const heads = width / headDim;
  const kScale = new Float32Array(width);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < width; c++) kScale[c] = Math.max(kScale[c], Math.abs(k[r * width + c]));
  for (let c = 0; c < width; c++) kScale[c] /= 127;
  const qk = new Int8Array(rows * width);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < width; c++) {
      const s = kScale[c];
      qk[r * width + c] = s === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(k[r * width + c] / s)));
    }
  const vScale = new Float32Array(rows * heads);
  const qv = new Int8Array(rows * width);
  for (let r = 0; r < rows; r++)
    for (let h = 0; h < heads; h++) {
      const o = r * width + h * headDim;
      let max = 0;
      for (let d = 0; d < headDim; d++) max = Math.max(max, Math.abs(v[o + d]));
      const s = max / 127;
      vScale[r * heads + h] = s;
      for (let d = 0; d < headDim; d++)
        qv[o + d] = s === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(v[o + d] / s)));
    }
  return { k: qk, v: qv, kScale, vScale };
}

export function dequantizeBlock(
  q: Int8Block,
  rows: number,
  width: number,
  headDim: number,
  kOut: Float32Array,
  vOut: Float32Array,
): void {
  const heads = width / headDim;
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < width; c++) kOut[r * width + c] = q.k[r * width + c] * q.kScale[c];
  for (let r = 0; r < rows; r++)
    for (let h = 0; h < heads; h++) {
      const s = q.vScale[r * heads + h];
      const o = r * width + h * headDim;
      for (let d = 0; d < headDim; d++) vOut[o + d] = q.v[o + d] * s;
    }
}

/** The quantized cold tier: full blocks as int8 in host memory. */
export class Int8ColdTier implements ColdTier {
  readonly kind = "memory";
  readonly lossy = true;
  readonly io: TierIo = { bytesRead: 0, bytesWritten: 0 };
  private readonly stored: Int8Block[][];

  constructor(
    private readonly specs: (KvLayerSpec | undefined)[],
    private readonly blockRows: number,
  ) {
    this.stored = specs.map(() => []);
  }

  async put(layer: number, block: number, k: Float32Array, v: Float32Array): Promise<void> {
    const spec = this.specs[layer]!;
    this.stored[layer][block] = quantizeBlock(k, v, this.blockRows, widthOf(spec), spec.headDim);
  }

  async load(layer: number, first: number, count: number, out: Float32Array): Promise<void> {
    const spec = this.specs[layer]!;
    const width = widthOf(spec);
    const n = this.blockRows * width;
    for (let b = 0; b < count; b++) {
      const at = 2 * n * b;
      dequantizeBlock(
        this.stored[layer][first + b],
        this.blockRows,
        width,
        spec.headDim,
        out.subarray(at, at + n),
        out.subarray(at + n, at + 2 * n),
      );
    }
  }

  truncate(layer: number, count: number): void {
    this.stored[layer].length = Math.min(this.stored[layer].length, count);
  }

  blocks(layer: number): number {
    return this.stored[layer].length;
  }

  usage(): { hostBytes: number; diskBytes: number } {
    let hostBytes = 0;
    for (const layer of this.stored)
      for (const b of layer)
        hostBytes += b.k.byteLength + b.v.byteLength + b.kScale.byteLength + b.vScale.byteLength;
    return { hostBytes, diskBytes: 0 };
  }

  dispose(): void {
    for (const layer of this.stored) layer.length = 0;
  }
}

// --- disk ------------------------------------------------------------------------------------------------

async function writeAll(
  handle: FileHandle,
  bytes: Uint8Array,
  position: number,
  path: string,
): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    let written: number;
    try {
      ({ bytesWritten: written } = await handle.write(bytes, done, bytes.byteLength - done, position + done));
    } catch (cause) {
      throw new OllmError("IO_ERROR", `cannot write the KV cache file ${path}: ${String(cause)}`, {
        cause,
        hint: "check free space and permissions of the cache directory",
      });
    }
    done += written;
  }
}

/** Lazily opened read/write handles by path, closed together. */
class Handles {
  private readonly open = new Map<string, Promise<FileHandle>>();

  get(path: string): Promise<FileHandle> {
    let h = this.open.get(path);
    if (!h) {
      h = open(path, "w+");
      this.open.set(path, h);
    }
    return h;
  }

  closeAll(): void {
    for (const h of this.open.values()) h.then((f) => f.close()).catch(() => undefined);
    this.open.clear();
  }
}

/**
 * Streamed segments: one file per layer in the store's cache directory, block b at byte b · blockBytes
 * (keys then values), so a layer's whole history is one positioned read.
 */
export class SegmentColdTier implements ColdTier {
  readonly kind = "disk";
  readonly lossy = false;
  readonly io: TierIo = { bytesRead: 0, bytesWritten: 0 };
  private readonly counts: number[];
  private readonly handles = new Handles();

  constructor(
    private readonly specs: (KvLayerSpec | undefined)[],
    private readonly blockRows: number,
    private readonly dir: KvCacheDir,
  ) {
    this.counts = specs.map(() => 0);
  }

  private blockBytes(layer: number): number {
    return 2 * this.blockRows * widthOf(this.specs[layer]) * 4;
  }

  private path(layer: number): string {
    return join(this.dir.path, `layer-${layer}.seg`);
  }

  async put(layer: number, block: number, k: Float32Array, v: Float32Array): Promise<void> {
    const path = this.path(layer);
    const handle = await this.handles.get(path);
    const at = block * this.blockBytes(layer);
    await writeAll(handle, bytesOf(k), at, path);
    await writeAll(handle, bytesOf(v), at + k.byteLength, path);
    this.io.bytesWritten += k.byteLength + v.byteLength;
    this.counts[layer] = Math.max(this.counts[layer], block + 1);
  }

  async load(layer: number, first: number, count: number, out: Float32Array): Promise<void> {
    if (count === 0) return;
    const path = this.path(layer);
    const bytes = count * this.blockBytes(layer);
    await readAt(
      await this.handles.get(path),
      new Uint8Array(out.buffer, out.byteOffset, bytes),
      first * this.blockBytes(layer),
      path,
    );
    this.io.bytesRead += bytes;
  }

  truncate(layer: number, count: number): void {
    this.counts[layer] = Math.min(this.counts[layer], count);
  }

  blocks(layer: number): number {
    return this.counts[layer];
  }

  usage(): { hostBytes: number; diskBytes: number } {
    let diskBytes = 0;
    for (let i = 0; i < this.counts.length; i++) diskBytes += this.counts[i] * this.blockBytes(i);
    return { hostBytes: 0, diskBytes };
  }

  dispose(): void {
    this.handles.closeAll();
  }
}

const RECORD_MAGIC = 0x314a564b; // "KVJ1"
const RECORD_HEADER = 16;

/**
 * Log-structured journal: every block is appended to one file as a record (magic, layer, block, bytes,
 * payload); an index of where each live block is, rewritten atomically (temp + rename) after each batch
 * of appends, says which records count. Truncation only edits the index; when dead records outweigh live
 * ones (and pass 4 MiB) the journal is compacted into a new file that replaces it by rename.
 */
export class JournalColdTier implements ColdTier {
  readonly kind = "disk";
  readonly lossy = false;
  readonly io: TierIo = { bytesRead: 0, bytesWritten: 0 };
  /** Payload offsets of each layer's live blocks. */
  private readonly index: number[][];
  private tail = 0;
  private dead = 0;
  private dirty = false;
  private handle: Promise<FileHandle> | undefined;
  private compactions = 0;

  constructor(
    private readonly specs: (KvLayerSpec | undefined)[],
    private readonly blockRows: number,
    private readonly dir: KvCacheDir,
    /** Dead bytes that (when they also outweigh live ones) trigger a compaction. */
    private readonly compactAfterBytes = 4 * 1024 * 1024,
  ) {
    this.index = specs.map(() => []);
  }

  private blockBytes(layer: number): number {
    return 2 * this.blockRows * widthOf(this.specs[layer]) * 4;
  }

  private get journalPath(): string {
    return join(this.dir.path, "kv.journal");
  }

  private file(): Promise<FileHandle> {
    this.handle ??= open(this.journalPath, "w+");
    return this.handle;
  }

  async put(layer: number, block: number, k: Float32Array, v: Float32Array): Promise<void> {
    const handle = await this.file();
    const header = new Uint32Array([RECORD_MAGIC, layer, block, k.byteLength + v.byteLength]);
    const at = this.tail;
    this.tail += RECORD_HEADER + k.byteLength + v.byteLength;
    await writeAll(handle, new Uint8Array(header.buffer), at, this.journalPath);
    await writeAll(handle, bytesOf(k), at + RECORD_HEADER, this.journalPath);
    await writeAll(handle, bytesOf(v), at + RECORD_HEADER + k.byteLength, this.journalPath);
    this.io.bytesWritten += RECORD_HEADER + k.byteLength + v.byteLength;
    const live = this.index[layer];
    if (block < live.length) this.dead += (live.length - block) * (RECORD_HEADER + this.blockBytes(layer));
    live.length = block;
    live.push(at + RECORD_HEADER);
    this.dirty = true;
  }

  async load(layer: number, first: number, count: number, out: Float32Array): Promise<void> {
    const handle = await this.file();
    const size = this.blockBytes(layer);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, count * size);
    await Promise.all(
      Array.from({ length: count }, (_, b) =>
        readAt(
          handle,
          bytes.subarray(b * size, (b + 1) * size),
          this.index[layer][first + b],
          this.journalPath,
        ),
      ),
    );
    this.io.bytesRead += count * size;
  }

  truncate(layer: number, count: number): void {
    const live = this.index[layer];
    if (count >= live.length) return;
    this.dead += (live.length - count) * (RECORD_HEADER + this.blockBytes(layer));
    live.length = count;
    this.dirty = true;
  }

  blocks(layer: number): number {
    return this.index[layer].length;
  }

  async flush(): Promise<void> {
    if (!this.dirty) return;
    const liveBytes = this.index.reduce((n, l, i) => n + l.length * (RECORD_HEADER + this.blockBytes(i)), 0);
    if (this.dead > this.compactAfterBytes && this.dead > liveBytes) await this.compact();
    writeFileAtomic(
      join(this.dir.path, "kv.index.json"),
      `${JSON.stringify({ version: 1, model: this.dir.modelKey, blockRows: this.blockRows, tail: this.tail, layers: this.index })}\n`,
    );
    this.dirty = false;
  }

  get compacted(): number {
    return this.compactions;
  }

  private async compact(): Promise<void> {
    const old = await this.file();
    const path = `${this.journalPath}.compact`;
    const fresh = await open(path, "w+");
    let tail = 0;
    for (let layer = 0; layer < this.index.length; layer++) {
      const size = this.blockBytes(layer);
      const buf = new Uint8Array(RECORD_HEADER + size);
      for (let b = 0; b < this.index[layer].length; b++) {
        await readAt(old, buf, this.index[layer][b] - RECORD_HEADER, this.journalPath);
        await writeAll(fresh, buf, tail, path);
        this.index[layer][b] = tail + RECORD_HEADER;
        tail += buf.byteLength;
      }
    }
    await rename(path, this.journalPath);
    await old.close();
    this.handle = Promise.resolve(fresh);
    this.tail = tail;
    this.dead = 0;
    this.compactions++;
  }

  usage(): { hostBytes: number; diskBytes: number } {
    return { hostBytes: 0, diskBytes: this.tail };
  }

  dispose(): void {
    this.handle?.then((f) => f.close()).catch(() => undefined);
    this.handle = undefined;
  }
}
