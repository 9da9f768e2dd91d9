/**
 * Where the host time of a WebGPU decode step goes: inclusive time per backend method (wrapped from
 * outside), per step, over greedy generate() steps with the backend's default submission policy. Run under
 * `node --cpu-prof` for the JavaScript side in detail.
 *
 *   node host-cost.js MODEL_DIR [STEPS] [JSON_OUT]
 */
import { writeFileSync } from "node:fs";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { generate } from "../../src/engine/generate.js";
import { loadModel } from "../../src/engine/model.js";
import { SILENT } from "./common.js";

const [dir, stepsArg, jsonOut] = process.argv.slice(2);
const steps = Number(stepsArg ?? 64);
const METHODS = [
  ...["linear", "linearMany", "linearGated", "attention", "rope", "embedding", "topKRows", "sliceRows"],
  ...["writeRows", "readTensor", "beginScope", "endScope", "dispatch", "prepare", "flush", "defer"],
];
const totals = new Map<string, { ms: number; calls: number }>();
let on = false;
const proto = WebGpuBackend.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
for (const name of METHODS) {
  const f = proto[name];
  proto[name] = function (this: unknown, ...a: unknown[]) {
    const t0 = performance.now();
    try {
      return f.apply(this, a);
    } finally {
      if (on) {
        const s = totals.get(name) ?? { ms: 0, calls: 0 };
        s.ms += performance.now() - t0;
        s.calls++;
        totals.set(name, s);
      }
    }
  };
}

const model = await loadModel(dir, { backend: "webgpu" });
const backend = model.backend as WebGpuBackend;
backend.setTiming(false);
const seq = model.newSequence();
const run = async (count: number) => {
  let n = 0;
  for await (const c of generate(seq, SILENT, [1, 2, 3, 4, 5, 6, 7, 8], { maxNewTokens: count }))
    if (c.token) n++;
  return n;
};
await run(48);
seq.reset();
await run(8);
on = true;
const t0 = performance.now();
await run(steps);
const wall = performance.now() - t0;
on = false;
const rows = [...totals.entries()]
  .sort((a, b) => b[1].ms - a[1].ms)
  .map(([name, s]) => ({
    name,
    usPerStep: (s.ms / steps) * 1000,
    callsPerStep: s.calls / steps,
    usPerCall: (s.ms / s.calls) * 1000,
  }));
console.log(
  `${dir}: ${((steps / wall) * 1000).toFixed(1)} tok/s over ${steps} steps (with the wrappers' cost)`,
);
for (const r of rows)
  console.log(
    `  ${r.name.padEnd(12)} ${r.usPerStep.toFixed(0).padStart(6)} µs/step ${r.callsPerStep.toFixed(1).padStart(6)} calls ${r.usPerCall.toFixed(2).padStart(8)} µs/call`,
  );
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify({ dir, steps, wallMs: wall, rows }, null, 2)}\n`);
await model.close();
process.exit(0);
