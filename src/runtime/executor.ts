import type { GenerationConfig } from "../config/generation-config.js";
import { OllmError } from "../errors.js";
import {
  type FinishReason,
  type GenerationChunk,
  type GenerationSummary,
  generate,
} from "../engine/generate.js";
import type { Sequence } from "../engine/sequence.js";
import type { RuntimeEventListener } from "./events.js";
import type { LoadedRuntime } from "./loader.js";
import type { TemplateMessage } from "./tokenizer.js";

/** A token's log-probability, with its text. */
export interface TokenChoice {
  id: number;
  /** The token decoded alone (special tokens included). */
  text: string;
  logprob: number;
}

/** A generated token, with the most likely alternatives when `topLogprobs` was asked for. */
export interface GeneratedToken extends TokenChoice {
  topLogprobs?: TokenChoice[];
}

/** Text added by one step of generation (may be "" while a character or a stop string is incomplete). */
export interface ExecutionDelta {
  text: string;
  /** The token of this step (absent on a final flush of held-back text). */
  token?: GeneratedToken;
}

/** Token counts of one execution. */
export interface Usage {
  /** Tokens of the whole prompt (chat template applied). */
  promptTokens: number;
  /** Tokens generated (a stop token counts). */
  completionTokens: number;
  totalTokens: number;
  /** Prompt tokens whose KV was reused from the previous turn of a session instead of being recomputed. */
  cachedPromptTokens: number;
}

/** Timings of one execution, in milliseconds and tokens per second. */
export interface Timings {
  /** From the start of prefill to the first generated token. */
  timeToFirstTokenMs: number;
  /** From the first token to the end of generation. */
  decodeMs: number;
  totalMs: number;
  /** Prompt tokens computed per second of prefill (null when nothing was computed). */
  prefillTokensPerSecond: number | null;
  /** Generated tokens after the first per second of decoding (null with fewer than two tokens). */
  tokensPerSecond: number | null;
}

/** What an execution produced. */
export interface ExecutionResult {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  timings: Timings;
  /** One entry per generated token (stop tokens excluded), when `logprobs` was asked for. */
  logprobs: GeneratedToken[] | null;
  /** Ids of the generated tokens. */
  tokenIds: number[];
}

/**
 * A KV cache kept across the turns of a chat: when the next prompt's token ids extend the ids the cache
 * holds, only the new tokens are computed. Anything else (another runtime, a prompt that does not
 * extend it, an error mid-turn) starts from an empty cache, so outputs always equal a fresh run.
 */
export class KvSession {
  #runtime: LoadedRuntime | undefined;
  #seq: Sequence | undefined;
  #ids: number[] = [];

  /** Token ids whose keys and values are cached. */
  get cachedTokens(): number {
    return this.#ids.length;
  }

