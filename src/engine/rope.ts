import { OllmError } from "../errors.js";
import type { RopeSpec } from "./backend.js";

/** One rope variant as configured: `rope_parameters` (transformers v5) or `rope_theta` + `rope_scaling`. */
export interface RopeParameters {
  rope_type?: string;
  type?: string;
  rope_theta?: number;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
  attention_factor?: number;
  beta_fast?: number;
  beta_slow?: number;
  mscale?: number;
  mscale_all_dim?: number;
  truncate?: boolean;
  partial_rotary_factor?: number;
}

const f = Math.fround;

/** inv_freq as transformers computes it in f32: 1 / base^(2i/dim). */
function defaultInvFreq(base: number, dim: number): Float32Array {
  const inv = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inv[i] = f(1 / f(f(base) ** f((2 * i) / dim)));
  return inv;
}

function llama3(inv: Float32Array, p: RopeParameters): Float32Array {
  const factor = p.factor ?? 8;
  const low = p.low_freq_factor ?? 1;
  const high = p.high_freq_factor ?? 4;
  const oldContext = p.original_max_position_embeddings ?? 8192;
  const lowWavelen = oldContext / low;
  const highWavelen = oldContext / high;
  return inv.map((freq) => {
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) return freq;
    if (wavelen > lowWavelen) return freq / factor;
    const smooth = (oldContext / wavelen - low) / (high - low);
    return (1 - smooth) * (freq / factor) + smooth * freq;
  });
}

function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function yarn(base: number, dim: number, p: RopeParameters, maxPositions: number): RopeSpec {
  const factor = p.factor ?? 1;
  const original = p.original_max_position_embeddings ?? maxPositions;
  let attentionScaling = p.attention_factor;
  if (attentionScaling === undefined) {
    attentionScaling =
      p.mscale && p.mscale_all_dim
        ? yarnMscale(factor, p.mscale) / yarnMscale(factor, p.mscale_all_dim)
        : yarnMscale(factor);
  }
  const betaFast = p.beta_fast ?? 32;
  const betaSlow = p.beta_slow ?? 1;
  const correctionDim = (rotations: number) =>
    (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (p.truncate ?? true) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const extrapolation = defaultInvFreq(base, dim);
  const inv = extrapolation.map((ext, i) => {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const extrapolationFactor = 1 - ramp;
    return (ext / factor) * (1 - extrapolationFactor) + ext * extrapolationFactor;
  });
  return { invFreq: inv, attentionScaling };
}

/**
 * Builds the rotary tables for `rotaryDim` rotating dimensions from one set of rope parameters.
 * Supported: default, linear, dynamic (as default within the trained length), llama3, yarn.
 */
export function buildRope(p: RopeParameters, rotaryDim: number, maxPositions: number): RopeSpec {
  const type = p.rope_type ?? p.type ?? "default";
  const base = p.rope_theta ?? 10000;
  switch (type) {
    case "default":
    case "dynamic":
      return { invFreq: defaultInvFreq(base, rotaryDim), attentionScaling: 1 };
    case "linear":
      return {
        invFreq: defaultInvFreq(base, rotaryDim).map((x) => x / (p.factor ?? 1)),
        attentionScaling: 1,
      };
    case "llama3":
      return { invFreq: llama3(defaultInvFreq(base, rotaryDim), p), attentionScaling: 1 };
    case "yarn":
      return yarn(base, rotaryDim, p, maxPositions);
    default:
      throw new OllmError("UNSUPPORTED_ARCHITECTURE", `rope type "${type}" is not supported`, {
        hint: "supported rope types: default, linear, dynamic, llama3, yarn",
      });
  }
}

/**
 * The rope parameters of a config, whichever form it uses: v5 `rope_parameters` (optionally keyed by
 * layer type, as gemma3 does) or the older top-level `rope_theta` + `rope_scaling`.
 */
export function ropeParameters(config: Record<string, unknown>, layerType?: string): RopeParameters {
  const v5 = config.rope_parameters as Record<string, unknown> | undefined;
  if (v5 && typeof v5 === "object") {
    if (layerType && typeof v5[layerType] === "object") return v5[layerType] as RopeParameters;
    if ("rope_theta" in v5 || "rope_type" in v5) return v5 as RopeParameters;
  }
  const scaling = (config.rope_scaling ?? {}) as RopeParameters;
  return { ...scaling, rope_theta: (config.rope_theta as number | undefined) ?? scaling.rope_theta };
}
