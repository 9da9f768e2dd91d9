import { z } from "zod";
import { buildRope, ropeParameters } from "../rope.js";
import type { TokenIds } from "../backend.js";
import type { Tensor } from "../tensor.js";
import { type AttentionSpec, selfAttention } from "./blocks.js";
import { attentionGeometry, decoderConfigSchema, parseConfig } from "./config.js";
import { globalTensorNames, lmHead, scoped } from "./decoder.js";
import type { CausalLM, HeadContext, LayerContext, ModelFamily, RawConfig, Weights } from "./family.js";
import { mixExperts, topKSoftmaxRoutes } from "./moe.js";

const positiveInt = z.number().int().positive();

const gptOssSchema = decoderConfigSchema.extend({
  num_local_experts: positiveInt,
  num_experts_per_tok: positiveInt,
  swiglu_limit: z.number().positive().default(7),
  attention_bias: z.boolean().default(true),
});

type GptOssConfig = z.infer<typeof gptOssSchema>;

/** The clamped SwiGLU of gpt-oss experts: (clamp(up, ±limit) + 1) · g · σ(1.702 g), g = min(gate, limit). */
const GLU_ALPHA = 1.702;

/**
 * gpt-oss (transformers' GptOssForCausalLM):
 *   h += o_proj(attn(input_norm(h)))    biased projections, learned per-head sinks in the softmax, YaRN rope,
 *                                       sliding-window and full layers alternating (layer_types)
 *   h += moe(post_attention_norm(h))    router (linear + bias) → top-k logits → softmax over those k; each picked
 *                                       expert: down_proj(glu(gate_up_proj(x))), both biased, gate/up interleaved
 * Expert weights are stacked [experts, in, out] (bf16) or MXFP4 `*_blocks`/`*_scales` [experts, out, in/32, …];
 * only the experts the router picked are fetched and run, and MXFP4 is decoded inside the matmul.
 */
class GptOss implements CausalLM {
  readonly architecture = "GptOssForCausalLM";
  readonly numLayers: number;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly globalTensorNames: readonly string[];
  private readonly attention: AttentionSpec[];

  constructor(
    private readonly config: GptOssConfig,
    raw: RawConfig,
  ) {
    const geometry = attentionGeometry(config);
    this.numLayers = config.num_hidden_layers;
    this.vocabSize = config.vocab_size;
    this.maxPositions = config.max_position_embeddings;
    const rope = buildRope(ropeParameters(raw), geometry.headDim, config.max_position_embeddings);
    // transformers' default when layer_types is absent: even layers slide, odd layers are global.
    const types = Array.isArray(raw.layer_types)
      ? (raw.layer_types as string[])
      : Array.from({ length: this.numLayers }, (_, i) =>
          i % 2 === 0 ? "sliding_attention" : "full_attention",
        );
    this.attention = types.map((type) => ({
      ...geometry,
      scale: geometry.headDim ** -0.5,
      rope,
      sinks: true,
      window: type === "sliding_attention" ? (config.sliding_window ?? undefined) : undefined,
    }));
    this.globalTensorNames = globalTensorNames(config);
  }

  layerPrefix(index: number): string {
    return `model.layers.${index}.`;
  }

  kvSpec(index: number) {
    const a = this.attention[index];
    return { numKvHeads: a.numKvHeads, headDim: a.headDim };
  }

  embed(ids: TokenIds, w: Weights, ctx: HeadContext): Tensor {
    return ctx.backend.embedding(w.get("model.embed_tokens.weight"), ids);
  }

  async layer(index: number, hidden: Tensor, w: Weights, ctx: LayerContext): Promise<Tensor> {
    const b = ctx.backend;
    const eps = this.config.rms_norm_eps;
    const h = selfAttention(hidden, scoped(w, "self_attn."), ctx, this.attention[index], {
      norm: { weight: w.get("input_layernorm.weight"), eps },
      residual: hidden,
    });
    const mlpIn = b.rmsNorm(h, w.get("post_attention_layernorm.weight"), eps);
    return b.add(h, await this.moe(mlpIn, scoped(w, "mlp."), ctx));
  }

  head(hidden: Tensor, w: Weights, ctx: HeadContext): Tensor {
    return lmHead(hidden, w, ctx, this.config);
  }

  private async moe(x: Tensor, w: Weights, ctx: LayerContext): Promise<Tensor> {
    const b = ctx.backend;
    const c = this.config;
    const logits = await b.linear(x, w.get("router.weight"), w.find("router.bias")).read();
    const routes = topKSoftmaxRoutes(logits, c.num_local_experts, c.num_experts_per_tok);
    const mxfp4 = w.find("experts.gate_up_proj_blocks") !== undefined;
    const project = async (input: Tensor, name: string, e: number) => {
      const bias = await w.fetch(`experts.${name}_bias`, e);
      if (!mxfp4) return b.matmul(input, await w.fetch(`experts.${name}`, e), bias);
      const blocks = await w.fetch(`experts.${name}_blocks`, e);
      return b.linearMxfp4(input, blocks, await w.fetch(`experts.${name}_scales`, e), bias);
    };
    return mixExperts(b, x, routes, async (e, rows) => {
      const glu = b.clampedSwiglu(await project(rows, "gate_up_proj", e), GLU_ALPHA, c.swiglu_limit);
      return project(glu, "down_proj", e);
    });
  }
}

export const gptOss: ModelFamily = {
  name: "gpt-oss",
  architectures: ["GptOssForCausalLM"],
  create(raw) {
    return new GptOss(parseConfig(gptOssSchema, raw, "gpt-oss"), raw);
  },
};
