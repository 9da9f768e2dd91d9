import { z } from "zod";
import { type ConfigViolation, parseWithSchema } from "./validation.js";

/** The model used when a surface has no model reference of its own (the CLI default, as in oLLM). */
export const DEFAULT_MODEL_REFERENCE = "llama3-1B-chat";

/** Compute backends a config may name. `auto` picks the best available one at plan time. */
export const BACKENDS = ["auto", "cpu", "webgpu"] as const;
/** A compute backend name. */
export type BackendChoice = (typeof BACKENDS)[number];

/** KV cache strategies a config may name (as in oLLM). `auto` lets the strategy selector choose. */
export const KV_CACHE_STRATEGIES = [
  "auto",
  "resident",
  "chunked",
  "paged",
  "streamed-segmented",
  "log-structured-journal",
  "sliding-window-ring-buffer",
  "quantized-cold-tier",
  "tiered-write-back",
] as const;
/** A KV cache strategy name. */
export type KvCacheStrategy = (typeof KV_CACHE_STRATEGIES)[number];

/** Profiles of the KV strategy selector (used when `kvCacheStrategy` is `auto`). */
export const STRATEGY_SELECTOR_PROFILES = ["balanced", "latency", "capacity", "bounded-window"] as const;
/** A strategy selector profile. */
export type StrategySelectorProfile = (typeof STRATEGY_SELECTOR_PROFILES)[number];

/** Which layers `offloadCpuLayers` moves to host memory: `auto` means `middle-band`. */
export const OFFLOAD_CPU_POLICIES = ["auto", "prefix", "suffix", "middle-band"] as const;
/** A CPU offload placement policy. */
export type OffloadCpuPolicy = (typeof OFFLOAD_CPU_POLICIES)[number];

const DEVICE_PATTERN = /^(auto|cpu|gpu(:\d+)?)$/;
/** `1234` (bytes), `"512MB"`, `"8GiB"`, `"1.5 GB"`, `"75%"` (of the machine's memory of that kind). */
export const MEMORY_BUDGET_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(%|b|[kmgt]i?b?)?\s*$/i;

const nonNegativeInt = z.number().int("must be an integer").min(0, "must be an integer ≥ 0");
const positiveInt = z.number().int("must be an integer").min(1, "must be an integer ≥ 1");

/** A memory budget: a byte count, or a size string with a unit, or a percentage of the machine's memory. */
export const MemoryBudgetSchema = z
  .union([
    z.number().int("must be an integer number of bytes").min(1, "must be ≥ 1 byte"),
    z
      .string()
      .regex(MEMORY_BUDGET_PATTERN, 'must be a byte count or a size such as "512MB", "8GiB" or "75%"'),
  ])
  .describe(
    'Bytes (number), or a size such as "512MB", "8GiB", "1.5GB", or a share of the machine such as "75%"',
  );
/** A memory budget as written in a config. */
export type MemoryBudget = z.infer<typeof MemoryBudgetSchema>;

const EXPERT_CACHE_SIZE =
  'must be a byte count (an integer ≥ 0) or a size such as "512MiB", "2GiB" or "10%" (0 turns it off)';

/** The streamed-expert LRU's size: like a memory budget, but 0 (off) is allowed; "N%" is of host memory. */
export const ExpertCacheSizeSchema = z
  .union(
    [
      z.number().int(EXPERT_CACHE_SIZE).min(0, EXPERT_CACHE_SIZE),
      z
        .string()
        .regex(MEMORY_BUDGET_PATTERN, EXPERT_CACHE_SIZE)
        // A share above the whole memory is caught here, not at plan time.
        .refine((s) => !s.trim().endsWith("%") || Number.parseFloat(s) <= 100, "must be at most 100%"),
    ],
    { error: EXPERT_CACHE_SIZE },
  )
  .describe(
    'Bytes (number), or a size such as "512MiB", "2GiB", or a share of host memory such as "10%"; 0 = off',
  );

/**
 * How a model reference is resolved and executed: the contract shared by the library, the CLI and the
 * server. Unknown options are rejected (a typo never silently does nothing).
 */
