/**
 * What `--backend auto` sees on this machine: the runtime's quiet WebGPU probe (adapters, detected memory)
 * and the backend it would choose with no GPU budget given. For checking the probe on a GPU machine.
 *
 *   node auto-probe.js [JSON_OUT]
 */
import { writeFileSync } from "node:fs";
import { chooseBackend } from "../../src/runtime/backend-choice.js";
import { probeWebGpu } from "../../src/runtime/gpu-probe.js";
import { probeMachine } from "../../src/runtime/machine.js";

const t0 = performance.now();
const webgpu = await probeWebGpu();
const probeMs = performance.now() - t0;
const choice = chooseBackend(
  { backend: "auto", device: "auto", gpuMemoryBudget: undefined, offloadGpuLayers: 0 },
  { ...(await probeMachine()), webgpu },
);
const result = { probeMs: Math.round(probeMs), webgpu, choice };
console.log(JSON.stringify(result, null, 2));
if (process.argv[2]) writeFileSync(process.argv[2], `${JSON.stringify(result, null, 2)}\n`);
