/**
 * Where a WebGPU decode step's wall time goes: recording (the forward call), and the read (submit + GPU +
 * map), per step, with one submit per step and with a submit every N dispatches. Run under `node --cpu-prof`
 * for the JavaScript side.
 *
 *   node decode-profile.js MODEL_DIR [STEPS]
 */
import type { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { loadModel } from "../../src/engine/model.js";

const dir = process.argv[2];
const steps = Number(process.argv[3] ?? 64);
const model = await loadModel(dir, { backend: "webgpu" });
const backend = model.backend as WebGpuBackend;
const seq = model.newSequence();
let next = 1;
const step = async () => {
  const t0 = performance.now();
  const out = await seq.forward([next], { logits: "last" });
  const t1 = performance.now();
  const logits = await out.read();
  const t2 = performance.now();
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  next = best;
  return [t1 - t0, t2 - t1];
};
await (await seq.forward([1, 2, 3, 4, 5, 6, 7, 8], { logits: "last" })).read();
for (const every of [0, 16, 32, 64, 128]) {
  backend.setSubmitEvery(every);
  for (let i = 0; i < 8; i++) await step();
  const d0 = backend.stats().dispatches;
  let rec = 0;
  let read = 0;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    const [a, b] = await step();
    rec += a;
    read += b;
  }
  const wall = performance.now() - t0;
  const dispatches = (backend.stats().dispatches - d0) / steps;
  console.log(
    `submit every ${every || "step"}: ${((steps * 1000) / wall).toFixed(1)} tok/s; per step record ${(rec / steps).toFixed(2)} ms (${((rec * 1000) / steps / dispatches).toFixed(1)} µs/dispatch, ${dispatches.toFixed(0)} dispatches), read ${(read / steps).toFixed(2)} ms`,
  );
}
await model.close();
