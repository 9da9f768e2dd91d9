import { z } from "zod";
import { buildRope, ropeParameters } from "../rope.js";
import type { TokenIds } from "../backend.js";
import type { Tensor } from "../tensor.js";
import { type AttentionSpec, gatedActivation, gatedMlp, selfAttention } from "./blocks.js";
import { attentionGeometry, decoderConfigSchema, parseConfig } from "./config.js";
import { globalTensorNames, lmHead, scoped } from "./decoder.js";
import type { CausalLM, HeadContext, LayerContext, ModelFamily, RawConfig, Weights } from "./family.js";
import { mixExperts, softmaxTopKRoutes } from "./moe.js";

const positiveInt = z.number().int().positive();

const qwen3NextSchema = decoderConfigSchema.extend({
  linear_conv_kernel_dim: positiveInt.default(4),
  linear_key_head_dim: positiveInt.default(128),
  linear_value_head_dim: positiveInt.default(128),
  linear_num_key_heads: positiveInt.default(16),
  linear_num_value_heads: positiveInt.default(32),
  full_attention_interval: positiveInt.default(4),
  partial_rotary_factor: z.number().positive().max(1).optional(),
  num_experts: z.number().int().nonnegative().default(512),
  num_experts_per_tok: positiveInt.default(10),
  moe_intermediate_size: positiveInt.default(512),
  shared_expert_intermediate_size: positiveInt.default(512),
  norm_topk_prob: z.boolean().default(true),
  decoder_sparse_step: positiveInt.default(1),
  mlp_only_layers: z.array(z.number().int().nonnegative()).default([]),
});

type Qwen3NextConfig = z.infer<typeof qwen3NextSchema>;

/**
 * Qwen3-Next (transformers' Qwen3NextForCausalLM), a hybrid of two token mixers:
 *   linear_attention layers — Gated DeltaNet: in_proj_qkvz / in_proj_ba → causal depthwise conv (+SiLU) over
 *     [q | k | v] with its carried conv state → gated delta rule (l2-normed q/k, decay g, write strength β,
 *     recurrent state per value head) → RMSNorm(·) · silu(z) → out_proj
 *   full_attention layers — q_proj yields [query | gate] per head; q/k RMSNorm, partial rotary, and the output
 *     multiplied by σ(gate) before o_proj
 * each followed by a sparse MoE (softmax router → top-k, renormalised when norm_topk_prob) plus a shared expert
 * scaled by σ(shared_expert_gate(x)). Every RMSNorm but the gated one multiplies by (1 + w).
 */
class Qwen3Next implements CausalLM {
  readonly architecture = "Qwen3NextForCausalLM";
  readonly numLayers: number;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly globalTensorNames: readonly string[];
  private readonly types: string[];
  private readonly attention: AttentionSpec;
  private readonly activation;

  constructor(
    private readonly config: Qwen3NextConfig,
    raw: RawConfig,
  ) {
    const geometry = attentionGeometry(config);
    this.numLayers = config.num_hidden_layers;
    this.vocabSize = config.vocab_size;
    this.maxPositions = config.max_position_embeddings;
    this.activation = gatedActivation(config.hidden_act);
    this.types = Array.isArray(raw.layer_types)
      ? (raw.layer_types as string[])
      : Array.from({ length: this.numLayers }, (_, i) =>
          (i + 1) % config.full_attention_interval === 0 ? "full_attention" : "linear_attention",
        );
    const rope = ropeParameters(raw);
    const rotaryDim = Math.floor(
      geometry.headDim * (rope.partial_rotary_factor ?? config.partial_rotary_factor ?? 1),
    );
    this.attention = {
      ...geometry,
      scale: geometry.headDim ** -0.5,
      rope: buildRope(rope, rotaryDim, config.max_position_embeddings),
      rotaryDim,
      qkNorm: { eps: config.rms_norm_eps, weightOffset: 1 },
      outputGate: true,
    };
    this.globalTensorNames = globalTensorNames(config);
  }

  layerPrefix(index: number): string {
    return `model.layers.${index}.`;
  }

  kvSpec(index: number) {
    if (this.types[index] !== "full_attention") return undefined;
    return { numKvHeads: this.attention.numKvHeads, headDim: this.attention.headDim };
  }

  embed(ids: TokenIds, w: Weights, ctx: HeadContext): Tensor {
    return ctx.backend.embedding(w.get("model.embed_tokens.weight"), ids);
  }

  async layer(index: number, hidden: Tensor, w: Weights, ctx: LayerContext): Promise<Tensor> {
    const b = ctx.backend;
    const eps = this.config.rms_norm_eps;
    const mixerIn = b.rmsNorm(hidden, w.get("input_layernorm.weight"), eps, 1);
    const mixed =
      this.types[index] === "full_attention"
        ? selfAttention(mixerIn, scoped(w, "self_attn."), ctx, this.attention)
        : this.gatedDeltaNet(mixerIn, scoped(w, "linear_attn."), ctx);
    const { sum: h, normed: mlpIn } = b.addRmsNorm(
      hidden,
      mixed,
      w.get("post_attention_layernorm.weight"),
      eps,
      1,
    );
    const mlp = this.isSparse(index)
      ? await this.moe(mlpIn, scoped(w, "mlp."), ctx)
      : gatedMlp(mlpIn, scoped(w, "mlp."), ctx, this.activation);
    return b.add(h, mlp);
  }

