/**
 * The sliding-window ring-buffer KV cache on WebGPU (attention with key position offsets): the same logits as
 * the CPU backend's ring and as WebGPU attention limited to the window over a resident cache.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BACKENDS_WITH_KEY_OFFSET } from "../../src/engine/kv/ring.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import { fixtureDir } from "../engine/oracle.js";
import { maxRelativeError, runScript, runWith, type Script, scriptFor } from "../offload/helpers.js";
import { gpuOrSkip } from "./gpu-setup.js";

const probe = await gpuOrSkip();
await probe?.close();
const run = probe ? describe : describe.skip;

it("webgpu attention honours kvPositionOffset", () => {
  expect(BACKENDS_WITH_KEY_OFFSET.has("webgpu")).toBe(true);
});

run.each([
  ["tiny-mistral", 32],
  ["tiny-llama", 24],
  ["tiny-gemma3", 24],
])("%s: ring buffer (window %i) on WebGPU", (name, window) => {
  let gpu: Model;
  let cpu: Model;
  let script: Script;
  beforeAll(async () => {
    gpu = await loadModel(fixtureDir(name), { backend: "webgpu" });
    cpu = await loadModel(fixtureDir(name), { backend: "cpu" });
    script = await scriptFor(cpu, name, 4);
  });
  afterAll(async () => {
    await gpu?.close();
    await cpu?.close();
  });

  it("matches the windowed resident cache on WebGPU and the CPU ring, while it wraps", async () => {
    const ring = { strategy: "sliding-window-ring-buffer", windowTokens: window } as const;
    const windowed = await runWith(gpu, script, { strategy: "resident", windowTokens: window });
    for (const chunkTokens of [48, 7]) {
      const got = await runWith(gpu, { ...script, chunkTokens }, ring);
      const want = await runWith(cpu, { ...script, chunkTokens }, ring);
      const errGpu = maxRelativeError(got, windowed);
      const errCpu = maxRelativeError(got, want);
      console.log(
        `${name} chunks of ${chunkTokens}: vs windowed resident ${errGpu.toExponential(2)}, vs CPU ring ${errCpu.toExponential(2)}`,
      );
      expect(errGpu).toBeLessThan(1e-5);
      expect(errCpu).toBeLessThan(1e-4);
    }
    // Bounded memory: the ring holds mirrored copies of (window + the largest chunk − 1) rows, not the context.
    const seq = gpu.newSequence(ring);
    await runScript(seq, script);
    expect(seq.length).toBe(script.prompt.length + script.decode.length);
    expect(seq.kvStore.usage().deviceBytes).toBeLessThan(
      gpu.newSequence({ strategy: "resident" }).kvStore.usage().deviceBytes * 4,
    );
    seq.dispose();
  });
});
