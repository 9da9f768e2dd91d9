import { formatBytes } from "../config/memory.js";
import {
  type KvSelection,
  type OffloadPolicy,
  planResidency,
  type ResidencyPlan,
} from "../engine/residency/index.js";
import { WEBGPU_BUFFER_DEFAULTS } from "../engine/backends/webgpu/memory.js";
import { kvGatherRows, tieredHotRows } from "../engine/kv/strategies.js";
import { OllmError } from "../errors.js";

/** Strategies whose cold blocks live outside backend memory (host int8 blocks, disk read buffers). */
const TIERED = new Set([
  "quantized-cold-tier",
  "streamed-segmented",
  "log-structured-journal",
  "tiered-write-back",
]);

/**
 * The part of a KV prediction held in GPU memory on the WebGPU backend. Every store allocates its rows as
 * backend tensors, except that tiered stores keep cold blocks (and their read buffers) in host memory: on
 * the GPU they hold only the hot blocks and the gather buffer. Mirrors the terms of predictKvBytes.
 */
export function kvGpuBytes(
  kv: KvSelection,
  contextTokens: number,
  bytesPerToken: number,
  numKvLayers: number,
) {
  const memory = Math.ceil(kv.predicted.memoryBytes);
  if (!TIERED.has(kv.strategy)) return memory;
  const hot =
    tieredHotRows(contextTokens, kv.blockTokens, kv.hotBlocks, kv.prefillChunkTokens) * bytesPerToken;
  const gather = (kvGatherRows(contextTokens) * bytesPerToken) / Math.max(1, numKvLayers);
  return Math.min(memory, Math.ceil(hot + gather));
}

/**
 * ParamArena allowance: one submission's parameters (≤ 256 B per dispatch) plus the rope table and positions
 * of a prefill chunk (2 048 tokens × 128-wide heads: 2 MiB).
 */
const ARENA_BYTES = 4 << 20;

/**
 * The backend's own GPU memory besides weights, KV cache and activations: the staging ring, a page per
 * activation heap, the parameter arena, and what the buffer pool keeps. The pool keeps freed KV containers
 * (zeros(): the earlier capacities of a growing cache) and freed activations too large for a heap block, of
 * sizes not asked for again; the plan counts neither, so they are estimated as one more KV cache's GPU part
 * and one more set of activations, at most the keep limit (docs/offload.md).
 */
export function backendGpuBytes(kvGpuBytes: number, activationBytes: number): number {
  // The backend's defaults (the runtime passes no options); a heap page is min(binding limit, 128 MiB), and
  // WebGPU guarantees a binding limit of at least 128 MiB.
  const d = WEBGPU_BUFFER_DEFAULTS;
  const pool = Math.min(d.poolBytes, kvGpuBytes + activationBytes);
  return d.stagingChunks * d.stagingChunkBytes + d.heaps * d.heapPageBytes + ARENA_BYTES + pool;
}

export interface GpuPlacementInput {
  model: string;
  layerBytes: readonly number[];
  globalBytes: number;
  /** null: no budget (offload counts alone); the GPU is then not checked. */
  gpuBudgetBytes: number | null;
  hostBudgetBytes: number;
  kvGpuBytes: number;
  kvHostBytes: number;
  /** Activations on the GPU (an estimate). */
  activationBytes: number;
  contextTokens: number;
  /** The expert LRU asked for (device tensors on a GPU): reserved only when MoE layers stream from disk. */
  expertCacheBytes: number;
  moe: boolean;
  offloadGpuLayers?: number;
  offloadCpuLayers?: number;
  offloadCpuPolicy: OffloadPolicy;
}

export interface GpuPlacement {
  residency: ("gpu" | "host" | "disk")[];
  bytesReadPerToken: number;
  expertCacheBytes: number;
  /**
   * weights include `streaming` (device copies of streamed layers); total = weights + kv + activations +
   * expert LRU + backend.
   */
  gpu: {
    weights: number;
    streaming: number;
    kvCache: number;
    activations: number;
    expertCache: number;
    /** The WebGPU backend's own memory (backendGpuBytes). */
    backend: number;
    total: number;
  };
  /** weights include `streaming` (the two buffers disk layers are read into). */
  host: { weights: number; streaming: number; kvCache: number; total: number };
  reasons: string[];
}

