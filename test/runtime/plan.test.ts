import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RuntimeConfigInput, validateRuntimeConfig } from "../../src/config/runtime-config.js";
import { OllmError } from "../../src/errors.js";
import type { MachineInfo } from "../../src/runtime/machine.js";
import { formatBytes } from "../../src/config/memory.js";
import { defaultHostBudget } from "../../src/engine/residency/index.js";
import { engineOptions } from "../../src/runtime/loader.js";
import {
  IMPLEMENTED_KV_STRATEGIES,
  type PlanOptions,
  planDescriptionJsonSchema,
  planRuntime,
  RuntimePlanSchema,
} from "../../src/runtime/plan.js";
import { ModelResolver } from "../../src/runtime/resolver.js";
import { copyModel, fixture, removeDir, tempDir } from "./helpers.js";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const machine: MachineInfo = {
  hostMemoryBytes: 32 * GiB,
  availableHostMemoryBytes: 16 * GiB,
  cpuCount: 8,
  gpus: [],
};
const resolver = new ModelResolver();

async function plan(config: RuntimeConfigInput, options: PlanOptions = {}, on: MachineInfo = machine) {
  const c = validateRuntimeConfig(config);
  return planRuntime(c, await resolver.resolve(c.modelReference, c.modelsDir), on, options);
}

async function planError(
  config: RuntimeConfigInput,
  code: string,
  options: PlanOptions = {},
): Promise<OllmError> {
  try {
    await plan(config, options);
  } catch (error) {
    expect(error).toBeInstanceOf(OllmError);
    expect((error as OllmError).code, (error as Error).message).toBe(code);
    return error as OllmError;
  }
  throw new Error(`expected ${code}`);
}

