import { describe, expect, it } from "vitest";
import { dequantizeBlock, quantizeBlock } from "../../src/engine/kv/cold-tiers.js";
import { predictKvBytes, selectKvStrategy } from "../../src/engine/kv/strategies.js";
import { defaultHostBudget, offloadLayerIndices, planResidency } from "../../src/engine/residency/policy.js";
import { specializationPasses } from "../../src/engine/residency/specialization.js";

const MiB = 2 ** 20;
const GiB = 2 ** 30;

describe("offload policies", () => {
  it("pick prefix, suffix, middle band and spread layers", () => {
    expect(offloadLayerIndices(3, 10, "prefix")).toEqual([0, 1, 2]);
    expect(offloadLayerIndices(3, 10, "suffix")).toEqual([7, 8, 9]);
    expect(offloadLayerIndices(3, 10, "middle-band")).toEqual([3, 4, 5]);
    expect(offloadLayerIndices(4, 10, "auto")).toEqual([3, 4, 5, 6]);
    expect(offloadLayerIndices(4, 16, "spread")).toEqual([2, 6, 10, 14]);
    expect(offloadLayerIndices(20, 4, "prefix")).toEqual([0, 1, 2, 3]);
    expect(offloadLayerIndices(0, 4, "suffix")).toEqual([]);
  });
});

describe("planResidency", () => {
  const layers = Array(24).fill(100 * MiB);
  const base = { layerBytes: layers, globalBytes: 200 * MiB, kvBytes: 50 * MiB, activationBytes: 20 * MiB };

  it("keeps everything in host memory when it fits", () => {
    const p = planResidency({ ...base, hostBudgetBytes: 4 * GiB });
    expect(p.residency.every((r) => r === "host")).toBe(true);
    expect(p.bytesReadPerToken).toBe(0);
    expect(p.predictedPeak.hostBytes).toBe(2670 * MiB);
  });

  it("streams what does not fit, spreading resident layers, and stays within the budget", () => {
    const p = planResidency({ ...base, hostBudgetBytes: 1 * GiB });
    const host = p.residency.flatMap((r, i) => (r === "host" ? [i] : []));
    // 1024 − 270 − 2·100 (staging + device copy) = 554 MiB → 5 layers, evenly spread.
    expect(host).toEqual([2, 7, 12, 16, 21]);
    expect(p.bytesReadPerToken).toBe(19 * 100 * MiB);
    expect(p.streamingBytes).toBe(200 * MiB);
    expect(p.predictedPeak.hostBytes).toBeLessThanOrEqual(1 * GiB);
    expect(p.reasons.join(" ")).toMatch(/stream from disk/);
  });

  it("obeys explicit offloadCpuLayers with its policy, and checks the budget", () => {
    const p = planResidency({
      ...base,
      hostBudgetBytes: 2 * GiB,
      offloadCpuLayers: 4,
      offloadCpuPolicy: "suffix",
    });
    expect(p.residency.slice(20)).toEqual(["host", "host", "host", "host"]);
    expect(p.residency.slice(0, 20).every((r) => r === "disk")).toBe(true);
    expect(() => planResidency({ ...base, hostBudgetBytes: 1 * GiB, offloadCpuLayers: 20 })).toThrow(
      /more than the 1024 MiB budget/,
    );
  });

  it("fails with OUT_OF_MEMORY_BUDGET when even streaming does not fit", () => {
    expect(() => planResidency({ ...base, hostBudgetBytes: 300 * MiB })).toThrow(
      expect.objectContaining({ code: "OUT_OF_MEMORY_BUDGET" }),
    );
  });

  it("with a GPU: device first, then host, then disk; explicit GPU layers", () => {
    const p = planResidency({ ...base, gpuBudgetBytes: 1 * GiB, hostBudgetBytes: 1 * GiB });
    const count = (r: string) => p.residency.filter((x) => x === r).length;
    expect(p.residency.slice(0, 6)).toEqual(Array(6).fill("device"));
    expect(count("device")).toBe(6);
    expect(count("host")).toBe(9);
    expect(count("disk")).toBe(9);
    expect(p.predictedPeak.gpuBytes).toBeLessThanOrEqual(1 * GiB);
    const q = planResidency({
      ...base,
      gpuBudgetBytes: 8 * GiB,
      hostBudgetBytes: 8 * GiB,
      offloadGpuLayers: 10,
    });
    expect(q.residency.filter((r) => r === "device")).toHaveLength(10);
    expect(q.residency.slice(10).every((r) => r === "host")).toBe(true);
    const c = planResidency({
      ...base,
      gpuBudgetBytes: 8 * GiB,
      hostBudgetBytes: 8 * GiB,
      offloadCpuLayers: 4,
    });
    expect(c.residency.flatMap((r, i) => (r === "host" ? [i] : []))).toEqual([10, 11, 12, 13]);
  });

  it("MoE: experts of streamed layers count at the routed share", () => {
    const p = planResidency({
      layerBytes: [1000, 1000],
      expertBytes: [800, 800],
      expertFraction: 0.25,
      globalBytes: 0,
      hostBudgetBytes: 800,
    });
    expect(p.residency).toEqual(["disk", "disk"]);
    expect(p.bytesReadPerToken).toBe(2 * (200 + 200));
    expect(p.streamingBytes).toBe(400);
  });

  it("default host budget is available memory minus a margin", () => {
    expect(defaultHostBudget(10 * GiB)).toBe(9 * GiB);
    expect(defaultHostBudget(1 * GiB)).toBe(512 * MiB);
  });
});

