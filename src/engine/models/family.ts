import type { Backend, TokenIds } from "../backend.js";
import type { KvLayer, KvLayerSpec } from "../kv/kv-store.js";
import type { Tensor } from "../tensor.js";

/** A model's weights as seen by its family code: names relative to a prefix. */
export interface Weights {
  get(name: string): Tensor;
  /** The tensor, or undefined when the checkpoint does not have it (optional biases…). */
  find(name: string): Tensor | undefined;
  /**
   * A tensor fetched on demand: MoE layers ask this way, and only for the experts their router picked, so a
   * streaming store can read just those. With `index`, the slice `name[index]` of a stacked [experts, …]
   * tensor (shape without the leading dimension). Resident stores answer at once, with views.
   */
  fetch(name: string, index?: number): Promise<Tensor>;
}

/** Per-sequence state of one layer that is not KV (e.g. recurrent state of linear attention). */
export type LayerState = Map<string, Tensor>;

export interface LayerContext {
  backend: Backend;
  /** Absolute positions of the rows of this chunk. */
  positions: Int32Array;
  /** This layer's KV cache (absent for layers that declared none). */
  kv: KvLayer | undefined;
  state: LayerState;
}

export interface HeadContext {
  backend: Backend;
}

/**
 * A decoder-only language model, described one block at a time. The runner owns the loop over layers
 * and tokens and decides where each layer's weights live when `layer(i)` runs.
 */
export interface CausalLM {
  readonly architecture: string;
  readonly numLayers: number;
  readonly vocabSize: number;
  readonly maxPositions: number;
  /** Names of tensors used outside the layers (embedding, final norm, head). */
  readonly globalTensorNames: readonly string[];
  /** Name prefix of layer i's tensors, ending in a dot. */
  layerPrefix(index: number): string;
  /** KV cache geometry of layer i, or undefined when it keeps none. */
  kvSpec(index: number): KvLayerSpec | undefined;
  embed(ids: TokenIds, weights: Weights, ctx: HeadContext): Tensor;
  /** One block; async when it must read numbers back first (MoE routing) or fetch weights on demand. */
  layer(index: number, hidden: Tensor, weights: Weights, ctx: LayerContext): Tensor | Promise<Tensor>;
  /** Final norm + LM head: hidden [rows, hidden] → logits [rows, vocab]. */
  head(hidden: Tensor, weights: Weights, ctx: HeadContext): Tensor;
}

/** The raw config.json object. */
export type RawConfig = Record<string, unknown>;

export interface ModelFamily {
  /** Family name as users see it (llama, qwen3, …). */
  readonly name: string;
  /** `architectures` entries of config.json this family reads. */
  readonly architectures: readonly string[];
  /**
   * The model for a config.json. `tensorNames` (the checkpoint's tensors, when known) lets a family pick
   * between the layouts checkpoints of one architecture are published in.
   */
  create(config: RawConfig, tensorNames?: readonly string[]): CausalLM;
}
