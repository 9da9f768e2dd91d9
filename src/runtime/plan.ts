import { z } from "zod";
import { formatBytes, parseMemoryBudget } from "../config/memory.js";
import {
  KV_CACHE_STRATEGIES,
  OFFLOAD_CPU_POLICIES,
  type RuntimeConfig,
  RuntimeConfigSchema,
  STRATEGY_SELECTOR_PROFILES,
} from "../config/runtime-config.js";
import { OllmError } from "../errors.js";
import { MODALITIES, type Modality } from "./catalog.js";
import { type ENGINE_BACKENDS, ENGINE_MODALITIES } from "./inspect.js";
import type { MachineInfo } from "./machine.js";
import { notMaterializedError } from "./materializer.js";
import { type ResolvedModel, ResolvedModelSchema } from "./resolved-model.js";

/** KV strategies the engine implements today. The others are accepted by the schema and planned honestly. */
export const IMPLEMENTED_KV_STRATEGIES = ["resident"] as const;
/** Context budgeted for the KV cache when `contextTokens` is unset (capped at the model's maximum). */
export const DEFAULT_CONTEXT_TOKENS = 4096;
/** Prompt tokens per prefill chunk when `prefillChunkTokens` is unset. */
export const DEFAULT_PREFILL_CHUNK_TOKENS = 512;
/** Share of host memory the plan may use when `hostMemoryBudget` is unset. */
export const DEFAULT_HOST_BUDGET_SHARE = 0.8;

const bytes = z.number().int().min(0);

/** One choice of the planner and why it was made. */
export const PlanReasonSchema = z.object({
  /** What was decided: backend, device, kvCache, residency, memory, … */
  subject: z.string(),
  /** The value chosen. */
  decision: z.string(),
  /** Why, in a sentence a user can act on. */
  reason: z.string(),
});

/** Where a layer's weights live while it runs. */
export const RESIDENCIES = ["gpu", "host", "disk"] as const;

/** How a runtime will execute a model: every choice, its reason and the predicted peak memory. */
export const RuntimePlanSchema = z.object({
  /** The model planned for (its path is where weights are read from). */
  model: z.object({
    reference: z.string(),
    name: z.string(),
    path: z.string(),
    architecture: z.string(),
    family: z.string(),
    dtype: z.string().nullable(),
    parameterCount: z.number().int(),
    weightBytes: bytes,
  }),
  backend: z.enum(["cpu", "webgpu"]),
  /** The device the backend runs on ("cpu", "gpu:0", …). */
  device: z.string(),
  /** Input modalities this plan accepts; `model` those of the checkpoint. */
  modalities: z.object({ requested: z.array(z.enum(MODALITIES)), model: z.array(z.enum(MODALITIES)) }),
  specialization: z.object({
    enabled: z.boolean(),
    /** disabled: useSpecialization is off; none-available: the family has no passes; applied: `passes` ran. */
    state: z.enum(["disabled", "none-available", "applied"]),
    passes: z.array(z.string()),
  }),
  /** Each decoder layer and where its weights live. */
  layers: z.array(z.object({ index: z.number().int(), residency: z.enum(RESIDENCIES), bytes })),
  kvCache: z.object({
    /** What the config asked for. */
    requested: z.enum(KV_CACHE_STRATEGIES),
    profile: z.enum(STRATEGY_SELECTOR_PROFILES),
    /** What the selector (or the config) chose. */
    selected: z.string(),
    /** What will run: `selected`, or the first implemented strategy of `fallbackChain`. */
    applied: z.enum(IMPLEMENTED_KV_STRATEGIES),
    fallbackChain: z.array(z.string()),
    windowTokens: z.number().int().nullable(),
    /** Context length budgeted for. */
    contextTokens: z.number().int(),
    bytesPerToken: bytes,
  }),
  prefillChunkTokens: z.number().int(),
  offload: z.object({
    cpuLayers: z.object({
      requested: z.number().int(),
      policy: z.enum(OFFLOAD_CPU_POLICIES),
      resolvedPolicy: z.enum(["prefix", "suffix", "middle-band"]),
      layerIndices: z.array(z.number().int()),
      /** false when the plan has no GPU, so every layer is in host memory anyway. */
      effective: z.boolean(),
    }),
    gpuLayers: z.number().int(),
  }),
  memory: z.object({
    hostBudgetBytes: bytes,
    gpuBudgetBytes: bytes.nullable(),
    /** Predicted peak use; activations are an estimate. */
    predictedPeak: z.object({
      host: z.object({ weights: bytes, kvCache: bytes, activations: bytes, total: bytes }),
      gpu: z.object({ weights: bytes, kvCache: bytes, activations: bytes, total: bytes }),
    }),
  }),
  /** Every choice and why. */
  reasons: z.array(PlanReasonSchema),
});

