import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generate } from "../../src/engine/generate.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import { chunkedPromptThenDecodeError } from "../../tools/bench-gpu/common.js";
import { comparableSteps, fixtureDir, readGolden } from "../engine/oracle.js";
import { gpuOrSkip, relErr } from "./gpu-setup.js";

const probe = await gpuOrSkip();
await probe?.close();

const FAMILIES = [
  "tiny-llama",
  "tiny-qwen2",
  "tiny-qwen3",
  "tiny-mistral",
  "tiny-gemma3",
  "tiny-gpt_oss",
  "tiny-gpt_oss-mxfp4",
  "tiny-qwen3_next",
];

const run = probe ? describe : describe.skip;

run.each(FAMILIES)("%s on WebGPU against the CPU backend", (name) => {
  const { golden, promptLogits } = readGolden(name);
  let gpu: Model;
  let cpu: Model;

  beforeAll(async () => {
    // A submit asked for after every dispatch (a hardware adapter's default is 128; llvmpipe's is once per
    // step): ops must stay whole across submits (their arena data belongs to one submission).
    gpu = await loadModel(fixtureDir(name), { backend: "webgpu", submitEvery: 1 });
    cpu = await loadModel(fixtureDir(name), { backend: "cpu" });
    expect(gpu.backend.name).toBe("webgpu");
  });

  afterAll(async () => {
    await gpu?.close();
    await cpu?.close();
  });

  it("prompt logits at every position within 1e-3 relative (of the CPU and of transformers)", async () => {
    const got = await gpu.logits(golden.prompt_ids);
    const want = await cpu.logits(golden.prompt_ids);
    const err = relErr(got, want);
    console.log(`${name}: WebGPU vs CPU prompt logits max relative error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-3);
    expect(relErr(got, promptLogits)).toBeLessThan(1e-3);
  });

  it("greedy generate() (each step recorded ahead from the token on the device) gives transformers' ids", async () => {
    const count = comparableSteps(golden.greedy_steps);
    const seq = gpu.newSequence();
    const detokenizer = { createStreamDecoder: () => ({ push: () => "", flush: () => "" }) };
    const ids: number[] = [];
    for await (const chunk of generate(seq, detokenizer, golden.prompt_ids, { maxNewTokens: count }))
      if (chunk.token) ids.push(chunk.token.id);
    expect(ids).toEqual(golden.greedy_ids.slice(0, count));
    expect(seq.length).toBe(golden.prompt_ids.length + count - 1);
    seq.dispose();
  });

  it("chunked prefill past the sliding windows, then decode with the KV cache", async () => {
    const worst = await chunkedPromptThenDecodeError(gpu, cpu, golden.long_prompt_ids);
    console.log(
      `${name}: WebGPU vs CPU long prompt + 4 decode steps max relative error ${worst.toExponential(2)}`,
    );
    expect(worst).toBeLessThan(1e-3);
  });
});
