/**
 * Decode with layers streamed onto the GPU (the offload engine's residency on WebGPU): every layer from host
 * memory, half of them, none (all resident), and all from disk, on one
 * checkpoint. Greedy generate(), tok/s, the layer bytes moved to the device per second, and the streaming
 * store's counters.
 *
 *   node stream-bench.js MODEL_DIR [TOKENS] [JSON_OUT]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { generate } from "../../src/engine/generate.js";
import { loadModel } from "../../src/engine/model.js";
import type { Residency } from "../../src/engine/residency/policy.js";
import { Checkpoint } from "../../src/engine/weights/safetensors.js";
import { SILENT } from "./common.js";

const [dir, tokensArg, jsonOut] = process.argv.slice(2);
const tokens = Number(tokensArg ?? 16);
const results: Record<string, unknown>[] = [];
const config = JSON.parse(readFileSync(`${dir}/config.json`, "utf8")) as { num_hidden_layers: number };
const layers = config.num_hidden_layers;
const ckpt = await Checkpoint.open(dir);
const layerBytes =
  ckpt
    .names()
    .filter((n) => /\.layers\.\d+\./.test(n))
    .reduce((sum, n) => sum + ckpt.info(n).byteLength, 0) / layers;
await ckpt.close();
let residentIds: number[] | undefined;
const all = (r: Residency) => Array.from({ length: layers }, () => r);
for (const [name, residency] of [
  ["all resident", undefined],
  ["half from host", Array.from({ length: layers }, (_, i) => (i % 2 ? "host" : "device"))],
  ["all from host", all("host")],
  ["all from disk", all("disk")],
] as [string, Residency[] | undefined][]) {
  const t0 = performance.now();
  const model = await loadModel(dir, { backend: "webgpu", residency });
  const loadS = (performance.now() - t0) / 1000;
  const seq = model.newSequence();
  let ids: number[] = [];
  const run = async (count: number) => {
    const s0 = performance.now();
    ids = [];
    for await (const chunk of generate(seq, SILENT, [1, 2, 3, 4, 5, 6, 7, 8], { maxNewTokens: count }))
      if (chunk.token) ids.push(chunk.token.id);
    seq.reset();
    return count / ((performance.now() - s0) / 1000);
  };
  await run(2);
  const tokS = await run(tokens);
  // Streamed weights must give the resident model's greedy tokens.
  residentIds ??= ids;
  const same = ids.join() === residentIds.join();
  const stats = model.streamingStats();
  const streamed = residency?.filter((r) => r !== "device").length ?? 0;
  const gbPerS = (tokS * streamed * layerBytes) / 1e9;
  results.push({ name, loadS, tokS, layerBytes, streamedLayers: streamed, gbPerS, sameTokens: same, stats });
  console.log(
    `${name}: ${tokS.toFixed(2)} tok/s, ${same ? "same tokens as resident" : "TOKENS DIFFER from resident"}, ${gbPerS.toFixed(1)} GB/s of layers to the device (load ${loadS.toFixed(1)} s)${stats ? `; ${stats.layerLoads} layer loads, copy recording ${stats.uploadMs.toFixed(0)} ms, waited ${stats.waitMs.toFixed(0)} ms` : ""}`,
  );
  await model.close();
}
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ dir, tokens, results }, null, 2)}\n`);
process.exit(0);
