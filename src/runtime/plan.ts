import { z } from "zod";
import { formatBytes, parseMemoryBudget } from "../config/memory.js";
import {
  KV_CACHE_STRATEGIES,
  OFFLOAD_CPU_POLICIES,
  type RuntimeConfig,
  RuntimeConfigSchema,
  STRATEGY_SELECTOR_PROFILES,
} from "../config/runtime-config.js";
import {
  type AppliedPass,
  specializationPasses,
  defaultHostBudget,
  KV_STRATEGIES,
  type KvSelection,
  type KvStrategy,
  planResidency,
  predictKvBytes,
  selectKvStrategy,
  V8_GC_SLACK_BYTES,
} from "../engine/residency/index.js";
import { OllmError } from "../errors.js";
import { MODALITIES, type Modality } from "./catalog.js";
import { autoCpu, type BackendDecision, chooseBackend } from "./backend-choice.js";
import { backendGpuBytes, checkGpuFloor, type GpuPlacement, kvGpuBytes, placeOnGpu } from "./gpu-plan.js";
import { type ENGINE_BACKENDS, ENGINE_MODALITIES } from "./inspect.js";
import type { MachineInfo } from "./machine.js";
import { notMaterializedError } from "./materializer.js";
import { type ResolvedModel, ResolvedModelSchema } from "./resolved-model.js";

