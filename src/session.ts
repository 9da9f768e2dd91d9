import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import {
  type GenerationConfig,
  type GenerationConfigInput,
  validateGenerationConfig,
} from "./config/generation-config.js";
import {
  type RuntimeConfig,
  type RuntimeConfigInput,
  validateRuntimeConfig,
} from "./config/runtime-config.js";
import type { Backend, DeviceStats } from "./engine/backend.js";
import { isOllmError, OllmError } from "./errors.js";
import {
  type ContentPart,
  DEFAULT_SYSTEM_PROMPT,
  type Message,
  messageText,
  nonTextKinds,
  systemMessage,
  TRANSCRIPT_VERSION,
  type Transcript,
  TranscriptSchema,
  textPart,
  userMessage,
  validateMessages,
  validateParts,
} from "./messages.js";
import { writeFileAtomic } from "./runtime/atomic-file.js";
import type { Modality } from "./runtime/catalog.js";
import type { RuntimeEvent, RuntimeEventListener } from "./runtime/events.js";
import {
  type ExecutionDelta,
  executeChat,
  type GeneratedToken,
  type KvReplyStats,
  KvSession,
  type StreamingReplyStats,
  type Timings,
  type Usage,
} from "./runtime/executor.js";
import type { RuntimeLoader } from "./runtime/loader.js";
import type { TemplateMessage } from "./runtime/tokenizer.js";

/**
 * Any failure as an OllmError: OllmErrors pass through; anything else (a bug, an unexpected system error)
 * becomes INTERNAL with the original as its cause. @internal
 */
export function asOllmError(error: unknown): OllmError {
  if (isOllmError(error)) return error;
  return new OllmError(
    "INTERNAL",
    `Unexpected error: ${error instanceof Error ? error.message : String(error)}`,
    {
      cause: error,
      hint: "This is a bug in ollm; please report it with the steps that led to it.",
    },
  );
}

/** Callbacks that follow one prompt as it runs (all optional). */
export interface StreamSink {
  /** Text as it is generated (never empty); `token` is the token that completed it. */
  onText?(text: string, token?: GeneratedToken): void;
  /** A line for people: loading, prefill, a notice (e.g. auto's GPU fell back to the CPU)… */
  onStatus?(message: string): void;
  /** Every runtime event (load, prefill, first token…). */
  onEvent?(event: RuntimeEvent): void;
  /** The final response. */
  onComplete?(response: PromptResponse): void;
}

/** One step of a streamed reply: text (may be "") and, for generated tokens, the token. */
export type PromptDelta = ExecutionDelta;

/** Runtime statistics attached to a response when the runtime config has `stats: true`. */
export interface ResponseStats {
  model: string;
  backend: string;
  device: string;
  kvCacheStrategy: string;
  /** How long loading the runtime took (when it was loaded, possibly by an earlier prompt). */
  loadMs: number;
  /** Resident set size of the process after the reply. */
  rssBytes: number;
  /** The plan's predicted peak host memory. */
  predictedPeakHostBytes: number;
  /** The plan's predicted peak GPU memory, when it runs on the GPU (WebGPU backend). */
  predictedPeakGpuBytes?: number;
  /** On a device backend (WebGPU): what this reply took there (GPU time from timestamp queries). */
  gpu?: DeviceStats;
  /** When layers stream from disk: what streaming did during this reply. */
  streaming?: StreamingReplyStats;
  /** With a disk-backed KV strategy: what the KV cache read and wrote during this reply, and holds after it. */
  kv?: KvReplyStats;
}

/** The result of a prompt. */
export interface PromptResponse {
  /** The reply. */
  text: string;
  /** The reply as an assistant message (what a session appends to its history). */
  message: Message;
  /** `stop`: a stop token or string; `length`: maxNewTokens (or the context) ran out; `cancelled`: aborted. */
  finishReason: "stop" | "length" | "cancelled";
  usage: Usage;
  timings: Timings;
  /** Per-token log-probabilities, when the generation config asked for `logprobs`. */
  logprobs: GeneratedToken[] | null;
  /** The model's display name. */
  model: string;
  /** Present when the runtime config has `stats: true`. */
  stats?: ResponseStats;
}

