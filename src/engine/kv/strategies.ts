import { OllmError } from "../../errors.js";
import type { Backend } from "../backend.js";
import { defaultKvCacheRoot, KvCacheDir } from "./cache-dir.js";
import { type ColdTier, Int8ColdTier, JournalColdTier, SegmentColdTier } from "./cold-tiers.js";
import { type KvLayerSpec, type KvStore, ResidentKvStore } from "./kv-store.js";
import { PagedKvStore } from "./paged.js";
import { SlidingWindowKvStore } from "./ring.js";
import { TieredKvStore } from "./tiered.js";

/** Every KV strategy the engine implements (oLLM's names). */
export const KV_STRATEGIES = [
  "resident",
  "chunked",
  "paged",
  "quantized-cold-tier",
  "sliding-window-ring-buffer",
  "streamed-segmented",
  "log-structured-journal",
  "tiered-write-back",
] as const;
export type KvStrategy = (typeof KV_STRATEGIES)[number];

/** Strategies that write to the cache directory. */
export const DISK_KV_STRATEGIES: readonly KvStrategy[] = [
  "streamed-segmented",
  "log-structured-journal",
  "tiered-write-back",
];

export interface KvCacheOptions {
  /** Default "resident". */
  strategy?: KvStrategy;
  /** Rows per block (paged, quantized and disk tiers) or growth step ("chunked"). Default 64. */
  blockTokens?: number;
  /**
   * Full blocks kept in f32 backend memory besides the one being filled: quantized-cold-tier (default 1)
   * and tiered-write-back (default 8); streamed-segmented and log-structured-journal keep none.
   */
  hotBlocks?: number;
  /**
   * Tokens the sliding-window ring buffer keeps (required by that strategy). With "resident", attention
   * is limited to that window while everything stays cached: the reference the ring is compared with.
   */
  windowTokens?: number;
  /** Root of disk caches (default: <os tmpdir>/ollm-kv-cache); each store writes in its own subdirectory. */
  cacheDir?: string;
  /** Read the next layer's cold KV while the current one computes (default true). */
  prefetch?: boolean;
}

/** Builds the KV store of one sequence. `modelKey` names the model in cache directory names. */
export function createKvStore(
  backend: Backend,
  specs: (KvLayerSpec | undefined)[],
  options: KvCacheOptions = {},
  modelKey = "model",
): KvStore {
  const strategy = options.strategy ?? "resident";
  const blockTokens = Math.max(1, Math.floor(options.blockTokens ?? 64));
  const dir = () => new KvCacheDir(options.cacheDir ?? defaultKvCacheRoot(), modelKey);
  const tiered = (tier: ColdTier, hotBlocks: number, d?: KvCacheDir) =>
    new TieredKvStore(backend, specs, { blockTokens, hotBlocks, tier, prefetch: options.prefetch, dir: d });
  switch (strategy) {
    case "resident":
      return new ResidentKvStore(backend, specs, { window: options.windowTokens });
    case "chunked":
      return new ResidentKvStore(backend, specs, { growth: "chunked", chunkTokens: blockTokens });
    case "paged":
      return new PagedKvStore(backend, specs, blockTokens);
    case "sliding-window-ring-buffer":
      if (options.windowTokens === undefined)
        throw new OllmError(
          "INVALID_CONFIG",
          "the sliding-window-ring-buffer KV strategy needs windowTokens",
          {
            hint: "set kvCacheWindowTokens",
          },
        );
      return new SlidingWindowKvStore(backend, specs, options.windowTokens);
    case "quantized-cold-tier":
      return tiered(new Int8ColdTier(specs, blockTokens), options.hotBlocks ?? 1);
    case "streamed-segmented": {
      const d = dir();
      return tiered(new SegmentColdTier(specs, blockTokens, d), 0, d);
    }
    case "log-structured-journal": {
      const d = dir();
      return tiered(new JournalColdTier(specs, blockTokens, d), 0, d);
    }
    case "tiered-write-back": {
      const d = dir();
      return tiered(new SegmentColdTier(specs, blockTokens, d), options.hotBlocks ?? 8, d);
    }
    default:
      throw new OllmError("INVALID_CONFIG", `unknown KV strategy "${String(strategy)}"`, {
        hint: `one of ${KV_STRATEGIES.join(", ")}`,
      });
  }
}

