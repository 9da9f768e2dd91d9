import { resolve } from "node:path";
import { type GenerationConfigInput, validateGenerationConfig } from "./config/generation-config.js";
import { type RuntimeConfigInput, validateRuntimeConfig } from "./config/runtime-config.js";
import { OllmError } from "./errors.js";
import {
  audioPart,
  type ContentPart,
  DEFAULT_SYSTEM_PROMPT,
  imagePart,
  type Message,
  systemMessage,
  textPart,
  userMessage,
  validateMessages,
  validateParts,
} from "./messages.js";
import type { Catalog } from "./runtime/catalog.js";
import type { RuntimeEventListener } from "./runtime/events.js";
import { type LoadedRuntime, RuntimeLoader } from "./runtime/loader.js";
import type { MachineProbe, WebGpuProbe } from "./runtime/machine.js";
import type { Materializer } from "./runtime/materializer.js";
import type { PlanDescription, RuntimePlan } from "./runtime/plan.js";
import type { ResolvedModel } from "./runtime/resolved-model.js";
import type { TokenizerLoader } from "./runtime/tokenizer.js";
import {
  asOllmError,
  ChatSession,
  type PromptResponse,
  PromptStream,
  runTurn,
  type SessionOptions,
  type StreamSink,
} from "./session.js";

/** How a {@link RuntimeClient} finds, downloads, measures and reports. Every part is optional. */
export interface RuntimeClientOptions {
  /** Downloads models that are not on disk. Default: none — such models fail with MODEL_NOT_FOUND and a hint. */
  materializer?: Materializer;
  /** Built-in aliases. Default: the package's catalog. */
  catalog?: Catalog;
  /** Measures the machine for planning. Default: this machine. */
  machine?: MachineProbe;
  /**
   * Finds the WebGPU adapters and their memory for `backend: "auto"`. Default: this machine's (a quiet Dawn
   * probe in a child process plus nvidia-smi / sysfs / unified memory, once per process). Not called for
   * backend cpu or webgpu.
   */
  gpuProbe?: () => Promise<WebGpuProbe>;
  /** Loads tokenizers. Default: src/text. */
  tokenizerLoader?: TokenizerLoader;
  /** Receives every runtime event (resolve, download, load, prefill…) of every call. */
  onEvent?: RuntimeEventListener;
}

/** Options of {@link RuntimeClient.promptParts} and {@link RuntimeClient.stream}. */
export interface PromptPartsOptions {
  /** Which model and how to run it. */
  runtimeConfig: RuntimeConfigInput;
  /** How to generate. Default: greedy, up to 500 new tokens. */
  generationConfig?: GenerationConfigInput;
  /** System instruction (default {@link DEFAULT_SYSTEM_PROMPT}; "" = no system message). */
  systemPrompt?: string;
  /** Prior messages, placed between the system prompt and the new user message. */
  history?: Message[];
  /** Callbacks following the prompt. */
  sink?: StreamSink;
  /** Cancels generation: the response finishes with "cancelled". */
  signal?: AbortSignal;
  /** Runtime events of this call. */
  onEvent?: RuntimeEventListener;
  /** Tool (function) definitions passed to the chat template as `tools` (OpenAI/transformers JSON shape). */
  tools?: unknown[];
  /**
   * Text the assistant's reply starts with: appended after the chat template's generation prompt, so the
   * model continues from it (e.g. the opening of a tool call). Its tokens count as prompt tokens; the
   * response's `text`, `message` and deltas hold only what the model generated after it.
   */
  assistantPrefix?: string;
}

/** Options of {@link RuntimeClient.chat}: like {@link PromptPartsOptions}, the messages carry the system prompt and history. */
export type ChatOptions = Omit<PromptPartsOptions, "systemPrompt" | "history">;

/** Options of {@link RuntimeClient.prompt}: {@link PromptPartsOptions} plus image and audio inputs. */
export interface PromptOptions extends PromptPartsOptions {
  /** Image inputs (paths, URLs or data: URIs), after the text. */
  images?: string[];
  /** Audio inputs (paths, URLs or data: URIs), after the text and images. */
  audio?: string[];
}

/**
 * The library's entry point, shared by the CLI and the server: resolve model references, plan and
 * describe runtimes, load them (cached per config), run prompts (whole or streamed) and chat sessions.
 *
 * ```ts
 * const client = new RuntimeClient();
 * const reply = await client.prompt("Hello!", { runtimeConfig: { modelReference: "./models/my-model" } });
 * console.log(reply.text);
 * await client.close();
 * ```
 */
export class RuntimeClient {
  readonly #loader: RuntimeLoader;

  constructor(options: RuntimeClientOptions = {}) {
    this.#loader = new RuntimeLoader(options);
  }

