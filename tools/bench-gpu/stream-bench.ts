/**
 * Decode with layers streamed onto the GPU (the offload engine's residency on WebGPU): every layer from host
 * memory, half of them, and none (all resident), on one checkpoint. Greedy generate(), tok/s and the
 * streaming store's counters.
 *
 *   node stream-bench.js MODEL_DIR [TOKENS] [JSON_OUT]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { generate } from "../../src/engine/generate.js";
import { loadModel } from "../../src/engine/model.js";
import type { Residency } from "../../src/engine/residency/policy.js";
import { SILENT } from "./common.js";

const [dir, tokensArg, jsonOut] = process.argv.slice(2);
const tokens = Number(tokensArg ?? 16);
const results: Record<string, unknown>[] = [];
const config = JSON.parse(readFileSync(`${dir}/config.json`, "utf8")) as { num_hidden_layers: number };
const layers = config.num_hidden_layers;
for (const [name, residency] of [
  ["all resident", undefined],
  ["half from host", Array.from({ length: layers }, (_, i) => (i % 2 ? "host" : "device"))],
  ["all from host", Array.from({ length: layers }, () => "host")],
] as [string, Residency[] | undefined][]) {
  const t0 = performance.now();
  const model = await loadModel(dir, { backend: "webgpu", residency });
  const loadS = (performance.now() - t0) / 1000;
  const seq = model.newSequence();
  const run = async (count: number) => {
    const s0 = performance.now();
    for await (const _ of generate(seq, SILENT, [1, 2, 3, 4, 5, 6, 7, 8], { maxNewTokens: count }));
    seq.reset();
    return count / ((performance.now() - s0) / 1000);
  };
  await run(4);
  const tokS = await run(tokens);
  const stats = model.streamingStats();
  results.push({ name, loadS, tokS, stats });
  console.log(
    `${name}: ${tokS.toFixed(2)} tok/s (load ${loadS.toFixed(1)} s)${stats ? `; ${stats.layerLoads} layer loads, upload ${stats.uploadMs.toFixed(0)} ms, waited ${stats.waitMs.toFixed(0)} ms` : ""}`,
  );
  await model.close();
}
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ dir, tokens, results }, null, 2)}\n`);
process.exit(0);