/** OUT_OF_MEMORY_BUDGET when the GPU budget cannot hold what stays resident plus one streamed layer. */
export function checkGpuFloor(
  input: Pick<
    GpuPlacementInput,
    "model" | "gpuBudgetBytes" | "globalBytes" | "activationBytes" | "contextTokens"
  > & {
    layerBytes: readonly number[];
    /** undefined: the KV cache is not chosen yet. */
    kvGpuBytes?: number;
  },
): void {
  const budget = input.gpuBudgetBytes;
  const layer = Math.max(0, ...input.layerBytes);
  const kv = input.kvGpuBytes ?? 0;
  const backend = backendGpuBytes(kv, input.activationBytes);
  const need = input.globalBytes + kv + input.activationBytes + backend + layer;
  if (budget === null || need <= budget) return;
  const parts = [
    `globals (embeddings, final norm, LM head) ${formatBytes(input.globalBytes)}`,
    ...(input.kvGpuBytes !== undefined
      ? [`KV cache ${formatBytes(kv)} for ${input.contextTokens} tokens`]
      : []),
    `activations ~${formatBytes(input.activationBytes)}`,
    `WebGPU backend ~${formatBytes(backend)}`,
    `one streamed layer ${formatBytes(layer)}`,
  ];
  throw new OllmError(
    "OUT_OF_MEMORY_BUDGET",
    `${input.model}: the GPU budget of ${formatBytes(budget)} cannot hold ${parts.join(" + ")} = ${formatBytes(need)}`,
    {
      hint: `Raise gpuMemoryBudget (--gpu-memory-budget) to at least ${formatBytes(need)}, or lower contextTokens / prefillChunkTokens${input.kvGpuBytes ? " or use a KV strategy that keeps less on the GPU (quantized-cold-tier, streamed-segmented)" : ""}.`,
    },
  );
}

const sum = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0);

/**
 * Where each layer lives on the WebGPU backend (engine planResidency): the GPU takes the globals, its part
 * of the KV cache, the activations, the backend's own memory and as many layers as fit; host memory the
 * next; the rest stream from disk. Counts what the engine's LayeredWeightStore holds: streamed layers run from one pooled device copy
 * of the largest, and disk layers are read into two host buffers (planResidency reserves one; the second
 * and the KV cache's host part come off its host room here).
 */