/**
 * A reply being generated: iterate it for deltas (`for await (const d of stream)`), and await
 * `response` for the final {@link PromptResponse}, or call {@link collect} to run it to the end without
 * iterating. Leaving the loop early (break) cancels generation; `response` then has finish reason
 * "cancelled". A stream runs once.
 */
export class PromptStream implements AsyncIterable<PromptDelta> {
  /** Resolves with the final response once the stream has run to its end (rejects on error). */
  readonly response: Promise<PromptResponse>;
  #resolve!: (response: PromptResponse) => void;
  #reject!: (error: unknown) => void;
  #started = false;
  readonly #controller = new AbortController();
  readonly #start: (signal: AbortSignal) => AsyncGenerator<PromptDelta, PromptResponse>;

  /** @internal */
  constructor(start: (signal: AbortSignal) => AsyncGenerator<PromptDelta, PromptResponse>) {
    this.#start = start;
    this.response = new Promise<PromptResponse>((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
    // Nobody has to await `response`: its rejection also reaches the iterating consumer.
    this.response.catch(() => {});
  }

  /** Stops generation (as if the consumer's signal fired); the response finishes as "cancelled". */
  cancel(): void {
    this.#controller.abort();
  }

  [Symbol.asyncIterator](): AsyncIterator<PromptDelta> {
    return this.#run();
  }

  /** Runs the stream to its end without iterating, and returns the response. */
  async collect(): Promise<PromptResponse> {
    if (!this.#started) for await (const _ of this.#run());
    return this.response;
  }

  async *#run(): AsyncGenerator<PromptDelta> {
    if (this.#started) throw new OllmError("INVALID_ARGUMENT", "A prompt stream can only be consumed once");
    this.#started = true;
    let finished = false;
    let generator: AsyncGenerator<PromptDelta, PromptResponse> | undefined;
    try {
      generator = this.#start(this.#controller.signal);
      for (;;) {
        const step = await generator.next();
        if (step.done) {
          finished = true;
          this.#resolve(step.value);
          return;
        }
        yield step.value;
      }
    } catch (cause) {
      finished = true;
      const error = asOllmError(cause);
      this.#reject(error);
      throw error;
    } finally {
      if (!finished && generator) {
        // The consumer left the loop: cancel, and let the turn finish so the response is complete.
        this.#controller.abort();
        try {
          let step = await generator.next();
          while (!step.done) step = await generator.next();
          this.#resolve(step.value);
        } catch (error) {
          this.#reject(asOllmError(error));
        }
      }
    }
  }
}

/** What one turn needs. @internal */
export interface TurnRequest {
  loader: RuntimeLoader;
  runtimeConfig: RuntimeConfig;
  generationConfig: GenerationConfig;
  /** System, history and the new user message, in order. */
  messages: Message[];
  kv?: KvSession;
  sink?: StreamSink;
  signal?: AbortSignal;
  onEvent?: RuntimeEventListener;
  /** Tool definitions for the chat template. */
  tools?: unknown[];
  /** Text the reply starts with (a prompt suffix the model continues; not part of the reply's text). */
  assistantPrefix?: string;
}

/** A message as the chat template takes it: text, plus tool calls (arguments parsed when JSON) or the call answered. */
function templateMessage(m: Message): TemplateMessage {
  const out: TemplateMessage = { role: m.role, content: messageText(m) };
  if (m.toolCalls?.length)
    out.tool_calls = m.toolCalls.map((c) => ({
      id: c.id,
      type: "function",
      function: { name: c.name, arguments: parseToolArguments(c.arguments) },
    }));
  if (m.toolCallId !== undefined) out.tool_call_id = m.toolCallId;
  return out;
}

/** Templates render `arguments | tojson` and expect an object (as transformers passes it); other text stays as is. */
function parseToolArguments(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : text;
  } catch {
    return text;
  }
}

/**
 * Runs one turn: derives the modalities from the content (non-text parts switch `multimodal` on), loads
 * (or reuses) the runtime, executes the chat and builds the response. @internal
 */
export async function* runTurn(
  request: TurnRequest,
  stop: AbortSignal,
): AsyncGenerator<PromptDelta, PromptResponse> {
  const { sink } = request;
  const signal = request.signal ? AbortSignal.any([request.signal, stop]) : stop;
  const local = (event: RuntimeEvent) => {
    request.onEvent?.(event);
    sink?.onEvent?.(event);
    if (event.type === "status" || event.type === "notice") sink?.onStatus?.(event.message);
  };
  const kinds = nonTextKinds(request.messages);
  const modalities: Modality[] = ["text", ...kinds];
  const config: RuntimeConfig =
    kinds.length > 0 && !request.runtimeConfig.multimodal
      ? { ...request.runtimeConfig, multimodal: true }
      : request.runtimeConfig;
  const runtime = await request.loader.load(config, { modalities, onEvent: local, signal });
  const templateMessages = request.messages.map((m) => {
    if (m.content.some((p) => p.type !== "text"))
      throw new OllmError(
        "UNSUPPORTED_MODALITY",
        "image and audio input is not implemented by the engine yet",
      );
    return templateMessage(m);
  });
  const backend = runtime.engine.backend;
  backend.setTiming?.(request.runtimeConfig.stats);
  const deviceBefore = request.runtimeConfig.stats ? backend.deviceStats?.() : undefined;
  const run = executeChat(runtime, templateMessages, {
    tools: request.tools,
    assistantPrefix: request.assistantPrefix,
    generation: request.generationConfig,
    signal,
    onEvent: request.loader.emitter(local),
    kv: request.kv,
    measureIo: request.runtimeConfig.stats,
  });
  let step = await run.next();
  while (!step.done) {
    const delta = step.value;
    if (delta.text) sink?.onText?.(delta.text, delta.token);
    yield delta;
    step = await run.next();
  }
  const result = step.value;
  const response: PromptResponse = {
    text: result.text,
    message: { role: "assistant", content: [textPart(result.text)] },
    finishReason: result.finishReason,
    usage: result.usage,
    timings: result.timings,
    logprobs: result.logprobs,
    model: runtime.model.name,
  };
  if (request.runtimeConfig.stats)
    response.stats = {
      model: runtime.model.name,
      backend: runtime.plan.backend,
      device: runtime.plan.device,
      kvCacheStrategy: runtime.plan.kvCache.applied,
      loadMs: runtime.loadMs,
      rssBytes: process.memoryUsage().rss,
      predictedPeakHostBytes: runtime.plan.memory.predictedPeak.host.total,
      predictedPeakGpuBytes:
        runtime.plan.backend === "webgpu" ? runtime.plan.memory.predictedPeak.gpu.total : undefined,
      gpu: deviceBefore && (await deviceDelta(backend, deviceBefore)),
      ...result.io,
    };
  sink?.onComplete?.(response);
  return response;
}

/** What the device did since `before`, once its work and the timestamps of that work are back. */
async function deviceDelta(backend: Backend, before: DeviceStats): Promise<DeviceStats | undefined> {
  await backend.sync();
  // The timestamp readbacks resolve on the event loop after the work completes.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const after = backend.deviceStats?.();
  if (!after) return undefined;
  return {
    adapter: after.adapter,
    dispatches: after.dispatches - before.dispatches,
    submits: after.submits - before.submits,
    gpuMs: after.gpuMs === undefined ? undefined : after.gpuMs - (before.gpuMs ?? 0),
  };
}

/** Options of {@link ChatSession} (and `client.session`). */
export interface SessionOptions {
  runtimeConfig: RuntimeConfigInput;
  generationConfig?: GenerationConfigInput;
  /** A label for people and transcripts (default "default"). */
  name?: string;
  /** Session-wide system instruction (default {@link DEFAULT_SYSTEM_PROMPT}; "" = none). */
  systemPrompt?: string;
  /** Initial transcript. */
  messages?: Message[];
  /** Write the transcript here, atomically, after every change. */
  autosavePath?: string;
  /** Receives the runtime events of every turn. */
  onEvent?: RuntimeEventListener;
}

/** Per-turn options of a session. */
export interface TurnOptions {
  sink?: StreamSink;
  signal?: AbortSignal;
  /** Generation settings for this turn only (merged over the session's). */
  generationConfig?: GenerationConfigInput;
}

/**
 * A chat: a name, a system prompt and the messages so far, over a runtime shared with the client. Each
 * turn sends the whole history; the session keeps its KV cache between turns, so only the new tokens
 * are computed when the history is unchanged. Turns run one at a time. With `autosavePath`, the
 * transcript is written atomically after every turn and change.
 */
export class ChatSession {
  /** The session's label. */
  name: string;
  /** Session-wide system instruction ("" = none). */
  systemPrompt: string;
  /** The messages so far (user and assistant turns; the system prompt is kept apart). */
  messages: Message[];
  /** Where the transcript is saved after every change, if anywhere. */
  autosavePath: string | undefined;
  /** The validated runtime config of every turn. */
  runtimeConfig: RuntimeConfig;
  /** The validated generation config of every turn. */
  generationConfig: GenerationConfig;
  readonly #loader: RuntimeLoader;
  readonly #onEvent: RuntimeEventListener | undefined;
  #kv = new KvSession();
  #busy = false;

  /** Sessions are created by `client.session()`. @internal */
  constructor(loader: RuntimeLoader, options: SessionOptions) {
    this.#loader = loader;
    this.runtimeConfig = validateRuntimeConfig(options.runtimeConfig);
    this.generationConfig = validateGenerationConfig(options.generationConfig ?? {});
    this.name = options.name ?? "default";
    this.systemPrompt = options.systemPrompt ?? DEFAULT_SYSTEM_PROMPT;
    this.messages = options.messages ? validateMessages(options.messages) : [];
    this.autosavePath = options.autosavePath === undefined ? undefined : resolve(options.autosavePath);
    this.#onEvent = options.onEvent;
  }

  /** Sends a text message and returns the reply (appended to the history with the message). */
  async prompt(text: string, options: TurnOptions = {}): Promise<PromptResponse> {
    return this.stream(text, options).collect();
  }

  /** Sends a message of content parts (text, image, audio) and returns the reply. */
  async promptParts(parts: ContentPart[], options: TurnOptions = {}): Promise<PromptResponse> {
    return this.stream(parts, options).collect();
  }

  /**
   * Sends a message and streams the reply. The exchange joins the history when the stream ends (also
   * when it was cancelled); on an error the history is unchanged.
   */
  stream(input: string | ContentPart[], options: TurnOptions = {}): PromptStream {
    const parts = validateParts(typeof input === "string" ? [textPart(input)] : input);
    const generation =
      options.generationConfig === undefined
        ? this.generationConfig
        : validateGenerationConfig({ ...this.generationConfig, ...options.generationConfig });
    return new PromptStream((stop) => this.#turn(parts, generation, options, stop));
  }

  async *#turn(
    parts: ContentPart[],
    generation: GenerationConfig,
    options: TurnOptions,
    stop: AbortSignal,
  ): AsyncGenerator<PromptDelta, PromptResponse> {
    if (this.#busy)
      throw new OllmError("INVALID_ARGUMENT", `A turn of session "${this.name}" is still running`, {
        hint: "Wait for the previous reply (or cancel it) before sending the next message.",
      });
    this.#busy = true;
    try {
      const user = userMessage(parts);
      const response = yield* runTurn(
        {
          loader: this.#loader,
          runtimeConfig: this.runtimeConfig,
          generationConfig: generation,
          messages: [
            ...(this.systemPrompt ? [systemMessage(this.systemPrompt)] : []),
            ...this.messages,
            user,
          ],
          kv: this.#kv,
          sink: options.sink,
          signal: options.signal,
          onEvent: this.#onEvent,
        },
        stop,
      );
      this.messages.push(user, response.message);
      await this.#autosave();
      return response;
    } finally {
      this.#busy = false;
    }
  }

  /** Sends the last user message again in place of the last exchange. */
  async retryLast(options: TurnOptions = {}): Promise<PromptResponse> {
    const [user] = this.#popExchange("retry");
    try {
      return await this.promptParts(user.content, options);
    } catch (error) {
      this.messages.push(user);
      throw error;
    }
  }

  /** Removes the last user/assistant exchange. */
  async undoLastExchange(): Promise<void> {
    this.#popExchange("undo");
    await this.#autosave();
  }

  #popExchange(what: string): [Message, Message] {
    const n = this.messages.length;
    if (n < 2 || this.messages[n - 1].role !== "assistant" || this.messages[n - 2].role !== "user")
      throw new OllmError("INVALID_ARGUMENT", `There is no previous exchange to ${what}`);
    const assistant = this.messages.pop()!;
    const user = this.messages.pop()!;
    return [user, assistant];
  }

  /** Forgets the messages (the system prompt stays). */
  async clear(): Promise<void> {
    this.messages = [];
    this.#kv.invalidate();
    await this.#autosave();
  }

  /** Forgets the messages and restores the default system prompt. */
  async reset(): Promise<void> {
    this.systemPrompt = DEFAULT_SYSTEM_PROMPT;
    await this.clear();
  }

  /** Changes the system prompt (the next turn recomputes the prompt from the start). */
  async setSystemPrompt(prompt: string): Promise<void> {
    this.systemPrompt = prompt;
    await this.#autosave();
  }

  /**
   * A new session with a copy of this one's messages, system prompt and configs, sharing the client's
   * loaded runtimes but with its own KV cache; it does not autosave unless given a path.
   */
  fork(options: { name?: string; autosavePath?: string } = {}): ChatSession {
    return new ChatSession(this.#loader, {
      runtimeConfig: this.runtimeConfig,
      generationConfig: this.generationConfig,
      name: options.name ?? `${this.name}-fork`,
      systemPrompt: this.systemPrompt,
      messages: structuredClone(this.messages),
      autosavePath: options.autosavePath,
      onEvent: this.#onEvent,
    });
  }

  /** The session as a transcript (JSON-ready). */
  toTranscript(): Transcript {
    return {
      format: "ollm-transcript",
      version: TRANSCRIPT_VERSION,
      sessionName: this.name,
      modelReference: this.runtimeConfig.modelReference,
      systemPrompt: this.systemPrompt,
      messages: structuredClone(this.messages),
      savedAt: new Date().toISOString(),
    };
  }

  /** Saves the transcript atomically to `path`, which becomes the autosave path (as in oLLM). */
  async save(path: string): Promise<void> {
    const target = resolve(path);
    await writeTranscript(target, this.toTranscript());
    this.autosavePath = target;
  }

  /**
   * Replaces this session's name, system prompt, messages and model reference with a saved transcript's;
   * `path` becomes the autosave path.
   */
  async load(path: string): Promise<void> {
    const target = resolve(path);
    const transcript = await readTranscript(target);
    this.name = transcript.sessionName;
    this.systemPrompt = transcript.systemPrompt;
    this.messages = transcript.messages;
    this.runtimeConfig = validateRuntimeConfig({
      ...this.runtimeConfig,
      modelReference: transcript.modelReference,
    });
    this.autosavePath = target;
    this.#kv.dispose();
    this.#kv = new KvSession();
  }

  /** Frees the session's KV cache (the runtime stays loaded in the client). */
  close(): void {
    this.#kv.dispose();
  }

  async #autosave(): Promise<void> {
    if (this.autosavePath) await writeTranscript(this.autosavePath, this.toTranscript());
  }
}

/** Writes a transcript atomically (temp file + fsync + rename): a crash never leaves a corrupt or empty file. */
export async function writeTranscript(path: string, transcript: Transcript): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(transcript, null, 2)}\n`);
}

/** Reads and validates a transcript: a missing, malformed or other-version file is INVALID_ARGUMENT. */
export async function readTranscript(path: string): Promise<Transcript> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new OllmError(
      code === "ENOENT" ? "INVALID_ARGUMENT" : "IO_ERROR",
      code === "ENOENT" ? `No transcript at ${path}` : `Cannot read ${path}: ${code ?? String(cause)}`,
      { cause },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new OllmError("INVALID_ARGUMENT", `${path} is not a transcript: not valid JSON`);
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (typeof version === "number" && version !== TRANSCRIPT_VERSION)
    throw new OllmError(
      "INVALID_ARGUMENT",
      `${path} is a transcript of version ${version}; this version of ollm reads version ${TRANSCRIPT_VERSION}`,
    );
  const parsed = TranscriptSchema.safeParse(json);
  if (!parsed.success)
    throw new OllmError(
      "INVALID_ARGUMENT",
      `${path} is not a valid transcript: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`,
    );
  return parsed.data;
}
