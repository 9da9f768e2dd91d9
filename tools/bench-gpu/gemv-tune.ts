/**
 * The decode GEMV layouts on this adapter (WebGpuBackend.tuneGemv): GB/s of every (threads, loads in flight,
 * output rows per workgroup) candidate for the llama 1B and 8B projection shapes, bf16.
 *
 *   node gemv-tune.js [OUT_JSON]
 */
import { writeFileSync } from "node:fs";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";

const shapes: [string, number, number][] = [
  ["1b q/k/v (q)", 2048, 2048],
  ["1b gate, up", 8192, 2048],
  ["1b down", 2048, 8192],
  ["8b q/k/v (q), o", 4096, 4096],
  ["8b k, v", 1024, 4096],
  ["8b gate, up", 14336, 4096],
  ["8b down", 4096, 14336],
];
const g = await WebGpuBackend.create();
console.log(g.describe());
const results = [];
for (const [name, n, k] of shapes) {
  const r = await g.tuneGemv("bf16", n, k);
  const byOut = [1, 2, 4].map((out) => Math.max(...r.tried.filter((t) => t.out === out).map((t) => t.gbps)));
  console.log(
    `${name} [${n}×${k}]: best wg ${r.wg} unroll ${r.unroll} out ${r.out} ${r.gbps.toFixed(0)} GB/s; best by output rows 1/2/4: ${byOut.map((v) => v.toFixed(0)).join(" / ")} GB/s`,
  );
  results.push({ name, n, k, ...r });
}
await g.close();
if (process.argv[2]) writeFileSync(process.argv[2], `${JSON.stringify(results, null, 2)}\n`);
