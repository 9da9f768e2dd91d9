/** Layers streamed from host memory or disk onto the WebGPU backend (the offload engine's residency). */
import { describe, expect, it } from "vitest";
import { loadModel, type Model } from "../../src/engine/model.js";
import { fixtureDir } from "../engine/oracle.js";
import { gpuOrSkip, relErr } from "./gpu-setup.js";

const probe = await gpuOrSkip();
await probe?.close();
const run = probe ? describe : describe.skip;

/** Prompt logits and three greedy decode steps' logits. */
async function logitsOf(model: Model, ids: number[]): Promise<Float32Array[]> {
  const seq = model.newSequence();
  const out = [await (await seq.forward(ids, { logits: "last" })).read()];
  for (let i = 0; i < 3; i++) {
    const row = out[out.length - 1];
    const next = row.indexOf(Math.max(...row));
    out.push(await (await seq.forward([next], { logits: "last" })).read());
  }
  seq.dispose();
  return out;
}

run("streamed layers on WebGPU", () => {
  const ids = [1, 5, 9, 23, 44, 7, 3, 99];

  it.each([
    ["tiny-llama", ["disk", "host", "device"]],
    ["tiny-llama", ["disk", "disk", "disk"]],
    ["tiny-gpt_oss", ["disk", "host", "disk"]],
  ] as const)("%s with residency %j gives the resident model's logits", async (name, residency) => {
    const resident = await loadModel(fixtureDir(name), { backend: "webgpu" });
    const streamed = await loadModel(fixtureDir(name), { backend: "webgpu", residency: [...residency] });
    try {
      const want = await logitsOf(resident, ids);
      const got = await logitsOf(streamed, ids);
      for (let i = 0; i < want.length; i++) expect(relErr(got[i], want[i])).toBeLessThan(1e-5);
      expect(streamed.streamingStats()?.layerLoads).toBeGreaterThan(0);
    } finally {
      await resident.close();
      await streamed.close();
    }
  });
});
