/**
 * The flags that set configuration values, in groups shared by the commands (runtime, generation,
 * server, global). Each flag names the setting it overrides, so flags form the top layer of
 * {@link Settings} and errors name the flag.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import {
  BACKENDS,
  KV_CACHE_STRATEGIES,
  OFFLOAD_CPU_POLICIES,
  STRATEGY_SELECTOR_PROFILES,
} from "../config/runtime-config.js";
import { LOG_LEVELS, type FlagSetting, type SettingKey } from "./settings.js";

/** A flag and the settings its value sets. */
export interface ConfigFlag {
  option: Option;
  settings(value: unknown): [SettingKey, unknown][];
}

/** Parses an integer option-argument. */
export function integerArg(value: string): number {
  if (!/^[-+]?\d+$/.test(value.trim())) throw new InvalidArgumentError("expected an integer.");
  return Number(value);
}

/** Parses a number option-argument. */
export function numberArg(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("expected a number.");
  return n;
}

/** A byte count (`1048576`) stays a number; a size (`512MB`, `75%`) stays text for the schema to check. */
function sizeArg(value: string): number | string {
  return /^\d+$/.test(value.trim()) ? Number(value) : value;
}

/** Collects a repeatable option into an array. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function flag(option: Option, key: SettingKey): ConfigFlag {
  return { option, settings: (value) => [[key, value]] };
}

/** Help group of the flags about what goes in and comes out. */
export const IO_GROUP = "Input and output options:";
const RUNTIME = "Model and runtime options:";
const GENERATION = "Generation options:";
const SERVER = "Server options:";

/** Which model and how it runs (RuntimeConfig). */
export function runtimeFlags(): ConfigFlag[] {
  const flags: ConfigFlag[] = [
    flag(
      new Option(
        "-m, --model <ref>",
        "model: built-in alias, Hugging Face repo id (org/name[@rev]) or local directory (default: demo)",
      ),
      "runtime.modelReference",
    ),
    flag(new Option("--backend <name>", "compute backend").choices(BACKENDS), "runtime.backend"),
    flag(new Option("--device <device>", "device: auto, cpu, gpu or gpu:N"), "runtime.device"),
    flag(
      new Option("--no-specialization", "do not apply family-specific specialization passes"),
      "runtime.useSpecialization",
    ),
    flag(
      new Option("--multimodal", "plan for image/audio inputs (implied by --image/--audio)"),
      "runtime.multimodal",
    ),
    flag(
      new Option(
        "--strategy-selector-profile <profile>",
        "what the KV strategy selector optimises for",
      ).choices(STRATEGY_SELECTOR_PROFILES),
      "runtime.strategySelectorProfile",
    ),
    flag(
      new Option("--kv-cache-strategy <strategy>", "KV cache strategy").choices(KV_CACHE_STRATEGIES),
      "runtime.kvCacheStrategy",
    ),
    flag(
      new Option("--kv-cache-window-tokens <n>", "token window of the sliding-window KV cache").argParser(
        integerArg,
      ),
      "runtime.kvCacheWindowTokens",
    ),
    flag(new Option("--cache-dir <dir>", "directory of disk-backed KV caches"), "runtime.cacheDir"),
    flag(
      new Option(
        "--offload-cpu-layers <n>",
        "layers kept in host memory (GPU: instead of the GPU; CPU: the rest stream from disk)",
      ).argParser(integerArg),
      "runtime.offloadCpuLayers",
    ),
    flag(
      new Option("--offload-cpu-policy <policy>", "which layers --offload-cpu-layers picks").choices(
        OFFLOAD_CPU_POLICIES,
      ),
      "runtime.offloadCpuPolicy",
    ),
    flag(
      new Option(
        "--offload-gpu-layers <n>",
        "webgpu: the first N layers resident on the GPU (the rest in host memory or streamed from disk)",
      ).argParser(integerArg),
      "runtime.offloadGpuLayers",
    ),
    flag(
      new Option(
        "--gpu-memory-budget <size>",
        'GPU memory for the model on webgpu, the layers that do not fit stream from host memory or disk: bytes, "8GiB" ("75%" only where the GPU\'s memory size is known)',
      ).argParser(sizeArg),
      "runtime.gpuMemoryBudget",
    ),
    flag(
      new Option("--host-memory-budget <size>", 'host memory budget: bytes, "16GB", "80%"').argParser(
        sizeArg,
      ),
      "runtime.hostMemoryBudget",
    ),
    flag(
      new Option(
        "--expert-cache <size>",
        'host memory for MoE experts of streamed layers kept across tokens: bytes, "2GiB", "10%" (default: 0, off)',
      ).argParser(sizeArg),
      "runtime.expertCacheSize",
    ),
    flag(
      new Option("--context-tokens <n>", "context length the plan budgets KV memory for").argParser(
        integerArg,
      ),
      "runtime.contextTokens",
    ),
    flag(
      new Option("--prefill-chunk-tokens <n>", "prompt tokens per prefill chunk").argParser(integerArg),
      "runtime.prefillChunkTokens",
    ),
  ];
  return flags.map((f) => ({ ...f, option: f.option.helpGroup(RUNTIME) }));
}