export function placeOnGpu(input: GpuPlacementInput): GpuPlacement {
  const { layerBytes, globalBytes, kvGpuBytes: kvGpu, kvHostBytes: kvHost, activationBytes: act } = input;
  const L = layerBytes.length;
  const maxLayer = Math.max(0, ...layerBytes);
  const budget = input.gpuBudgetBytes ?? Number.MAX_SAFE_INTEGER;
  checkGpuFloor({ ...input, kvGpuBytes: kvGpu });
  const backend = backendGpuBytes(kvGpu, act);
  // What the GPU holds besides layers: globals, the KV cache's GPU part, activations, the backend.
  const fixed = globalBytes + kvGpu + act + backend;
  const streams =
    input.offloadCpuLayers !== undefined ||
    (input.offloadGpuLayers !== undefined ? input.offloadGpuLayers < L : fixed + sum(layerBytes) > budget);
  // Streaming needs the two host buffers disk layers are read into (unless offloadCpuLayers keeps them all).
  const hostFloor = kvHost + (input.offloadCpuLayers === undefined ? 2 * maxLayer : 0);
  if (streams && hostFloor > input.hostBudgetBytes)
    throw new OllmError(
      "OUT_OF_MEMORY_BUDGET",
      `${input.model}: streaming layers needs ${formatBytes(hostFloor)} of host memory (two read buffers of the largest layer ${formatBytes(2 * maxLayer)}${kvHost ? ` + KV cache ${formatBytes(kvHost)}` : ""}), more than the ${formatBytes(input.hostBudgetBytes)} host budget`,
      { hint: "Raise hostMemoryBudget, or raise gpuMemoryBudget so that every layer fits the GPU." },
    );
  const n = input.offloadGpuLayers;
  if (n !== undefined && input.gpuBudgetBytes !== null) {
    const need = fixed + sum(layerBytes.slice(0, n)) + (n < L ? maxLayer : 0);
    if (need > budget)
      throw new OllmError(
        "OUT_OF_MEMORY_BUDGET",
        `${input.model}: offloadGpuLayers=${n} needs ${formatBytes(need)} of GPU memory (globals, KV cache, activations and WebGPU backend ${formatBytes(fixed)} + ${Math.min(n, L)} layers ${formatBytes(sum(layerBytes.slice(0, n)))}${n < L ? ` + a copy of one streamed layer ${formatBytes(maxLayer)}` : ""}), more than the ${formatBytes(budget)} GPU budget`,
        { hint: "Lower offloadGpuLayers (or drop it: the budget then decides), or raise gpuMemoryBudget." },
      );
  }
  const hostRoom = !streams
    ? input.hostBudgetBytes
    : input.hostBudgetBytes - kvHost - (input.offloadCpuLayers === undefined ? maxLayer : 0);
  const place = (lru: number): GpuPlacement => {
    const p = account(
      planResidency({
        layerBytes,
        globalBytes,
        gpuBudgetBytes: budget,
        hostBudgetBytes: hostRoom,
        kvBytes: kvGpu,
        // planResidency reserves "activations": the backend's own memory and the expert LRU with them.
        activationBytes: act + backend + lru,
        offloadGpuLayers: input.offloadGpuLayers,
        offloadCpuLayers: input.offloadCpuLayers,
        offloadCpuPolicy: input.offloadCpuPolicy,
      }),
      lru,
    );
    if (p.gpu.total > budget)
      throw new OllmError(
        "OUT_OF_MEMORY_BUDGET",
        `${input.model}: this placement needs ${formatBytes(p.gpu.total)} of GPU memory, more than the ${formatBytes(budget)} budget`,
        { hint: "Lower offloadGpuLayers, contextTokens or prefillChunkTokens, or raise gpuMemoryBudget." },
      );
    return p;
  };
  const account = (rp: ResidencyPlan, lru: number): GpuPlacement => {
    const residency = rp.residency.map((r) => (r === "device" ? "gpu" : r));
    const bytesOf = (r: string) => sum(layerBytes.filter((_, i) => residency[i] === r));
    const largest = (pick: (r: string) => boolean) =>
      Math.max(0, ...layerBytes.filter((_, i) => pick(residency[i])));
    const deviceCopies = largest((r) => r !== "gpu");
    const diskBuffers = residency.includes("disk") ? 2 * largest((r) => r === "disk") : 0;
    const gpuWeights = globalBytes + bytesOf("gpu") + deviceCopies;
    const hostWeights = bytesOf("host") + diskBuffers;
    const reasons = [...rp.reasons];
    if (deviceCopies) reasons.push("streamed layers run from one device copy of the largest one");
    return {
      residency,
      bytesReadPerToken: rp.bytesReadPerToken,
      expertCacheBytes: lru,
      gpu: {
        weights: gpuWeights,
        streaming: deviceCopies,
        kvCache: kvGpu,
        activations: act,
        expertCache: lru,
        backend,
        total: gpuWeights + kvGpu + act + lru + backend,
      },
      host: { weights: hostWeights, streaming: diskBuffers, kvCache: kvHost, total: hostWeights + kvHost },
      reasons,
    };
  };
  let placed = place(0);
  // The expert LRU (device tensors) exists only when MoE layers stream from disk: place again with it reserved.
  if (input.expertCacheBytes > 0 && input.moe && placed.residency.includes("disk")) {
    try {
      placed = place(input.expertCacheBytes);
    } catch (error) {
      if (!(error instanceof OllmError)) throw error;
      throw new OllmError(
        error.code,
        `${error.message} (with an expert cache of ${formatBytes(input.expertCacheBytes)} on the GPU)`,
        { hint: "Lower expertCacheSize (--expert-cache), or raise gpuMemoryBudget." },
      );
    }
  }
  if (placed.host.total > input.hostBudgetBytes)
    throw new OllmError(
      "OUT_OF_MEMORY_BUDGET",
      `${input.model}: this placement needs ${formatBytes(placed.host.total)} of host memory (layers ${formatBytes(placed.host.weights - placed.host.streaming)} + disk read buffers ${formatBytes(placed.host.streaming)} + KV cache ${formatBytes(kvHost)}), more than the ${formatBytes(input.hostBudgetBytes)} host budget`,
      { hint: "Keep fewer layers in host memory (offloadCpuLayers), or raise hostMemoryBudget." },
    );
  return placed;
}
