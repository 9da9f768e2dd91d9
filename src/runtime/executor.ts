import type { GenerationConfig } from "../config/generation-config.js";
import { OllmError } from "../errors.js";
import {
  type FinishReason,
  type GenerationChunk,
  type GenerationSummary,
  generate,
} from "../engine/generate.js";
import { DISK_KV_STRATEGIES } from "../engine/kv/strategies.js";
import { type KvIoStats, TieredKvStore } from "../engine/kv/tiered.js";
import type { StreamingStats } from "../engine/residency/streaming-store.js";
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
  /** Tokens of the whole prompt (chat template applied, assistant prefix included). */
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

/** What streaming layer weights from disk did during one reply. */
export interface StreamingReplyStats {
  /** Streamed layers read from disk (each use of a streamed layer is one load). */
  layerLoads: number;
  /** Bytes read from disk: layers plus routed experts. */
  bytesRead: number;
  layerBytesRead: number;
  expertBytesRead: number;
  /** Wall time reads were in flight (over-states reads that overlapped compute). */
  readMs: number;
  /** Time the runner was blocked waiting for reads. */
  waitMs: number;
  /** Time copying read bytes into backend memory. */
  uploadMs: number;
  /**
   * Share of the read time hidden behind compute: 1 − waitMs / readMs (readOverlap at the reads' own
   * throughput; readMs over-states overlapped reads, so this is an upper bound). 1 when nothing was read.
   */
  overlap: number;
  /** The streamed-expert LRU: lookups that hit or missed, entries evicted, bytes it holds after the reply. */
  expertCache: { hits: number; misses: number; evictions: number; bytes: number };
}

/** What a disk-backed KV cache did during one reply, and what it holds after it. */
export interface KvReplyStats {
  /** Cold blocks read back from disk, and written to it. */
  bytesRead: number;
  bytesWritten: number;
  /** Wall time cold-block reads were in flight, and time the runner waited for them. */
  readMs: number;
  waitMs: number;
  /** Blocks moved from memory to the cold tier. */
  blocksEvicted: number;
  /** Bytes the cache holds after the reply: backend memory, host buffers, disk. */
  deviceBytes: number;
  hostBytes: number;
  diskBytes: number;
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
  /** With `measureIo`: streaming (when layers stream from disk) and KV (when the cache is on disk) numbers. */
  io?: { streaming?: StreamingReplyStats; kv?: KvReplyStats };
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
  /** Measure what weight streaming and a disk KV cache did during this reply (`result.io`). */
  measureIo?: boolean;
  /**
   * Text the assistant's reply starts with, appended after the generation prompt: the model continues
   * from it. Its tokens are prompt tokens; the deltas and `result.text` hold only what was generated.
   */
  assistantPrefix?: string;
}

function delta<K extends string>(
  after: Record<K, number>,
  before: Record<K, number>,
  keys: readonly K[],
): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, after[k] - before[k]])) as Record<K, number>;
}

/**
 * Snapshots the counters of weight streaming and of the sequence's disk KV cache; the returned function
 * gives what changed since (the engine's counters are cumulative). Replies running at once on one runtime
 * share its streaming counters; the KV counters are the sequence's own.
 */
function ioProbe(runtime: LoadedRuntime, seq: Sequence): () => ExecutionResult["io"] {
  const streams = runtime.plan.layers.some((l) => l.residency === "disk");
  const weights0 = streams ? runtime.engine.streamingStats() : undefined;
  const store = seq.kvStore;
  const tiered =
    DISK_KV_STRATEGIES.includes(runtime.plan.kvCache.applied) && store instanceof TieredKvStore
      ? store
      : undefined;
  const kv0 = tiered?.io;
  return () => {
    const io: ExecutionResult["io"] = {};
    const weights = weights0 && runtime.engine.streamingStats();
    if (weights0 && weights) io.streaming = streamingDelta(weights, weights0);
    if (tiered && kv0) {
      const keys = ["bytesRead", "bytesWritten", "readMs", "waitMs", "blocksEvicted"] as const;
      io.kv = { ...delta<keyof KvIoStats>(tiered.io, kv0, keys), ...tiered.usage() };
    }
    return io;
  };
}

function streamingDelta(after: StreamingStats, before: StreamingStats): StreamingReplyStats {
  const d = delta(after, before, [
    "layerLoads",
    "bytesRead",
    "layerBytesRead",
    "expertBytesRead",
    "readMs",
    "waitMs",
    "uploadMs",
  ]);
  const e = delta(after.experts, before.experts, ["hits", "misses", "evictions"]);
  return {
    ...d,
    overlap: d.readMs > 0 ? Math.min(1, Math.max(0, 1 - d.waitMs / d.readMs)) : 1,
    expertCache: { ...e, bytes: after.experts.bytes },
  };
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
    const text =
      tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tools: options.tools }) +
      (options.assistantPrefix ?? "");
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
    const io = options.measureIo ? ioProbe(runtime, seq) : undefined;
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
      io: io?.(),
    };
  } finally {
    if (ownsKv) kv.dispose();
    release();
  }
}
