import { DISK_KV_STRATEGIES, type KvStrategy } from "../kv/strategies.js";
import type { Residency } from "./policy.js";

/** oLLM's specialization passes, in the order a plan lists them. */
export const SPECIALIZATION_PASSES = [
  "disk-cache",
  "cpu-offload",
  "gpu-offload",
  "mlp-chunking",
  "moe-routing",
  "attention-replacement",
  "multimodal-shell",
] as const;
export type SpecializationPass = (typeof SPECIALIZATION_PASSES)[number];

export interface SpecializationInput {
  /** --no-specialization turns every pass off. */
  enabled: boolean;
  residency: readonly Residency[];
  /** The backend computes on a GPU (device ≠ host). */
  gpu: boolean;
  kvStrategy: KvStrategy;
  /** The family routes tokens to experts fetched on demand. */
  moe: boolean;
  /** A multimodal checkpoint run for text (its encoders are not loaded). */
  multimodalCheckpoint: boolean;
  /** Prefill chunk size and the context: chunking applies when a prompt can span several chunks. */
  prefillChunkTokens: number;
  contextTokens: number;
}

export interface AppliedPass {
  pass: SpecializationPass;
  reason: string;
}

/**
 * Which passes a configuration applies, each with the engine mechanism behind it. With `enabled` false the
 * list is empty: the runtime then plans the plain path (resident weights and KV, one prefill pass) and
 * fails the budget check if that does not fit.
 */
export function specializationPasses(input: SpecializationInput): AppliedPass[] {
  if (!input.enabled) return [];
  const out: AppliedPass[] = [];
  const count = (r: Residency) => input.residency.filter((x) => x === r).length;
  const disk = count("disk");
  const diskKv = DISK_KV_STRATEGIES.includes(input.kvStrategy);
  if (disk > 0 || diskKv)
    out.push({
      pass: "disk-cache",
      reason: [
        disk ? `${disk} layers stream from disk (double-buffered positioned reads)` : "",
        diskKv ? `KV cold blocks on disk (${input.kvStrategy})` : "",
      ]
        .filter(Boolean)
        .join("; "),
    });
  const host = count("host");
  if (host > 0 && (input.gpu || disk > 0))
    out.push({
      pass: "cpu-offload",
      reason: input.gpu
        ? `${host} layers kept in host memory and uploaded per use`
        : `${host} layers kept resident in host memory instead of streaming`,
    });
  if (input.gpu && count("device") > 0)
    out.push({ pass: "gpu-offload", reason: `${count("device")} layers resident on the GPU` });
  if (input.prefillChunkTokens < input.contextTokens)
    out.push({
      pass: "mlp-chunking",
      reason: `prefill runs ${input.prefillChunkTokens}-token chunks: MLP and attention activations are bounded by the chunk${disk ? ", layer-major so streamed weights are read once per prompt" : ""}`,
    });
  if (input.moe)
    out.push({
      pass: "moe-routing",
      reason: disk
        ? "only router-picked experts are computed, and streamed layers read only their byte ranges"
        : "only router-picked experts are computed",
    });
  if (input.kvStrategy !== "resident" && input.kvStrategy !== "chunked")
    out.push({
      pass: "attention-replacement",
      reason:
        input.kvStrategy === "sliding-window-ring-buffer"
          ? "attention reads a ring of the last window tokens (key positions offset)"
          : `attention reads KV assembled per layer from ${input.kvStrategy} blocks`,
    });
  if (input.multimodalCheckpoint)
    out.push({
      pass: "multimodal-shell",
      reason: "the language model of a multimodal checkpoint runs alone",
    });
  return out;
}