  /**
   * Resolves a model reference without loading weights: what it is (architecture, family, dtype,
   * parameters, sizes, modalities, backends) and where it is. A hub model that is not on disk resolves
   * with `materialized: false`; a path or name that points nowhere throws MODEL_NOT_FOUND.
   */
  resolve(modelReference: string, options: { modelsDir?: string } = {}): Promise<ResolvedModel> {
    return guard(() => this.#loader.resolve(modelReference, resolve(options.modelsDir ?? "models")));
  }

  /**
   * Every materialized model (config.json + safetensors) under a models directory, including Hugging Face
   * cache layouts (`models--org--name/snapshots/<rev>`).
   */
  discoverLocalModels(modelsDir = "models"): Promise<ResolvedModel[]> {
    return guard(() => this.#loader.discover(resolve(modelsDir)));
  }

  /**
   * Plans a runtime without loading it: backend, device, per-layer residency, KV strategy, predicted peak
   * memory, and the reason for each choice. An impossible config throws here (see {@link planRuntime}).
   */
  async plan(runtimeConfig: RuntimeConfigInput): Promise<RuntimePlan> {
    return (await guard(() => this.#loader.plan(runtimeConfig))).plan;
  }

  /**
   * The plan as JSON (normalized config, resolved model, plan), for `ollm plan --json` and the server.
   * Its JSON Schema is {@link planDescriptionJsonSchema}.
   */
  describePlan(runtimeConfig: RuntimeConfigInput): Promise<PlanDescription> {
    return guard(() => this.#loader.describePlan(runtimeConfig));
  }

  /**
   * Loads the runtime of a config, or returns the one already loaded for the same config. A model that
   * is not on disk goes through the materializer (default: MODEL_NOT_FOUND with the download command).
   */
  load(
    runtimeConfig: RuntimeConfigInput,
    options: { onEvent?: RuntimeEventListener; signal?: AbortSignal } = {},
  ): Promise<LoadedRuntime> {
    return guard(() => this.#loader.load(runtimeConfig, options));
  }

  /** Unloads the runtime of a config (after its running turns finish). Resolves true if one was loaded. */
  unload(runtimeConfig: RuntimeConfigInput): Promise<boolean> {
    return guard(() => this.#loader.unload(runtimeConfig));
  }

  /** The runtimes loaded now. */
  loadedRuntimes(): Promise<LoadedRuntime[]> {
    return this.#loader.loaded();
  }

  /** Unloads every runtime. The client stays usable (a later prompt loads again). */
  close(): Promise<void> {
    return this.#loader.close();
  }

  /** One prompt of text, plus optional images and audio; returns the whole reply. */
  async prompt(prompt: string, options: PromptOptions): Promise<PromptResponse> {
    return this.stream(promptToParts(prompt, options), options).collect();
  }

  /**
   * One prompt of content parts; returns the whole reply. Empty parts throw INVALID_ARGUMENT ("A prompt
   * requires at least one content part"); image/audio parts switch `multimodal` on and fail with
   * UNSUPPORTED_MODALITY when the model (or the engine) cannot take them.
   */
  async promptParts(parts: ContentPart[], options: PromptPartsOptions): Promise<PromptResponse> {
    return this.stream(parts, options).collect();
  }

  /**
   * One prompt, streamed: iterate the result for text deltas, then await its `response`. Breaking out of
   * the loop cancels generation. Validation errors throw at once; runtime errors reject during iteration.
   */
  stream(input: string | ContentPart[], options: PromptPartsOptions): PromptStream {
    const parts = validateParts(typeof input === "string" ? [textPart(input)] : input);
    const runtimeConfig = validateRuntimeConfig(options.runtimeConfig);
    const generationConfig = validateGenerationConfig(options.generationConfig ?? {});
    const systemPrompt = options.systemPrompt ?? DEFAULT_SYSTEM_PROMPT;
    const history = options.history ? validateMessages(options.history) : [];
    const messages = [...(systemPrompt ? [systemMessage(systemPrompt)] : []), ...history, userMessage(parts)];
    return new PromptStream((stop) =>
      runTurn(
        {
          loader: this.#loader,
          runtimeConfig,
          generationConfig,
          messages,
          sink: options.sink,
          signal: options.signal,
          onEvent: options.onEvent,
          tools: options.tools,
          assistantPrefix: options.assistantPrefix,
        },
        stop,
      ),
    );
  }

  /**
   * A whole conversation as it is — system, user, assistant (with tool calls) and tool messages, in order —
   * streamed: the reply continues it. No system prompt is added. No messages → INVALID_ARGUMENT.
   */
  chat(messages: Message[], options: ChatOptions): PromptStream {
    const list = validateMessages(messages);
    if (list.length === 0) throw new OllmError("INVALID_ARGUMENT", "A chat needs at least one message");
    const runtimeConfig = validateRuntimeConfig(options.runtimeConfig);
    const generationConfig = validateGenerationConfig(options.generationConfig ?? {});
    return new PromptStream((stop) =>
      runTurn(
        {
          loader: this.#loader,
          runtimeConfig,
          generationConfig,
          messages: list,
          sink: options.sink,
          signal: options.signal,
          onEvent: options.onEvent,
          tools: options.tools,
          assistantPrefix: options.assistantPrefix,
        },
        stop,
      ),
    );
  }

  /** A chat session over this client's runtimes; configs are validated now (INVALID_CONFIG). */
  session(options: SessionOptions): ChatSession {
    return new ChatSession(this.#loader, options);
  }

  /** A chat session restored from a saved transcript (which becomes its autosave path). */
  async loadSession(path: string, options: SessionOptions): Promise<ChatSession> {
    const session = this.session(options);
    await session.load(path);
    return session;
  }
}

/** Runs a call, turning any failure into an OllmError (unexpected ones become INTERNAL). */
async function guard<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw asOllmError(error);
  }
}

function promptToParts(prompt: string, options: PromptOptions): ContentPart[] {
  return [
    textPart(prompt),
    ...(options.images ?? []).map(imagePart),
    ...(options.audio ?? []).map(audioPart),
  ];
}
