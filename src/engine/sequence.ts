import { OllmError } from "../errors.js";
import type { Backend, TokenIds } from "./backend.js";
import type { KvStore } from "./kv/kv-store.js";
import type { CausalLM, LayerState, Weights } from "./models/family.js";
import { rowsOf, type Tensor } from "./tensor.js";
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
 * A backend that can free a layer's intermediates as soon as the layer returns (the WebGPU backend): the
 * runner knows what escapes a layer (its output and recurrent state; KV buffers are containers the backend
 * keeps), and the garbage collector does not run inside a forward pass.
 */
interface ScopedBackend {
  beginScope(): void;
  /** Frees what the scope allocated except `keep`; undefined frees nothing. */
  endScope(keep: readonly Tensor[] | undefined): void;
}

function scopesOf(backend: Backend): ScopedBackend | undefined {
  const b = backend as Partial<ScopedBackend>;
  return typeof b.beginScope === "function" && typeof b.endScope === "function"
    ? (backend as unknown as ScopedBackend)
    : undefined;
}

function isTensor(ids: ArrayLike<number> | Tensor): ids is Tensor {
  return typeof (ids as Partial<Tensor>).read === "function";
}

function tokenCount(ids: TokenIds): number {
  return ids instanceof Int32Array ? ids.length : rowsOf(ids)[0];
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === "function";
}

/**
 * One sequence being processed: its KV cache, per-layer state and position. The runner loop lives here:
 * it owns the order of layers and chunks, asks the weight store for each layer right before it runs (and
 * releases it after), and tells the KV store when a layer starts and ends.
 */
export class Sequence {
  private readonly states: LayerState[];
  private position = 0;
  private readonly scopes: ScopedBackend | undefined;

  constructor(
    /** The backend the sequence runs on (its tensors, e.g. the logits `forward` returns, belong to it). */
    readonly backend: Backend,
    private readonly model: CausalLM,
    private readonly weights: WeightStore,
    private readonly kv: KvStore,
  ) {
    this.states = Array.from({ length: model.numLayers }, () => new Map());
    this.scopes = scopesOf(backend);
  }

  /** Tokens processed so far. */
  get length(): number {
    return this.position;
  }

  /** Whether `truncate` can go back to any length (no layer keeps recurrent state). */
  get rewindable(): boolean {
    return this.states.every((s) => s.size === 0);
  }

  /** The sequence's KV cache (its usage and strategy-specific statistics). */
  get kvStore(): KvStore {
    return this.kv;
  }

  /**
   * Runs `ids` (appended after what the sequence holds) and returns logits [rows, vocab]. Ids in a tensor
   * (`TokenIds`: e.g. the previous step's `topKRows` output, still on the device) run as one chunk.
   */
  async forward(ids: ArrayLike<number> | Tensor, options: ForwardOptions): Promise<Tensor> {
    const chunks: TokenIds[] = [];
    if (isTensor(ids)) chunks.push(ids);
    else {
      const all = Int32Array.from(ids);
      const size = Math.max(1, options.chunkTokens ?? all.length);
      for (let start = 0; start < all.length; start += size)
        chunks.push(all.subarray(start, Math.min(all.length, start + size)));
    }
    const order = options.order ?? "auto";
    const layerMajor =
      chunks.length > 1 && (order === "layer-major" || (order === "auto" && this.weights.streaming === true));
    const hidden = layerMajor ? await this.layerMajor(chunks) : await this.tokenMajor(chunks, options);
    if (layerMajor) {
      if (options.logits === "last") {
        for (const h of hidden.slice(0, -1)) h.dispose();
        return this.headOf(this.lastRow(hidden[hidden.length - 1]));
      }
      return this.concatRows(hidden.map((h) => this.headOf(h)));
    }
    return hidden.length === 1 ? hidden[0] : this.concatRows(hidden);
  }

  /**
   * Keeps the first `length` tokens (e.g. a shared prompt prefix) and forgets the rest. Layers with
   * recurrent state (linear attention) cannot be rewound: for those only reset() goes back.
   */
  truncate(length: number): void {
    if (length >= this.position) return;
    if (length > 0 && !this.rewindable)
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
    this.clearStates();
    this.position = 0;
  }

  dispose(): void {
    this.kv.dispose();
    this.clearStates();
  }

  private clearStates(): void {
    for (const s of this.states) {
      for (const t of s.values()) t.dispose();
      s.clear();
    }
  }

