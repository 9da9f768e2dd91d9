import { OllmError } from "../../errors.js";

/** Where a layer's weights live while the model is loaded. On the CPU backend "device" is host memory. */
export type Residency = "device" | "host" | "disk";

/** oLLM's CPU offload placement policies. */
export type OffloadPolicy = "auto" | "prefix" | "suffix" | "middle-band";

/** The concrete orders: the three named ones, and "spread" (evenly among the others; auto under a budget). */
export type PlacementOrder = "prefix" | "suffix" | "middle-band" | "spread";

/**
 * The `count` layers (of `total`) a policy picks, ascending: prefix = the first, suffix = the last,
 * middle-band = a contiguous band centred in the model, spread = evenly spaced. "auto" is middle-band
 * (what the runtime planner documents for --offload-cpu-policy auto).
 */
export function offloadLayerIndices(
  count: number,
  total: number,
  policy: OffloadPolicy | PlacementOrder,
): number[] {
  const n = Math.max(0, Math.min(Math.floor(count), total));
  const order = policy === "auto" ? "middle-band" : policy;
  if (n === 0) return [];
  switch (order) {
    case "prefix":
      return Array.from({ length: n }, (_, i) => i);
    case "suffix":
      return Array.from({ length: n }, (_, i) => total - n + i);
    case "middle-band": {
      const start = Math.floor((total - n) / 2);
      return Array.from({ length: n }, (_, i) => start + i);
    }
    case "spread":
      return Array.from({ length: n }, (_, i) => Math.floor(((i + 0.5) * total) / n));
  }
}

export interface ResidencyPlanInput {
  /** Weight bytes of each decoder layer (as stored). */
  layerBytes: readonly number[];
  /**
   * Bytes of each layer's MoE expert tensors (part of layerBytes). When a layer streams they are read per
   * routed expert, not with the layer. Default: none.
   */
  expertBytes?: readonly number[];
  /** Share of a layer's experts one token routes to (experts per token / experts), for bytes read per token. */
  expertFraction?: number;
  /** Embeddings, final norm, LM head: always resident on the compute device. */
  globalBytes: number;
  /** Host memory the process may use for weights, staging, KV and activations. */
  hostBudgetBytes: number;
  /** GPU memory for this model; absent or 0 when the backend computes from host memory (CPU). */
  gpuBudgetBytes?: number;
  /** KV cache and activation bytes the plan reserves on the compute device (host on the CPU). */
  kvBytes?: number;
  activationBytes?: number;
  /** Host bytes the streamed-expert LRU may use (counted only when some MoE layer streams). */
  expertCacheBytes?: number;
  /** --offload-cpu-layers: exactly this many layers kept in host memory (the rest on the GPU or disk). */
  offloadCpuLayers?: number;
  offloadCpuPolicy?: OffloadPolicy;
  /** --offload-gpu-layers: exactly this many layers (the first ones) resident on the GPU. */
  offloadGpuLayers?: number;
}

export interface ResidencyPlan {
  residency: Residency[];
  /** Bytes of streamed layer data per token (the disk layers, experts at `expertFraction`). */
  bytesReadPerToken: number;
  /** Staging buffer and the device copy of the largest streamed layer (0 when nothing streams). */
  streamingBytes: number;
  predictedPeak: { hostBytes: number; gpuBytes: number };
  reasons: string[];
}

const MiB = 2 ** 20;

/**
 * Activation memory the CPU backend holds beyond what is live: V8 frees large typed arrays (activations)
 * only at garbage collection, which it starts after roughly this much external memory was allocated.
 * Planners add it to their activation estimate (measured: 20–70 MiB over the live set on the bench).
 */
export const V8_GC_SLACK_BYTES = 64 * MiB;

const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;

/** Layers of `order` to keep, largest count first, that fit `room` bytes. */
function fitLayers(
  candidates: readonly number[],
  bytes: readonly number[],
  room: number,
  order: PlacementOrder,
): number[] {
  for (let k = candidates.length; k > 0; k--) {
    const picked = offloadLayerIndices(k, candidates.length, order).map((i) => candidates[i]);
    if (picked.reduce((s, i) => s + bytes[i], 0) <= room) return picked;
  }
  return [];
}

