import { OllmError } from "../../errors.js";
import type { GatedActivation, LinearFusion, RopeSpec } from "../backend.js";
import type { Tensor } from "../tensor.js";
import type { LayerContext, Weights } from "./family.js";

/** How one attention block is wired; each family fills it from its config. */
export interface AttentionSpec {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  scale: number;
  rope: RopeSpec;
  rotaryDim?: number;
  window?: number;
  /** Per-head RMSNorm of q and k before rope (qwen3, gemma3). */
  qkNorm?: { eps: number; weightOffset: number };
  sinks?: boolean;
  softcap?: number;
  /**
   * q_proj also yields a per-head output gate ([query | gate] for each head); the attention output is
   * multiplied by σ(gate) before o_proj (qwen3-next).
   */
  outputGate?: boolean;
}

/**
 * Self-attention with GQA: projections (biases when present), optional q/k norm, rope, cache, output.
 * `fusion.norm` is the norm of x before the projections, `fusion.residual` is added to the output: the
 * backend may fold both into its projections.
 */
export function selfAttention(
  x: Tensor,
  w: Weights,
  ctx: LayerContext,
  spec: AttentionSpec,
  fusion: LinearFusion = {},
): Tensor {
  const b = ctx.backend;
  const kv = ctx.kv;
  if (!kv) throw new OllmError("INTERNAL", "attention layer without a KV cache");
  let [q, k, v] = b.linearMany(
    x,
    ["q_proj", "k_proj", "v_proj"].map((name) => ({
      weight: w.get(`${name}.weight`),
      bias: w.find(`${name}.bias`),
    })),
    { norm: fusion.norm },
  );
  let gate: Tensor | undefined;
  if (spec.outputGate) {
    gate = b.sliceColumns(q, spec.headDim, spec.headDim, 2 * spec.headDim);
    q = b.sliceColumns(q, 0, spec.headDim, 2 * spec.headDim);
  }
  if (spec.qkNorm) {
    q = b.rmsNorm(q, w.get("q_norm.weight"), spec.qkNorm.eps, spec.qkNorm.weightOffset);
    k = b.rmsNorm(k, w.get("k_norm.weight"), spec.qkNorm.eps, spec.qkNorm.weightOffset);
  }
  const ropeOptions = { headDim: spec.headDim, rotaryDim: spec.rotaryDim };
  q = b.rope(q, ctx.positions, spec.rope, ropeOptions);
  k = b.rope(k, ctx.positions, spec.rope, ropeOptions);
  const cache = kv.append(k, v);
  let attended = b.attention(q, cache.k, cache.v, {
    numHeads: spec.numHeads,
    numKvHeads: spec.numKvHeads,
    headDim: spec.headDim,
    scale: spec.scale,
    queryPositions: ctx.positions,
    kvLength: cache.length,
    kvPositionOffset: cache.positionOffset,
    // The cache may keep less than the layer's window (a ring buffer): the smaller one masks.
    window: cache.window === undefined ? spec.window : Math.min(cache.window, spec.window ?? cache.window),
    sinks: spec.sinks ? w.get("sinks") : undefined,
    softcap: spec.softcap,
  });
  if (gate) attended = b.sigmoidGate(attended, gate);
  return b.linear(attended, w.get("o_proj.weight"), w.find("o_proj.bias"), { residual: fusion.residual });
}

export type { GatedActivation };

/** gate/up/down MLP: down(act(gate(x)) * up(x)), with x normed first and a residual added as `fusion` says. */
export function gatedMlp(
  x: Tensor,
  w: Weights,
  ctx: LayerContext,
  activation: GatedActivation,
  fusion: LinearFusion = {},
): Tensor {
  const b = ctx.backend;
  const h = b.linearGated(
    x,
    w.get("gate_proj.weight"),
    w.get("up_proj.weight"),
    activation,
    w.find("gate_proj.bias"),
    w.find("up_proj.bias"),
    { norm: fusion.norm },
  );
  return b.linear(h, w.get("down_proj.weight"), w.find("down_proj.bias"), { residual: fusion.residual });
}

/** Maps config.json's hidden_act to a gated activation. */
export function gatedActivation(hiddenAct: string): GatedActivation {
  if (hiddenAct === "silu" || hiddenAct === "swish") return "silu";
  if (hiddenAct === "gelu_pytorch_tanh" || hiddenAct === "gelu_tanh") return "gelu_tanh";
  throw new OllmError("UNSUPPORTED_ARCHITECTURE", `hidden_act "${hiddenAct}" is not supported`, {
    hint: "supported: silu, gelu_pytorch_tanh",
  });
}
