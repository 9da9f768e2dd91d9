import { OllmError } from "../errors.js";
import type { Backend } from "./backend.js";
import type { KvStore } from "./kv/kv-store.js";
import type { CausalLM, LayerState, Weights } from "./models/family.js";
import type { Tensor } from "./tensor.js";
import type { WeightStore } from "./weight-store.js";

export interface ForwardOptions {
  /** Which rows of logits to compute: every position, or only the last one (generation). */
  logits: "all" | "last";
  /** Tokens per prefill chunk: activations are bounded by the chunk, not the prompt. */
  chunkTokens?: number;
  /**
   * Order of a chunked prefill. "token-major": each chunk runs through every layer before the next chunk.
   * "layer-major": layer i runs every chunk (appending its KV) before layer i+1, so streamed weights are
   * read once per prompt instead of once per chunk. "auto" (default): layer-major when the weight store
   * streams. Both give the same logits.
   */
  order?: "auto" | "token-major" | "layer-major";
}

/**
 * One sequence being processed: its KV cache, per-layer state and position. The runner loop lives here:
 * it owns the order of layers and chunks, asks the weight store for each layer right before it runs (and
 * releases it after), and tells the KV store when a layer starts and ends.
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

  /** The sequence's KV cache (its usage and strategy-specific statistics). */
  get kvStore(): KvStore {
    return this.kv;
  }

  /** Runs `ids` (appended after what the sequence holds) and returns logits [rows, vocab]. */
  async forward(ids: ArrayLike<number>, options: ForwardOptions): Promise<Tensor> {
    const all = Int32Array.from(ids);
    const size = Math.max(1, options.chunkTokens ?? all.length);
    const chunks: Int32Array[] = [];
    for (let start = 0; start < all.length; start += size)
      chunks.push(all.subarray(start, Math.min(all.length, start + size)));
    const order = options.order ?? "auto";
    const layerMajor =
      chunks.length > 1 && (order === "layer-major" || (order === "auto" && this.weights.streaming === true));
    const hidden = layerMajor ? await this.layerMajor(chunks) : await this.tokenMajor(chunks, options);
    if (layerMajor) {
      if (options.logits === "last") {
        const last = hidden[hidden.length - 1];
        return this.head(this.backend.sliceRows(last, last.shape[0] - 1, 1));
      }
      return this.concatRows(hidden.map((h) => this.head(h)));
    }
    return hidden.length === 1 ? hidden[0] : this.concatRows(hidden);
  }

  /**
   * Keeps the first `length` tokens (e.g. a shared prompt prefix) and forgets the rest. Layers with
   * recurrent state (linear attention) cannot be rewound: for those only reset() goes back.
   */
  truncate(length: number): void {
    if (length >= this.position) return;
    if (length > 0 && this.states.some((s) => s.size > 0))
      throw new OllmError(
        "INVALID_ARGUMENT",
        "this model keeps recurrent state: it can only be reset, not truncated",
      );
    if (length <= 0) {
      this.reset();
      return;
    }
    this.kv.truncate(length);
    this.position = length;
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

  /** Each chunk through every layer, then the next chunk; returns the logits of each chunk (per options). */
  private async tokenMajor(chunks: Int32Array[], options: ForwardOptions): Promise<Tensor[]> {
    const parts: Tensor[] = [];
    for (let c = 0; c < chunks.length; c++) {
      const ids = chunks[c];
      const positions = this.positionsOf(ids.length);
      let hidden = this.model.embed(ids, this.weights.global(), { backend: this.backend });
      for (let i = 0; i < this.model.numLayers; i++) {
        const w = await this.weights.layer(i);
        try {
          hidden = await this.runLayer(i, w, hidden, positions);
        } finally {
          this.weights.release?.(i);
        }
      }
      this.position += ids.length;
      if (options.logits === "all") parts.push(this.head(hidden));
      else if (c === chunks.length - 1)
        parts.push(this.head(this.backend.sliceRows(hidden, ids.length - 1, 1)));
    }
    return parts;
  }

  /** Every chunk through layer i, then layer i+1: one weight load per layer. Returns each chunk's hidden states. */
  private async layerMajor(chunks: Int32Array[]): Promise<Tensor[]> {
    const positions: Int32Array[] = [];
    let at = this.position;
    for (const ids of chunks) {
      positions.push(Int32Array.from(ids, (_, j) => at + j));
      at += ids.length;
    }
    const hidden = chunks.map((ids) =>
      this.model.embed(ids, this.weights.global(), { backend: this.backend }),
    );
    for (let i = 0; i < this.model.numLayers; i++) {
      const w = await this.weights.layer(i);
      try {
        for (let c = 0; c < chunks.length; c++)
          hidden[c] = await this.runLayer(i, w, hidden[c], positions[c]);
      } finally {
        this.weights.release?.(i);
      }
    }
    this.position = at;
    return hidden;
  }

  private async runLayer(i: number, w: Weights, hidden: Tensor, positions: Int32Array): Promise<Tensor> {
    const hasKv = this.model.kvSpec(i) !== undefined;
    if (hasKv) await this.kv.beforeLayer?.(i);
    const kv = hasKv ? this.kv.layer(i) : undefined;
    const out = await this.model.layer(i, hidden, w, {
      backend: this.backend,
      positions,
      kv,
      state: this.states[i],
    });
    if (hasKv) await this.kv.afterLayer?.(i);
    return out;
  }

  private positionsOf(rows: number): Int32Array {
    return Int32Array.from({ length: rows }, (_, j) => this.position + j);
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