  /** @internal The sequence to run `promptIds` on, and how many leading ids it already holds. */
  take(
    runtime: LoadedRuntime,
    promptIds: readonly number[],
    reuse: boolean,
  ): { seq: Sequence; cached: number } {
    if (this.#runtime !== runtime || !this.#seq) {
      this.dispose();
      this.#runtime = runtime;
      this.#seq = runtime.engine.newSequence();
    }
    const cached = this.#ids;
    const extends_ =
      reuse &&
      cached.length > 0 &&
      cached.length < promptIds.length &&
      this.#seq.length === cached.length &&
      cached.every((id, i) => promptIds[i] === id);
    if (!extends_) {
      this.#seq.reset();
      this.#ids = [];
      return { seq: this.#seq, cached: 0 };
    }
    return { seq: this.#seq, cached: cached.length };
  }

  /** @internal Records the ids the sequence now holds (`ids` may be longer; it keeps as many as it holds). */
  commit(ids: readonly number[]): void {
    const held = this.#seq?.length ?? 0;
    this.#ids = ids.length >= held ? ids.slice(0, held) : [];
    if (this.#ids.length !== held) this.invalidate();
  }

  /** Forgets the cached tokens (the next turn recomputes its whole prompt). */
  invalidate(): void {
    this.#seq?.reset();
    this.#ids = [];
  }

  /** Frees the cache. */
  dispose(): void {
    this.#seq?.dispose();
    this.#seq = undefined;
    this.#runtime = undefined;
    this.#ids = [];
  }
}

/** Options of one execution. */
export interface ExecuteOptions {
  generation: GenerationConfig;
  signal?: AbortSignal;
  onEvent?: RuntimeEventListener;
  /** Keep the KV cache in this session across calls (chat sessions). */
  kv?: KvSession;
  /** Tool (function) definitions handed to the chat template as `tools`. */
  tools?: unknown[];
}

function sampling(runtime: LoadedRuntime, g: GenerationConfig) {
  const d = runtime.engine.generation;
  return {
    temperature: g.temperature ?? 0,
    topK: g.topK ?? d.topK,
    topP: g.topP ?? d.topP,
    minP: g.minP ?? d.minP,
    repetitionPenalty: g.repetitionPenalty ?? d.repetitionPenalty,
    seed: g.seed,
  };
}

/**
 * Runs a chat on a loaded runtime: applies the chat template, tokenizes, prefills (reusing a session's
 * KV cache when the prompt extends it) and yields text deltas as tokens are generated; returns the result.
 * The prompt plus the reply must fit the context the runtime was planned for (`plan.kvCache.contextTokens`):
 * a longer prompt is an INVALID_ARGUMENT error, and `maxNewTokens` is cut to what fits (finish "length").
 */
export async function* executeChat(
  runtime: LoadedRuntime,
  messages: TemplateMessage[],
  options: ExecuteOptions,
): AsyncGenerator<ExecutionDelta, ExecutionResult> {
  const release = runtime.acquire();
  const ownsKv = !options.kv;
  const kv = options.kv ?? new KvSession();
  const started = performance.now();
  try {
    const tokenizer = runtime.tokenizer;
    const text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tools: options.tools });
    const promptIds = tokenizer.encode(text, { addSpecialTokens: false });
    const context = runtime.plan.kvCache.contextTokens;
    if (promptIds.length >= context)
      throw new OllmError(
        "INVALID_ARGUMENT",
        `The prompt has ${promptIds.length} tokens; the runtime was planned for a context of ${context} tokens`,
        { hint: "Raise contextTokens in the runtime config, or shorten the prompt or history." },
      );
    const g = options.generation;
    const params = sampling(runtime, g);
    // The repetition penalty looks at the whole prompt; a reused cache would hand it only the new part.
    const reuse = !params.repetitionPenalty || params.repetitionPenalty === 1;
    const { seq, cached } = kv.take(runtime, promptIds, reuse);
    options.onEvent?.({ type: "prefill", tokens: promptIds.length - cached, cachedTokens: cached });
    const stopIds = new Set(runtime.stopTokenIds);
    const wantLogprobs = g.logprobs;
    const run = generate(seq, tokenizer, promptIds.slice(cached), {
      ...params,
      maxNewTokens: Math.min(g.maxNewTokens, context - promptIds.length),
      stopTokenIds: runtime.stopTokenIds,
      stopStrings: g.stop,
      topLogprobs: wantLogprobs ? g.topLogprobs : 0,
      prefillChunkTokens: runtime.plan.prefillChunkTokens,
      signal: options.signal,
    });
    const choice = (t: { id: number; logprob: number }): GeneratedToken => ({
      id: t.id,
      text: tokenizer.decode([t.id], { skipSpecialTokens: false }),
      logprob: t.logprob,
    });
    const generated: number[] = [];
    const logprobs: GeneratedToken[] = [];
    let reply = "";
    let summary: GenerationSummary;
    try {
      for (;;) {
        const step: IteratorResult<GenerationChunk, GenerationSummary> = await run.next();
        if (step.done) {
          summary = step.value;
          break;
        }
        const chunk = step.value;
        if (chunk.token) {
          generated.push(chunk.token.id);
          if (generated.length === 1)
            options.onEvent?.({ type: "first-token", ms: performance.now() - started });
          if (stopIds.has(chunk.token.id)) continue;
        }
        reply += chunk.text;
        let token: GeneratedToken | undefined;
        if (chunk.token) {
          token = choice(chunk.token);
          if (wantLogprobs) {
            if (chunk.token.topLogprobs) token.topLogprobs = chunk.token.topLogprobs.map(choice);
            logprobs.push(token);
          }
        }
        yield token ? { text: chunk.text, token } : { text: chunk.text };
      }
    } catch (error) {
      kv.invalidate();
      throw error;
    }
    kv.commit([...promptIds, ...generated]);
    const computed = promptIds.length - cached;
    const ttft = summary.timeToFirstTokenMs;
    return {
      text: reply,
      finishReason: summary.finishReason,
      usage: {
        promptTokens: promptIds.length,
        completionTokens: summary.completionTokens,
        totalTokens: promptIds.length + summary.completionTokens,
        cachedPromptTokens: cached,
      },
      timings: {
        timeToFirstTokenMs: ttft,
        decodeMs: summary.decodeMs,
        totalMs: performance.now() - started,
        prefillTokensPerSecond: computed > 0 && ttft > 0 ? computed / (ttft / 1000) : null,
        tokensPerSecond:
          summary.completionTokens > 1 && summary.decodeMs > 0
            ? (summary.completionTokens - 1) / (summary.decodeMs / 1000)
            : null,
      },
      logprobs: wantLogprobs ? logprobs : null,
      tokenIds: generated,
    };
  } finally {
    if (ownsKv) kv.dispose();
    release();
  }
}
