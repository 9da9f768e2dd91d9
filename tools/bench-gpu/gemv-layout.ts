/**
 * CPU GEMV (bf16, [8192 × 2048] matrices over 512 MiB) in the tiled and the row-major layout, for several
 * thread counts, beside the read bandwidth: node gemv-layout.js 16,8,1
 */
import { measureGemv, measureReadBandwidth } from "../../src/bench/kernels.js";

for (const t of (process.argv[2] ?? "16,8,1").split(",").map(Number)) {
  const read = measureReadBandwidth(t).bytesPerSecond / 1e9;
  const tiled = measureGemv("bf16", t).bytesPerSecond / 1e9;
  const rowMajor = measureGemv("bf16", t, { layout: "row-major" }).bytesPerSecond / 1e9;
  console.log(
    `${t} threads: read ${read.toFixed(1)} GB/s; GEMV bf16 tiled ${tiled.toFixed(1)} (${((100 * tiled) / read).toFixed(0)} %), row-major ${rowMajor.toFixed(1)} (${((100 * rowMajor) / read).toFixed(0)} %)`,
  );
}
process.exit(0);
