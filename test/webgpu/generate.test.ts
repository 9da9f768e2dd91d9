import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import { expectSameTokens, generated, reference, TOPK_CASES } from "../engine/generate-reference.js";
import { fixtureDir, readGolden } from "../engine/oracle.js";
import { gpuOrSkip } from "./gpu-setup.js";

const probe = await gpuOrSkip();
await probe?.close();
const run = probe ? describe : describe.skip;

run("generate on WebGPU: greedy sampling reads back only topKRows", () => {
  const { golden } = readGolden("tiny-llama");
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(fixtureDir("tiny-llama"), { backend: "webgpu" });
  });
  afterAll(() => model?.close());

  it.each(TOPK_CASES)("$name: the tokens and logprobs of the full-row path", async ({ options, topK }) => {
    const { tokens, topKCalls } = await generated(model, golden.prompt_ids, options);
    expect(topKCalls).toBe(topK ? tokens.length : 0);
    expectSameTokens(tokens, await reference(model, golden.prompt_ids, options));
  });

  it("greedy ids are transformers' greedy ids", async () => {
    const { tokens } = await generated(model, golden.prompt_ids, { maxNewTokens: 8 });
    expect(tokens.map((t) => t.id)).toEqual(golden.greedy_ids.slice(0, 8));
  });

  it("loadModel's submitEvery reaches the backend; submitting mid-step changes no token", async () => {
    const often = await loadModel(fixtureDir("tiny-llama"), { backend: "webgpu", submitEvery: 3 });
    try {
      expect((often.backend as WebGpuBackend).submitEveryDispatches).toBe(3);
      const { tokens } = await generated(often, golden.prompt_ids, { maxNewTokens: 8 });
      expect(tokens.map((t) => t.id)).toEqual(golden.greedy_ids.slice(0, 8));
    } finally {
      await often.close();
    }
  });
});
