/** Helpers of the generation tests: generate()'s tokens, and the tokens of the full-logits reference loop. */
import { expect, vi } from "vitest";
import { type GenerateOptions, generate } from "../../src/engine/generate.js";
import type { Model } from "../../src/engine/model.js";
import { Rng, type SampledToken, sampleToken } from "../../src/engine/sampling.js";

const detokenizer = {
  createStreamDecoder: () => ({ push: (id: number) => `<${id}>`, flush: () => "" }),
};

/** The tokens generate() yields, and how many times the backend's topKRows ran. */
export async function generated(
  model: Model,
  prompt: readonly number[],
  options: GenerateOptions,
): Promise<{ tokens: SampledToken[]; topKCalls: number }> {
  const spy = vi.spyOn(model.backend, "topKRows");
  try {
    const tokens: SampledToken[] = [];
    for await (const chunk of generate(model.newSequence(), detokenizer, prompt, options))
      if (chunk.token) tokens.push(chunk.token);
    return { tokens, topKCalls: spy.mock.calls.length };
  } finally {
    spy.mockRestore();
  }
}

/** What generation did before the top-k path: read the whole logits row and run sampleToken. */
export async function reference(
  model: Model,
  prompt: readonly number[],
  options: GenerateOptions,
): Promise<SampledToken[]> {
  const seq = model.newSequence();
  const rng = new Rng(options.seed);
  const history = [...prompt];
  const tokens: SampledToken[] = [];
  let input: readonly number[] = prompt;
  for (let i = 0; i < (options.maxNewTokens ?? 256); i++) {
    const logits = await (await seq.forward(input, { logits: "last" })).read();
    const token = sampleToken(logits, options, history, rng, options.topLogprobs ?? 0);
    tokens.push(token);
    history.push(token.id);
    input = [token.id];
  }
  seq.dispose();
  return tokens;
}

/** Same ids (chosen and top-N), logprobs within `tol` (the top-k path reduces log Σ exp in f32 on a device). */
export function expectSameTokens(got: SampledToken[], want: SampledToken[], tol = 1e-5): void {
  expect(got.map((t) => t.id)).toEqual(want.map((t) => t.id));
  for (let i = 0; i < want.length; i++) {
    expect(Math.abs(got[i].logprob - want[i].logprob)).toBeLessThanOrEqual(tol);
    expect(got[i].topLogprobs?.map((e) => e.id)).toEqual(want[i].topLogprobs?.map((e) => e.id));
    want[i].topLogprobs?.forEach((e, j) => {
      expect(Math.abs((got[i].topLogprobs?.[j].logprob ?? Number.NaN) - e.logprob)).toBeLessThanOrEqual(tol);
    });
  }
}

/** The cases both backends run: which path each takes, and the tokens it must reproduce. */
export const TOPK_CASES: { name: string; options: GenerateOptions; topK: boolean }[] = [
  { name: "greedy", options: { maxNewTokens: 8 }, topK: true },
  { name: "greedy with 5 top logprobs", options: { maxNewTokens: 6, topLogprobs: 5 }, topK: true },
  { name: "greedy with 64 top logprobs", options: { maxNewTokens: 3, topLogprobs: 64 }, topK: true },
  {
    name: "temperature with topK 1",
    options: { maxNewTokens: 4, temperature: 0.7, topK: 1, topLogprobs: 2 },
    topK: true,
  },
  {
    name: "repetition penalty (full row)",
    options: { maxNewTokens: 6, repetitionPenalty: 1.3, topLogprobs: 3 },
    topK: false,
  },
  { name: "65 top logprobs (full row)", options: { maxNewTokens: 2, topLogprobs: 65 }, topK: false },
  {
    name: "sampling (full row)",
    options: { maxNewTokens: 6, temperature: 0.9, topP: 0.95, seed: 7, topLogprobs: 2 },
    topK: false,
  },
];