// --- the strategy selector -------------------------------------------------------------------------------

export type KvProfile = "balanced" | "latency" | "capacity" | "bounded-window";

export interface KvSelectionInput {
  profile: KvProfile;
  /** Context length to budget for. */
  contextTokens: number;
  /** f32 key+value bytes one token adds over every KV layer (Σ 2 · kvHeads · headDim · 4). */
  kvBytesPerToken: number;
  /** Layers that keep KV. */
  numKvLayers: number;
  /** Width of a head (quantization scales); default 128. */
  headDim?: number;
  /** Memory the KV cache may use (host on the CPU backend, device on a GPU). */
  memoryBudgetBytes: number;
  /** A requested ring-buffer window (--kv-cache-window-tokens): selects the ring. */
  windowTokens?: number;
  /** Text only (default true); multimodal stays on unquantized strategies, as oLLM does. */
  textOnly?: boolean;
  /** A prefill chunk fixed by the config (--prefill-chunk-tokens); otherwise the selector sizes it. */
  prefillChunkTokens?: number;
  /** Activation bytes per prompt token in a prefill chunk and what activations may use: sizes the chunk. */
  activationBytesPerToken?: number;
  activationBudgetBytes?: number;
}

export interface KvSelection {
  strategy: KvStrategy;
  blockTokens: number;
  hotBlocks: number;
  windowTokens?: number;
  prefillChunkTokens: number;
  predicted: { memoryBytes: number; diskBytes: number };
  /** The rule that chose, in a sentence. */
  reason: string;
}

function pow2Floor(n: number): number {
  return 2 ** Math.floor(Math.log2(Math.max(1, n)));
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, n));
}

/** Rows of the gather buffer block stores assemble one layer's history in (gather.ts: doubling from 256). */
export function kvGatherRows(tokens: number): number {
  return Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(1, tokens))));
}

/**
 * Rows of a tiered store's hot buffer (per layer): h + 1 blocks, grown to whole blocks that hold the kept
 * rows (h blocks and a partial one) plus a prefill chunk before eviction (tiered.ts).
 */
export function tieredHotRows(
  tokens: number,
  blockTokens: number,
  hotBlocks: number,
  chunkTokens = 1,
): number {
  const B = blockTokens;
  const needed = Math.min(tokens, hotBlocks * B + B - 1 + chunkTokens);
  return Math.max(B * (hotBlocks + 1), Math.ceil(needed / B) * B);
}

/**
 * Predicted bytes of a strategy at `tokens` tokens (memory: backend + host; disk). Follows the stores'
 * allocation rules: resident doubles from 64 rows; block strategies round up to whole blocks and hold one
 * layer's history in a gather buffer (disk tiers also two read buffers of one layer).
 */