  head(hidden: Tensor, w: Weights, ctx: HeadContext): Tensor {
    return lmHead(hidden, w, ctx, this.config, 1);
  }

  private isSparse(index: number): boolean {
    const c = this.config;
    return (
      !c.mlp_only_layers.includes(index) && c.num_experts > 0 && (index + 1) % c.decoder_sparse_step === 0
    );
  }

  /** Gated DeltaNet; its conv and recurrent state live in ctx.state between chunks and decode steps. */
  private gatedDeltaNet(x: Tensor, w: Weights, ctx: LayerContext): Tensor {
    const b = ctx.backend;
    const c = this.config;
    const nk = c.linear_num_key_heads;
    const nv = c.linear_num_value_heads;
    const dk = c.linear_key_head_dim;
    const dv = c.linear_value_head_dim;
    const r = nv / nk; // value heads per key head
    // Projections are grouped per key head: [q (dk) | k (dk) | v (r·dv) | z (r·dv)] and [b (r) | a (r)].
    const qkvz = b.linear(x, w.get("in_proj_qkvz.weight"));
    const ba = b.linear(x, w.get("in_proj_ba.weight"));
    const group = 2 * dk + 2 * r * dv;
    const q = b.sliceColumns(qkvz, 0, dk, group);
    const k = b.sliceColumns(qkvz, dk, dk, group);
    const v = b.sliceColumns(qkvz, 2 * dk, r * dv, group);
    const z = b.sliceColumns(qkvz, 2 * dk + r * dv, r * dv, group);
    const beta = b.sliceColumns(ba, 0, r, 2 * r);
    const a = b.sliceColumns(ba, r, r, 2 * r);

    const conv = b.causalConv1d(b.concatColumns([q, k, v]), w.get("conv1d.weight"), ctx.state.get("conv"));
    ctx.state.set("conv", conv.state);
    const keyDim = nk * dk;
    const gates = b.deltaRuleGates(a, beta, w.get("A_log"), w.get("dt_bias"));
    const rule = b.gatedDeltaRule(
      b.sliceColumns(conv.y, 0, keyDim),
      b.sliceColumns(conv.y, keyDim, keyDim),
      b.sliceColumns(conv.y, 2 * keyDim, nv * dv),
      gates.g,
      gates.beta,
      ctx.state.get("recurrent"),
      {
        numKeyHeads: nk,
        numValueHeads: nv,
        keyHeadDim: dk,
        valueHeadDim: dv,
        mode: ctx.positions.length === 1 ? "recurrent" : "chunked",
      },
    );
    ctx.state.set("recurrent", rule.state);
    // Qwen3NextRMSNormGated: w · rmsnorm(o) per value head, times silu(z).
    const normed = b.rmsNorm(rule.out, w.get("norm.weight"), c.rms_norm_eps);
    return b.linear(b.swiglu(z, normed), w.get("out_proj.weight"));
  }

  private async moe(x: Tensor, w: Weights, ctx: LayerContext): Promise<Tensor> {
    const b = ctx.backend;
    const c = this.config;
    const shared = b.sigmoidGate(
      gatedMlp(x, scoped(w, "shared_expert."), ctx, this.activation),
      b.linear(x, w.get("shared_expert_gate.weight")),
    );
    const logits = await b.linear(x, w.get("gate.weight")).read();
    const routes = softmaxTopKRoutes(logits, c.num_experts, c.num_experts_per_tok, c.norm_topk_prob);
    const fused = w.find("experts.gate_up_proj") !== undefined;
    const routed = await mixExperts(b, x, routes, async (e, rows) => {
      if (fused) {
        // transformers v5 layout: gate_up_proj [experts, 2·inter, hidden] = [gate; up], down_proj [experts, hidden, inter]
        const gateUp = b.linear(rows, await w.fetch("experts.gate_up_proj", e));
        const inter = gateUp.shape[1] / 2;
        const h = b.swiglu(b.sliceColumns(gateUp, 0, inter), b.sliceColumns(gateUp, inter, inter));
        return b.linear(h, await w.fetch("experts.down_proj", e));
      }
      const gate = b.linear(rows, await w.fetch(`experts.${e}.gate_proj.weight`));
      const up = b.linear(rows, await w.fetch(`experts.${e}.up_proj.weight`));
      return b.linear(b.swiglu(gate, up), await w.fetch(`experts.${e}.down_proj.weight`));
    });
    return b.add(routed, shared);
  }
}

export const qwen3Next: ModelFamily = {
  name: "qwen3-next",
  architectures: ["Qwen3NextForCausalLM"],
  create(raw) {
    return new Qwen3Next(parseConfig(qwen3NextSchema, raw, "qwen3-next"), raw);
  },
};