/**
 * Where each layer's weights live under byte budgets, and the predicted peak. Explicit counts
 * (offloadGpuLayers / offloadCpuLayers) are obeyed and checked; otherwise the budgets decide: the GPU
 * (if any) takes as many layers as fit, host memory the next, and the rest stream from disk, which costs
 * a staging buffer plus a device copy of the largest streamed layer. With policy "auto" the resident
 * layers are spread evenly between streamed ones, so each disk read hides behind resident compute.
 * Throws OUT_OF_MEMORY_BUDGET when even streaming every layer does not fit.
 */
export function planResidency(input: ResidencyPlanInput): ResidencyPlan {
  const L = input.layerBytes.length;
  const bytes = input.layerBytes;
  const experts = input.expertBytes ?? bytes.map(() => 0);
  const unit = bytes.map((b, i) => b - (experts[i] ?? 0));
  const gpu = (input.gpuBudgetBytes ?? 0) > 0;
  const kv = input.kvBytes ?? 0;
  const act = input.activationBytes ?? 0;
  const policy = input.offloadCpuPolicy ?? "auto";
  const budgetOrder: PlacementOrder = policy === "auto" ? "spread" : policy;
  const reasons: string[] = [];
  const residency: Residency[] = bytes.map(() => "disk");
  const all = Array.from({ length: L }, (_, i) => i);
  const maxUnit = Math.max(0, ...unit);
  const hasExperts = experts.some((e) => e > 0);
  const expertCache = hasExperts ? (input.expertCacheBytes ?? 0) : 0;

  if (!gpu) {
    // The CPU backend computes from host memory: layers are resident ("host") or streamed ("disk").
    const base = input.globalBytes + kv + act;
    if (input.offloadCpuLayers !== undefined) {
      for (const i of offloadLayerIndices(input.offloadCpuLayers, L, policy)) residency[i] = "host";
      reasons.push(
        `offloadCpuLayers=${input.offloadCpuLayers} (${policy}): those layers stay in host memory, the others stream from disk`,
      );
    } else if (base + bytes.reduce((s, b) => s + b, 0) <= input.hostBudgetBytes) {
      residency.fill("host");
      reasons.push(`every layer fits the ${mib(input.hostBudgetBytes)} host budget`);
    } else {
      const room = input.hostBudgetBytes - base - 2 * maxUnit - expertCache;
      if (room < 0)
        throw new OllmError(
          "OUT_OF_MEMORY_BUDGET",
          `even streaming every layer from disk needs ${mib(base + 2 * maxUnit + expertCache)} of host memory (globals ${mib(input.globalBytes)}, KV ${mib(kv)}, activations ${mib(act)}, two buffers of the largest layer ${mib(2 * maxUnit)}), more than the ${mib(input.hostBudgetBytes)} budget`,
          { hint: "raise hostMemoryBudget, or lower contextTokens / prefillChunkTokens" },
        );
      for (const i of fitLayers(all, bytes, room, budgetOrder)) residency[i] = "host";
      reasons.push(
        `${residency.filter((r) => r === "host").length} of ${L} layers fit the ${mib(input.hostBudgetBytes)} host budget (${budgetOrder}); the others stream from disk`,
      );
    }
  } else {
    const gpuBudget = input.gpuBudgetBytes ?? 0;
    const gpuBase = input.globalBytes + kv + act;
    let onGpu: number[];
    if (input.offloadGpuLayers !== undefined) {
      onGpu = offloadLayerIndices(input.offloadGpuLayers, L, "prefix");
      reasons.push(
        `offloadGpuLayers=${input.offloadGpuLayers}: the first ${onGpu.length} layers stay on the GPU`,
      );
    } else if (input.offloadCpuLayers !== undefined) {
      const onCpu = new Set(offloadLayerIndices(input.offloadCpuLayers, L, policy));
      onGpu = all.filter((i) => !onCpu.has(i));
      reasons.push(
        `offloadCpuLayers=${input.offloadCpuLayers} (${policy}): those layers in host memory, the rest on the GPU`,
      );
    } else {
      const allFit = gpuBase + bytes.reduce((s, b) => s + b, 0) <= gpuBudget;
      onGpu = allFit ? all : fitLayers(all, bytes, gpuBudget - gpuBase - maxUnit - expertCache, "prefix");
      reasons.push(`${onGpu.length} of ${L} layers fit the ${mib(gpuBudget)} GPU budget`);
    }
    for (const i of onGpu) residency[i] = "device";
    const rest = all.filter((i) => residency[i] !== "device");
    if (input.offloadCpuLayers !== undefined) {
      for (const i of rest) residency[i] = "host";
    } else {
      const room = input.hostBudgetBytes - maxUnit;
      for (const i of fitLayers(rest, bytes, room, budgetOrder)) residency[i] = "host";
      if (rest.length)
        reasons.push(
          `${residency.filter((r) => r === "host").length} layers in host memory, uploaded per use; ${residency.filter((r) => r === "disk").length} stream from disk`,
        );
    }
  }

  const disk = all.filter((i) => residency[i] === "disk");
  const fraction = input.expertFraction ?? 1;
  const bytesReadPerToken = disk.reduce((s, i) => s + unit[i] + experts[i] * fraction, 0);
  const streamedUnit = Math.max(0, ...disk.map((i) => unit[i]));
  const uploadedUnit = Math.max(
    0,
    ...all.filter((i) => residency[i] !== "device" && gpu).map((i) => unit[i]),
  );
  const sum = (r: Residency) => all.filter((i) => residency[i] === r).reduce((s, i) => s + bytes[i], 0);
  const streamsExperts = disk.some((i) => experts[i] > 0);
  const lru = streamsExperts ? (input.expertCacheBytes ?? 0) : 0;
  let hostBytes: number;
  let gpuBytes = 0;
  let streamingBytes: number;
  if (!gpu) {
    streamingBytes = disk.length ? 2 * streamedUnit : 0;
    hostBytes = input.globalBytes + kv + act + sum("host") + sum("device") + streamingBytes + lru;
  } else {
    streamingBytes = streamedUnit + uploadedUnit;
    hostBytes = sum("host") + streamedUnit;
    gpuBytes = input.globalBytes + kv + act + sum("device") + uploadedUnit + lru;
    if (gpuBytes > (input.gpuBudgetBytes ?? 0))
      throw new OllmError(
        "OUT_OF_MEMORY_BUDGET",
        `the GPU needs ${mib(gpuBytes)} for this placement, more than its ${mib(input.gpuBudgetBytes ?? 0)} budget`,
        { hint: "lower offloadGpuLayers, contextTokens or prefillChunkTokens, or raise gpuMemoryBudget" },
      );
  }
  if (hostBytes > input.hostBudgetBytes)
    throw new OllmError(
      "OUT_OF_MEMORY_BUDGET",
      `this placement needs ${mib(hostBytes)} of host memory, more than the ${mib(input.hostBudgetBytes)} budget`,
      { hint: "offload fewer layers to host memory (offloadCpuLayers), or raise hostMemoryBudget" },
    );
  if (disk.length)
    reasons.push(
      `${disk.length} layers stream from disk: ${mib(bytesReadPerToken)} read per token, double-buffered (${mib(streamingBytes)} of buffers)`,
    );
  return { residency, bytesReadPerToken, streamingBytes, predictedPeak: { hostBytes, gpuBytes }, reasons };
}

/** The default host budget: measured available memory minus a safety margin (default 10%, at least 512 MiB). */
export function defaultHostBudget(
  availableBytes: number,
  margin = Math.max(512 * MiB, availableBytes * 0.1),
): number {
  return Math.max(0, Math.floor(availableBytes - margin));
}