  /** Each chunk through every layer, then the next chunk; returns the logits of each chunk (per options). */
  private async tokenMajor(chunks: TokenIds[], options: ForwardOptions): Promise<Tensor[]> {
    const parts: Tensor[] = [];
    for (let c = 0; c < chunks.length; c++) {
      const ids = chunks[c];
      const count = tokenCount(ids);
      const positions = this.positionsOf(count);
      let hidden = this.model.embed(ids, this.weights.global(), { backend: this.backend });
      for (let i = 0; i < this.model.numLayers; i++) {
        const w = await this.weights.layer(i);
        try {
          hidden = this.replace(hidden, await this.runLayer(i, w, hidden, positions), i);
        } finally {
          this.weights.release?.(i);
        }
      }
      this.position += count;
      if (options.logits === "all") parts.push(this.headOf(hidden));
      else if (c === chunks.length - 1) parts.push(this.headOf(this.lastRow(hidden)));
      else hidden.dispose();
    }
    return parts;
  }

  /** Every chunk through layer i, then layer i+1: one weight load per layer. Returns each chunk's hidden states. */
  private async layerMajor(chunks: TokenIds[]): Promise<Tensor[]> {
    const positions: Int32Array[] = [];
    let at = this.position;
    for (const ids of chunks) {
      const count = tokenCount(ids);
      positions.push(Int32Array.from({ length: count }, (_, j) => at + j));
      at += count;
    }
    const hidden = chunks.map((ids) =>
      this.model.embed(ids, this.weights.global(), { backend: this.backend }),
    );
    for (let i = 0; i < this.model.numLayers; i++) {
      const w = await this.weights.layer(i);
      try {
        for (let c = 0; c < chunks.length; c++)
          hidden[c] = this.replace(hidden[c], await this.runLayer(i, w, hidden[c], positions[c]), i);
      } finally {
        this.weights.release?.(i);
      }
    }
    this.position = at;
    return hidden;
  }

  /**
   * Runs layer i. A synchronous layer runs inside a backend scope (when the backend has them): everything it
   * allocated except its output, its recurrent state and the KV containers is freed when it returns. A
   * layer that awaits (MoE routing reads) is left to the garbage collector: a scope cannot span an await.
   */
  private async runLayer(i: number, w: Weights, hidden: Tensor, positions: Int32Array): Promise<Tensor> {
    const hasKv = this.model.kvSpec(i) !== undefined;
    if (hasKv) await this.kv.beforeLayer?.(i);
    const kv = hasKv ? this.kv.layer(i) : undefined;
    const state = this.states[i];
    const ctx = { backend: this.backend, positions, kv, state };
    const previousState = state.size > 0 ? [...state.values()] : [];
    const scopes = this.scopes;
    scopes?.beginScope();
    let result: Tensor | Promise<Tensor>;
    try {
      result = this.model.layer(i, hidden, w, ctx);
    } catch (error) {
      scopes?.endScope(undefined);
      throw error;
    }
    let out: Tensor;
    if (isPromise(result)) {
      scopes?.endScope(undefined);
      out = await result;
    } else {
      out = result;
      scopes?.endScope([out, hidden, ...state.values()]);
    }
    // Recurrent state the layer replaced is no longer needed (its ops were recorded before the replacement).
    for (const old of previousState) if (old !== out && ![...state.values()].includes(old)) old.dispose();
    if (hasKv) await this.kv.afterLayer?.(i);
    return out;
  }

  /** The next hidden state: the previous one is freed unless the layer returned it or keeps it as state. */
  private replace(previous: Tensor, next: Tensor, layer: number): Tensor {
    if (next !== previous && ![...this.states[layer].values()].includes(previous)) previous.dispose();
    return next;
  }

  private positionsOf(rows: number): Int32Array {
    return Int32Array.from({ length: rows }, (_, j) => this.position + j);
  }

  /** The last row of `hidden` (itself when it has one row; else a copy, and `hidden` is freed). */
  private lastRow(hidden: Tensor): Tensor {
    const rows = hidden.shape[0];
    if (rows === 1) return hidden;
    const row = this.backend.sliceRows(hidden, rows - 1, 1);
    hidden.dispose();
    return row;
  }

  /** Logits of `hidden`, which is freed (with the head's intermediates, in a backend scope). */
  private headOf(hidden: Tensor): Tensor {
    const scopes = this.scopes;
    scopes?.beginScope();
    let logits: Tensor;
    try {
      logits = this.model.head(hidden, this.weights.global(), { backend: this.backend });
    } catch (error) {
      scopes?.endScope(undefined);
      throw error;
    }
    scopes?.endScope([logits]);
    if (logits !== hidden) hidden.dispose();
    return logits;
  }

  /** The parts' rows in one tensor; the parts are freed. */
  private concatRows(parts: Tensor[]): Tensor {
    const cols = parts[0].shape[1];
    const rows = parts.reduce((n, p) => n + p.shape[0], 0);
    const out = this.backend.zeros([rows, cols]);
    let row = 0;
    for (const p of parts) {
      this.backend.writeRows(out, row, p);
      row += p.shape[0];
      p.dispose();
    }
    return out;
  }
}
