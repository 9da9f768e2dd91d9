import { it } from "vitest";
import { loadModel } from "../src/engine/model.js";
import { fixtureDir, readGolden, relativeError, argmax } from "./engine/oracle.js";

it("smoke weights", async () => {
  for (const name of ["tiny-llama", "tiny-mistral", "tiny-gemma3-mm", "tiny-gpt_oss", "tiny-gpt_oss-mxfp4", "tiny-qwen3_next"]) {
    const { golden } = readGolden(name);
    const run = async (opts: any, order?: any) => {
      const model = await loadModel(fixtureDir(name), { backend: "cpu", ...opts });
      const seq = model.newSequence();
      const out: Float32Array[] = [];
      let logits = await (await seq.forward(golden.long_prompt_ids, { logits: "last", chunkTokens: 48, order })).read();
      out.push(logits);
      for (let i = 0; i < 4; i++) {
        logits = await (await seq.forward([argmax(logits)], { logits: "last" })).read();
        out.push(logits);
      }
      const stats = model.streamingStats();
      seq.dispose();
      await model.close();
      return { out, stats };
    };
    const ref = await run({});
    const n = ref.out.length;
    const L = (await loadModel(fixtureDir(name), { backend: "cpu" })).lm.numLayers;
    for (const [label, opts, order] of [
      ["disk", { residency: Array(L).fill("disk") }, undefined],
      ["disk-tm", { residency: Array(L).fill("disk") }, "token-major"],
      ["mixed", { residency: Array.from({ length: L }, (_, i) => (i % 2 ? "disk" : "host")), expertCacheBytes: 1 << 20 }, undefined],
      ["host-gpu-like", { residency: Array(L).fill("disk"), prefetchWeights: false }, undefined],
    ] as const) {
      const got = await run(opts, order);
      const err = Math.max(...got.out.map((g, i) => relativeError(g, ref.out[i])));
      console.log(name, label, err, JSON.stringify(got.stats));
    }
  }
});
