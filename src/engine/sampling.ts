import { OllmError } from "../errors.js";

/** How the next token is chosen. temperature 0 (or undefined with no other setting) means greedy. */
export interface SamplingParams {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  seed?: number;
}

export interface TokenLogprob {
  id: number;
  logprob: number;
}

export interface SampledToken extends TokenLogprob {
  /** The `count` most likely tokens at this step (model distribution), when asked for. */
  topLogprobs?: TokenLogprob[];
}

/** A small seeded PRNG (sfc32): identical seeds give identical samples on every platform. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number = Date.now()) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }
}

export function validateSampling(p: SamplingParams): void {
  const bad = (field: string, rule: string) => {
    throw new OllmError("INVALID_ARGUMENT", `${field} ${rule}`);
  };
  if (p.temperature !== undefined && !(p.temperature >= 0)) bad("temperature", "must be ≥ 0");
  if (p.topK !== undefined && !(Number.isInteger(p.topK) && p.topK >= 0))
    bad("topK", "must be an integer ≥ 0");
  if (p.topP !== undefined && !(p.topP > 0 && p.topP <= 1)) bad("topP", "must be in (0, 1]");
  if (p.minP !== undefined && !(p.minP >= 0 && p.minP <= 1)) bad("minP", "must be in [0, 1]");
  if (p.repetitionPenalty !== undefined && !(p.repetitionPenalty > 0))
    bad("repetitionPenalty", "must be > 0");
}

/** log_softmax of a row, in f64. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

/** The `count` highest entries, best first (ties: lower id first). */
export function topEntries(values: ArrayLike<number>, count: number): TokenLogprob[] {
  const best: TokenLogprob[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (best.length === count && v <= best[best.length - 1].logprob) continue;
    let at = best.length;
    while (at > 0 && best[at - 1].logprob < v) at--;
    best.splice(at, 0, { id: i, logprob: v });
    if (best.length > count) best.pop();
  }
  return best;
}

/** transformers' RepetitionPenaltyLogitsProcessor: divide positive, multiply negative logits of seen ids. */
function applyRepetitionPenalty(logits: Float64Array, history: readonly number[], penalty: number): void {
  for (const id of new Set(history)) {
    if (id < 0 || id >= logits.length) continue;
    logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty;
  }
}

function isGreedy(p: SamplingParams): boolean {
  return !p.temperature || p.topK === 1;
}

/**
 * Picks the next token: a pure function of the logits, the parameters, the ids so far and the RNG.
 * Order as in transformers: repetition penalty, temperature, top-k, top-p, min-p.
 * Logprobs are of the model's own distribution (before penalties and warping).
 */
export function sampleToken(
  logits: Float32Array,
  params: SamplingParams,
  history: readonly number[],
  rng: Rng,
  topLogprobs = 0,
): SampledToken {
  const work = Float64Array.from(logits);
  if (params.repetitionPenalty && params.repetitionPenalty !== 1)
    applyRepetitionPenalty(work, history, params.repetitionPenalty);
  const id = isGreedy(params) ? argmax(work) : sampleWarped(work, params, rng);
  const logprobs = logSoftmax(logits);
  const token: SampledToken = { id, logprob: logprobs[id] };
  if (topLogprobs > 0) token.topLogprobs = topEntries(logprobs, topLogprobs);
  return token;
}

/**
 * Whether `sampleToken` needs only the top of the distribution: greedy without a repetition penalty picks the
 * highest logit, and its logprobs are the top entries less log Σ exp. Then a backend's `topKRows` reduction of
 * the logits row (k = max(1, topLogprobs)) is enough: see `sampleFromTopK`.
 */
export function greedyFromTopK(params: SamplingParams): boolean {
  return isGreedy(params) && !(params.repetitionPenalty && params.repetitionPenalty !== 1);
}

/**
 * `sampleToken` for parameters where `greedyFromTopK` holds, from one row of `Backend.topKRows`
 * ([indices…, values…, logSumExp] with k ≥ max(1, topLogprobs)): the same id (ties → lower id) and the same
 * logprobs (the log Σ exp is reduced in f32 on a device, so they agree to ~1e-6).
 */
export function sampleFromTopK(reduced: ArrayLike<number>, k: number, topLogprobs = 0): SampledToken {
  const lse = reduced[2 * k];
  const token: SampledToken = { id: reduced[0], logprob: reduced[k] - lse };
  if (topLogprobs > 0) {
    token.topLogprobs = [];
    for (let j = 0; j < Math.min(topLogprobs, k); j++)
      token.topLogprobs.push({ id: reduced[j], logprob: reduced[k + j] - lse });
  }
  return token;
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function sampleWarped(scores: Float64Array, p: SamplingParams, rng: Rng): number {
  const t = p.temperature ?? 1;
  // Candidates sorted by score; warpers only ever cut the tail of this order.
  let order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  if (p.topK && p.topK > 0) order = order.slice(0, p.topK);
  const max = scores[order[0]];
  let probs = order.map((i) => Math.exp((scores[i] - max) / t));
  const total = probs.reduce((s, x) => s + x, 0);
  probs = probs.map((x) => x / total);
  let keep = probs.length;
  if (p.topP !== undefined && p.topP < 1) {
    let cumulative = 0;
    for (let i = 0; i < probs.length; i++) {
      cumulative += probs[i];
      if (cumulative >= p.topP) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p.minP) {
    const threshold = p.minP * probs[0];
    while (keep > 1 && probs[keep - 1] < threshold) keep--;
  }
  const kept = probs.slice(0, keep);
  const sum = kept.reduce((s, x) => s + x, 0);
  let r = rng.next() * sum;
  for (let i = 0; i < keep; i++) {
    r -= kept[i];
    if (r < 0) return order[i];
  }
  return order[keep - 1];
}
