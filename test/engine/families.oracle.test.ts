import { describe, expect, it } from "vitest";
import { loadModel } from "../../src/engine/model.js";
import { argmax, comparableSteps, fixtureDir, readGolden, relativeError } from "./oracle.js";

const FAMILIES = [
  "tiny-llama",
  "tiny-qwen2",
  "tiny-qwen3",
  "tiny-mistral",
  "tiny-gemma3",
  "tiny-gemma3-mm",
  "tiny-gpt_oss",
  "tiny-gpt_oss-mxfp4",
  "tiny-qwen3_next",
];

describe.each(FAMILIES)("%s against transformers", (name) => {
  const { golden, promptLogits } = readGolden(name);

  it("prompt logits at every position within 1e-4 relative", async () => {
    const model = await loadModel(fixtureDir(name), { backend: "cpu" });
    try {
      expect(model.vocabSize).toBe(golden.prompt_logits_shape[1]);
      const logits = await model.logits(golden.prompt_ids);
      expect(logits.length).toBe(promptLogits.length);
      const err = relativeError(logits, promptLogits);
      console.log(`${name}: prompt logits max relative error ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-4);
    } finally {
      await model.close();
    }
  });

  it("greedy continuation with the KV cache matches", async () => {
    const model = await loadModel(fixtureDir(name), { backend: "cpu" });
    try {
      const seq = model.newSequence();
      const steps = comparableSteps(golden.greedy_steps);
      let logits = await (await seq.forward(golden.prompt_ids, { logits: "last" })).read();
      const got: number[] = [];
      for (let i = 0; i < steps; i++) {
        const id = argmax(logits);
        got.push(id);
        logits = await (await seq.forward([id], { logits: "last" })).read();
      }
      expect(got).toEqual(golden.greedy_ids.slice(0, steps));
    } finally {
      await model.close();
    }
  });

  it("long prompt (past every sliding window): top-10 and greedy ids", async () => {
    const model = await loadModel(fixtureDir(name), { backend: "cpu" });
    try {
      const seq = model.newSequence();
      let logits = await (
        await seq.forward(golden.long_prompt_ids, { logits: "last", chunkTokens: 48 })
      ).read();
      const top = Array.from(logits.keys())
        .sort((a, b) => logits[b] - logits[a])
        .slice(0, 10);
      expect(top).toEqual(golden.long_last_logits_top.ids);
      const topLogits = top.map((i) => logits[i]);
      expect(relativeError(topLogits, golden.long_last_logits_top.logits)).toBeLessThan(1e-4);
      const steps = comparableSteps(golden.long_greedy_steps);
      const got: number[] = [];
      for (let i = 0; i < steps; i++) {
        const id = argmax(logits);
        got.push(id);
        logits = await (await seq.forward([id], { logits: "last" })).read();
      }
      expect(got).toEqual(golden.long_greedy_ids.slice(0, steps));
    } finally {
      await model.close();
    }
  });

  it("prefill then decode gives the logits of a longer prefill", async () => {
    const model = await loadModel(fixtureDir(name), { backend: "cpu" });
    try {
      const ids = golden.prompt_ids.concat(golden.greedy_ids.slice(0, 4));
      const full = await model.logits(ids);
      const seq = model.newSequence();
      await seq.forward(golden.prompt_ids, { logits: "last" });
      const vocab = model.vocabSize;
      for (let i = 0; i < 4; i++) {
        const step = await (await seq.forward([golden.greedy_ids[i]], { logits: "last" })).read();
        const row = golden.prompt_ids.length + i;
        expect(relativeError(step, full.subarray(row * vocab, (row + 1) * vocab))).toBeLessThan(1e-5);
      }
    } finally {
      await model.close();
    }
  });
});
