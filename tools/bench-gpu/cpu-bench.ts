/**
 * Our CPU backend on a many-core machine (the device's host): `runBench` in one process for the given
 * thread counts, no peer. Prints the table and writes the JSON.
 *
 *   node cpu-bench.js MODEL_DIR THREADS[,THREADS…] OUT_JSON
 */
import { writeFileSync } from "node:fs";
import { formatBenchTable, runBench } from "../../src/bench/index.js";

const [dir, threads, out] = process.argv.slice(2);
const result = await runBench({
  model: dir,
  threads: threads.split(",").map(Number),
  promptLengths: [128],
  outputLengths: [32],
  repeats: 2,
  session: false,
  gemvDtypes: ["bf16"],
  isolate: false,
  onProgress: (m) => console.log(m),
});
console.log(formatBenchTable(result));
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
