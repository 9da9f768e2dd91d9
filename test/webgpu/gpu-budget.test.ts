/**
 * GPU memory planning end to end on the WebGPU backend: a small gpuMemoryBudget streams layers (from host
 * memory and from disk), and the replies and logits are those of the fully resident load.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RuntimeClient } from "../../src/client.js";
import type { RuntimeConfigInput } from "../../src/config/runtime-config.js";
import type { PromptResult } from "../../src/cli/schemas.js";
import { ensureBuilt, json, runCli } from "../cli/helpers.js";
import { fixture, golden } from "../client/helpers.js";
import { gpuOrSkip, relErr } from "./gpu-setup.js";

const probe = await gpuOrSkip();
await probe?.close();
const run = probe ? describe : describe.skip;

run("gpuMemoryBudget on WebGPU", () => {
  const client = new RuntimeClient();
  afterAll(() => client.close());
  beforeAll(ensureBuilt, 300_000);

  // An explicit KV strategy keeps the KV cache the same under both configs.
  const resident = {
    modelReference: fixture("tiny-llama"),
    backend: "webgpu" as const,
    kvCacheStrategy: "resident" as const,
  };
  /** Budgets for one layer on the GPU, one in host memory and one streamed from disk. */
  async function budgets(): Promise<{ gpu: number; host: number }> {
    const full = await client.plan(resident);
    const L = full.layers[0].bytes;
    const fixed = full.memory.predictedPeak.gpu.total - 3 * L;
    return { gpu: fixed + 2 * L + 1024, host: 3 * L + 1024 };
  }

  it("RuntimeClient: streamed layers give the resident load's greedy reply and logits", async () => {
    const b = await budgets();
    const streamed: RuntimeConfigInput = { ...resident, gpuMemoryBudget: b.gpu, hostMemoryBudget: b.host };
    const plan = await client.plan(streamed);
    expect(plan.layers.map((l) => l.residency)).toEqual(["gpu", "disk", "host"]);
    expect(plan.memory.predictedPeak.gpu.total).toBeLessThanOrEqual(b.gpu);

    const g = golden("tiny-llama");
    const ask = (runtimeConfig: RuntimeConfigInput) =>
      client.prompt(g.conversation[1].content, {
        runtimeConfig: { ...runtimeConfig, stats: true },
        systemPrompt: g.conversation[0].content,
        generationConfig: { maxNewTokens: 8, logprobs: true },
      });
    const want = await ask(resident);
    const got = await ask(streamed);
    expect(want.logprobs?.map((t) => t.id)).toEqual(g.greedy_ids.slice(0, 8));
    expect(got.logprobs?.map((t) => t.id)).toEqual(want.logprobs?.map((t) => t.id));
    expect(
      relErr(got.logprobs?.map((t) => t.logprob) ?? [], want.logprobs?.map((t) => t.logprob) ?? []),
    ).toBeLessThan(1e-5);
    // The disk layer was read once per forward (prompt and each decode step).
    expect(got.stats?.streaming?.layerLoads).toBeGreaterThanOrEqual(8);
    expect(want.stats?.streaming).toBeUndefined();

    // The loaded engines: prompt logits at every position.
    const a = await client.load(resident);
    const s = await client.load(streamed);
    expect(s.plan.layers.map((l) => l.residency)).toEqual(["gpu", "disk", "host"]);
    const ids = g.prompt_ids.slice(0, 24);
    expect(relErr(await s.engine.logits(ids), await a.engine.logits(ids))).toBeLessThan(1e-5);
    expect(s.engine.streamingStats()?.layerLoads).toBeGreaterThan(0);
    expect(a.engine.streamingStats()).toBeUndefined();
  });

  it("ollm prompt --gpu-memory-budget: the same greedy tokens as the resident run", async () => {
    const b = await budgets();
    const base = [
      "prompt",
      "-m",
      fixture("tiny-llama"),
      "--backend",
      "webgpu",
      "--kv-cache-strategy",
      "resident",
      "--max-new-tokens",
      "6",
      "--json",
      "--logprobs",
      "0",
      "--stats",
    ];
    const budgetFlags = ["--gpu-memory-budget", String(b.gpu), "--host-memory-budget", String(b.host)];
    const plan = await runCli(["plan", ...base.slice(1, 7), ...budgetFlags]);
    expect(plan.code, plan.stderr).toBe(0);
    const described = json<{ plan: { layers: { residency: string }[] } }>(plan);
    expect(described.plan.layers.map((l) => l.residency)).toEqual(["gpu", "disk", "host"]);
    const want = await runCli([...base, "Hello there"], { timeoutMs: 120_000 });
    const got = await runCli([...base, ...budgetFlags, "Hello there"], { timeoutMs: 120_000 });
    expect(want.code, want.stderr).toBe(0);
    expect(got.code, got.stderr).toBe(0);
    const w = json<PromptResult>(want);
    const r = json<PromptResult>(got);
    expect(r.tokens?.map((t) => t.id)).toEqual(w.tokens?.map((t) => t.id));
    expect(r.text).toBe(w.text);
    expect(r.stats?.backend).toBe("webgpu");
    expect(r.stats?.streaming?.layerLoads).toBeGreaterThan(0);
  });
});
