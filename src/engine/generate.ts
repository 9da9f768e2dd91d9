import { OllmError } from "../errors.js";
import { TOPK_MAX } from "./backend.js";
import {
  greedyFromTopK,
  Rng,
  type SampledToken,
  type SamplingParams,
  sampleFromTopK,
  sampleToken,
  validateSampling,
} from "./sampling.js";
import type { Sequence } from "./sequence.js";
import type { Tensor } from "./tensor.js";

/** What generation needs of a tokenizer: incremental detokenization. */
export interface Detokenizer {
  createStreamDecoder(options?: { skipSpecialTokens?: boolean }): {
    push(id: number): string;
    flush(): string;
  };
}

export interface GenerateOptions extends SamplingParams {
  /** Upper bound on generated tokens (default 256). */
  maxNewTokens?: number;
  /** Token ids that end generation (the eos ids); they are not part of the text. */
  stopTokenIds?: readonly number[];
  /** Strings that end generation; the text is cut before them. */
  stopStrings?: readonly string[];
  /** Top-N logprobs per token (0: only the chosen token's logprob). */
  topLogprobs?: number;
  /** Prompt tokens per prefill chunk. */
  prefillChunkTokens?: number;
  signal?: AbortSignal;
}

export type FinishReason = "stop" | "length" | "cancelled";

/**
 * One step of output: the text it adds (possibly "" while a character or a stop string is incomplete)
 * and the token that produced it. A last chunk without a token carries text held back until the end.
 */
export interface GenerationChunk {
  text: string;
  token?: SampledToken;
}

export interface GenerationSummary {
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Time from start to the first token, including prefill. */
  timeToFirstTokenMs: number;
  /** Time spent after the first token. */
  decodeMs: number;
}

