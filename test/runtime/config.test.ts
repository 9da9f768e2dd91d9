import { describe, expect, it } from "vitest";
import {
  ConfigError,
  DEFAULT_MAX_NEW_TOKENS,
  formatBytes,
  GenerationConfigSchema,
  parseMemoryBudget,
  RuntimeConfigSchema,
  validateGenerationConfig,
  validateRuntimeConfig,
} from "../../src/config/index.js";
import { OllmError } from "../../src/errors.js";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toBeInstanceOf(OllmError);
    expect((error as OllmError).code).toBe("INVALID_CONFIG");
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("RuntimeConfig", () => {
  it("applies defaults and keeps only the model reference required", () => {
    const config = validateRuntimeConfig({ modelReference: " llama3-1B-chat " });
    expect(config).toMatchObject({
      modelReference: "llama3-1B-chat",
      modelsDir: "models",
      backend: "auto",
      device: "auto",
      kvCacheStrategy: "auto",
      strategySelectorProfile: "balanced",
      offloadCpuLayers: 0,
      offloadCpuPolicy: "auto",
      offloadGpuLayers: 0,
      expertCacheSize: 0,
      multimodal: false,
      useSpecialization: true,
      stats: false,
      verbose: false,
    });
  });

  it("reports every violation at once, named by field, with the allowed values", () => {
    const error = configError(() =>
      validateRuntimeConfig({
        modelReference: "",
        backend: "cuda",
        device: "tpu",
        kvCacheStrategy: "magic",
        strategySelectorProfile: "fast",
        offloadCpuLayers: -1,
        offloadCpuPolicy: "random",
        hostMemoryBudget: "lots",
        prefillChunkTokens: 0.5,
        typo: true,
      }),
    );
    const fields = error.violations.map((v) => v.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        "modelReference",
        "backend",
        "device",
        "kvCacheStrategy",
        "strategySelectorProfile",
        "offloadCpuLayers",
        "offloadCpuPolicy",
        "hostMemoryBudget",
        "prefillChunkTokens",
        "(root)",
      ]),
    );
    expect(error.message).toContain('backend: must be one of "auto", "cpu", "webgpu"');
    expect(error.message).toContain(
      'strategySelectorProfile: must be one of "balanced", "latency", "capacity", "bounded-window"',
    );
    expect(error.message).toContain(
      'offloadCpuPolicy: must be one of "auto", "prefix", "suffix", "middle-band"',
    );
    expect(error.message).toContain('device: must be one of "auto", "cpu", "gpu" or "gpu:N"');
    expect(error.message).toContain('unknown option "typo"');
    expect(error.message).toContain("modelReference: cannot be empty");
  });

  it("checks combinations of fields, also alongside other violations", () => {
    const error = configError(() =>
      validateRuntimeConfig({
        modelReference: "x",
        device: "cpu",
        offloadCpuLayers: 2,
        offloadGpuLayers: 2,
        kvCacheStrategy: "paged",
        kvCacheWindowTokens: 128,
        backend: "nope",
      }),
    );
    const byField = Object.fromEntries(error.violations.map((v) => [v.field, v.message]));
    // On the cpu, offloadCpuLayers keeps those layers in RAM and streams the rest.
    expect(byField.offloadCpuLayers).toBeUndefined();
    expect(byField.offloadGpuLayers).toBeDefined();
    expect(byField.kvCacheWindowTokens).toMatch(/sliding-window-ring-buffer/);
    expect(byField.backend).toMatch(/must be one of/);
    expect(() => validateRuntimeConfig({ modelReference: "x", backend: "cpu", device: "gpu:1" })).toThrow(
      /device: "gpu:1" cannot be used with backend "cpu"/,
    );
    expect(() =>
      validateRuntimeConfig({ modelReference: "x", offloadCpuLayers: 1, offloadGpuLayers: 1 }),
    ).toThrow(/cannot be combined/);
  });

  it("accepts every documented value", () => {
    const config = validateRuntimeConfig({
      modelReference: "org/name@main",
      modelsDir: "/tmp/models",
      backend: "webgpu",
      device: "gpu:0",
      kvCacheStrategy: "sliding-window-ring-buffer",
      kvCacheWindowTokens: 256,
      cacheDir: "/tmp/kv",
      strategySelectorProfile: "bounded-window",
      offloadCpuLayers: 4,
      offloadCpuPolicy: "middle-band",
      gpuMemoryBudget: "8GiB",
      hostMemoryBudget: 1_000_000,
      expertCacheSize: "2GiB",
      contextTokens: 2048,
      prefillChunkTokens: 128,
      multimodal: true,
      useSpecialization: false,
      stats: true,
      verbose: true,
    });
    expect(config.device).toBe("gpu:0");
  });

  it("expertCacheSize: 0 (off) by default; bytes, sizes or a share of host memory; anything else named clearly", () => {
    const of = (expertCacheSize: unknown) =>
      validateRuntimeConfig({ modelReference: "x", expertCacheSize }).expertCacheSize;
    expect(validateRuntimeConfig({ modelReference: "x" }).expertCacheSize).toBe(0);
    for (const ok of [0, 1 << 20, "512MiB", "2GiB", "1.5 GB", "10%", "0"]) expect(of(ok)).toBe(ok);
    const size = 'must be a byte count (an integer ≥ 0) or a size such as "512MiB", "2GiB" or "10%"';
    for (const [bad, message] of [
      [-1, size],
      [1.5, size],
      ["lots", size],
      ["-5MB", size],
      ["", size],
      [true, size],
      ["150%", "must be at most 100%"],
    ] as const) {
      const error = configError(() => of(bad));
      expect(error.violations, String(bad)).toHaveLength(1);
      expect(error.violations[0].field).toBe("expertCacheSize");
      expect(error.violations[0].message, String(bad)).toContain(message);
    }
  });

  it("has a JSON Schema generated from zod", async () => {
    const { z } = await import("zod");
    const schema = z.toJSONSchema(RuntimeConfigSchema, { io: "input" }) as {
      properties: Record<string, { enum?: string[] }>;
      required: string[];
    };
    expect(schema.required).toEqual(["modelReference"]);
    expect(schema.properties.backend.enum).toEqual(["auto", "cpu", "webgpu"]);
    expect(z.toJSONSchema(GenerationConfigSchema, { io: "input" })).toHaveProperty("properties.maxNewTokens");
  });
});

