import { z } from "zod";
import { OllmError } from "../../errors.js";
import { normedInput } from "../linear-fusion.js";
import { buildRope, type RopeParameters } from "../rope.js";
import type { TokenIds } from "../backend.js";
import type { Tensor } from "../tensor.js";
import {
  type AttentionSpec,
  type GatedActivation,
  gatedActivation,
  gatedMlp,
  selfAttention,
} from "./blocks.js";
import { attentionGeometry, decoderConfigSchema, parseConfig } from "./config.js";
import { scoped } from "./decoder.js";
import type { CausalLM, HeadContext, LayerContext, ModelFamily, RawConfig, Weights } from "./family.js";

const positiveInt = z.number().int().positive();

/** Gemma3TextConfig with transformers' defaults (published multimodal configs spell out only a few fields). */
const gemma3Schema = decoderConfigSchema.extend({
  vocab_size: positiveInt.default(262208),
  hidden_size: positiveInt.default(2304),
  intermediate_size: positiveInt.default(9216),
  num_hidden_layers: positiveInt.default(26),
  num_attention_heads: positiveInt.default(8),
  num_key_value_heads: positiveInt.default(4),
  head_dim: positiveInt.default(256),
  max_position_embeddings: positiveInt.default(131072),
  tie_word_embeddings: z.boolean().default(true),
  hidden_activation: z.string().nullish(),
  query_pre_attn_scalar: z.number().positive().default(256),
  sliding_window: positiveInt.nullish().default(4096),
  sliding_window_pattern: positiveInt.nullish(),
  _sliding_window_pattern: positiveInt.nullish(),
  attn_logit_softcapping: z.number().positive().nullish(),
  final_logit_softcapping: z.number().positive().nullish(),
  use_bidirectional_attention: z.boolean().nullish(),
});

type Gemma3Config = z.infer<typeof gemma3Schema>;

type LayerType = "sliding_attention" | "full_attention";

/** layer_types (v5), else every `sliding_window_pattern`-th layer global (older configs; default 6). */
function layerTypes(raw: RawConfig, c: Gemma3Config): LayerType[] {
  if (Array.isArray(raw.layer_types)) return raw.layer_types as LayerType[];
  const pattern = c.sliding_window_pattern ?? c._sliding_window_pattern ?? 6;
  return Array.from({ length: c.num_hidden_layers }, (_, i) =>
    (i + 1) % pattern === 0 ? "full_attention" : "sliding_attention",
  );
}

/**
 * Rope of one layer type: v5 `rope_parameters` keyed by layer type, or the older top-level form where
 * global layers use rope_theta + rope_scaling and sliding layers the plain rope of rope_local_base_freq.
 */
function ropeOf(raw: RawConfig, type: LayerType): RopeParameters {
  const v5 = raw.rope_parameters as Record<string, unknown> | undefined;
  if (v5 && typeof v5[type] === "object" && v5[type] !== null) return v5[type] as RopeParameters;
  if (type === "sliding_attention")
    return { rope_type: "default", rope_theta: (raw.rope_local_base_freq as number | undefined) ?? 10000 };
  const scaling = (v5 && "rope_theta" in v5 ? v5 : (raw.rope_scaling ?? {})) as RopeParameters;
  return {
    ...scaling,
    rope_theta: scaling.rope_theta ?? (raw.rope_theta as number | undefined) ?? 1_000_000,
  };
}

/**
 * Gemma 3 text decoder (transformers' Gemma3ForCausalLM / the language model of
 * Gemma3ForConditionalGeneration):
 *   h = embed(ids) · √hidden
 *   h += post_attention_norm(attn(input_norm(h)))        q/k RMSNorm, scale query_pre_attn_scalar^-½,
 *                                                         sliding or global layer with its own rope
 *   h += post_feedforward_norm(mlp(pre_feedforward_norm(h)))   gelu-tanh gated MLP
 *   logits = softcap(norm(h) @ embedᵀ)
 * Every RMSNorm multiplies by (1 + w).
 */
class Gemma3 implements CausalLM {
  readonly numLayers: number;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly globalTensorNames: readonly string[];
  private readonly attention: AttentionSpec[];
  private readonly activation: GatedActivation;
  private readonly embedScale: number;
  private readonly eps: number;

