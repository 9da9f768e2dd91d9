import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GenerationChunk, type GenerationSummary, generate } from "../../src/engine/generate.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import { fixtureDir, readGolden } from "./oracle.js";

// Each id detokenizes to "<id>", which makes stop strings and held-back text easy to see.
const detokenizer = {
  createStreamDecoder: () => ({ push: (id: number) => `<${id}>`, flush: () => "" }),
};

async function collect(it: AsyncGenerator<GenerationChunk, GenerationSummary>) {
  const chunks: GenerationChunk[] = [];
  for (;;) {
    const r = await it.next();
    if (r.done) return { chunks, summary: r.value, text: chunks.map((c) => c.text).join("") };
    chunks.push(r.value);
  }
}

describe("generate", () => {
  const { golden } = readGolden("tiny-llama");
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(fixtureDir("tiny-llama"));
  });
  afterAll(() => model.close());

  it("greedy generation reproduces transformers' greedy ids and stops at maxNewTokens", async () => {
    const { chunks, summary, text } = await collect(
      generate(model.newSequence(), detokenizer, golden.prompt_ids, { maxNewTokens: 8 }),
    );
    expect(chunks.map((c) => c.token?.id)).toEqual(golden.greedy_ids.slice(0, 8));
    expect(text).toBe(
      golden.greedy_ids
        .slice(0, 8)
        .map((id) => `<${id}>`)
        .join(""),
    );
    expect(summary).toMatchObject({
      finishReason: "length",
      promptTokens: golden.prompt_ids.length,
      completionTokens: 8,
    });
  });

  it("stops on a stop token id without emitting its text", async () => {
    const stopId = golden.greedy_ids[2];
    const { summary, text } = await collect(
      generate(model.newSequence(), detokenizer, golden.prompt_ids, {
        maxNewTokens: 16,
        stopTokenIds: [stopId],
      }),
    );
    expect(summary.finishReason).toBe("stop");
    expect(summary.completionTokens).toBe(3);
    expect(text).toBe(`<${golden.greedy_ids[0]}><${golden.greedy_ids[1]}>`);
  });

  it("cuts at a stop string and holds back a partial match", async () => {
    const [a, b, c] = golden.greedy_ids;
    const stop = `><${c}`;
    const { chunks, summary, text } = await collect(
      generate(model.newSequence(), detokenizer, golden.prompt_ids, {
        maxNewTokens: 16,
        stopStrings: [stop],
      }),
    );
    expect(summary.finishReason).toBe("stop");
    expect(text).toBe(`<${a}><${b}`);
    // A trailing ">" could start the stop string, so each token's ">" waits for the next token.
    expect(chunks[0].text).toBe(`<${a}`);
    expect(chunks[1].text).toBe(`><${b}`);
  });

  it("releases held-back text when generation ends without the stop string", async () => {
    const { text, summary } = await collect(
      generate(model.newSequence(), detokenizer, golden.prompt_ids, {
        maxNewTokens: 2,
        stopStrings: ["><zz"],
      }),
    );
    expect(summary.finishReason).toBe("length");
    expect(text).toBe(`<${golden.greedy_ids[0]}><${golden.greedy_ids[1]}>`);
  });

  it("is cancelled by an AbortSignal", async () => {
    const controller = new AbortController();
    const run = generate(model.newSequence(), detokenizer, golden.prompt_ids, {
      maxNewTokens: 100,
      signal: controller.signal,
    });
    let n = 0;
    for (;;) {
      const r = await run.next();
      if (r.done) {
        expect(r.value.finishReason).toBe("cancelled");
        break;
      }
      if (++n === 3) controller.abort();
    }
    expect(n).toBe(3);
  });

  it("seeded sampling is reproducible", async () => {
    const opts = { maxNewTokens: 6, temperature: 1, topP: 0.9, seed: 123 };
    const a = await collect(generate(model.newSequence(), detokenizer, golden.prompt_ids, opts));
    const b = await collect(generate(model.newSequence(), detokenizer, golden.prompt_ids, opts));
    expect(a.text).toBe(b.text);
  });

  it("rejects an empty prompt and bad limits", async () => {
    await expect(collect(generate(model.newSequence(), detokenizer, []))).rejects.toThrow(/no tokens/);
    await expect(
      collect(generate(model.newSequence(), detokenizer, [1], { maxNewTokens: -1 })),
    ).rejects.toThrow(/maxNewTokens/);
    for (const topLogprobs of [1.5, -1, Number.NaN])
      await expect(
        collect(generate(model.newSequence(), detokenizer, [1], { maxNewTokens: 2, topLogprobs })),
      ).rejects.toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringMatching(/topLogprobs/) }),
      );
  });
});