export function predictKvBytes(
  strategy: KvStrategy,
  input: {
    tokens: number;
    kvBytesPerToken: number;
    numKvLayers: number;
    blockTokens: number;
    hotBlocks?: number;
    windowTokens?: number;
    chunkTokens?: number;
    headDim?: number;
  },
): { memoryBytes: number; diskBytes: number } {
  const { tokens: n, kvBytesPerToken: bpt, blockTokens: B } = input;
  const perLayer = bpt / Math.max(1, input.numKvLayers);
  const blocks = Math.ceil(n / B) * B;
  const gather = kvGatherRows(n) * perLayer;
  const hot = (h: number) => tieredHotRows(n, B, h, input.chunkTokens) * bpt;
  switch (strategy) {
    case "resident":
      return { memoryBytes: Math.max(64, 2 ** Math.ceil(Math.log2(Math.max(1, n)))) * bpt, diskBytes: 0 };
    case "chunked":
      return { memoryBytes: Math.max(B, blocks) * bpt, diskBytes: 0 };
    case "paged":
      return { memoryBytes: blocks * bpt + gather, diskBytes: 0 };
    case "sliding-window-ring-buffer": {
      const w = Math.min(input.windowTokens ?? n, n);
      return { memoryBytes: 2 * (w + Math.max(63, input.chunkTokens ?? 1)) * bpt, diskBytes: 0 };
    }
    case "quantized-cold-tier": {
      const headDim = input.headDim ?? 128;
      const cold = n * bpt * (0.25 + 1 / (2 * B) + 1 / (2 * headDim));
      return { memoryBytes: hot(input.hotBlocks ?? 1) + cold + 2 * gather, diskBytes: 0 };
    }
    case "streamed-segmented":
    case "log-structured-journal":
      return { memoryBytes: hot(0) + 3 * gather, diskBytes: blocks * bpt };
    case "tiered-write-back": {
      const h = input.hotBlocks ?? 8;
      return { memoryBytes: hot(h) + 3 * gather, diskBytes: Math.max(0, blocks - h * B) * bpt };
    }
  }
}

/**
 * oLLM's strategy selector as a pure function: the strategy, its block size and hot set, and the prefill
 * chunk, from the profile, the context length and the memory budget.
 *
 * - bounded-window: the ring buffer; window = the requested one, else the largest that fits the budget.
 * - latency: resident if it fits, else paged, else the int8 cold tier (text), else tiered write-back with as
 *   many hot blocks as fit.
 * - balanced: resident while it takes at most half the budget, else paged, else the int8 cold tier (text),
 *   else tiered write-back, else streamed segments.
 * - capacity: the int8 cold tier (text; paged for multimodal) if it fits, else streamed segments (the
 *   journal past 64 KV layers, where a file per layer gets unwieldy).
 * A requested window always selects the ring. Nothing fitting is OUT_OF_MEMORY_BUDGET.
 */
