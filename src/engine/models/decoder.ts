import { buildRope, ropeParameters } from "../rope.js";
import { cachedLookup } from "../weight-store.js";
import type { TokenIds } from "../backend.js";
import type { Tensor } from "../tensor.js";
import { type AttentionSpec, gatedActivation, gatedMlp, selfAttention } from "./blocks.js";
import { attentionGeometry, type DecoderConfig } from "./config.js";
import type { CausalLM, HeadContext, LayerContext, RawConfig, Weights } from "./family.js";

/** What distinguishes one llama-like family from another, per layer. */
export interface DecoderOptions {
  architecture: string;
  /** Sliding window of layer i, if that layer uses one. */
  windowOf?: (layer: number) => number | undefined;
  /** q/k RMSNorm before rope (qwen3). */
  qkNorm?: boolean;
}

/**
 * The pre-norm decoder of llama, mistral, qwen2 and qwen3:
 *   h += o_proj(attn(rope(q), rope(k), v))  on input_layernorm(h)
 *   h += down(silu(gate) * up)              on post_attention_layernorm(h)
 */
export class PreNormDecoder implements CausalLM {
  readonly architecture: string;
  readonly numLayers: number;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly globalTensorNames: readonly string[];
  private readonly attention: AttentionSpec;
  /** Each layer's attention spec (its window), built once. */
  private readonly specs: AttentionSpec[] = [];
  private readonly activation;

  constructor(
    private readonly config: DecoderConfig,
    raw: RawConfig,
    private readonly options: DecoderOptions,
  ) {
    const geometry = attentionGeometry(config);
    const rope = ropeParameters(raw);
    this.architecture = options.architecture;
    this.numLayers = config.num_hidden_layers;
    this.vocabSize = config.vocab_size;
    this.maxPositions = config.max_position_embeddings;
    this.activation = gatedActivation(config.hidden_act);
    this.attention = {
      ...geometry,
      scale: 1 / Math.sqrt(geometry.headDim),
      rope: buildRope(rope, geometry.headDim, config.max_position_embeddings),
      qkNorm: options.qkNorm ? { eps: config.rms_norm_eps, weightOffset: 0 } : undefined,
    };
    this.globalTensorNames = globalTensorNames(config);
  }

  layerPrefix(index: number): string {
    return `model.layers.${index}.`;
  }

  kvSpec() {
    return { numKvHeads: this.attention.numKvHeads, headDim: this.attention.headDim };
  }

  embed(ids: TokenIds, w: Weights, ctx: HeadContext): Tensor {
    return ctx.backend.embedding(w.get("model.embed_tokens.weight"), ids);
  }

  layer(index: number, hidden: Tensor, w: Weights, ctx: LayerContext): Tensor {
    const eps = this.config.rms_norm_eps;
    this.specs[index] ??= { ...this.attention, window: this.options.windowOf?.(index) };
    const spec = this.specs[index];
    // The norms and residual adds ride on the projections (a GPU backend folds them into its GEMVs).
    const h = selfAttention(hidden, scoped(w, "self_attn."), ctx, spec, {
      norm: { weight: w.get("input_layernorm.weight"), eps },
      residual: hidden,
    });
    return gatedMlp(h, scoped(w, "mlp."), ctx, this.activation, {
      norm: { weight: w.get("post_attention_layernorm.weight"), eps },
      residual: h,
    });
  }

  head(hidden: Tensor, w: Weights, ctx: HeadContext): Tensor {
    return lmHead(hidden, w, ctx, this.config);
  }
}

/** Tensors outside the layers: the embeddings, the final norm and (unless tied) lm_head. */
export function globalTensorNames(config: DecoderConfig): string[] {
  return [
    "model.embed_tokens.weight",
    "model.norm.weight",
    ...(config.tie_word_embeddings ? [] : ["lm_head.weight"]),
  ];
}

/** The final RMSNorm (weight offset as in `Backend.rmsNorm`), then lm_head, or the embeddings when tied. */
export function lmHead(
  hidden: Tensor,
  w: Weights,
  ctx: HeadContext,
  config: DecoderConfig,
  normWeightOffset = 0,
): Tensor {
  const head = config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const norm = {
    weight: w.get("model.norm.weight"),
    eps: config.rms_norm_eps,
    weightOffset: normWeightOffset,
  };
  return ctx.backend.linear(hidden, w.get(head), undefined, { norm });
}

/** A view of `w` with `prefix` prepended to every name. */
export function scoped(w: Weights, prefix: string): Weights {
  let views = scopedViews.get(w);
  if (!views) {
    views = new Map();
    scopedViews.set(w, views);
  }
  let view = views.get(prefix);
  if (!view) {
    // Names looked up by the short name the block asks for (a literal), not prefix + name per call.
    const find = cachedLookup((name) => w.find(prefix + name));
    view = {
      get: (name) => find(name) ?? w.get(prefix + name),
      find,
      fetch: (name, index) => w.fetch(prefix + name, index),
    };
    views.set(prefix, view);
  }
  return view;
}

/** The scoped views of each Weights (kept while it lives: a resident layer's for the model's life). */
const scopedViews = new WeakMap<Weights, Map<string, Weights>>();

/** Window of each layer from `layer_types` (transformers v5) or a single `sliding_window`. */
export function windowsFromLayerTypes(raw: RawConfig, window: number | null | undefined) {
  const types = raw.layer_types as string[] | undefined;
  return (layer: number): number | undefined => {
    if (!window) return undefined;
    if (Array.isArray(types)) return types[layer] === "sliding_attention" ? window : undefined;
    return window;
  };
}