describe("planRuntime", () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir();
  });
  afterAll(() => removeDir(root));

  const llama = { modelReference: fixture("tiny-llama") };

  it("plans the cpu backend with every layer resident, resident KV and a reason for every choice", async () => {
    const p = await plan(llama);
    expect(RuntimePlanSchema.parse(p)).toEqual(p);
    expect(p).toMatchObject({
      backend: "cpu",
      device: "cpu",
      model: {
        name: "tiny-llama",
        family: "llama",
        architecture: "LlamaForCausalLM",
        path: fixture("tiny-llama"),
      },
      modalities: { requested: ["text"], model: ["text"] },
      specialization: { enabled: true, state: "applied", passes: ["mlp-chunking"] },
      kvCache: {
        requested: "auto",
        profile: "balanced",
        selected: "resident",
        applied: "resident",
        contextTokens: 1024,
        windowTokens: null,
        cacheDir: null,
      },
      prefillChunkTokens: 512,
    });
    expect(p.layers.map((l) => l.residency)).toEqual(["host", "host", "host"]);
    expect(p.memory.hostBudgetBytes).toBe(defaultHostBudget(16 * GiB));
    expect(p.memory.bytesReadPerToken).toBe(0);
    const peak = p.memory.predictedPeak.host;
    expect(peak.weights).toBe(p.model.weightBytes);
    expect(peak.streaming).toBe(0);
    expect(peak.kvCache).toBe(1024 * p.kvCache.bytesPerToken);
    expect(peak.kvCache).toBe(p.kvCache.predicted.memoryBytes);
    expect(peak.total).toBe(peak.weights + peak.kvCache + peak.activations);
    expect(p.memory.predictedPeak.gpu.total).toBe(0);
    const subjects = p.reasons.map((r) => r.subject);
    for (const s of [
      "model",
      "modalities",
      "backend",
      "device",
      "specialization",
      "contextTokens",
      "prefillChunkTokens",
      "kvCache",
      "residency",
      "hostMemoryBudget",
      "memory",
    ])
      expect(subjects).toContain(s);
    for (const r of p.reasons) expect(r.reason.length).toBeGreaterThan(5);
  });

  it("chooses the KV strategy with the engine's selector, and honours an explicit one", async () => {
    const balanced = await plan(llama);
    expect(balanced.kvCache).toMatchObject({
      selected: "resident",
      applied: "resident",
      fallbackChain: ["resident"],
    });
    expect(balanced.reasons.find((r) => r.subject === "kvCache")?.reason).toMatch(
      /balanced: the cache .* half/,
    );
    const capacity = await plan({ ...llama, strategySelectorProfile: "capacity" });
    expect(capacity.kvCache).toMatchObject({ applied: "quantized-cold-tier", hotBlocks: 1 });
    expect(capacity.specialization.passes).toContain("attention-replacement");
    const bounded = await plan({ ...llama, strategySelectorProfile: "bounded-window" });
    expect(bounded.kvCache.applied).toBe("sliding-window-ring-buffer");
    expect(bounded.kvCache.windowTokens).toBeGreaterThanOrEqual(64);
    const window = await plan({ ...llama, kvCacheWindowTokens: 64 });
    expect(window.kvCache).toMatchObject({ applied: "sliding-window-ring-buffer", windowTokens: 64 });
    expect(window.reasons.find((r) => r.subject === "kvCacheWindowTokens")?.reason).toMatch(/last 64 tokens/);
    for (const strategy of IMPLEMENTED_KV_STRATEGIES) {
      const p = await plan({ ...llama, kvCacheStrategy: strategy, cacheDir: "/tmp/kv" });
      expect(p.kvCache.applied).toBe(strategy);
      expect(p.reasons.find((r) => r.subject === "kvCache")?.reason).toBe("requested by the config");
      const disk = ["streamed-segmented", "log-structured-journal", "tiered-write-back"].includes(strategy);
      expect(p.reasons.find((r) => r.subject === "cacheDir")?.decision).toBe(disk ? "/tmp/kv" : "unused");
      expect(p.kvCache.predicted.diskBytes > 0).toBe(disk);
      if (disk) expect(p.specialization.passes).toContain("disk-cache");
    }
    const ring = await plan({
      ...llama,
      kvCacheStrategy: "sliding-window-ring-buffer",
      kvCacheWindowTokens: 32,
    });
    expect(ring.kvCache.windowTokens).toBe(32);
  });

  it("honours context, prefill chunk and budgets; no-specialization plans the plain path", async () => {
    const p = await plan({
      ...llama,
      contextTokens: 256,
      prefillChunkTokens: 64,
      hostMemoryBudget: "50%",
      gpuMemoryBudget: "1GiB",
      useSpecialization: false,
      cacheDir: "/tmp/kv",
    });
    expect(p.kvCache.contextTokens).toBe(256);
    expect(p.prefillChunkTokens).toBe(64);
    expect(p.memory.hostBudgetBytes).toBe(16 * GiB);
    expect(p.memory.gpuBudgetBytes).toBe(GiB);
    expect(p.specialization).toEqual({ enabled: false, state: "disabled", passes: [] });
    expect(p.kvCache.applied).toBe("resident");
    expect(p.reasons.find((r) => r.subject === "gpuMemoryBudget")?.decision).toBe("unused");
    expect(p.reasons.find((r) => r.subject === "cacheDir")?.decision).toBe("unused");
    const plain = await plan({ ...llama, useSpecialization: false, offloadCpuLayers: 1 });
    expect(plain.prefillChunkTokens).toBe(plain.kvCache.contextTokens);
    expect(plain.layers.every((l) => l.residency === "host")).toBe(true);
    expect(plain.reasons.find((r) => r.subject === "offloadCpuLayers")?.decision).toBe("ignored");
    const chunked = await plan({ ...llama, contextTokens: 256 });
    expect(chunked.prefillChunkTokens).toBe(256);
  });

  it("keeps offloadCpuLayers in host memory and streams the others from disk on the cpu", async () => {
    const suffix = await plan({ ...llama, offloadCpuLayers: 1, offloadCpuPolicy: "suffix" });
    expect(suffix.layers.map((l) => l.residency)).toEqual(["disk", "disk", "host"]);
    expect(suffix.offload.cpuLayers).toMatchObject({
      requested: 1,
      resolvedPolicy: "suffix",
      layerIndices: [2],
      effective: true,
    });
    expect(suffix.memory.bytesReadPerToken).toBe(suffix.layers[0].bytes + suffix.layers[1].bytes);
    expect(suffix.memory.predictedPeak.host.streaming).toBe(2 * suffix.layers[0].bytes);
    expect(suffix.specialization.passes).toEqual(expect.arrayContaining(["disk-cache", "cpu-offload"]));
    const middle = await plan({ ...llama, offloadCpuLayers: 1 });
    expect(middle.offload.cpuLayers).toMatchObject({ resolvedPolicy: "middle-band", layerIndices: [1] });
    expect(middle.layers.map((l) => l.residency)).toEqual(["disk", "host", "disk"]);
  });

  it("streams layers from disk when the host budget is too small for all of them", async () => {
    const config = { ...llama, kvCacheStrategy: "resident" as const };
    const resident = await plan(config);
    const budget = resident.memory.predictedPeak.host.total - 1;
    const p = await plan({ ...config, hostMemoryBudget: budget });
    expect(p.layers.some((l) => l.residency === "disk")).toBe(true);
    expect(p.memory.bytesReadPerToken).toBeGreaterThan(0);
    expect(p.memory.predictedPeak.host.total).toBeLessThanOrEqual(budget);
    expect(p.reasons.find((r) => r.subject === "residency")?.reason).toMatch(/stream from disk/);
    expect(p.specialization.passes).toContain("disk-cache");
  });

  it("fails when even streaming cannot fit the budget, saying what to change", async () => {
    const error = await planError({ ...llama, hostMemoryBudget: "64KiB" }, "OUT_OF_MEMORY_BUDGET");
    expect(error.message).toMatch(/tiny-llama: even streaming every layer from disk needs/);
    expect(error.hint).toMatch(/raise hostMemoryBudget/);
    const plain = await plan({ ...llama, useSpecialization: false });
    const tight = plain.memory.predictedPeak.host.weights + 1024;
    const kvError = await planError(
      { ...llama, useSpecialization: false, hostMemoryBudget: tight },
      "OUT_OF_MEMORY_BUDGET",
    );
    expect(kvError.message).toMatch(/needs .* of host memory \(weights .* \+ KV cache .* for 1024 tokens/);
    expect(kvError.hint).toMatch(/Raise hostMemoryBudget or lower contextTokens, turn specialization on/);
  });

  it("plans WebGPU when it is asked for (backend webgpu or a GPU device), the CPU under auto", async () => {
    const gpu = await plan({ ...llama, backend: "webgpu" });
    expect([gpu.backend, gpu.device]).toEqual(["webgpu", "gpu"]);
    expect(gpu.reasons.find((r) => r.subject === "backend")?.reason).toBe("requested by the config");
    const second = await plan({ ...llama, device: "gpu:1" });
    expect([second.backend, second.device]).toEqual(["webgpu", "gpu:1"]);
    const auto = await plan(llama);
    expect([auto.backend, auto.device]).toEqual(["cpu", "cpu"]);
    expect(auto.reasons.find((r) => r.subject === "backend")?.reason).toMatch(/--backend webgpu/);
    expect(auto.reasons.find((r) => r.subject === "backend")?.reason).toMatch(/--gpu-memory-budget/);
  });

  it("refuses what the engine or the planner cannot do", async () => {
    // auto plans on the cpu: layers on a GPU need the webgpu backend.
    const gpuLayers = await planError({ ...llama, offloadGpuLayers: 2 }, "BACKEND_UNAVAILABLE");
    expect(gpuLayers.message).toMatch(/offloadGpuLayers=2 needs a GPU.*auto plans on the cpu/);
    expect(gpuLayers.hint).toMatch(/--backend webgpu/);
    await planError({ ...llama, contextTokens: 5000 }, "INVALID_CONFIG");
    await planError({ ...llama, backend: "tpu" } as unknown as RuntimeConfigInput, "INVALID_CONFIG");
  });

  it("refuses inputs the model or the engine cannot take", async () => {
    expect(
      (await planError(llama, "UNSUPPORTED_MODALITY", { modalities: ["text", "image"] })).message,
    ).toMatch(/tiny-llama cannot take image input/);
    await planError({ ...llama, multimodal: true }, "UNSUPPORTED_MODALITY");
    const mm = { modelReference: fixture("tiny-gemma3-mm") };
    expect((await plan(mm)).modalities).toEqual({ requested: ["text"], model: ["text", "image"] });
    expect((await planError(mm, "UNSUPPORTED_MODALITY", { modalities: ["image"] })).message).toMatch(
      /image input is not implemented by the engine yet/,
    );
    await planError({ ...mm, multimodal: true }, "UNSUPPORTED_MODALITY");
    await planError(mm, "UNSUPPORTED_MODALITY", { modalities: ["audio"] });
  });

  it("refuses models that are missing, unsupported, broken or without a tokenizer", async () => {
    const missing = await planError({ modelReference: "llama3-8B-chat", modelsDir: root }, "MODEL_NOT_FOUND");
    expect(missing.hint).toBe("Download it with: ollm models download llama3-8B-chat");
    const mystery = await copyModel("tiny-llama", join(root, "mystery"), {
      patchConfig: (c) => {
        c.architectures = ["MysteryForCausalLM"];
      },
    });
    await planError({ modelReference: mystery }, "UNSUPPORTED_ARCHITECTURE");
    const noTok = await copyModel("tiny-qwen3", join(root, "no-tokenizer"), { drop: ["tokenizer.json"] });
    await planError({ modelReference: noTok }, "INVALID_TOKENIZER");
    const broken = await copyModel("tiny-llama", join(root, "broken"), {
      drop: ["model-00002-of-00004.safetensors"],
    });
    await planError({ modelReference: broken }, "INVALID_CHECKPOINT");
  });

  it("has a JSON Schema for describePlan, generated from zod", () => {
    const schema = planDescriptionJsonSchema() as {
      $schema: string;
      required: string[];
      properties: Record<string, { properties?: Record<string, unknown> }>;
    };
    expect(schema.$schema).toMatch(/json-schema\.org/);
    expect(schema.required).toEqual(["schemaVersion", "runtimeConfig", "resolvedModel", "plan"]);
    expect(Object.keys(schema.properties.plan.properties ?? {})).toEqual(
      expect.arrayContaining([
        "backend",
        "device",
        "layers",
        "kvCache",
        "memory",
        "reasons",
        "specialization",
      ]),
    );
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });
});

