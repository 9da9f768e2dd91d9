import type { Tensor } from "../tensor.js";

interface Entry {
  tensor: Tensor;
  bytes: number;
  /** Layers running right now that fetched it: never evicted while pinned. */
  pins: number;
}

export interface ExpertCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Bytes held now. */
  bytes: number;
}

/**
 * Least-recently-used streamed experts within a byte budget. Entries fetched by a layer are pinned until
 * the runner releases that layer (a family may fetch an expert's bias, then its weight, then use both), so
 * the cache may pass its budget by what one layer uses while it runs, and trims back on release.
 */
export class ExpertCache {
  private readonly entries = new Map<string, Entry>();
  private readonly pinsByLayer = new Map<number, Set<string>>();
  private used = 0;
  readonly stats: ExpertCacheStats = { hits: 0, misses: 0, evictions: 0, bytes: 0 };

  constructor(readonly budgetBytes: number) {}

  /** The cached tensor (now most recently used), pinned for `layer`. */
  get(key: string, layer: number): Tensor | undefined {
    const e = this.entries.get(key);
    if (!e) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    this.entries.delete(key);
    this.entries.set(key, e);
    this.pin(key, e, layer);
    return e.tensor;
  }

  /** Adds a tensor pinned for `layer`; false when it alone exceeds the budget (the caller owns it then). */
  put(key: string, tensor: Tensor, bytes: number, layer: number): boolean {
    if (bytes > this.budgetBytes) return false;
    const e: Entry = { tensor, bytes, pins: 0 };
    this.entries.set(key, e);
    this.used += bytes;
    this.pin(key, e, layer);
    this.trim();
    return true;
  }

  /** The layer finished: its entries may be evicted again. */
  unpin(layer: number): void {
    const keys = this.pinsByLayer.get(layer);
    if (!keys) return;
    this.pinsByLayer.delete(layer);
    for (const key of keys) {
      const e = this.entries.get(key);
      if (e) e.pins--;
    }
    this.trim();
  }

  clear(): void {
    for (const e of this.entries.values()) e.tensor.dispose();
    this.entries.clear();
    this.pinsByLayer.clear();
    this.used = 0;
    this.stats.bytes = 0;
  }

  private pin(key: string, e: Entry, layer: number): void {
    let keys = this.pinsByLayer.get(layer);
    if (!keys) {
      keys = new Set();
      this.pinsByLayer.set(layer, keys);
    }
    if (!keys.has(key)) {
      keys.add(key);
      e.pins++;
    }
  }

  private trim(): void {
    for (const [key, e] of this.entries) {
      if (this.used <= this.budgetBytes) break;
      if (e.pins > 0) continue;
      this.entries.delete(key);
      e.tensor.dispose();
      this.used -= e.bytes;
      this.stats.evictions++;
    }
    this.stats.bytes = this.used;
  }
}
