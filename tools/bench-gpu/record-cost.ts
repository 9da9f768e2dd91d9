/** Host-side cost of recording ops (no GPU wait): µs per op for a few op kinds. */
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";

const g = await WebGpuBackend.create({ device: process.argv[2] ?? "auto" });
console.log(g.describe());
const n = 4096;
const x = g.fromFloat32(new Float32Array(n).fill(0.5), [1, n]);
const w = g.upload(new Uint8Array(n * 1024 * 2), "bf16", [1024, n]);
await g.sync();
for (let rep = 0; rep < 4; rep++) {
  const N = 5000;
  let t0 = performance.now();
  let h = x;
  for (let i = 0; i < N; i++) h = g.add(h, x);
  const add = ((performance.now() - t0) / N) * 1000;
  await h.read();
  t0 = performance.now();
  for (let i = 0; i < N / 10; i++) h = g.linear(x, w);
  const lin = ((performance.now() - t0) / (N / 10)) * 1000;
  await h.read();
  console.log(`record: add ${add.toFixed(2)} µs/op, linear ${lin.toFixed(2)} µs/op`);
}
await g.close();