describe("selectKvStrategy", () => {
  const model = { kvBytesPerToken: 64 * 1024, numKvLayers: 16, headDim: 64 };
  // 375 MiB of f32 KV; resident rounds up to 8192 rows (512 MiB), one layer's gather buffer is 32 MiB.
  const ctx = 6000;

  it("latency: resident when it fits, then paged, int8, write-back", () => {
    const pick = (budget: number) =>
      selectKvStrategy({ ...model, profile: "latency", contextTokens: ctx, memoryBudgetBytes: budget })
        .strategy;
    expect(pick(1 * GiB)).toBe("resident");
    expect(pick(450 * MiB)).toBe("paged");
    expect(pick(300 * MiB)).toBe("quantized-cold-tier");
    expect(pick(160 * MiB)).toBe("tiered-write-back");
    // 3 hot blocks: their buffer holds 3 blocks of 128, a partial one and a 512-token prefill chunk (1024
    // rows, 64 MiB) beside three 32 MiB gather/read buffers.
    expect(
      selectKvStrategy({ ...model, profile: "latency", contextTokens: ctx, memoryBudgetBytes: 160 * MiB })
        .hotBlocks,
    ).toBe(3);
  });

  it("balanced keeps headroom; capacity prefers int8 then disk", () => {
    const sel = (profile: "balanced" | "capacity", budget: number, extra = {}) =>
      selectKvStrategy({ ...model, profile, contextTokens: ctx, memoryBudgetBytes: budget, ...extra });
    expect(sel("balanced", 1 * GiB).strategy).toBe("resident");
    expect(sel("balanced", 900 * MiB).strategy).toBe("paged");
    expect(sel("balanced", 300 * MiB).strategy).toBe("quantized-cold-tier");
    expect(sel("balanced", 300 * MiB, { textOnly: false }).strategy).toBe("tiered-write-back");
    expect(sel("capacity", 2 * GiB).strategy).toBe("quantized-cold-tier");
    expect(sel("capacity", 2 * GiB, { textOnly: false }).strategy).toBe("paged");
    expect(sel("capacity", 140 * MiB).strategy).toBe("streamed-segmented");
    expect(sel("capacity", 140 * MiB, { numKvLayers: 80 }).strategy).toBe("log-structured-journal");
  });

  it("every pick's prediction fits its budget; block and chunk sizes follow the context", () => {
    for (const profile of ["balanced", "latency", "capacity", "bounded-window"] as const)
      for (const budget of [160 * MiB, 300 * MiB, 1 * GiB, 4 * GiB]) {
        const s = selectKvStrategy({ ...model, profile, contextTokens: ctx, memoryBudgetBytes: budget });
        expect(s.predicted.memoryBytes, `${profile} ${budget}`).toBeLessThanOrEqual(budget);
        expect(s.blockTokens).toBe(128);
        expect(s.reason.length).toBeGreaterThan(10);
      }
    expect(
      selectKvStrategy({ ...model, profile: "balanced", contextTokens: 1024, memoryBudgetBytes: GiB })
        .blockTokens,
    ).toBe(32);
    const chunk = selectKvStrategy({
      ...model,
      profile: "balanced",
      contextTokens: ctx,
      memoryBudgetBytes: GiB,
      activationBytesPerToken: 100_000,
      activationBudgetBytes: 32 * MiB,
    });
    expect(chunk.prefillChunkTokens).toBe(256);
  });

  it("a window selects the ring; bounded-window sizes it from the budget; nothing fitting fails", () => {
    const w = selectKvStrategy({
      ...model,
      profile: "balanced",
      contextTokens: ctx,
      memoryBudgetBytes: GiB,
      windowTokens: 1024,
    });
    expect(w).toMatchObject({ strategy: "sliding-window-ring-buffer", windowTokens: 1024 });
    const b = selectKvStrategy({
      ...model,
      profile: "bounded-window",
      contextTokens: ctx,
      memoryBudgetBytes: 256 * MiB,
    });
    expect(b.strategy).toBe("sliding-window-ring-buffer");
    expect(b.windowTokens).toBe(1536);
    expect(b.predicted.memoryBytes).toBeLessThanOrEqual(256 * MiB);
    expect(() =>
      selectKvStrategy({ ...model, profile: "capacity", contextTokens: ctx, memoryBudgetBytes: 4 * MiB }),
    ).toThrow(expect.objectContaining({ code: "OUT_OF_MEMORY_BUDGET" }));
  });

  it("predictions of the block strategies", () => {
    const p = (s: Parameters<typeof predictKvBytes>[0]) =>
      predictKvBytes(s, {
        tokens: 1000,
        kvBytesPerToken: 1000,
        numKvLayers: 10,
        blockTokens: 100,
        chunkTokens: 10,
      });
    expect(p("resident").memoryBytes).toBe(1024 * 1000);
    expect(p("chunked").memoryBytes).toBe(1000 * 1000);
    expect(p("streamed-segmented").diskBytes).toBe(1000 * 1000);
    expect(p("quantized-cold-tier").memoryBytes).toBeLessThan(p("paged").memoryBytes);
    expect(p("tiered-write-back").diskBytes).toBe(200 * 1000);
  });
});