describe("planRuntime: GPU memory (webgpu)", () => {
  const gpu = { modelReference: fixture("tiny-llama"), backend: "webgpu" as const };
  // An explicit KV strategy keeps the KV cache's bytes the same under every budget below.
  const resident = { ...gpu, kvCacheStrategy: "resident" as const };
  const reason = (p: Awaited<ReturnType<typeof plan>>, subject: string) =>
    p.reasons.find((r) => r.subject === subject);

  it("without a budget or offloadGpuLayers keeps every layer resident on the GPU and says so", async () => {
    const p = await plan(resident);
    expect(RuntimePlanSchema.parse(p)).toEqual(p);
    expect(p.layers.map((l) => l.residency)).toEqual(["gpu", "gpu", "gpu"]);
    expect(reason(p, "residency")?.reason).toMatch(
      /no gpuMemoryBudget or offloadGpuLayers: every layer resident/,
    );
    const g = p.memory.predictedPeak.gpu;
    expect(g.weights).toBe(p.model.weightBytes);
    expect(g.kvCache).toBe(p.kvCache.predicted.memoryBytes);
    // The backend's own memory: staging ring 128 MiB + a 128 MiB page per activation heap + the parameter
    // arena allowance 4 MiB + what its pool may keep (below its 1 GiB limit here: the KV cache + activations).
    expect(g.backend).toBe(388 * MiB + g.kvCache + g.activations);
    expect(g.total).toBe(g.weights + g.kvCache + g.activations + g.backend);
    expect(p.memory.predictedPeak.host.total).toBe(0);
    expect(reason(p, "gpuMemory")?.reason).toMatch(/not checked: no gpuMemoryBudget/);
    expect(reason(p, "gpuMemory")?.reason).toMatch(
      /\+ WebGPU backend ~\d+\.\d+ MiB \(staging ring, activation heap pages, buffer pool\)/,
    );
    // The loader then loads every layer resident (no residency passed to the engine).
    expect(engineOptions(p).residency).toBeUndefined();
  });

  it("a budget that fits 1 of 3 layers: one on the GPU, one in host memory, one streamed from disk", async () => {
    const full = await plan(resident);
    const L = full.layers[0].bytes;
    expect(full.layers.every((l) => l.bytes === L)).toBe(true);
    const globals = full.model.weightBytes - 3 * L;
    const { kvCache, activations, backend } = full.memory.predictedPeak.gpu;
    const fixed = globals + kvCache + activations + backend;
    // The GPU: fixed part + one resident layer + one device copy of a streamed layer. The host: one layer +
    // the two buffers disk layers are read into.
    const p = await plan({
      ...resident,
      gpuMemoryBudget: fixed + 2 * L + 1024,
      hostMemoryBudget: 3 * L + 1024,
    });
    expect(RuntimePlanSchema.parse(p)).toEqual(p);
    // Layer 0 on the GPU (first layers first); host memory takes one of the others (spread: the last).
    expect(p.layers.map((l) => l.residency)).toEqual(["gpu", "disk", "host"]);
    expect(engineOptions(p).residency).toEqual(["device", "disk", "host"]);
    expect(p.memory.gpuBudgetBytes).toBe(fixed + 2 * L + 1024);
    expect(p.memory.bytesReadPerToken).toBe(L);
    const g = p.memory.predictedPeak.gpu;
    expect(g).toEqual({
      weights: globals + L + L,
      streaming: L,
      kvCache,
      activations,
      expertCache: 0,
      backend,
      total: fixed + 2 * L,
    });
    expect(g.total).toBeLessThanOrEqual(p.memory.gpuBudgetBytes ?? 0);
    const h = p.memory.predictedPeak.host;
    expect(h).toMatchObject({ weights: 3 * L, streaming: 2 * L, kvCache: 0, activations: 0, total: 3 * L });
    expect(h.total).toBeLessThanOrEqual(p.memory.hostBudgetBytes);
    expect(reason(p, "residency")?.decision).toBe("gpu × 1, host × 1, disk × 1");
    expect(reason(p, "residency")?.reason).toMatch(/1 of 3 layers fit the .* GPU budget/);
    expect(reason(p, "gpuMemoryBudget")?.decision).toBe(formatBytes(fixed + 2 * L + 1024));
    expect(reason(p, "gpuMemory")?.reason).toMatch(/predicted GPU peak: .* copies of streamed layers/);
    expect(p.specialization.passes).toEqual(
      expect.arrayContaining(["disk-cache", "cpu-offload", "gpu-offload"]),
    );
    // More host memory: no layer streams from disk (the other two layers in host memory, copied to the GPU
    // through one device copy).
    const roomy = await plan({ ...resident, gpuMemoryBudget: fixed + 2 * L + 1024 });
    expect(roomy.layers.map((l) => l.residency)).toEqual(["gpu", "host", "host"]);
    expect(roomy.memory.bytesReadPerToken).toBe(0);
    expect(roomy.memory.predictedPeak.gpu.streaming).toBe(L);
    expect(roomy.memory.predictedPeak.gpu.total).toBeLessThanOrEqual(fixed + 2 * L + 1024);
    // A budget for everything: every layer on the GPU.
    const all = await plan({ ...resident, gpuMemoryBudget: fixed + 3 * L });
    expect(all.layers.map((l) => l.residency)).toEqual(["gpu", "gpu", "gpu"]);
    expect(all.memory.predictedPeak.gpu.total).toBe(fixed + 3 * L);
    // The backend's memory counts: a budget that holds everything else is too small.
    const short = await planError(
      { ...resident, gpuMemoryBudget: fixed - backend + 3 * L },
      "OUT_OF_MEMORY_BUDGET",
    );
    expect(short.message).toMatch(/WebGPU backend ~/);
  });

  it("an auto KV cache under a GPU budget leaves room for the backend: the predicted peak fits", async () => {
    const full = await plan(resident);
    const L = full.layers[0].bytes;
    const g = full.memory.predictedPeak.gpu;
    const floor = g.total - 3 * L - g.kvCache + L;
    let fits = 0;
    for (let budget = floor; budget <= g.total + 4 * g.kvCache; budget += L / 2) {
      const b = Math.round(budget);
      let p: Awaited<ReturnType<typeof plan>>;
      try {
        p = await plan({ ...gpu, gpuMemoryBudget: b });
      } catch (error) {
        // Near the floor no KV cache fits: refused, never planned over the budget.
        expect((error as OllmError).code).toBe("OUT_OF_MEMORY_BUDGET");
        continue;
      }
      fits++;
      expect(p.memory.predictedPeak.gpu.total, `${b} ${p.kvCache.applied}`).toBeLessThanOrEqual(b);
      expect(p.memory.predictedPeak.gpu.backend).toBeGreaterThanOrEqual(388 * MiB);
    }
    expect(fits).toBeGreaterThan(10);
  });

  it("the KV selector's room leaves out the backend's memory: a leaner KV cache where resident does not fit", async () => {
    const dir = await tempDir();
    try {
      // 128k tokens of tiny-llama: a 96 MiB resident KV cache, comparable to the backend's memory.
      const long = await copyModel("tiny-llama", join(dir, "long"), {
        patchConfig: (c) => {
          c.max_position_embeddings = 2 ** 17;
        },
      });
      const config = {
        modelReference: long,
        backend: "webgpu",
        contextTokens: 2 ** 17,
        prefillChunkTokens: 16,
      } as const;
      const roomy = await plan({ ...config, gpuMemoryBudget: "1GiB" });
      expect(roomy.kvCache.applied).toBe("resident");
      const budget = roomy.memory.predictedPeak.gpu.total - 80 * MiB;
      const p = await plan({ ...config, gpuMemoryBudget: budget });
      expect(p.kvCache.applied).toBe("quantized-cold-tier");
      expect(p.memory.predictedPeak.gpu.total).toBeLessThanOrEqual(budget);
      // Its cold blocks are host memory: the GPU keeps the hot blocks and the gather buffer.
      expect(p.memory.predictedPeak.gpu.kvCache).toBeLessThan(roomy.memory.predictedPeak.gpu.kvCache);
    } finally {
      await removeDir(dir);
    }
  });

  it("a budget too small for globals + KV + activations + one streamed layer is OUT_OF_MEMORY_BUDGET", async () => {
    const full = await plan(resident);
    const L = full.layers[0].bytes;
    const fixed = full.memory.predictedPeak.gpu.total - 3 * L;
    const error = await planError({ ...resident, gpuMemoryBudget: fixed + L - 1 }, "OUT_OF_MEMORY_BUDGET");
    expect(error.message).toMatch(
      /tiny-llama: the GPU budget of .* cannot hold globals \(embeddings, final norm, LM head\) .* \+ KV cache .* for 1024 tokens \+ activations ~.* \+ one streamed layer/,
    );
    expect(error.message).toMatch(/activations ~.* \+ WebGPU backend ~.* \+ one streamed layer/);
    expect(error.hint).toMatch(/Raise gpuMemoryBudget \(--gpu-memory-budget\) to at least/);
    // Smaller than the activations alone: refused before the KV cache is chosen.
    const tiny = await planError({ ...gpu, gpuMemoryBudget: "1MiB" }, "OUT_OF_MEMORY_BUDGET");
    expect(tiny.message).toMatch(/GPU budget of 1.00 MiB cannot hold globals .* activations/);
    // Just enough: everything streams from disk through one device copy.
    const p = await plan({ ...resident, gpuMemoryBudget: fixed + L, hostMemoryBudget: 2 * L });
    expect(p.layers.map((l) => l.residency)).toEqual(["disk", "disk", "disk"]);
    expect(p.memory.predictedPeak.gpu.total).toBe(fixed + L);
    // Host memory too small for the two read buffers.
    const host = await planError(
      { ...resident, gpuMemoryBudget: fixed + L, hostMemoryBudget: 2 * L - 1 },
      "OUT_OF_MEMORY_BUDGET",
    );
    expect(host.message).toMatch(/streaming layers needs .* of host memory \(two read buffers/);
    // useSpecialization off: nothing streams, so the whole model must fit.
    const plain = await planError(
      { ...resident, gpuMemoryBudget: fixed + 2 * L, useSpecialization: false },
      "OUT_OF_MEMORY_BUDGET",
    );
    expect(plain.message).toMatch(
      /of GPU memory .* \+ WebGPU backend ~.*useSpecialization is off, so no layer streams/,
    );
  });

  it("a percentage needs the GPU's memory size: INVALID_CONFIG unless the machine reports it", async () => {
    const error = await planError({ ...gpu, gpuMemoryBudget: "50%" }, "INVALID_CONFIG");
    expect(error.message).toMatch(/gpuMemoryBudget "50%" is a share of GPU memory.*not known/);
    expect(error.hint).toMatch(/absolute size, e\.g\. --gpu-memory-budget 8GiB/);
    const known = await plan(
      { ...gpu, device: "gpu:1", gpuMemoryBudget: "50%" },
      {},
      {
        ...machine,
        gpus: [
          { name: "a", memoryBytes: 2 * GiB },
          { name: "b", memoryBytes: 8 * GiB },
        ],
      },
    );
    expect(known.memory.gpuBudgetBytes).toBe(4 * GiB);
    // The cpu backend uses no GPU budget: a share is not an error there.
    const cpu = await plan({ modelReference: fixture("tiny-llama"), gpuMemoryBudget: "50%" });
    expect(cpu.memory.gpuBudgetBytes).toBeNull();
    expect(reason(cpu, "gpuMemoryBudget")?.decision).toBe("unused");
    expect(reason(cpu, "gpuMemoryBudget")?.reason).toMatch(/pass --backend webgpu/);
  });

  it("offloadGpuLayers=1 keeps the first layer on the GPU; offloadCpuLayers keeps layers in host memory", async () => {
    const p = await plan({ ...resident, offloadGpuLayers: 1 });
    expect(p.layers.map((l) => l.residency)).toEqual(["gpu", "host", "host"]);
    expect(p.offload.gpuLayers).toBe(1);
    expect(reason(p, "offloadGpuLayers")?.decision).toBe("layer 0");
    expect(reason(p, "gpuMemory")?.reason).toMatch(/not checked/);
    const L = p.layers[0].bytes;
    expect(p.memory.predictedPeak.host.total).toBe(2 * L);
    expect(p.memory.predictedPeak.gpu.streaming).toBe(L);
    // Under a budget too: the first layer stays; too many layers for it is refused.
    const full = await plan(resident);
    const fixed = full.memory.predictedPeak.gpu.total - 3 * L;
    const budgeted = await plan({ ...resident, offloadGpuLayers: 1, gpuMemoryBudget: fixed + 2 * L });
    expect(budgeted.layers[0].residency).toBe("gpu");
    const two = await planError(
      { ...resident, offloadGpuLayers: 2, gpuMemoryBudget: fixed + 2 * L },
      "OUT_OF_MEMORY_BUDGET",
    );
    expect(two.message).toMatch(/offloadGpuLayers=2 needs .* of GPU memory/);
    const cpuLayers = await plan({ ...resident, offloadCpuLayers: 1, offloadCpuPolicy: "suffix" });
    expect(cpuLayers.layers.map((l) => l.residency)).toEqual(["gpu", "gpu", "host"]);
    expect(cpuLayers.offload.cpuLayers).toMatchObject({ layerIndices: [2], effective: true });
  });

  it("a tiered KV cache keeps its cold blocks in host memory, the rest on the GPU", async () => {
    const p = await plan({ ...gpu, kvCacheStrategy: "quantized-cold-tier", gpuMemoryBudget: "1GiB" });
    const g = p.memory.predictedPeak.gpu;
    const h = p.memory.predictedPeak.host;
    expect(g.kvCache).toBeGreaterThan(0);
    expect(h.kvCache).toBeGreaterThan(0);
    expect(g.kvCache + h.kvCache).toBe(p.kvCache.predicted.memoryBytes);
    expect(h.total).toBe(h.weights + h.kvCache);
  });
});
