/**
 * Where the GPU time of a decode step goes, kernel by kernel, in the step's real sequence: every dispatch of
 * `STEPS` decode steps timed on its own (WebGpuBackend.startProfile), one submission per step. Prints the
 * per-step time of each kernel, their sum (busy) and the span of the step (busy + the gaps between
 * dispatches), and writes them as JSON.
 *
 * With PROMPT > 0, the profile is of one prefill of PROMPT tokens instead (STEPS is then 1).
 *
 *   node dispatch-profile.js MODEL_DIR [STEPS] [OUT_JSON] [PROMPT]
 */
import { writeFileSync } from "node:fs";
import type { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { loadModel } from "../../src/engine/model.js";

const [dir, stepsArg, json, promptArg] = process.argv.slice(2);
const prompt = Number(promptArg ?? 0);
const steps = prompt > 0 ? 1 : Number(stepsArg ?? 16);
const model = await loadModel(dir, { backend: "webgpu", stats: true });
const backend = model.backend as WebGpuBackend;
backend.setSubmitEvery(0);
backend.setTiming(false);
const seq = model.newSequence();
let next = 1;
const step = async () => {
  const out = await seq.forward([next], { logits: "last" });
  next = (await backend.topKRows(out, 1).read())[0];
};
await (await seq.forward([1, 2, 3, 4, 5, 6, 7, 8], { logits: "last" })).read();
for (let i = 0; i < 8; i++) await step();
const long = Array.from({ length: prompt }, (_, i) => (i * 131 + 17) % model.vocabSize);
if (prompt > 0) await (await model.newSequence().forward(long.slice(0, 256), { logits: "last" })).read();
backend.startProfile();
if (prompt > 0) await (await model.newSequence().forward(long, { logits: "last" })).read();
else for (let i = 0; i < steps; i++) await step();
const profile = await backend.stopProfile();
await model.close();
const perStep = (ms: number) => (ms / steps) * 1000;
console.log(
  `${dir}: ${profile.dispatches / steps} dispatches/step; busy ${perStep(profile.busyMs).toFixed(0)} µs/step, span ${perStep(profile.spanMs).toFixed(0)} µs/step (gaps ${perStep(profile.spanMs - profile.busyMs).toFixed(0)} µs, ${((perStep(profile.spanMs - profile.busyMs) * steps) / profile.dispatches).toFixed(2)} µs/dispatch)`,
);
for (const k of profile.kernels)
  console.log(
    `${perStep(k.ms).toFixed(1).padStart(9)} µs/step ${(k.count / steps).toFixed(0).padStart(4)}× ${((k.ms * 1000) / k.count).toFixed(2).padStart(8)} µs  ${k.kernel}`,
  );
if (json) writeFileSync(json, `${JSON.stringify({ dir, steps, ...profile }, null, 2)}\n`);