/** KV strategies the engine implements: every strategy a config may name (besides auto). */
export const IMPLEMENTED_KV_STRATEGIES = KV_STRATEGIES;
/** Context budgeted for the KV cache when `contextTokens` is unset (capped at the model's maximum). */
export const DEFAULT_CONTEXT_TOKENS = 4096;
/** Prompt tokens per prefill chunk when `prefillChunkTokens` is unset. */
export const DEFAULT_PREFILL_CHUNK_TOKENS = 512;

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
    /** disabled: useSpecialization is off; none-available: no pass applies to this plan; applied: `passes` apply. */
    state: z.enum(["disabled", "none-available", "applied"]),
    /** oLLM's passes this plan applies (engine/residency specializationPasses); their reasons are in `reasons`. */
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
    /** What will run: `selected` (every strategy is implemented). */
    applied: z.enum(KV_STRATEGIES),
    /** Strategies tried in order; `[applied]` now that every strategy is implemented. */
    fallbackChain: z.array(z.string()),
    /** Tokens the sliding-window ring keeps (null for full-history strategies). */
    windowTokens: z.number().int().nullable(),
    /** Rows per KV block (paged, cold tiers) or growth step (chunked). */
    blockTokens: z.number().int(),
    /** Full f32 blocks per layer kept in memory (quantized-cold-tier, tiered-write-back). */
    hotBlocks: z.number().int(),
    /** Root of disk KV caches (null: the engine default, <tmpdir>/ollm-kv-cache). */
    cacheDir: z.string().nullable(),
    /** predictKvBytes at contextTokens: memory and disk. */
    predicted: z.object({ memoryBytes: bytes, diskBytes: bytes }),
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
      /** true when the count placed layers: in host memory, the rest on the GPU or (on the cpu) streamed. */
      effective: z.boolean(),
    }),
    gpuLayers: z.number().int(),
  }),
  memory: z.object({
    hostBudgetBytes: bytes,
    gpuBudgetBytes: bytes.nullable(),
    /** Bytes of streamed layers read from disk per decoded token (0 when every layer is resident). */
    bytesReadPerToken: bytes,
    /** The streamed-expert LRU (expertCacheSize): 0 unless MoE layers stream from disk. */
    expertCacheBytes: bytes,
    /** Predicted peak use (planResidency); activations are an estimate. `weights` includes streaming buffers. */
    predictedPeak: z.object({
      host: z.object({
        weights: bytes,
        /** Double buffers of streamed layers (part of `weights`). */
        streaming: bytes,
        kvCache: bytes,
        activations: bytes,
        /** The streamed-expert LRU (`memory.expertCacheBytes`). */
        expertCache: bytes,
        total: bytes,
      }),
      /** On the webgpu backend; zeros on the cpu. */
      gpu: z.object({
        /** Globals + resident layers + device copies of streamed layers (`streaming`). */
        weights: bytes,
        streaming: bytes,
        /** The KV cache's part in GPU memory (tiered strategies keep cold blocks on the host). */
        kvCache: bytes,
        activations: bytes,
        /** The streamed-expert LRU (device tensors on a GPU). */
        expertCache: bytes,
        /**
         * The WebGPU backend's own memory (an estimate): upload staging ring, a page per activation heap,
         * parameter arena, freed buffers its pool keeps (docs/offload.md).
         */
        backend: bytes,
        total: bytes,
      }),
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
  /**
   * Receives a line for the user when `auto` plans on the CPU although a hardware GPU is there (its memory
   * size is unknown, or the model does not fit it). The same text is in the plan's backend reason.
   */
  onNotice?: (message: string) => void;
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
 *
 * The backend comes from {@link chooseBackend}: under `auto`, WebGPU when `machine.webgpu` has a hardware
 * adapter and there is a GPU memory size to plan with, else the CPU. When the model does not fit the GPU
 * auto chose, it plans on the CPU instead.
 */
export function planRuntime(
  config: RuntimeConfig,
  model: ResolvedModel,
  machine: MachineInfo,
  options: PlanOptions = {},
): RuntimePlan {
  let choice = chooseBackend(config, machine);
  if (
    choice.autoGpu &&
    !model.supportedBackends.includes("webgpu") &&
    model.supportedBackends.includes("cpu")
  )
    choice = autoCpu(config, `${model.name} does not run on the webgpu backend`);
  if (!choice.autoGpu) {
    if (choice.notice) options.onNotice?.(choice.notice);
    return planOn(config, model, machine, options, choice);
  }
  try {
    return planOn(config, model, machine, options, choice);
  } catch (error) {
    if (!(error instanceof OllmError) || error.code !== "OUT_OF_MEMORY_BUDGET") throw error;
    const why = `${model.name} does not fit ${choice.gpuMemory?.gpuName ?? "the GPU"}: ${error.message}`;
    let plan: RuntimePlan;
    try {
      plan = planOn(config, model, machine, options, autoCpu(config, why));
    } catch {
      // Neither fits: the GPU's error (auto's first choice) says what would make it fit.
      throw error;
    }
    options.onNotice?.(`${why}; running on the CPU`);
    return plan;
  }
}

/** {@link planRuntime} on the backend of `choice`. */
function planOn(
  config: RuntimeConfig,
  model: ResolvedModel,
  machine: MachineInfo,
  options: PlanOptions,
  choice: BackendDecision,
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

  // Backend and device (backend-choice.ts): WebGPU when asked for (backend webgpu, or a GPU device); under
  // auto, WebGPU on a hardware adapter with a memory size to plan with, else the CPU.
  const backend: (typeof ENGINE_BACKENDS)[number] = choice.backend;
  if (!model.supportedBackends.includes(backend))
    fail(
      "BACKEND_UNAVAILABLE",
      `${model.name} has no backend that runs it here (supported: ${model.supportedBackends.join(", ") || "none"})`,
    );
  because("backend", backend, choice.reason);
  const device = choice.device;
  because("device", device, choice.deviceReason);
  if (config.offloadGpuLayers > 0 && backend === "cpu")
    fail(
      "BACKEND_UNAVAILABLE",
      `offloadGpuLayers=${config.offloadGpuLayers} needs a GPU, and this plan runs on the cpu backend${choice.cpuWhy ? ` (auto plans on the cpu: ${choice.cpuWhy})` : ""}`,
      "Pass --backend webgpu (or --device gpu), or remove offloadGpuLayers.",
    );
  const onGpu = backend === "webgpu";

  // Context.
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

  // Budgets.
  const hostBudgetBytes =
    config.hostMemoryBudget !== undefined
      ? parseMemoryBudget(config.hostMemoryBudget, machine.hostMemoryBytes)
      : defaultHostBudget(machine.availableHostMemoryBytes);
  because(
    "hostMemoryBudget",
    formatBytes(hostBudgetBytes),
    config.hostMemoryBudget !== undefined
      ? `requested by the config (${config.hostMemoryBudget})`
      : `default: ${formatBytes(machine.availableHostMemoryBytes)} available host memory minus a margin of max(10%, 512 MiB)`,
  );
  // A share ("75%") needs the GPU's memory size, which WebGPU does not report: an embedder's machine.gpus,
  // or what auto's probe detected (gpu-memory.ts).
  const gpuMemoryBytes = choice.gpuMemory?.bytes;
  const gpuShare = typeof config.gpuMemoryBudget === "string" && config.gpuMemoryBudget.trim().endsWith("%");
  if (onGpu && gpuShare && gpuMemoryBytes === undefined)
    fail(
      "INVALID_CONFIG",
      `gpuMemoryBudget "${config.gpuMemoryBudget}" is a share of GPU memory, but the size of ${device}'s memory is not known (WebGPU does not report it${config.backend === "auto" ? ", and it was not detected" : "; it is detected under --backend auto"})`,
      'Give gpuMemoryBudget as an absolute size, e.g. --gpu-memory-budget 8GiB (gpu_memory_budget = "8GiB").',
    );
  const gpuBudgetBytes =
    config.gpuMemoryBudget !== undefined && !(gpuShare && gpuMemoryBytes === undefined)
      ? parseMemoryBudget(config.gpuMemoryBudget, gpuMemoryBytes)
      : onGpu && choice.defaultGpuBudget
        ? choice.defaultGpuBudget.bytes
        : null;
  // GPU memory is planned (layers placed by planResidency) when a budget or an offload count says how.
  const gpuPlanned =
    onGpu &&
    config.useSpecialization &&
    (gpuBudgetBytes !== null || config.offloadGpuLayers > 0 || config.offloadCpuLayers > 0);
  if (config.gpuMemoryBudget !== undefined)
    because(
      "gpuMemoryBudget",
      onGpu && gpuBudgetBytes !== null ? formatBytes(gpuBudgetBytes) : "unused",
      !onGpu
        ? `the plan uses no GPU${choice.cpuWhy ? " (auto plans on the cpu: pass --backend webgpu to plan GPU memory)" : ""}`
        : !config.useSpecialization
          ? `requested by the config (${config.gpuMemoryBudget}); useSpecialization is off, so every layer must fit it`
          : `requested by the config (${config.gpuMemoryBudget}): the globals, the KV cache's GPU part, activations and the resident layers must fit it; the other layers stream from host memory or disk`,
    );
  else if (onGpu && choice.defaultGpuBudget)
    because(
      "gpuMemoryBudget",
      formatBytes(choice.defaultGpuBudget.bytes),
      `${choice.defaultGpuBudget.reason}${config.useSpecialization ? "; the layers that do not fit stream from host memory or disk" : "; useSpecialization is off, so every layer must fit it"}`,
    );

  // Sizes: globals (embeddings, final norm, LM head) stay resident; activations are an estimate per chunk.
  const layerBytes = model.layerBytes;
  const weightBytes = model.weightBytes;
  const globalBytes = model.globalBytes ?? Math.max(0, weightBytes - layerBytes.reduce((s, b) => s + b, 0));
  const maxLayerBytes = Math.max(0, ...layerBytes);
  const hidden = geometry.hiddenSize ?? 0;
  // On the cpu activations are host memory that V8 frees only when it collects (the slack); on a GPU
  // they are device buffers.
  const activationsFor = (chunk: number) =>
    4 *
      chunk *
      (6 * hidden +
        3 * (geometry.intermediateSize ?? 0) +
        (geometry.numAttentionHeads ?? 0) * contextTokens) +
    24 * (geometry.vocabSize ?? 0) +
    (onGpu ? 0 : V8_GC_SLACK_BYTES);
  const textOnly = requested.length === 1;
  const specialize = config.useSpecialization;

  // KV cache strategy and prefill chunk (engine/kv selectKvStrategy).
  const kvInput = (memoryBudgetBytes: number) => ({
    contextTokens,
    kvBytesPerToken: geometry.kvBytesPerToken,
    numKvLayers: geometry.numLayers,
    headDim:
      geometry.hiddenSize && geometry.numAttentionHeads
        ? geometry.hiddenSize / geometry.numAttentionHeads
        : undefined,
    memoryBudgetBytes: Math.max(0, memoryBudgetBytes),
    textOnly,
    prefillChunkTokens:
      config.prefillChunkTokens !== undefined
        ? Math.min(config.prefillChunkTokens, contextTokens)
        : specialize
          ? undefined
          : contextTokens,
  });
  // Block size and prefill chunk for a strategy the config names: the selector's sizing (a window it
  // cannot fail on), with the strategy's own hot set and prediction.
  const sized = (strategy: KvStrategy, windowTokens: number | undefined, why: string): KvSelection => {
    const sizing = selectKvStrategy({
      ...kvInput(Number.MAX_SAFE_INTEGER),
      profile: "bounded-window",
      windowTokens: contextTokens,
    });
    const hotBlocks = strategy === "quantized-cold-tier" ? 1 : strategy === "tiered-write-back" ? 8 : 0;
    return {
      strategy,
      blockTokens: sizing.blockTokens,
      hotBlocks,
      windowTokens,
      prefillChunkTokens: sizing.prefillChunkTokens,
      predicted: predictKvBytes(strategy, {
        tokens: contextTokens,
        kvBytesPerToken: geometry.kvBytesPerToken,
        numKvLayers: geometry.numLayers,
        blockTokens: sizing.blockTokens,
        hotBlocks,
        windowTokens,
        chunkTokens: sizing.prefillChunkTokens,
      }),
      reason: why,
    };
  };
  const chunkGuess = Math.min(config.prefillChunkTokens ?? DEFAULT_PREFILL_CHUNK_TOKENS, contextTokens);
  const actGuess = activationsFor(chunkGuess);
  // KV budget: what is left with every layer resident; when the weights do not fit, what is left once
  // layers stream (globals + two buffers of the largest layer; on a GPU one copy when two do not fit).
  // A GPU budget budgets the KV cache in GPU memory, else the host budget does (as without GPU planning).
  const onGpuBudget = gpuPlanned && gpuBudgetBytes !== null;
  const kvBudget = onGpuBudget ? gpuBudgetBytes : hostBudgetBytes;
  // On the GPU the backend's own memory comes off the room too. What its pool may keep of the KV cache is
  // left to placeOnGpu's checks: the balanced selector keeps a resident cache to half its room anyway.
  const kvRoom = (room: number) => (onGpuBudget ? room - backendGpuBytes(0, actGuess) : room);
  const residentRoom = kvRoom(kvBudget - weightBytes - actGuess);
  const roomWith = (copies: number) => kvRoom(kvBudget - globalBytes - copies * maxLayerBytes - actGuess);
  const streamingRoom = gpuPlanned && roomWith(2) < 0 ? roomWith(1) : roomWith(2);
  const window = config.kvCacheWindowTokens;
  let kv: KvSelection;
  if (config.kvCacheStrategy !== "auto") {
    const strategy = config.kvCacheStrategy;
    let w = strategy === "sliding-window-ring-buffer" ? window : undefined;
    if (strategy === "sliding-window-ring-buffer" && w === undefined)
      w = selectKvStrategy({
        ...kvInput(residentRoom > 0 ? residentRoom : streamingRoom),
        profile: "bounded-window",
      }).windowTokens;
    kv = sized(strategy, w, "requested by the config");
  } else if (!specialize && window === undefined && config.strategySelectorProfile !== "bounded-window") {
    kv = sized(
      "resident",
      undefined,
      "useSpecialization is off: the plain path keeps the whole KV cache resident",
    );
  } else {
    const select = (room: number) =>
      selectKvStrategy({ ...kvInput(room), profile: config.strategySelectorProfile, windowTokens: window });
    if (specialize && residentRoom <= 0 && streamingRoom < 0) budgetCheckWithoutKv();
    try {
      try {
        kv = select(residentRoom);
      } catch (error) {
        // Weights that stream leave more room for the KV cache.
        if (!specialize || !(error instanceof OllmError) || error.code !== "OUT_OF_MEMORY_BUDGET")
          throw error;
        kv = select(streamingRoom);
      }
    } catch (error) {
      // On a planned GPU the KV cache gets what the GPU budget leaves: say so.
      if (
        gpuPlanned &&
        gpuBudgetBytes !== null &&
        error instanceof OllmError &&
        error.code === "OUT_OF_MEMORY_BUDGET"
      )
        fail(
          error.code,
          `${model.name}: ${error.message} (the KV cache's share of the ${formatBytes(gpuBudgetBytes)} GPU budget, after globals, activations, streamed-layer copies and the WebGPU backend)`,
          "Raise gpuMemoryBudget, lower contextTokens or prefillChunkTokens, or name a kvCacheStrategy (resident keeps the whole cache on the GPU).",
        );
      throw withModel(model.name, error);
    }
  }
  function budgetCheckWithoutKv(): void {
    if (gpuPlanned) {
      checkGpuFloor({
        model: model.name,
        gpuBudgetBytes,
        layerBytes,
        globalBytes,
        activationBytes: actGuess,
        contextTokens,
      });
      return;
    }
    // planResidency explains why even streaming every layer cannot fit.
    try {
      planResidency({ layerBytes, globalBytes, hostBudgetBytes, kvBytes: 0, activationBytes: actGuess });
    } catch (error) {
      throw withModel(model.name, error);
    }
  }
  const applied = kv.strategy;
  const windowTokens = applied === "sliding-window-ring-buffer" ? (kv.windowTokens ?? null) : null;
  because(
    "kvCache",
    applied,
    config.kvCacheStrategy === "auto"
      ? `${kv.reason} (blocks of ${kv.blockTokens} tokens${kv.hotBlocks ? `, ${kv.hotBlocks} hot` : ""}; predicted ${formatBytes(kv.predicted.memoryBytes)} in memory${kv.predicted.diskBytes ? `, ${formatBytes(kv.predicted.diskBytes)} on disk` : ""})`
      : kv.reason,
  );
  if (windowTokens !== null)
    because(
      "kvCacheWindowTokens",
      String(windowTokens),
      windowTokens >= contextTokens
        ? "the window covers the whole context: attention sees every token"
        : `attention sees only the last ${windowTokens} tokens`,
    );
  const diskKv =
    applied === "streamed-segmented" ||
    applied === "log-structured-journal" ||
    applied === "tiered-write-back";
  if (config.cacheDir !== undefined)
    because(
      "cacheDir",
      diskKv ? config.cacheDir : "unused",
      diskKv
        ? `the ${applied} KV cache writes its cold blocks there`
        : `the ${applied} KV cache keeps nothing on disk`,
    );
  else if (diskKv)
    because("cacheDir", "<tmpdir>/ollm-kv-cache", `default root of the ${applied} KV cache's files`);

  const prefillChunkTokens = Math.min(kv.prefillChunkTokens, contextTokens);
  because(
    "prefillChunkTokens",
    String(prefillChunkTokens),
    config.prefillChunkTokens
      ? "requested by the config"
      : specialize
        ? "sized by the KV strategy selector: bounds prefill activations to one chunk of the prompt"
        : "useSpecialization is off: the plain path prefills in one pass",
  );

  // Weights: where each layer lives (engine/residency planResidency).
  const kvBytes = Math.ceil(kv.predicted.memoryBytes);
  const activations = activationsFor(prefillChunkTokens);
  const cpuLayers = config.offloadCpuLayers > 0 && specialize ? config.offloadCpuLayers : undefined;
  let residency: (typeof RESIDENCIES)[number][];
  let bytesReadPerToken = 0;
  let streamingBytes = 0;
  // "N%" of the expert cache is a share of the machine's host memory.
  const expertCacheWanted = parseMemoryBudget(config.expertCacheSize, machine.hostMemoryBytes);
  let expertCacheBytes = 0;
  let hostTotal: number;
  const moe = MOE_FAMILIES.has(model.family);
  /** Where the webgpu backend puts each layer, and what that holds on the GPU and on the host. */
  const planGpu = (): GpuPlacement => {
    const kvGpu = kvGpuBytes(kv, contextTokens, geometry.kvBytesPerToken, geometry.numLayers);
    const kvHost = kvBytes - kvGpu;
    const count = (p: GpuPlacement, r: string) => p.residency.filter((x) => x === r).length;
    if (gpuPlanned) {
      const p = placeOnGpu({
        model: model.name,
        layerBytes,
        globalBytes,
        gpuBudgetBytes,
        hostBudgetBytes,
        kvGpuBytes: kvGpu,
        kvHostBytes: kvHost,
        activationBytes: activations,
        contextTokens,
        expertCacheBytes: expertCacheWanted,
        moe,
        offloadGpuLayers: config.offloadGpuLayers > 0 ? config.offloadGpuLayers : undefined,
        offloadCpuLayers: cpuLayers,
        offloadCpuPolicy: config.offloadCpuPolicy,
      });
      const parts = (["gpu", "host", "disk"] as const)
        .filter((r) => count(p, r))
        .map((r) => `${r} × ${count(p, r)}`);
      because("residency", parts.join(", "), p.reasons.join("; "));
      return p;
    }
    // No GPU budget or offload count: every weight resident in GPU memory (the engine's default).
    const backendBytes = backendGpuBytes(kvGpu, activations);
    const gpuTotal = weightBytes + kvGpu + activations + backendBytes;
    if (gpuBudgetBytes !== null && gpuTotal > gpuBudgetBytes)
      fail(
        "OUT_OF_MEMORY_BUDGET",
        `${model.name} needs ${formatBytes(gpuTotal)} of GPU memory (weights ${formatBytes(weightBytes)} + KV cache ${formatBytes(kvGpu)} for ${contextTokens} tokens + activations ~${formatBytes(activations)} + WebGPU backend ~${formatBytes(backendBytes)}), more than the GPU budget of ${formatBytes(gpuBudgetBytes)}; useSpecialization is off, so no layer streams`,
        "Turn specialization on (layers that do not fit then stream), raise gpuMemoryBudget, or use a smaller model.",
      );
    because(
      "residency",
      `gpu × ${layerBytes.length}`,
      !specialize
        ? "useSpecialization is off: every layer resident in GPU memory"
        : "no gpuMemoryBudget or offloadGpuLayers: every layer resident in GPU memory (--gpu-memory-budget SIZE or --offload-gpu-layers N stream the layers that do not fit from host memory or disk)",
    );
    return {
      residency: layerBytes.map(() => "gpu"),
      bytesReadPerToken: 0,
      expertCacheBytes: 0,
      gpu: {
        weights: weightBytes,
        streaming: 0,
        kvCache: kvGpu,
        activations,
        expertCache: 0,
        backend: backendBytes,
        total: gpuTotal,
      },
      host: { weights: 0, streaming: 0, kvCache: kvHost, total: kvHost },
      reasons: [],
    };
  };
  // Set on the webgpu backend: what lives on the GPU and on the host.
  let placed: GpuPlacement | undefined;
  if (onGpu) {
    placed = planGpu();
    residency = placed.residency;
    bytesReadPerToken = placed.bytesReadPerToken;
    expertCacheBytes = placed.expertCacheBytes;
    streamingBytes = placed.host.streaming;
    hostTotal = placed.host.total;
  } else if (specialize) {
    const input = {
      layerBytes,
      globalBytes,
      hostBudgetBytes,
      kvBytes,
      activationBytes: activations,
      offloadCpuLayers: cpuLayers,
      offloadCpuPolicy: config.offloadCpuPolicy,
    };
    let rp: ReturnType<typeof planResidency>;
    try {
      rp = planResidency(input);
    } catch (error) {
      throw withModel(model.name, error);
    }
    // The expert LRU only exists for MoE layers that stream: plan again with its bytes reserved (it is
    // host memory held alongside the activations), which may stream more layers.
    if (expertCacheWanted > 0 && MOE_FAMILIES.has(model.family) && rp.residency.includes("disk")) {
      try {
        rp = planResidency({ ...input, activationBytes: activations + expertCacheWanted });
      } catch (error) {
        if (!(error instanceof OllmError) || error.code !== "OUT_OF_MEMORY_BUDGET") throw error;
        fail(
          "OUT_OF_MEMORY_BUDGET",
          `${model.name}: an expert cache of ${formatBytes(expertCacheWanted)} (expertCacheSize ${String(config.expertCacheSize)}) does not fit the ${formatBytes(hostBudgetBytes)} host budget: ${error.message}`,
          "Lower expertCacheSize (--expert-cache), or raise hostMemoryBudget.",
        );
      }
      expertCacheBytes = expertCacheWanted;
    }
    // On the cpu backend the engine's "device" is host memory.
    residency = rp.residency.map((r) => (r === "disk" ? "disk" : "host"));
    bytesReadPerToken = rp.bytesReadPerToken;
    streamingBytes = rp.streamingBytes;
    hostTotal = rp.predictedPeak.hostBytes;
    const streamed = residency.filter((r) => r === "disk").length;
    because(
      "residency",
      streamed ? `host × ${layerBytes.length - streamed}, disk × ${streamed}` : `host × ${layerBytes.length}`,
      rp.reasons.join("; "),
    );
  } else {
    residency = layerBytes.map(() => "host");
    hostTotal = weightBytes + kvBytes + activations;
    because(
      "residency",
      `host × ${layerBytes.length}`,
      "useSpecialization is off: every layer stays resident",
    );
  }
  const offloadIndices = cpuLayers ? residency.flatMap((r, i) => (r === "host" ? [i] : [])) : [];
  if (config.offloadCpuLayers > 0)
    because(
      "offloadCpuLayers",
      cpuLayers ? `layers ${offloadIndices.join(", ")}` : "ignored",
      cpuLayers
        ? `these ${offloadIndices.length} layers stay in host memory (${config.offloadCpuPolicy}), the other ${layerBytes.length - offloadIndices.length} ${onGpu ? "are on the GPU" : "stream from disk"}`
        : "useSpecialization is off: every layer stays resident",
    );
  if (config.offloadGpuLayers > 0)
    because(
      "offloadGpuLayers",
      !gpuPlanned
        ? "ignored"
        : config.offloadGpuLayers === 1
          ? "layer 0"
          : `layers 0–${Math.min(config.offloadGpuLayers, layerBytes.length) - 1}`,
      gpuPlanned
        ? `the first ${Math.min(config.offloadGpuLayers, layerBytes.length)} layers are resident on the GPU; the others stay in host memory or stream from disk`
        : "useSpecialization is off: every layer is resident on the GPU",
    );
  const layers = layerBytes.map((b, index) => ({ index, residency: residency[index], bytes: b }));
  if (expertCacheWanted > 0)
    because(
      "expertCache",
      expertCacheBytes ? formatBytes(expertCacheBytes) : "unused",
      expertCacheBytes
        ? `routed experts of the ${residency.filter((r) => r === "disk").length} streamed layers stay in an LRU of ${formatBytes(expertCacheBytes)} of ${onGpu ? "GPU" : "host"} memory across tokens (expertCacheSize ${String(config.expertCacheSize)})`
        : !MOE_FAMILIES.has(model.family)
          ? `${model.name} has no mixture-of-experts layers`
          : "no layer streams from disk: every expert is resident",
    );

  // Specialization passes (engine/residency specializationPasses).
  const passes: AppliedPass[] = specializationPasses({
    enabled: specialize,
    residency: residency.map((r) => (r === "gpu" ? "device" : r)),
    gpu: onGpu,
    kvStrategy: applied,
    moe: MOE_FAMILIES.has(model.family),
    multimodalCheckpoint: model.modalities.some((m) => m !== "text"),
    prefillChunkTokens,
    contextTokens,
  });
  const specialization = {
    enabled: specialize,
    state: !specialize
      ? ("disabled" as const)
      : passes.length
        ? ("applied" as const)
        : ("none-available" as const),
    passes: passes.map((p) => p.pass),
  };
  because(
    "specialization",
    specialization.state,
    !specialize
      ? "useSpecialization is off: plain path (resident weights and KV, one prefill pass)"
      : passes.length
        ? `${passes.length} of oLLM's passes apply`
        : "no pass applies to this plan",
  );
  for (const p of passes) because(`specialization.${p.pass}`, "applied", p.reason);

  // Memory. On a GPU the host holds host layers, disk read buffers and cold KV blocks; the GPU the rest.
  const host = placed
    ? {
        weights: placed.host.weights,
        streaming: placed.host.streaming,
        kvCache: placed.host.kvCache,
        activations: 0,
        expertCache: 0,
        total: placed.host.total,
      }
    : {
        weights: hostTotal - kvBytes - activations - expertCacheBytes,
        streaming: streamingBytes,
        kvCache: kvBytes,
        activations,
        expertCache: expertCacheBytes,
        total: hostTotal,
      };
  const breakdown = placed
    ? [
        host.weights > host.streaming
          ? `layers kept in host memory ${formatBytes(host.weights - host.streaming)}`
          : "",
        host.streaming ? `two disk read buffers ${formatBytes(host.streaming)}` : "",
        host.kvCache ? `KV cache ${formatBytes(host.kvCache)} (cold blocks off the GPU)` : "",
      ]
        .filter(Boolean)
        .join(" + ") || "nothing planned: weights, KV cache and activations are on the GPU"
    : `weights ${formatBytes(host.weights)}${streamingBytes ? ` (incl. ${formatBytes(streamingBytes)} of streaming buffers)` : ""}${expertCacheBytes ? ` + expert cache ${formatBytes(expertCacheBytes)}` : ""} + KV cache ${formatBytes(kvBytes)} for ${contextTokens} tokens + activations ~${formatBytes(activations)}`;
  if (hostTotal > hostBudgetBytes) {
    const kvHint = weightBytes < hostBudgetBytes ? " or lower contextTokens" : "";
    fail(
      "OUT_OF_MEMORY_BUDGET",
      `${model.name} needs ${formatBytes(hostTotal)} of host memory (${breakdown}), more than the host budget of ${formatBytes(hostBudgetBytes)}${specialize ? "" : "; useSpecialization is off, so no layer streams from disk"}`,
      `Raise hostMemoryBudget${kvHint}${specialize ? "" : ", turn specialization on"}, or use a smaller model.`,
    );
  }
  because(
    "memory",
    formatBytes(hostTotal),
    `predicted host peak: ${breakdown}${bytesReadPerToken ? `; ${formatBytes(bytesReadPerToken)} read from disk per token` : ""}`,
  );
  const gpu = placed?.gpu ?? {
    weights: 0,
    streaming: 0,
    kvCache: 0,
    activations: 0,
    expertCache: 0,
    backend: 0,
    total: 0,
  };
  if (placed) {
    const streamed = residency.filter((r) => r !== "gpu").length;
    because(
      "gpuMemory",
      formatBytes(gpu.total),
      `predicted GPU peak: globals and ${layerBytes.length - streamed} resident layers ${formatBytes(gpu.weights - gpu.streaming)}${gpu.streaming ? ` + copies of streamed layers ${formatBytes(gpu.streaming)}` : ""} + KV cache ${formatBytes(gpu.kvCache)} for ${contextTokens} tokens + activations ~${formatBytes(gpu.activations)} (estimate)${gpu.expertCache ? ` + expert cache ${formatBytes(gpu.expertCache)}` : ""} + WebGPU backend ~${formatBytes(gpu.backend)} (staging ring, activation heap pages, buffer pool)${
        gpuBudgetBytes !== null
          ? `, within the ${formatBytes(gpuBudgetBytes)} budget`
          : "; not checked: no gpuMemoryBudget (WebGPU does not report the GPU's memory)"
      }`,
    );
  }

  return {
    model: {
      reference: model.reference,
      name: model.name,
      path: model.path,
      architecture: model.architecture,
      family: model.family,
      dtype: model.dtype,
      parameterCount: model.parameterCount ?? 0,
      weightBytes,
    },
    backend,
    device,
    modalities: { requested, model: [...model.modalities] },
    specialization,
    layers,
    kvCache: {
      requested: config.kvCacheStrategy,
      profile: config.strategySelectorProfile,
      selected: applied,
      applied,
      fallbackChain: [applied],
      windowTokens,
      contextTokens,
      bytesPerToken: geometry.kvBytesPerToken,
      blockTokens: kv.blockTokens,
      hotBlocks: kv.hotBlocks,
      cacheDir: config.cacheDir ?? null,
      predicted: {
        memoryBytes: Math.ceil(kv.predicted.memoryBytes),
        diskBytes: Math.ceil(kv.predicted.diskBytes),
      },
    },
    prefillChunkTokens,
    offload: {
      cpuLayers: {
        requested: config.offloadCpuLayers,
        policy: config.offloadCpuPolicy,
        resolvedPolicy: config.offloadCpuPolicy === "auto" ? "middle-band" : config.offloadCpuPolicy,
        layerIndices: offloadIndices,
        effective: cpuLayers !== undefined,
      },
      gpuLayers: config.offloadGpuLayers,
    },
    memory: {
      hostBudgetBytes,
      gpuBudgetBytes,
      bytesReadPerToken,
      expertCacheBytes,
      predictedPeak: {
        host,
        gpu,
      },
    },
    reasons,
  };
}

/** Families whose MoE layers route tokens to experts. */
const MOE_FAMILIES = new Set(["gpt-oss", "qwen3-next", "qwen3-moe", "mixtral"]);

/** An engine OUT_OF_MEMORY_BUDGET error, prefixed with the model's name. */
function withModel(name: string, error: unknown): unknown {
  if (error instanceof OllmError && error.code === "OUT_OF_MEMORY_BUDGET")
    return new OllmError(error.code, `${name}: ${error.message}`, { hint: error.hint });
  return error;
}