  constructor(
    readonly architecture: string,
    private readonly config: Gemma3Config,
    raw: RawConfig,
    /** Where the text model's tensors live: "model." or, in multimodal checkpoints, "language_model.model.". */
    private readonly prefix: string,
  ) {
    if (config.use_bidirectional_attention)
      throw new OllmError(
        "UNSUPPORTED_ARCHITECTURE",
        "bidirectional Gemma 3 (embedding models) is not supported",
      );
    const geometry = attentionGeometry(config);
    const types = layerTypes(raw, config);
    this.numLayers = config.num_hidden_layers;
    this.vocabSize = config.vocab_size;
    this.maxPositions = config.max_position_embeddings;
    this.eps = config.rms_norm_eps;
    this.activation = gatedActivation(config.hidden_activation ?? "gelu_pytorch_tanh");
    // transformers casts √hidden to the weights' dtype; computing in f32, that is f32.
    this.embedScale = Math.fround(Math.sqrt(config.hidden_size));
    const ropes = {
      sliding_attention: buildRope(ropeOf(raw, "sliding_attention"), geometry.headDim, this.maxPositions),
      full_attention: buildRope(ropeOf(raw, "full_attention"), geometry.headDim, this.maxPositions),
    };
    this.attention = Array.from({ length: this.numLayers }, (_, i) => {
      const type = types[i] ?? "full_attention";
      return {
        ...geometry,
        scale: config.query_pre_attn_scalar ** -0.5,
        rope: ropes[type],
        window: type === "sliding_attention" ? (config.sliding_window ?? undefined) : undefined,
        qkNorm: { eps: config.rms_norm_eps, weightOffset: 1 },
        softcap: config.attn_logit_softcapping ?? undefined,
      };
    });
    this.globalTensorNames = [
      `${prefix}embed_tokens.weight`,
      `${prefix}norm.weight`,
      ...(config.tie_word_embeddings ? [] : ["lm_head.weight"]),
    ];
  }

  layerPrefix(index: number): string {
    return `${this.prefix}layers.${index}.`;
  }

  kvSpec(index: number) {
    const a = this.attention[index];
    return { numKvHeads: a.numKvHeads, headDim: a.headDim };
  }

  embed(ids: TokenIds, w: Weights, ctx: HeadContext): Tensor {
    return ctx.backend.embedding(w.get(`${this.prefix}embed_tokens.weight`), ids, this.embedScale);
  }

  layer(index: number, hidden: Tensor, w: Weights, ctx: LayerContext): Tensor {
    const b = ctx.backend;
    const spec = (name: string) => ({ weight: w.get(`${name}.weight`), eps: this.eps, weightOffset: 1 });
    const norm = (x: Tensor, name: string) => normedInput(b, x, spec(name));
    // The pre-norms ride on the projections; the post-norms sit between them and the residual adds.
    const attended = selfAttention(hidden, scoped(w, "self_attn."), ctx, this.attention[index], {
      norm: spec("input_layernorm"),
    });
    const h = b.add(hidden, norm(attended, "post_attention_layernorm"));
    const mlp = gatedMlp(h, scoped(w, "mlp."), ctx, this.activation, {
      norm: spec("pre_feedforward_layernorm"),
    });
    return b.add(h, norm(mlp, "post_feedforward_layernorm"));
  }

  head(hidden: Tensor, w: Weights, ctx: HeadContext): Tensor {
    const b = ctx.backend;
    const table = this.config.tie_word_embeddings ? `${this.prefix}embed_tokens.weight` : "lm_head.weight";
    const norm = { weight: w.get(`${this.prefix}norm.weight`), eps: this.eps, weightOffset: 1 };
    const logits = b.linear(hidden, w.get(table), undefined, { norm });
    const cap = this.config.final_logit_softcapping;
    return cap ? b.softcap(logits, cap) : logits;
  }
}

/**
 * Where a Gemma3ForConditionalGeneration checkpoint keeps its language model: the published layout
 * (`language_model.model.*`, as gemma-3-4b/12b/27b) or the one transformers v5 saves (`model.language_model.*`).
 * The vision tower and projector are never loaded.
 */
function multimodalPrefix(names: readonly string[] | undefined): string {
  if (names?.some((n) => n.startsWith("model.language_model."))) return "model.language_model.";
  return "language_model.model.";
}

export const gemma3: ModelFamily = {
  name: "gemma3",
  architectures: ["Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"],
  create(raw, tensorNames) {
    const multimodal = typeof raw.text_config === "object" && raw.text_config !== null;
    if (!multimodal) {
      const config = parseConfig(gemma3Schema, raw, "gemma3");
      return new Gemma3("Gemma3ForCausalLM", config, raw, "model.");
    }
    const text = raw.text_config as RawConfig;
    const config = parseConfig(gemma3Schema, text, "gemma3 text_config");
    return new Gemma3("Gemma3ForConditionalGeneration", config, text, multimodalPrefix(tensorNames));
  },
};
