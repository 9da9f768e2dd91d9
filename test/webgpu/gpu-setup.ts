/** Shared setup of the WebGPU tests: headless Mesa (llvmpipe through EGL) env, one backend per file or a skip. */
import { expect } from "vitest";
import type { Backend } from "../../src/engine/backend.js";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import type { DType, Tensor } from "../../src/engine/tensor.js";
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

function f16Bits(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp <= 0) return sign; // flush tiny values (test data stays in the normal range)
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | Math.round(mant / 8192);
}

/** Bytes of `values` stored as `dtype` (bf16 truncated, f16 rounded, i8/u8 as integers). */
export function encode(values: Float32Array, dtype: DType): Uint8Array {
  switch (dtype) {
    case "f32":
      return new Uint8Array(values.slice().buffer);
    case "bf16": {
      const bits = new Uint32Array(values.slice().buffer);
      return new Uint8Array(Uint16Array.from(bits, (b) => b >>> 16).buffer);
    }
    case "f16":
      return new Uint8Array(Uint16Array.from(values, f16Bits).buffer);
    case "i8":
      return new Uint8Array(Int8Array.from(values, (v) => Math.round(v * 100)).buffer);
    case "u8":
      return Uint8Array.from(values, (v) => Math.round((v + 1) * 120));
    case "i32":
      return new Uint8Array(Int32Array.from(values, (v) => Math.round(v * 1000)).buffer);
  }
}

/** The same tensor on the CPU and on a GPU backend. */
export function pair(
  g: Backend,
  values: Float32Array,
  shape: number[],
  dtype: DType = "f32",
): [Tensor, Tensor] {
  const bytes = encode(values, dtype);
  return [cpu.upload(bytes, dtype, shape), g.upload(bytes.slice(), dtype, shape)];
}

export async function compare(got: Tensor, want: Tensor, tol = 1e-5): Promise<number> {
  expect(got.shape).toEqual(want.shape);
  const gv = await got.read();
  const wv = await want.read();
  const err = relErr(gv, wv);
  if (err > tol) console.log("MISMATCH", gv.slice(0, 4), wv.slice(0, 4));
  expect(err).toBeLessThanOrEqual(tol);
  return err;
}
