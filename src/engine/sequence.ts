import type { Backend } from "./backend.js";
import type { KvStore } from "./kv/kv-store.js";
import type { CausalLM, LayerState } from "./models/family.js";
import type { Tensor } from "./tensor.js";
import type { WeightStore } from "./weight-store.js";

export interface ForwardOptions {
  /** Which rows of logits to compute: every position, or only the last one (generation). */
  logits: "all" | "last";
  /** Tokens per prefill chunk: activations are bounded by the chunk, not the prompt. */
  chunkTokens?: number;
}

/**
 * One sequence being processed: its KV cache, per-layer state and position. The runner loop lives here:
 * it owns the order of layers and chunks, and asks the weight store for each layer when it runs.
 */
export class Sequence {
  private readonly states: LayerState[];
  private position = 0;

  constructor(
    private readonly backend: Backend,
    private readonly model: CausalLM,
    private readonly weights: WeightStore,
    private readonly kv: KvStore,
  ) {
    this.states = Array.from({ length: model.numLayers }, () => new Map());
  }

  /** Tokens processed so far. */
  get length(): number {
    return this.position;
  }

  /** Runs `ids` (appended after what the sequence holds) and returns logits [rows, vocab]. */
  async forward(ids: ArrayLike<number>, options: ForwardOptions): Promise<Tensor> {
    const all = Int32Array.from(ids);
    const chunk = Math.max(1, options.chunkTokens ?? all.length);
    const parts: Tensor[] = [];
    for (let start = 0; start < all.length; start += chunk) {
      const piece = all.subarray(start, Math.min(all.length, start + chunk));
      const isLast = start + chunk >= all.length;
      const hidden = await this.runLayers(piece);
      if (options.logits === "all") parts.push(this.head(hidden));
      else if (isLast) parts.push(this.head(this.backend.sliceRows(hidden, piece.length - 1, 1)));
    }
    return parts.length === 1 ? parts[0] : this.concatRows(parts);
  }

  /** Drops the cache and state: the next forward starts at position 0. */
  reset(): void {
    this.kv.truncate(0);
    for (const s of this.states) s.clear();
    this.position = 0;
  }

  dispose(): void {
    this.kv.dispose();
  }

  private async runLayers(ids: Int32Array): Promise<Tensor> {
    const positions = Int32Array.from(ids, (_, i) => this.position + i);
    let hidden = this.model.embed(ids, this.weights.global(), { backend: this.backend });
    for (let i = 0; i < this.model.numLayers; i++) {
      const w = await this.weights.layer(i);
      const kv = this.model.kvSpec(i) ? this.kv.layer(i) : undefined;
      const ctx = { backend: this.backend, positions, kv, state: this.states[i] };
      hidden = await this.model.layer(i, hidden, w, ctx);
    }
    this.position += ids.length;
    return hidden;
  }

  private head(hidden: Tensor): Tensor {
    return this.model.head(hidden, this.weights.global(), { backend: this.backend });
  }

  private concatRows(parts: Tensor[]): Tensor {
    const cols = parts[0].shape[1];
    const rows = parts.reduce((n, p) => n + p.shape[0], 0);
    const out = this.backend.zeros([rows, cols]);
    let row = 0;
    for (const p of parts) {
      this.backend.writeRows(out, row, p);
      row += p.shape[0];
    }
    return out;
  }
}