describe("int8 cold blocks", () => {
  it("round-trip within half a quantization step, with outlier channels", () => {
    const rows = 16;
    const headDim = 8;
    const width = 4 * headDim;
    let seed = 1;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31 - 0.5;
    };
    const k = Float32Array.from({ length: rows * width }, (_, i) => rand() * (i % width === 3 ? 50 : 1));
    const v = Float32Array.from({ length: rows * width }, () => rand());
    const q = quantizeBlock(k, v, rows, width, headDim);
    const k2 = new Float32Array(k.length);
    const v2 = new Float32Array(v.length);
    dequantizeBlock(q, rows, width, headDim, k2, v2);
    for (let i = 0; i < k.length; i++) {
      expect(Math.abs(k2[i] - k[i])).toBeLessThanOrEqual(q.kScale[i % width] / 2 + 1e-6);
      const r = Math.floor(i / width);
      const h = Math.floor((i % width) / headDim);
      expect(Math.abs(v2[i] - v[i])).toBeLessThanOrEqual(q.vScale[r * 4 + h] / 2 + 1e-6);
    }
    // Per-channel key scales keep the outlier channel from flattening the others.
    expect(q.kScale[3]).toBeGreaterThan(20 * q.kScale[0]);
  });
});

describe("specialization passes", () => {
  const base = {
    enabled: true,
    residency: ["host", "disk", "disk"] as const,
    gpu: false,
    kvStrategy: "streamed-segmented" as const,
    moe: true,
    multimodalCheckpoint: true,
    prefillChunkTokens: 512,
    contextTokens: 4096,
  };

  it("lists the passes a configuration applies, none when disabled", () => {
    const passes = specializationPasses(base).map((p) => p.pass);
    expect(passes).toEqual([
      "disk-cache",
      "cpu-offload",
      "mlp-chunking",
      "moe-routing",
      "attention-replacement",
      "multimodal-shell",
    ]);
    expect(specializationPasses({ ...base, enabled: false })).toEqual([]);
    const gpu = specializationPasses({
      ...base,
      gpu: true,
      residency: ["device", "host", "host"],
      kvStrategy: "resident",
      moe: false,
      multimodalCheckpoint: false,
    });
    expect(gpu.map((p) => p.pass)).toEqual(["cpu-offload", "gpu-offload", "mlp-chunking"]);
  });
});
