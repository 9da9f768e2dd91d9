/** The runtime (RuntimeClient: plan, load, prompt) on the WebGPU backend, as `ollm prompt --backend webgpu` runs it. */
import { afterAll, describe, expect, it } from "vitest";
import { RuntimeClient } from "../../src/client.js";
import { fixture, golden } from "../client/helpers.js";
import { gpuOrSkip } from "./gpu-setup.js";

const probe = await gpuOrSkip();
await probe?.close();
const run = probe ? describe : describe.skip;

run("RuntimeClient on WebGPU", () => {
  const client = new RuntimeClient();
  afterAll(() => client.close());

  it("plans, loads and prompts on webgpu: transformers' greedy reply to the golden conversation", async () => {
    const g = golden("tiny-llama");
    const runtimeConfig = { modelReference: fixture("tiny-llama"), backend: "webgpu" as const, stats: true };
    expect((await client.plan(runtimeConfig)).backend).toBe("webgpu");
    const r = await client.prompt(g.conversation[1].content, {
      runtimeConfig,
      systemPrompt: g.conversation[0].content,
      generationConfig: { maxNewTokens: 8, logprobs: true },
    });
    expect(r.logprobs?.map((t) => t.id)).toEqual(g.greedy_ids.slice(0, 8));
    expect(r.usage.completionTokens).toBe(8);
    expect(r.stats?.backend).toBe("webgpu");
    // --stats: what the reply took on the GPU (GPU time only where the adapter has timestamp queries).
    expect(r.stats?.gpu?.adapter).toBeTruthy();
    expect(r.stats?.gpu?.dispatches).toBeGreaterThan(8 * 10);
    expect(r.stats?.gpu?.submits).toBeGreaterThanOrEqual(8);
  });
});
