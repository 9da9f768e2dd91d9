import { afterEach, describe, expect, it } from "vitest";
import { loadModel } from "../../src/engine/model.js";
import { fixtureDir, readGolden } from "../engine/oracle.js";
import { relativeError } from "./helpers.js";

// The fixture logits with the WASM kernels against the TypeScript reference path (OLLM_CPU_KERNELS picks
// the kernels of each CpuBackend as it is created).
const FAMILIES = ["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-mistral"];

async function logits(name: string, kernels: "wasm" | "reference", threads: string): Promise<Float32Array> {
  process.env.OLLM_CPU_KERNELS = kernels;
  process.env.OLLM_CPU_THREADS = threads;
  const model = await loadModel(fixtureDir(name), { backend: "cpu" });
  try {
    return await model.logits(readGolden(name).golden.prompt_ids);
  } finally {
    await model.close();
  }
}

describe.each(FAMILIES)("%s: WASM kernels vs the TypeScript reference", (name) => {
  afterEach(() => {
    delete process.env.OLLM_CPU_KERNELS;
    delete process.env.OLLM_CPU_THREADS;
  });

  it("prompt logits within 1e-5 relative, 1 and 2 threads", async () => {
    const want = await logits(name, "reference", "1");
    for (const threads of ["1", "2"]) {
      const got = await logits(name, "wasm", threads);
      expect(relativeError(got, want)).toBeLessThan(1e-5);
    }
  });
});

describe("loadModel threads option", () => {
  it("runs the CPU backend with the threads asked for (same logits) and refuses nonsense", async () => {
    const name = "tiny-qwen2";
    const want = await logits(name, "reference", "1");
    delete process.env.OLLM_CPU_KERNELS;
    delete process.env.OLLM_CPU_THREADS;
    for (const threads of [1, 3]) {
      const model = await loadModel(fixtureDir(name), { backend: "cpu", threads });
      try {
        expect(relativeError(await model.logits(readGolden(name).golden.prompt_ids), want)).toBeLessThan(
          1e-5,
        );
      } finally {
        await model.close();
      }
    }
    await expect(loadModel(fixtureDir(name), { backend: "cpu", threads: 0 })).rejects.toThrow(/threads/);
  });
});