describe("GenerationConfig", () => {
  it("defaults to greedy with oLLM's token limit", () => {
    const config = validateGenerationConfig();
    expect(config).toEqual({
      maxNewTokens: DEFAULT_MAX_NEW_TOKENS,
      stop: [],
      logprobs: false,
      topLogprobs: 0,
      stream: true,
    });
    expect(config.temperature).toBeUndefined();
  });

  it("reports every violation at once", () => {
    const error = configError(() =>
      validateGenerationConfig({
        maxNewTokens: 0,
        temperature: -1,
        topP: 0,
        topK: 1.5,
        minP: 2,
        repetitionPenalty: 0,
        seed: 0.5,
        stop: [""],
        topLogprobs: 3,
      }),
    );
    expect(error.violations.map((v) => v.field).sort()).toEqual(
      [
        "maxNewTokens",
        "minP",
        "repetitionPenalty",
        "seed",
        "stop.0",
        "temperature",
        "topK",
        "topLogprobs",
        "topP",
      ].sort(),
    );
    expect(error.message).toContain("topLogprobs: needs logprobs: true");
    expect(() => validateGenerationConfig({ logprobs: true, topLogprobs: 21 })).toThrow(/\[0, 20\]/);
  });
});

describe("memory budgets", () => {
  it("parses bytes, units and percentages", () => {
    expect(parseMemoryBudget(1234)).toBe(1234);
    expect(parseMemoryBudget("512MB")).toBe(512e6);
    expect(parseMemoryBudget("8GiB")).toBe(8 * 1024 ** 3);
    expect(parseMemoryBudget("1.5 gb")).toBe(1.5e9);
    expect(parseMemoryBudget("2K")).toBe(2048);
    expect(parseMemoryBudget("50%", 1000)).toBe(500);
    expect(() => parseMemoryBudget("150%", 1000)).toThrow(/more than 100%/);
    expect(() => parseMemoryBudget("50%")).toThrow(OllmError);
    expect(formatBytes(1536)).toBe("1.50 KiB");
    expect(formatBytes(12)).toBe("12 B");
  });
});
