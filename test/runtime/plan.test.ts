import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RuntimeConfigInput, validateRuntimeConfig } from "../../src/config/runtime-config.js";
import { OllmError } from "../../src/errors.js";
import type { MachineInfo } from "../../src/runtime/machine.js";
import {
  type PlanOptions,
  planDescriptionJsonSchema,
  planRuntime,
  RuntimePlanSchema,
} from "../../src/runtime/plan.js";
import { ModelResolver } from "../../src/runtime/resolver.js";
import { copyModel, fixture, removeDir, tempDir } from "./helpers.js";

const GiB = 1024 ** 3;
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
      specialization: { enabled: true, state: "none-available", passes: [] },
      kvCache: {
        requested: "auto",
        profile: "balanced",
        applied: "resident",
        contextTokens: 1024,
        windowTokens: null,
      },
      prefillChunkTokens: 512,
    });
    expect(p.layers.map((l) => l.residency)).toEqual(["host", "host", "host"]);
    expect(p.memory.hostBudgetBytes).toBe(Math.floor(32 * GiB * 0.8));
    const peak = p.memory.predictedPeak.host;
    expect(peak.weights).toBe(p.model.weightBytes);
    expect(peak.kvCache).toBe(1024 * p.kvCache.bytesPerToken);
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

  it("records the selector's preference and the documented fallback to resident KV", async () => {
    const balanced = await plan(llama);
    expect(balanced.kvCache).toMatchObject({
      selected: "paged",
      applied: "resident",
      fallbackChain: ["paged", "chunked", "resident"],
    });
    expect(balanced.reasons.find((r) => r.subject === "kvCache")?.reason).toMatch(
      /"paged" is not implemented yet.*falls back/,
    );
    const capacity = await plan({ ...llama, strategySelectorProfile: "capacity" });
    expect(capacity.kvCache.selected).toBe("quantized-cold-tier");
    const big: MachineInfo = { ...machine, hostMemoryBytes: 128 * GiB };
    const latency = await plan({ ...llama, strategySelectorProfile: "latency" }, {}, big);
    expect(latency.kvCache).toMatchObject({
      selected: "resident",
      applied: "resident",
      fallbackChain: ["resident"],
    });
    const explicit = await plan({ ...llama, kvCacheStrategy: "resident" });
    expect(explicit.reasons.find((r) => r.subject === "kvCache")?.reason).toBe("requested by the config");
  });

  it("honours context, prefill chunk, budgets and offload settings", async () => {
    const p = await plan({
      ...llama,
      contextTokens: 256,
      prefillChunkTokens: 64,
      hostMemoryBudget: "50%",
      gpuMemoryBudget: "1GiB",
      offloadCpuLayers: 1,
      offloadCpuPolicy: "suffix",
      useSpecialization: false,
      cacheDir: "/tmp/kv",
    });
    expect(p.kvCache.contextTokens).toBe(256);
    expect(p.prefillChunkTokens).toBe(64);
    expect(p.memory.hostBudgetBytes).toBe(16 * GiB);
    expect(p.memory.gpuBudgetBytes).toBe(GiB);
    expect(p.offload.cpuLayers).toMatchObject({
      requested: 1,
      resolvedPolicy: "suffix",
      layerIndices: [2],
      effective: false,
    });
    expect(p.specialization.state).toBe("disabled");
    expect(p.reasons.find((r) => r.subject === "offloadCpuLayers")?.decision).toBe("no effect");
    expect(p.reasons.find((r) => r.subject === "gpuMemoryBudget")?.decision).toBe("unused");
    expect(p.reasons.find((r) => r.subject === "cacheDir")?.decision).toBe("unused");
    const middle = await plan({ ...llama, offloadCpuLayers: 1 });
    expect(middle.offload.cpuLayers).toMatchObject({ resolvedPolicy: "middle-band", layerIndices: [1] });
  });

  it("fails when the model is bigger than the budget, saying what to change", async () => {
    const error = await planError({ ...llama, hostMemoryBudget: "64KiB" }, "OUT_OF_MEMORY_BUDGET");
    expect(error.message).toMatch(/needs .* of host memory \(weights .* \+ KV cache .* for 1024 tokens/);
    expect(error.hint).toMatch(/Raise hostMemoryBudget/);
    const p = await plan(llama);
    const tight = p.memory.predictedPeak.host.weights + 1024;
    const kvError = await planError({ ...llama, hostMemoryBudget: tight }, "OUT_OF_MEMORY_BUDGET");
    expect(kvError.hint).toMatch(/contextTokens/);
  });

  it("refuses backends, devices and KV strategies that do not exist yet", async () => {
    expect((await planError({ ...llama, backend: "webgpu" }, "BACKEND_UNAVAILABLE")).message).toMatch(
      /webgpu/,
    );
    await planError({ ...llama, device: "gpu:0" }, "BACKEND_UNAVAILABLE");
    await planError({ ...llama, offloadGpuLayers: 2 }, "BACKEND_UNAVAILABLE");
    expect((await planError({ ...llama, kvCacheStrategy: "paged" }, "NOT_IMPLEMENTED")).message).toMatch(
      /"paged" is not implemented yet \(implemented: resident\)/,
    );
    await planError({ ...llama, strategySelectorProfile: "bounded-window" }, "NOT_IMPLEMENTED");
    await planError({ ...llama, kvCacheWindowTokens: 64 }, "NOT_IMPLEMENTED");
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