/** A runtime plan (see {@link RuntimePlanSchema}). */
export type RuntimePlan = z.infer<typeof RuntimePlanSchema>;
/** One reason of a plan. */
export type PlanReason = z.infer<typeof PlanReasonSchema>;

/** The JSON `describePlan` returns: the normalized config, the resolved model and the plan. */
export const PlanDescriptionSchema = z.object({
  schemaVersion: z.literal(1),
  runtimeConfig: RuntimeConfigSchema,
  resolvedModel: ResolvedModelSchema,
  plan: RuntimePlanSchema,
});

/** The JSON payload of `describePlan`. */
export type PlanDescription = z.infer<typeof PlanDescriptionSchema>;

/** JSON Schema (draft 2020-12) of the `describePlan` payload, generated from its zod schema. */
export function planDescriptionJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(PlanDescriptionSchema, { io: "output", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
}

/** Options of {@link planRuntime} besides the config. */
export interface PlanOptions {
  /** Input modalities the request needs; default: text, plus the model's others when `multimodal` is set. */
  modalities?: readonly Modality[];
}

const FALLBACK_CHAINS: Record<string, string[]> = {
  resident: ["resident"],
  paged: ["paged", "chunked", "resident"],
  "quantized-cold-tier": ["quantized-cold-tier", "paged", "chunked", "resident"],
};

function sizeTier(params: number): "small" | "medium" | "large" {
  return params <= 4e9 ? "small" : params <= 16e9 ? "medium" : "large";
}

function ramTier(total: number): "small" | "medium" | "large" {
  const gib = total / 1024 ** 3;
  return gib < 16 ? "small" : gib < 64 ? "medium" : "large";
}

/** The strategy oLLM's selector would pick for a profile, and its rule. */
function selectKvStrategy(
  profile: RuntimeConfig["strategySelectorProfile"],
  model: ResolvedModel,
  machine: MachineInfo,
  textOnly: boolean,
): { selected: string; why: string } {
  const size = sizeTier(model.parameterCount ?? 0);
  const ram = ramTier(machine.hostMemoryBytes);
  if (profile === "capacity")
    return textOnly
      ? {
          selected: "quantized-cold-tier",
          why: "the capacity profile prefers the quantized cold tier for text",
        }
      : { selected: "paged", why: "the capacity profile stays on paged KV for multimodal inputs" };
  if (profile === "latency")
    return textOnly && ram === "large" && size !== "large"
      ? { selected: "resident", why: "the latency profile keeps KV resident when memory is plentiful" }
      : { selected: "paged", why: "the latency profile falls back to paged KV without clear headroom" };
  return textOnly && size === "small" && ram === "large"
    ? {
        selected: "resident",
        why: "the balanced profile keeps a small text model's KV resident on a large host",
      }
    : { selected: "paged", why: "the balanced profile uses paged KV as its full-history default" };
}

function cpuOffloadLayers(requested: number, total: number, policy: RuntimeConfig["offloadCpuPolicy"]) {
  const resolvedPolicy = policy === "auto" ? "middle-band" : policy;
  const n = Math.min(requested, total);
  const start =
    resolvedPolicy === "prefix" ? 0 : resolvedPolicy === "suffix" ? total - n : Math.floor((total - n) / 2);
  return { resolvedPolicy, layerIndices: Array.from({ length: n }, (_, i) => start + i) } as const;
}

/**
 * The input modalities a request gets: `modalities` (plus text), or with `multimodal` all of the model's.
 * Throws UNSUPPORTED_MODALITY when the model cannot take one of them, or the engine cannot feed it yet.
 */
export function planModalities(
  config: Pick<RuntimeConfig, "multimodal">,
  model: Pick<ResolvedModel, "name" | "modalities">,
  modalities?: readonly Modality[],
): Modality[] {
  const nonText = model.modalities.filter((m) => m !== "text");
  const requested: Modality[] = modalities
    ? [...new Set<Modality>(["text", ...modalities])]
    : config.multimodal
      ? ["text", ...nonText]
      : ["text"];
  for (const m of requested) {
    if (!model.modalities.includes(m))
      fail(
        "UNSUPPORTED_MODALITY",
        `${model.name} cannot take ${m} input: its modalities are ${model.modalities.join(", ")}`,
        `Use a model with ${m} input, or drop the ${m} parts.`,
      );
    if (!ENGINE_MODALITIES.includes(m))
      fail(
        "UNSUPPORTED_MODALITY",
        `${m} input is not implemented by the engine yet (${model.name} accepts it, but there is no ${m} encoder)`,
        "Send text only for now.",
      );
  }
  if (config.multimodal && nonText.length === 0)
    fail(
      "UNSUPPORTED_MODALITY",
      `${model.name} is text-only: multimodal input is not possible`,
      "Use a model with image or audio input, or drop the image/audio parts.",
    );
  return requested;
}

function fail(code: OllmError["code"], message: string, hint?: string): never {
  throw new OllmError(code, message, { hint });
}

/**
 * Plans how `config` runs `model` on `machine`: backend, device, per-layer residency, KV strategy, prefill
 * chunking and predicted peak memory, each with its reason. Impossible configs fail here with an
 * OllmError: MODEL_NOT_FOUND, UNSUPPORTED_ARCHITECTURE, INVALID_CHECKPOINT, INVALID_TOKENIZER,
 * UNSUPPORTED_MODALITY, BACKEND_UNAVAILABLE, NOT_IMPLEMENTED, INVALID_CONFIG or OUT_OF_MEMORY_BUDGET.
 */
export function planRuntime(
  config: RuntimeConfig,
  model: ResolvedModel,
  machine: MachineInfo,
  options: PlanOptions = {},
): RuntimePlan {
  const reasons: PlanReason[] = [];
  const because = (subject: string, decision: string, reason: string) =>
    reasons.push({ subject, decision, reason });

  // The model: on disk, runnable by a family of the engine, with a tokenizer and a chat template.
  if (!model.materialized || !model.path) throw notMaterializedError(model);
  for (const code of [
    "INVALID_CONFIG",
    "UNSUPPORTED_ARCHITECTURE",
    "INVALID_CHECKPOINT",
    "INVALID_TOKENIZER",
  ] as const) {
    const issue = model.issues.find((i) => i.code === code);
    if (issue)
      fail(
        code,
        `${model.name} cannot run: ${issue.message}`,
        model.supportedBackends.length ? undefined : "Pick a model of a supported architecture.",
      );
  }
  const geometry = model.geometry;
  if (!geometry || !model.family || !model.architecture || model.weightBytes === null || !model.layerBytes)
    fail("INVALID_CHECKPOINT", `${model.name}: config.json or the weights could not be read`);
  because("model", model.family, `${model.architecture} runs on the engine's ${model.family} family`);

  // Modalities.
  const requested = planModalities(config, model, options.modalities);
  because("modalities", requested.join("+"), config.multimodal ? "multimodal is on" : "text-only request");

  // Backend and device.
  if (config.backend === "webgpu")
    fail(
      "BACKEND_UNAVAILABLE",
      'backend "webgpu" is not available: the GPU backend is not implemented yet',
      'Use backend "cpu" or "auto".',
    );
  if (config.device.startsWith("gpu"))
    fail(
      "BACKEND_UNAVAILABLE",
      `device "${config.device}" is not available: no GPU backend exists yet`,
      'Use device "cpu" or "auto".',
    );
  if (!model.supportedBackends.includes("cpu"))
    fail(
      "BACKEND_UNAVAILABLE",
      `${model.name} has no backend that runs it here (supported: ${model.supportedBackends.join(", ") || "none"})`,
    );
  const backend: (typeof ENGINE_BACKENDS)[number] = "cpu";
  because(
    "backend",
    backend,
    config.backend === "auto"
      ? "auto: cpu is the only backend of this engine so far"
      : "requested by the config",
  );
  because(
    "device",
    "cpu",
    config.device === "auto" ? "auto: the cpu backend runs on the host" : "requested by the config",
  );
  if (config.offloadGpuLayers > 0)
    fail(
      "BACKEND_UNAVAILABLE",
      `offloadGpuLayers=${config.offloadGpuLayers} needs a GPU backend, and none is available`,
      "Remove offloadGpuLayers.",
    );

  // Specialization.
  const specialization = {
    enabled: config.useSpecialization,
    state: config.useSpecialization ? ("none-available" as const) : ("disabled" as const),
    passes: [] as string[],
  };
  because(
    "specialization",
    specialization.state,
    config.useSpecialization
      ? `the ${model.family} family file is the whole implementation; this engine has no specialization passes yet`
      : "useSpecialization is off",
  );

  // Context and prefill.
  const maxPositions = geometry.maxPositions ?? Number.POSITIVE_INFINITY;
  if (config.contextTokens !== undefined && config.contextTokens > maxPositions)
    fail(
      "INVALID_CONFIG",
      `contextTokens=${config.contextTokens} is more than ${model.name}'s maximum of ${maxPositions} tokens`,
    );
  const contextTokens = config.contextTokens ?? Math.min(DEFAULT_CONTEXT_TOKENS, maxPositions);
  because(
    "contextTokens",
    String(contextTokens),
    config.contextTokens
      ? "requested by the config"
      : `default ${DEFAULT_CONTEXT_TOKENS}, at most the model's ${maxPositions}`,
  );
  const prefillChunkTokens = Math.min(
    config.prefillChunkTokens ?? DEFAULT_PREFILL_CHUNK_TOKENS,
    contextTokens,
  );
  because(
    "prefillChunkTokens",
    String(prefillChunkTokens),
    config.prefillChunkTokens
      ? "requested by the config"
      : "default: bounds prefill activations to one chunk of the prompt",
  );

  // KV cache strategy.
  const textOnly = requested.length === 1;
  let selected: string;
  let why: string;
  if (config.kvCacheStrategy !== "auto") {
    selected = config.kvCacheStrategy;
    why = "requested by the config";
    if (!(IMPLEMENTED_KV_STRATEGIES as readonly string[]).includes(selected))
      fail(
        "NOT_IMPLEMENTED",
        `kvCacheStrategy "${selected}" is not implemented yet (implemented: ${IMPLEMENTED_KV_STRATEGIES.join(", ")})`,
        'Use kvCacheStrategy "resident" or "auto".',
      );
  } else if (
    config.strategySelectorProfile === "bounded-window" ||
    config.kvCacheWindowTokens !== undefined
  ) {
    fail(
      "NOT_IMPLEMENTED",
      `the sliding-window KV strategy (${config.kvCacheWindowTokens !== undefined ? "kvCacheWindowTokens" : 'profile "bounded-window"'}) is not implemented yet, and a full-history cache would change what the model sees`,
      'Use profile "balanced", "latency" or "capacity" and no kvCacheWindowTokens.',
    );
  } else {
    ({ selected, why } = selectKvStrategy(config.strategySelectorProfile, model, machine, textOnly));
  }
  const fallbackChain = FALLBACK_CHAINS[selected] ?? [selected];
  const applied = fallbackChain.find((s) =>
    (IMPLEMENTED_KV_STRATEGIES as readonly string[]).includes(s),
  ) as RuntimePlan["kvCache"]["applied"];
  because(
    "kvCache",
    applied,
    applied === selected
      ? `${why}`
      : `${why}; "${selected}" is not implemented yet, so the plan falls back along ${fallbackChain.join(" → ")} to "${applied}"`,
  );

  if (config.cacheDir !== undefined)
    because("cacheDir", "unused", `the ${applied} KV cache keeps nothing on disk`);

  // Offload and residency: the cpu backend keeps every layer in host memory.
  const placement = cpuOffloadLayers(config.offloadCpuLayers, geometry.numLayers, config.offloadCpuPolicy);
  if (config.offloadCpuLayers > 0)
    because(
      "offloadCpuLayers",
      "no effect",
      `the plan runs on the cpu, so all ${geometry.numLayers} layers are already in host memory`,
    );
  const layers = model.layerBytes.map((b, index) => ({ index, residency: "host" as const, bytes: b }));
  because(
    "residency",
    `host × ${layers.length}`,
    "the cpu backend computes from host memory; every layer stays resident (disk streaming is not implemented yet)",
  );

  // Memory.
  const weights = model.weightBytes;
  const kvCache = geometry.kvBytesPerToken * contextTokens;
  const hidden = geometry.hiddenSize ?? 0;
  const activations =
    4 *
      prefillChunkTokens *
      (6 * hidden +
        3 * (geometry.intermediateSize ?? 0) +
        (geometry.numAttentionHeads ?? 0) * contextTokens) +
    24 * (geometry.vocabSize ?? 0);
  const hostTotal = weights + kvCache + activations;
  const hostBudgetBytes =
    config.hostMemoryBudget !== undefined
      ? parseMemoryBudget(config.hostMemoryBudget, machine.hostMemoryBytes)
      : Math.floor(machine.hostMemoryBytes * DEFAULT_HOST_BUDGET_SHARE);
  because(
    "hostMemoryBudget",
    formatBytes(hostBudgetBytes),
    config.hostMemoryBudget !== undefined
      ? `requested by the config (${config.hostMemoryBudget})`
      : `default: ${DEFAULT_HOST_BUDGET_SHARE * 100}% of ${formatBytes(machine.hostMemoryBytes)} host memory`,
  );
  const gpuBudgetBytes =
    config.gpuMemoryBudget !== undefined
      ? parseMemoryBudget(config.gpuMemoryBudget, machine.gpus[0]?.memoryBytes ?? 0)
      : null;
  if (gpuBudgetBytes !== null) because("gpuMemoryBudget", "unused", "the plan uses no GPU");
  const breakdown = `weights ${formatBytes(weights)} + KV cache ${formatBytes(kvCache)} for ${contextTokens} tokens + activations ~${formatBytes(activations)}`;
  if (hostTotal > hostBudgetBytes) {
    const kvHint = weights < hostBudgetBytes ? " or lower contextTokens" : "";
    fail(
      "OUT_OF_MEMORY_BUDGET",
      `${model.name} needs ${formatBytes(hostTotal)} of host memory (${breakdown}), more than the host budget of ${formatBytes(hostBudgetBytes)}; streaming weights from disk is not implemented yet and there is no GPU backend`,
      `Raise hostMemoryBudget${kvHint}, or use a smaller model.`,
    );
  }
  because("memory", formatBytes(hostTotal), `predicted host peak: ${breakdown}`);

  return {
    model: {
      reference: model.reference,
      name: model.name,
      path: model.path,
      architecture: model.architecture,
      family: model.family,
      dtype: model.dtype,
      parameterCount: model.parameterCount ?? 0,
      weightBytes: weights,
    },
    backend,
    device: "cpu",
    modalities: { requested, model: [...model.modalities] },
    specialization,
    layers,
    kvCache: {
      requested: config.kvCacheStrategy,
      profile: config.strategySelectorProfile,
      selected,
      applied,
      fallbackChain,
      windowTokens: null,
      contextTokens,
      bytesPerToken: geometry.kvBytesPerToken,
    },
    prefillChunkTokens,
    offload: {
      cpuLayers: {
        requested: config.offloadCpuLayers,
        policy: config.offloadCpuPolicy,
        resolvedPolicy: placement.resolvedPolicy,
        layerIndices: [...placement.layerIndices],
        effective: false,
      },
      gpuLayers: config.offloadGpuLayers,
    },
    memory: {
      hostBudgetBytes,
      gpuBudgetBytes,
      predictedPeak: {
        host: { weights, kvCache, activations, total: hostTotal },
        gpu: { weights: 0, kvCache: 0, activations: 0, total: 0 },
      },
    },
    reasons,
  };
}