export const RuntimeConfigSchema = z
  .strictObject({
    modelReference: z
      .string()
      .trim()
      .min(1, "cannot be empty")
      .describe("Built-in alias, Hugging Face repo id (org/name[@revision]) or local path"),
    modelsDir: z.string().min(1, "cannot be empty").default("models").describe("Root of local models"),
    backend: z
      .enum(BACKENDS)
      .default("auto")
      .describe(
        "Compute backend: cpu, webgpu, or auto (webgpu on a hardware adapter whose memory is detected or given by gpuMemoryBudget, else the cpu; a gpu device picks webgpu)",
      ),
    device: z
      .string()
      .regex(DEVICE_PATTERN, 'must be one of "auto", "cpu", "gpu" or "gpu:N"')
      .default("auto")
      .describe("auto, cpu, gpu or gpu:N"),
    kvCacheStrategy: z
      .enum(KV_CACHE_STRATEGIES)
      .default("auto")
      .describe("KV cache strategy; auto = selector"),
    kvCacheWindowTokens: positiveInt
      .optional()
      .describe("Token window of the sliding-window KV strategy (selects it under auto)"),
    cacheDir: z.string().min(1, "cannot be empty").optional().describe("Directory of disk-backed KV caches"),
    strategySelectorProfile: z
      .enum(STRATEGY_SELECTOR_PROFILES)
      .default("balanced")
      .describe("What the KV strategy selector optimises for when kvCacheStrategy is auto"),
    offloadCpuLayers: nonNegativeInt
      .default(0)
      .describe("Layers kept in host memory: the rest on the GPU, or streamed from disk on the cpu backend"),
    offloadCpuPolicy: z
      .enum(OFFLOAD_CPU_POLICIES)
      .default("auto")
      .describe("Which layers offloadCpuLayers picks"),
    offloadGpuLayers: nonNegativeInt
      .default(0)
      .describe(
        "webgpu: the first N layers resident on the GPU (the rest in host memory or streamed from disk)",
      ),
    gpuMemoryBudget: MemoryBudgetSchema.optional().describe(
      'GPU memory for the model on the webgpu backend: the layers that do not fit stream from host memory or disk. An absolute size such as "8GiB", or a share such as "75%" of the memory that backend auto detects for the adapter (nvidia-smi, sysfs, unified memory on macOS)',
    ),
    hostMemoryBudget: MemoryBudgetSchema.optional(),
    expertCacheSize: ExpertCacheSizeSchema.default(0).describe(
      "Host memory for routed MoE experts of streamed layers kept in an LRU across tokens (0 = off: every routed expert is read from disk)",
    ),
    contextTokens: positiveInt
      .optional()
      .describe("Context length the plan budgets KV memory for (default: 4096, at most the model's maximum)"),
    prefillChunkTokens: positiveInt
      .optional()
      .describe("Prompt tokens per prefill chunk (bounds activations)"),
    multimodal: z
      .boolean()
      .default(false)
      .describe("Plan for image/audio inputs (set automatically by prompts)"),
    useSpecialization: z.boolean().default(true).describe("Apply family-specific specialization passes"),
    stats: z.boolean().default(false).describe("Attach runtime statistics to every response"),
    verbose: z.boolean().default(false).describe("Emit detailed status events"),
  })
  // Cross-field rules; validateRuntimeConfig also applies them when single fields failed.
  .superRefine((value, ctx) => {
    for (const v of runtimeConfigRules(value))
      ctx.addIssue({ code: "custom", path: [v.field], message: v.message });
  });

/** Rules between fields of a runtime config (input or output; absent fields count as their defaults). */
export function runtimeConfigRules(value: unknown): ConfigViolation[] {
  const c = (typeof value === "object" && value !== null ? value : {}) as Partial<Record<string, unknown>>;
  const out: ConfigViolation[] = [];
  const issue = (field: string, message: string) => out.push({ field, message });
  const backend = c.backend ?? "auto";
  const device = c.device ?? "auto";
  const strategy = c.kvCacheStrategy ?? "auto";
  const cpuOnly = device === "cpu" || backend === "cpu";
  if (backend === "cpu" && typeof device === "string" && device.startsWith("gpu"))
    issue("device", `"${device}" cannot be used with backend "cpu"`);
  if (backend === "webgpu" && device === "cpu") issue("device", '"cpu" cannot be used with backend "webgpu"');
  if (num(c.kvCacheWindowTokens) && strategy !== "auto" && strategy !== "sliding-window-ring-buffer")
    issue(
      "kvCacheWindowTokens",
      `only applies to kvCacheStrategy "sliding-window-ring-buffer" (or "auto"), not "${String(strategy)}"`,
    );
  if (num(c.offloadGpuLayers) > 0 && cpuOnly) issue("offloadGpuLayers", "needs a GPU device and backend");
  if (num(c.offloadCpuLayers) > 0 && num(c.offloadGpuLayers) > 0)
    issue("offloadGpuLayers", "cannot be combined with offloadCpuLayers: set one of them");
  return out;
}

function num(value: unknown): number {
  return typeof value === "number" ? value : 0;
}

/** A runtime configuration as a caller writes it: only `modelReference` is required. */
export type RuntimeConfigInput = z.input<typeof RuntimeConfigSchema>;
/** A validated runtime configuration, with every default applied. */
export type RuntimeConfig = z.output<typeof RuntimeConfigSchema>;

/**
 * Validates a runtime configuration and applies defaults. Throws one `INVALID_CONFIG`
 * {@link ConfigError} naming every violation at once, with the allowed values.
 */
export function validateRuntimeConfig(input: unknown): RuntimeConfig {
  return parseWithSchema(RuntimeConfigSchema, input, "runtime config", runtimeConfigRules);
}
