import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { type GenerateOptions, generate } from "../../src/engine/generate.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import type { Sequence } from "../../src/engine/sequence.js";
import { expectSameTokens, generated, reference, TOPK_CASES } from "../engine/generate-reference.js";
import { fixtureDir, readGolden } from "../engine/oracle.js";
import { gpuOrSkip, relErr } from "./gpu-setup.js";

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

run("generate on WebGPU runs a step ahead and drops it when generation ends", () => {
  const { golden } = readGolden("tiny-llama");
  const prompt = golden.prompt_ids;
  const want = golden.greedy_ids.slice(0, 8);
  const detokenizer = {
    createStreamDecoder: () => ({ push: (id: number) => `<${id}>`, flush: () => "" }),
  };
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(fixtureDir("tiny-llama"), { backend: "webgpu" });
  });
  afterAll(() => model?.close());

  /** Generates, stopping the loop after `breakAfter` tokens when given; the ids, the sequence and its inputs. */
  async function run(options: GenerateOptions, breakAfter?: number) {
    const seq = model.newSequence();
    const forward = vi.spyOn(seq, "forward");
    const ids: number[] = [];
    for await (const chunk of generate(seq, detokenizer, prompt, options)) {
      if (chunk.token) ids.push(chunk.token.id);
      if (ids.length === breakAfter) break;
    }
    const fromDevice = forward.mock.calls.filter(([input]) => !Array.isArray(input)).length;
    forward.mockRestore();
    return { ids, seq, fromDevice };
  }

  /** The sequence holds the prompt and every token but the last, and continues as a fresh one would. */
  async function expectConsistent(seq: Sequence, ids: number[]): Promise<void> {
    expect(seq.length).toBe(prompt.length + ids.length - 1);
    const fresh = model.newSequence();
    const all = [...prompt, ...ids];
    const expected = await (await fresh.forward(all, { logits: "last" })).read();
    const got = await (await seq.forward([ids[ids.length - 1]], { logits: "last" })).read();
    expect(relErr(got, expected)).toBeLessThan(1e-5);
    fresh.dispose();
    seq.dispose();
  }

  it("feeds each step from the previous token on the device; none is wasted at maxNewTokens", async () => {
    const { ids, seq, fromDevice } = await run({ maxNewTokens: 8 });
    expect(ids).toEqual(want);
    expect(fromDevice).toBe(7);
    await expectConsistent(seq, ids);
  });

  it("records two steps ahead of the token it waits for", async () => {
    const seq = model.newSequence();
    const forward = vi.spyOn(seq, "forward");
    let atFirstToken = -1;
    for await (const chunk of generate(seq, detokenizer, prompt, { maxNewTokens: 8 })) {
      if (chunk.token && atFirstToken < 0) atFirstToken = forward.mock.calls.length;
    }
    forward.mockRestore();
    // The prompt, then steps 2 and 3 fed from tokens 1 and 2 still on the device.
    expect(atFirstToken).toBe(3);
    seq.dispose();
  });

  it("mid-step submits ramp up after a read, and come every n dispatches while a read is in flight", async () => {
    const every = 4;
    const often = await loadModel(fixtureDir("tiny-llama"), { backend: "webgpu", submitEvery: every });
    try {
      const backend = often.backend as WebGpuBackend;
      const seq = often.newSequence();
      const step = async (withReadInFlight: boolean) => {
        const logits = await seq.forward(prompt, { logits: "last" });
        const read = withReadInFlight ? logits.read() : undefined;
        if (!read) await logits.read();
        const before = backend.stats();
        const next = await seq.forward([want[0]], { logits: "last" });
        const after = backend.stats();
        await read;
        await next.read();
        seq.reset();
        return { submits: after.submits - before.submits, dispatches: after.dispatches - before.dispatches };
      };
      // Submits land where the recording code yields (between layers), at most one per `every` dispatches.
      const behindRead = await step(true);
      expect(behindRead.submits).toBeGreaterThanOrEqual(1);
      expect(behindRead.submits).toBeLessThanOrEqual(Math.floor(behindRead.dispatches / every));
      // After a read the interval ramps up from one dispatch: the step is handed over sooner, in more pieces.
      const idle = await step(false);
      expect(idle.submits).toBeGreaterThan(behindRead.submits);
    } finally {
      await often.close();
    }
  });

  it("a stop id drops the step recorded ahead", async () => {
    const { ids, seq } = await run({ maxNewTokens: 8, stopTokenIds: [want[3]] });
    expect(ids).toEqual(want.slice(0, 4));
    await expectConsistent(seq, ids);
  });

  it("a stop string drops the step recorded ahead", async () => {
    const { ids, seq } = await run({ maxNewTokens: 8, stopStrings: [`<${want[2]}>`] });
    expect(ids).toEqual(want.slice(0, 3));
    await expectConsistent(seq, ids);
  });

  it("cancelling and breaking out of the loop drop the step recorded ahead", async () => {
    const controller = new AbortController();
    const seqOf = model.newSequence();
    const ids: number[] = [];
    for await (const chunk of generate(seqOf, detokenizer, prompt, {
      maxNewTokens: 8,
      signal: controller.signal,
    })) {
      if (chunk.token) ids.push(chunk.token.id);
      if (ids.length === 2) controller.abort();
    }
    expect(ids).toEqual(want.slice(0, 2));
    await expectConsistent(seqOf, ids);
    const broken = await run({ maxNewTokens: 8 }, 5);
    expect(broken.ids).toEqual(want.slice(0, 5));
    await expectConsistent(broken.seq, broken.ids);
  });
});