/** How tokens are generated (GenerationConfig). */
export function generationFlags(): ConfigFlag[] {
  return [
    flag(
      new Option("--max-new-tokens <n>", "upper bound on generated tokens (default: 500)").argParser(
        integerArg,
      ),
      "generation.maxNewTokens",
    ),
    flag(
      new Option("--temperature <t>", "sampling temperature; 0 = greedy (default)").argParser(numberArg),
      "generation.temperature",
    ),
    flag(
      new Option("--top-p <p>", "nucleus sampling: keep the top tokens up to mass p").argParser(numberArg),
      "generation.topP",
    ),
    flag(
      new Option("--top-k <k>", "keep the k most likely tokens (0 = off)").argParser(integerArg),
      "generation.topK",
    ),
    flag(
      new Option("--min-p <p>", "drop tokens below p × the top probability").argParser(numberArg),
      "generation.minP",
    ),
    flag(
      new Option("--repetition-penalty <r>", "penalty on repeated tokens (1 = off)").argParser(numberArg),
      "generation.repetitionPenalty",
    ),
    flag(
      new Option("--seed <n>", "sampler seed (same seed, same output)").argParser(integerArg),
      "generation.seed",
    ),
    flag(
      new Option("--stop <text>", "stop string (repeatable); the reply is cut before it").argParser(collect),
      "generation.stop",
    ),
    flag(
      new Option("--no-stream", "print the reply when it is complete instead of streaming it"),
      "generation.stream",
    ),
  ].map((f) => ({ ...f, option: f.option.helpGroup(GENERATION) }));
}

/** `--logprobs N`: per-token log-probabilities with the N most likely alternatives. */
export function logprobsFlag(): ConfigFlag {
  return {
    option: new Option(
      "--logprobs <n>",
      "per-token log-probabilities with the top N alternatives (0-20); in --json as tokens[]",
    )
      .argParser(integerArg)
      .helpGroup(IO_GROUP),
    settings: (value) => [
      ["generation.logprobs", true],
      ["generation.topLogprobs", value],
    ],
  };
}

/** `--stats`: runtime statistics after the reply. */
export function statsFlag(): ConfigFlag {
  return flag(
    new Option("--stats", "print token counts, timings and runtime statistics to stderr").helpGroup(IO_GROUP),
    "runtime.stats",
  );
}

/** Settings of `ollm serve`. */
export function serverFlags(): ConfigFlag[] {
  return [
    flag(new Option("--host <host>", "interface to bind (default: 127.0.0.1)"), "server.host"),
    flag(
      new Option("--port <port>", "TCP port; 0 = any free port (default: 8000)").argParser(integerArg),
      "server.port",
    ),
    flag(
      new Option("--api-key <key>", "require `Authorization: Bearer <key>` (or set OLLM_SERVER__API_KEY)"),
      "server.apiKey",
    ),
    flag(
      new Option("--allow-insecure-public", "allow a non-loopback --host without an API key"),
      "server.allowInsecurePublic",
    ),
    flag(
      new Option(
        "--allow-model <ref>",
        "serve this model besides the default one (repeatable); no other is served",
      ).argParser(collect),
      "server.allowModels",
    ),
    flag(
      new Option(
        "--listed-models-only",
        "serve only the models /v1/models lists: no download or path a request names",
      ),
      "server.listedModelsOnly",
    ),
    flag(
      new Option("--concurrency <n>", "requests generating at once").argParser(integerArg),
      "server.concurrency",
    ),
    flag(
      new Option("--max-queue <n>", "requests waiting for a slot before 429").argParser(integerArg),
      "server.maxQueue",
    ),
    flag(
      new Option("--body-limit <bytes>", "largest request body in bytes").argParser(integerArg),
      "server.bodyLimitBytes",
    ),
    flag(
      new Option("--request-timeout <ms>", "time limit of one request in milliseconds").argParser(integerArg),
      "server.requestTimeoutMs",
    ),
    flag(
      new Option(
        "--shutdown-timeout <ms>",
        "on SIGINT/SIGTERM, how long running requests may finish",
      ).argParser(integerArg),
      "server.shutdownTimeoutMs",
    ),
    flag(
      new Option("--max-sessions <n>", "chat sessions kept at once").argParser(integerArg),
      "server.maxSessions",
    ),
    flag(
      new Option("--max-stored-responses <n>", "Responses API objects kept for retrieval").argParser(
        integerArg,
      ),
      "server.maxStoredResponses",
    ),
    flag(new Option("--log-level <level>", "request log level").choices(LOG_LEVELS), "server.logLevel"),
  ].map((f) => ({ ...f, option: f.option.helpGroup(SERVER) }));
}

/** Options of the program, accepted before or after any subcommand. */
export function globalFlags(): ConfigFlag[] {
  const none = (): [SettingKey, unknown][] => [];
  return [
    {
      option: new Option("--config <file>", "config file (default: $OLLM_CONFIG_FILE, else ./ollm.toml)"),
      settings: none,
    },
    flag(new Option("--models-dir <dir>", "root of local models (default: ./models)"), "runtime.modelsDir"),
    { option: new Option("--offline", "never touch the network (same as HF_HUB_OFFLINE=1)"), settings: none },
    { option: new Option("-q, --quiet", "no progress bars or status lines"), settings: none },
    flag(new Option("--verbose", "detailed status lines; stack traces on errors"), "runtime.verbose"),
    { option: new Option("--no-color", "no colours (also: NO_COLOR=1)"), settings: none },
  ];
}

/** Adds flags to a command. */
export function addFlags(command: Command, flags: readonly ConfigFlag[]): Command {
  for (const f of flags) command.addOption(f.option);
  return command;
}

/** The settings given on the command line (flags the user typed, not commander defaults). */
export function flagSettings(command: Command, flags: readonly ConfigFlag[]): FlagSetting[] {
  const values = command.optsWithGlobals() as Record<string, unknown>;
  const out: FlagSetting[] = [];
  for (const f of flags) {
    const name = f.option.attributeName();
    if (command.getOptionValueSourceWithGlobals(name) !== "cli") continue;
    for (const [key, value] of f.settings(values[name]))
      out.push({ key, value, flag: f.option.long ?? name });
  }
  return out;
}
