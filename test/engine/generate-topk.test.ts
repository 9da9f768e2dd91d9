import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type Model } from "../../src/engine/model.js";
import { expectSameTokens, generated, reference, TOPK_CASES } from "./generate-reference.js";
import { fixtureDir, readGolden } from "./oracle.js";

describe("generate reads only the top-k reduction of the logits when sampling is greedy (CPU)", () => {
  const { golden } = readGolden("tiny-llama");
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(fixtureDir("tiny-llama"), { backend: "cpu" });
  });
  afterAll(() => model.close());

  it.each(TOPK_CASES)("$name", async ({ options, topK }) => {
    const { tokens, topKCalls } = await generated(model, golden.prompt_ids, options);
    expect(topKCalls).toBe(topK ? tokens.length : 0);
    expectSameTokens(tokens, await reference(model, golden.prompt_ids, options));
  });

  it("greedy ids are still transformers' greedy ids", async () => {
    const { tokens } = await generated(model, golden.prompt_ids, { maxNewTokens: 8 });
    expect(tokens.map((t) => t.id)).toEqual(golden.greedy_ids.slice(0, 8));
  });
});
