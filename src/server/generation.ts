import type { FastifyReply } from "fastify";
import type { RuntimeClient } from "../client.js";
import type { GenerationConfigInput } from "../config/generation-config.js";
import type { LoadedRuntime } from "../runtime/loader.js";
import type { PromptDelta, PromptResponse, PromptStream } from "../session.js";
import type { ServerConfig } from "./config.js";
import type { Job } from "./jobs.js";
import type { ModelDirectory, ModelTarget } from "./models.js";
import type { QueueSet } from "./queue.js";

/** What every route group shares. */
export interface ServerContext {
  client: RuntimeClient;
  config: ServerConfig;
  models: ModelDirectory;
  queues: QueueSet;
  /** Defaults of every request's generation config. */
  generationDefaults: GenerationConfigInput;
  /** Aborts when in-flight work must stop (the shutdown deadline passed). */
  shutdown: AbortSignal;
  /** Unix seconds of the start (the `created` of listed models). */
  startedAt: number;
}

/** Request fields in OpenAI's names for the generation config's fields (errors name the request field). */
export const OPENAI_FIELD_NAMES: Record<string, string> = {
  maxNewTokens: "max_tokens",
  temperature: "temperature",
  topP: "top_p",
  seed: "seed",
  stop: "stop",
  logprobs: "logprobs",
  topLogprobs: "top_logprobs",
};

/** Copies the fields that are set (so `undefined` / `null` never hides a server default). */
export function definedFields<T extends object>(
  value: T,
): { [K in keyof T]?: Exclude<T[K], null | undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined && v !== null)) as {
    [K in keyof T]?: Exclude<T[K], null | undefined>;
  };
}

/**
 * One generation being read: the prompt stream's deltas (with a turn of the event loop after each, so
 * disconnects and new requests are seen while the engine works), the generated token ids, and the raw
 * text (special tokens included) for tool-call parsing.
 */
export class Generation {
  readonly #iterator: AsyncIterator<PromptDelta>;
  readonly ids: number[] = [];
  text = "";
  #done = false;
  #cancelled: Promise<void> | undefined;

  constructor(
    readonly stream: PromptStream,
    /** The runtime (for its tokenizer and family); absent where no tool calls are parsed. */
    readonly runtime: LoadedRuntime | undefined,
    readonly job: Job,
    /** The text the reply was started with (part of the prompt; the deltas come after it). */
    readonly prefix = "",
  ) {
    this.#iterator = stream[Symbol.asyncIterator]();
  }

  /** The next delta, or undefined at the end. Runtime errors reject here. */
  async next(): Promise<PromptDelta | undefined> {
    if (this.#done) return undefined;
    const step = await this.#iterator.next();
    if (step.done) {
      this.#done = true;
      return undefined;
    }
    const delta = step.value;
    if (delta.token) this.ids.push(delta.token.id);
    this.text += delta.text;
    return delta;
  }

  /** Reads to the end and returns the response. */
  async collect(onDelta?: (delta: PromptDelta) => void): Promise<PromptResponse> {
    for (let d = await this.next(); d; d = await this.next()) onDelta?.(d);
    return this.stream.response;
  }

  /** Stops generating (the response finishes as cancelled); resolves once the stream has wound down. */
  cancel(): Promise<void> {
    this.#cancelled ??= this.#done
      ? Promise.resolve()
      : (async () => {
          this.#done = true;
          try {
            await this.#iterator.return?.();
          } catch {
            // The stream's own error is reported through `response`.
          }
        })();
    return this.#cancelled;
  }

  /**
   * The reply whole — the prefix, then the generated tokens decoded with special tokens — what tool-call
   * markup is parsed from.
   */
  rawText(): string {
    const generated = this.runtime
      ? this.runtime.tokenizer.decode(this.ids, { skipSpecialTokens: false })
      : this.text;
    return this.prefix + generated;
  }
}

/**
 * Takes a slot of the model's queue, loads (or reuses) its runtime and starts the stream, with the reply
 * started by `prefixOf`'s text when it gives one (it sees the loaded runtime: its template and tokens).
 * Errors — queue full, model not loadable — reject here, before anything was sent.
 */
export async function startGeneration(
  ctx: ServerContext,
  job: Job,
  target: ModelTarget,
  start: (signal: AbortSignal, assistantPrefix: string | undefined) => PromptStream,
  prefixOf?: (runtime: LoadedRuntime) => string | undefined,
): Promise<Generation> {
  await job.acquire(ctx.queues.get(target.key));
  const runtime = await ctx.client.load(target.runtimeConfig, { signal: job.signal });
  const prefix = prefixOf?.(runtime);
  return new Generation(start(job.signal, prefix), runtime, job, prefix);
}

/**
 * Once the response is over — ended, or its connection gone — stop the generation and free its slot.
 * A streamed body's own cleanup may never run: a stream destroyed before its first read never starts
 * the generator whose `finally` would have done it.
 */
export function releaseOnClose(reply: FastifyReply, gen: Generation): void {
  reply.raw.once("close", () => {
    void gen.cancel().finally(() => gen.job.finish());
  });
}
