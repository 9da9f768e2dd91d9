/** Shared setup of the WebGPU tests: headless Mesa (llvmpipe through EGL) env, one backend per file or a skip. */
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { errorBounds } from "../engine/oracle.js";

process.env.XDG_RUNTIME_DIR ??= "/tmp";
process.env.EGL_PLATFORM ??= "surfaceless";

/** The WebGPU backend, or undefined (with the reason printed) when this machine has no adapter. */
export async function gpuOrSkip(): Promise<WebGpuBackend | undefined> {
  try {
    const gpu = await WebGpuBackend.create();
    console.log(`WebGPU tests on ${gpu.describe()}`);
    return gpu;
  } catch (error) {
    console.warn(`skipping WebGPU tests: ${(error as Error).message}`);
    return undefined;
  }
}

export const cpu = new CpuBackend();

/** Deterministic uniform values in [-scale, scale). */
export function random(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/** max |a - b| / max |b|, or max |a - b| where b is all zeros. */
export function relErr(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  const { maxDiff, maxRef } = errorBounds(actual, expected);
  return maxRef === 0 ? maxDiff : maxDiff / maxRef;
}