/** Longest suffix of `text` that is a proper prefix of some stop string: held back until resolved. */
function heldBackLength(text: string, stops: readonly string[]): number {
  let hold = 0;
  for (const stop of stops) {
    for (let n = Math.min(stop.length - 1, text.length); n > hold; n--) {
      if (text.endsWith(stop.slice(0, n))) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

/** A token being picked: `reduced` is the device's top-k row when greedy decoding reads only that. */
interface Pick {
  token: Promise<SampledToken>;
  reduced?: Tensor;
}

/**
 * Starts picking the next token from the last position's logits [1, vocab] (which it frees). Greedy
 * sampling without a repetition penalty reads back only the backend's top-k reduction of the row
 * (k = max(1, topLogprobs): ids, logits and log Σ exp) instead of the whole vocabulary; its read is queued
 * at once, so the device's next step can be recorded before it completes. Anything else reads the row and
 * runs `sampleToken`.
 */
function beginPick(
  seq: Sequence,
  logits: Tensor,
  options: GenerateOptions,
  history: readonly number[],
  rng: Rng,
): Pick {
  const topLogprobs = options.topLogprobs ?? 0;
  const k = Math.max(1, topLogprobs);
  const vocab = logits.shape[logits.shape.length - 1];
  if (greedyFromTopK(options) && k <= Math.min(TOPK_MAX, vocab) && logits.shape[0] === 1) {
    const reduced = seq.backend.topKRows(logits, k);
    logits.dispose();
    return { token: reduced.read().then((row) => sampleFromTopK(row, k, topLogprobs)), reduced };
  }
  const token = logits.read().then((row) => sampleToken(row, options, history, rng, topLogprobs));
  return { token: token.finally(() => logits.dispose()) };
}

/**
 * Steps greedy decoding records ahead of the token it waits for on a queued backend. Two hide the delay
 * between the device finishing a step and the host hearing of it (env OLLM_DECODE_AHEAD: 0–4, for
 * measurements).
 */
const AHEAD_STEPS = (() => {
  const n = Number(process.env.OLLM_DECODE_AHEAD ?? 2);
  return Number.isInteger(n) && n >= 0 && n <= 4 ? n : 2;
})();

/** Drops a step recorded ahead whose token is not wanted: its pick and its position in the sequence. */
function discardAhead(seq: Sequence, ahead: Pick): void {
  ahead.token.catch(() => undefined);
  ahead.reduced?.dispose();
  seq.truncate(seq.length - 1);
}

/**
 * Runs the prompt, then yields tokens until a stop id, a stop string, maxNewTokens or cancellation.
 * The sequence keeps its cache, so a chat can continue from it. Returns a summary when done.
 */
export async function* generate(
  seq: Sequence,
  detokenizer: Detokenizer,
  promptIds: readonly number[],
  options: GenerateOptions = {},
): AsyncGenerator<GenerationChunk, GenerationSummary> {
  validateSampling(options);
  const maxNewTokens = options.maxNewTokens ?? 256;
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0))
    throw new OllmError("INVALID_ARGUMENT", "maxNewTokens must be an integer ≥ 0");
  const topLogprobs = options.topLogprobs ?? 0;
  if (!(Number.isInteger(topLogprobs) && topLogprobs >= 0))
    throw new OllmError("INVALID_ARGUMENT", "topLogprobs must be an integer ≥ 0");
  if (promptIds.length === 0) throw new OllmError("INVALID_ARGUMENT", "the prompt has no tokens");
  const stopIds = new Set(options.stopTokenIds ?? []);
  const stops = (options.stopStrings ?? []).filter((s) => s.length > 0);
  const rng = new Rng(options.seed);
  const decoder = detokenizer.createStreamDecoder({ skipSpecialTokens: true });
  const history = [...promptIds];
  const start = performance.now();
  let firstTokenAt = start;
  let completionTokens = 0;
  let text = "";
  let emitted = 0;
  let finishReason: FinishReason = "length";
  const summary = (): GenerationSummary => ({
    finishReason,
    promptTokens: promptIds.length,
    completionTokens,
    timeToFirstTokenMs: firstTokenAt - start,
    decodeMs: completionTokens > 0 ? performance.now() - firstTokenAt : 0,
  });

  // Emits text up to `end` (or cuts at a stop string) and reports whether a stop string was hit.
  const release = (end: number): { delta: string; stopped: boolean } => {
    for (const stop of stops) {
      const at = text.indexOf(stop, Math.max(0, emitted - stop.length + 1));
      if (at >= 0) end = Math.min(end, at);
    }
    const hit = stops.some((s) => text.indexOf(s, Math.max(0, emitted - s.length + 1)) === end);
    const delta = text.slice(emitted, Math.max(emitted, end));
    emitted += delta.length;
    return { delta, stopped: hit };
  };

  // Let timers, I/O and signal handlers run between steps: CPU reads resolve as microtasks only (a queued
  // backend's reads come back through the event loop, which already gave them their turn).
  const cancelled = async () => {
    if (!seq.backend.queued) await new Promise<void>((resolve) => setImmediate(resolve));
    return options.signal?.aborted === true;
  };
  // On a queued backend (WebGPU) greedy decoding runs steps ahead: step n+1 is recorded from the token id
  // still on the device while the device runs step n, and dropped if step n's token ends generation.
  const ahead: Pick[] = [];
  const depth = seq.backend.queued && seq.rewindable ? AHEAD_STEPS : 0;
  try {
    if (maxNewTokens === 0) return summary();
    if (await cancelled()) {
      finishReason = "cancelled";
      return summary();
    }
    const prompt = await seq.forward(promptIds, { logits: "last", chunkTokens: options.prefillChunkTokens });
    let pending = beginPick(seq, prompt, options, history, rng);
    while (true) {
      while (ahead.length < depth && completionTokens + 1 + ahead.length < maxNewTokens) {
        const last = ahead[ahead.length - 1] ?? pending;
        if (!last.reduced) break;
        ahead.push(
          beginPick(seq, await seq.forward(last.reduced, { logits: "last" }), options, history, rng),
        );
      }
      pending.reduced?.dispose();
      const token = await pending.token;
      if (completionTokens === 0) firstTokenAt = performance.now();
      completionTokens++;
      history.push(token.id);
      if (stopIds.has(token.id)) {
        finishReason = "stop";
        yield { text: "", token };
        break;
      }
      text += decoder.push(token.id);
      const { delta, stopped } = release(text.length - heldBackLength(text, stops));
      yield { text: delta, token };
      if (stopped) {
        finishReason = "stop";
        return summary();
      }
      if (completionTokens >= maxNewTokens) break;
      if (await cancelled()) {
        finishReason = "cancelled";
        return summary();
      }
      pending =
        ahead.shift() ??
        beginPick(seq, await seq.forward([token.id], { logits: "last" }), options, history, rng);
    }
  } finally {
    for (const pick of ahead.reverse()) discardAhead(seq, pick);
  }
  text += decoder.flush();
  const { delta, stopped } = release(text.length);
  if (stopped) finishReason = "stop";
  if (delta) yield { text: delta };
  return summary();
}
