/**
 * --stats output of a reply (text on stderr, `stats` in --json) from a PromptResponse, without a model: the
 * predicted GPU peak appears exactly when the plan runs on the GPU. End to end: prompt.test.ts (cpu) and the
 * WebGPU run at the end of this file (skipped without an adapter).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { printStats } from "../../src/cli/common.js";
import { jsonSchema, type PromptResult, promptResult } from "../../src/cli/schemas.js";
import { Ui } from "../../src/cli/ui.js";
import type { PromptResponse, ResponseStats } from "../../src/session.js";
import { gpuOrSkip } from "../webgpu/gpu-setup.js";
import { ensureBuilt, json, runCli, TINY } from "./helpers.js";

const MiB = 2 ** 20;
const documented = z.fromJSONSchema(jsonSchema("prompt"));

function response(stats: ResponseStats): PromptResponse {
  return {
    text: "Hi!",
    message: { role: "assistant", content: [{ type: "text", text: "Hi!" }] },
    finishReason: "stop",
    usage: { promptTokens: 5, completionTokens: 2, totalTokens: 7, cachedPromptTokens: 0 },
    timings: {
      timeToFirstTokenMs: 10,
      prefillTokensPerSecond: 500,
      tokensPerSecond: 100,
      decodeMs: 10,
      totalMs: 20,
    },
    logprobs: null,
    model: "tiny-llama",
    stats,
  } as PromptResponse;
}

const cpu: ResponseStats = {
  model: "tiny-llama",
  backend: "cpu",
  device: "cpu",
  kvCacheStrategy: "resident",
  loadMs: 50,
  rssBytes: 100 * MiB,
  predictedPeakHostBytes: 75 * MiB,
};
const gpu: ResponseStats = {
  ...cpu,
  backend: "webgpu",
  device: "gpu",
  predictedPeakHostBytes: 0,
  predictedPeakGpuBytes: 409.5 * MiB,
  gpu: { adapter: "llvmpipe", dispatches: 142, submits: 6 },
};

function stderrOf(r: PromptResponse): string {
  let text = "";
  const stream = {
    write(s: string) {
      text += s;
      return true;
    },
  };
  printStats(new Ui({ stdout: stream, stderr: stream, env: {} }), r);
  return text;
}

describe("--stats: the predicted GPU peak", () => {
  it("text: host and GPU peaks on the GPU, the host peak alone on the cpu", () => {
    expect(stderrOf(response(gpu))).toContain(
      "tiny-llama on webgpu/gpu, KV resident, loaded in 50 ms, RSS 100.0 MiB, predicted peak 0.0 MiB host, 409.5 MiB GPU\n",
    );
    const text = stderrOf(response(cpu));
    expect(text).toContain("RSS 100.0 MiB, predicted peak 75.0 MiB\n");
    expect(text).not.toMatch(/GPU/);
  });

  it("--json: predictedPeakGpuBytes on the GPU only, valid against the documented schema", () => {
    const onGpu = JSON.parse(JSON.stringify(promptResult(response(gpu), false))) as PromptResult;
    expect(documented.safeParse(onGpu).success).toBe(true);
    expect(onGpu.stats).toMatchObject({ predictedPeakHostBytes: 0, predictedPeakGpuBytes: 409.5 * MiB });
    const onCpu = JSON.parse(JSON.stringify(promptResult(response(cpu), false))) as PromptResult;
    expect(documented.safeParse(onCpu).success).toBe(true);
    expect(onCpu.stats?.predictedPeakHostBytes).toBe(75 * MiB);
    expect(onCpu.stats && "predictedPeakGpuBytes" in onCpu.stats).toBe(false);
    // A negative value is not a byte count.
    expect(
      documented.safeParse({ ...onGpu, stats: { ...onGpu.stats, predictedPeakGpuBytes: -1 } }).success,
    ).toBe(false);
  });
});

const probe = await gpuOrSkip();
await probe?.close();

describe.skipIf(!probe)("ollm prompt --backend webgpu --stats (WebGPU adapter)", () => {
  beforeAll(ensureBuilt, 300_000);

  it("reports the plan's predicted GPU peak, in text and --json", async () => {
    const flags = ["-m", TINY, "--backend", "webgpu", "--kv-cache-strategy", "resident"];
    const planned = await runCli(["plan", ...flags]);
    expect(planned.code, planned.stderr).toBe(0);
    const peak = json<{ plan: { memory: { predictedPeak: { gpu: { total: number; backend: number } } } } }>(
      planned,
    ).plan.memory.predictedPeak.gpu;
    expect(peak.backend).toBeGreaterThan(0);
    const base = ["prompt", ...flags, "--max-new-tokens", "4", "--stats"];
    const j = await runCli([...base, "--json", "Hi"], { timeoutMs: 120_000 });
    expect(j.code, j.stderr).toBe(0);
    const stats = json<PromptResult>(j).stats;
    expect(stats?.backend).toBe("webgpu");
    expect(stats?.predictedPeakGpuBytes).toBe(peak.total);
    const text = await runCli([...base, "Hi"], { timeoutMs: 120_000 });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stderr).toContain(`host, ${(peak.total / MiB).toFixed(1)} MiB GPU`);
  });
});