export function selectKvStrategy(input: KvSelectionInput): KvSelection {
  const n = Math.max(1, Math.floor(input.contextTokens));
  const budget = input.memoryBudgetBytes;
  const textOnly = input.textOnly ?? true;
  const blockTokens = clamp(pow2Floor(n / 32), 16, 256);
  const chunkFromBudget =
    input.activationBytesPerToken && input.activationBudgetBytes !== undefined
      ? pow2Floor(input.activationBudgetBytes / input.activationBytesPerToken)
      : 512;
  const prefillChunkTokens =
    input.prefillChunkTokens ?? clamp(Math.min(chunkFromBudget, pow2Floor(Math.max(16, n))), 16, 2048);
  const base = {
    tokens: n,
    kvBytesPerToken: input.kvBytesPerToken,
    numKvLayers: input.numKvLayers,
    blockTokens,
    chunkTokens: prefillChunkTokens,
    headDim: input.headDim,
  };
  const pick = (
    strategy: KvStrategy,
    reason: string,
    extra: { hotBlocks?: number; windowTokens?: number } = {},
  ) => {
    const hotBlocks =
      extra.hotBlocks ?? (strategy === "quantized-cold-tier" ? 1 : strategy === "tiered-write-back" ? 8 : 0);
    return {
      strategy,
      blockTokens,
      hotBlocks,
      windowTokens: extra.windowTokens,
      prefillChunkTokens,
      predicted: predictKvBytes(strategy, { ...base, hotBlocks, windowTokens: extra.windowTokens }),
      reason,
    };
  };
  const fits = (s: KvStrategy, extra: { hotBlocks?: number } = {}) =>
    predictKvBytes(s, { ...base, ...extra }).memoryBytes <= budget;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const need = (s: KvStrategy) => mib(predictKvBytes(s, base).memoryBytes);

  if (input.windowTokens !== undefined || input.profile === "bounded-window") {
    let w = input.windowTokens;
    if (w === undefined) {
      const perToken = 2 * input.kvBytesPerToken;
      w = Math.min(n, Math.floor((budget / perToken - Math.max(63, prefillChunkTokens)) / 64) * 64);
      if (w < 64)
        throw new OllmError(
          "OUT_OF_MEMORY_BUDGET",
          `a KV window of 64 tokens needs more than the ${mib(budget)} KV budget`,
          {
            hint: "raise the memory budget or lower prefillChunkTokens",
          },
        );
    }
    return pick(
      "sliding-window-ring-buffer",
      input.windowTokens !== undefined
        ? `a window of ${w} tokens was requested: the ring keeps only those`
        : `the bounded-window profile keeps the last ${w} tokens, the most that fit ${mib(budget)}`,
      { windowTokens: w },
    );
  }

  const hotThatFit = (): number => {
    let h = 0;
    while (h < 1024 && fits("tiered-write-back", { hotBlocks: h + 1 })) h++;
    return h;
  };
  const streamed = (why: string) =>
    input.numKvLayers > 64
      ? pick("log-structured-journal", `${why}; past 64 KV layers one journal beats a file per layer`)
      : pick("streamed-segmented", `${why}; segments on disk, one layer read per attention`);

  if (input.profile === "latency") {
    if (fits("resident"))
      return pick("resident", `latency: the whole cache (${need("resident")}) fits in memory`);
    if (fits("paged"))
      return pick("paged", `latency: paged blocks (${need("paged")}) fit where doubling buffers would not`);
    if (textOnly && fits("quantized-cold-tier"))
      return pick(
        "quantized-cold-tier",
        "latency: only an int8 cold tier fits in memory, still no disk reads",
      );
    const h = hotThatFit();
    if (h > 0 || fits("tiered-write-back", { hotBlocks: 0 }))
      return pick(
        "tiered-write-back",
        `latency: ${h} hot blocks per layer in memory, older ones written back to disk`,
        {
          hotBlocks: h,
        },
      );
  } else if (input.profile === "balanced") {
    if (predictKvBytes("resident", base).memoryBytes <= budget / 2)
      return pick(
        "resident",
        `balanced: the cache (${need("resident")}) takes at most half the ${mib(budget)} budget`,
      );
    if (fits("paged"))
      return pick("paged", `balanced: paged blocks (${need("paged")}) fit the ${mib(budget)} budget`);
    if (textOnly && fits("quantized-cold-tier"))
      return pick(
        "quantized-cold-tier",
        `balanced: int8 cold blocks (${need("quantized-cold-tier")}) fit, f32 would not`,
      );
    const h = hotThatFit();
    if (h > 0)
      return pick(
        "tiered-write-back",
        `balanced: ${h} hot blocks per layer fit, the rest is written back to disk`,
        { hotBlocks: h },
      );
    if (fits("streamed-segmented")) return streamed("balanced: no hot blocks fit");
  } else {
    if (textOnly && fits("quantized-cold-tier"))
      return pick(
        "quantized-cold-tier",
        `capacity: int8 cold blocks (${need("quantized-cold-tier")}) hold the most context in memory`,
      );
    if (!textOnly && fits("paged"))
      return pick("paged", "capacity: paged blocks for multimodal input (no quantization)");
    if (fits("streamed-segmented")) return streamed("capacity: the cache does not fit in memory");
  }
  throw new OllmError(
    "OUT_OF_MEMORY_BUDGET",
    `no KV strategy fits ${n} tokens in ${mib(budget)}: even streaming from disk needs ${need("streamed-segmented")} for one layer's history`,
    { hint: "lower contextTokens, raise the memory budget, or set kvCacheWindowTokens" },
  );
}
