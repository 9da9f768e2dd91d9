import { afterEach, describe, expect, it } from "vitest";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import {
  FastKernels,
  releaseKernelData,
  tiledLayout,
} from "../../src/engine/backends/cpu/kernels/fast-kernels.js";
import { randomActivations, randomWeight, relativeError, rng } from "./helpers.js";

// Which layout 2-D weights are stored in: chosen by option / OLLM_CPU_LAYOUT, or measured once ("auto").

describe("weight layout choice", () => {
  const saved = process.env.OLLM_CPU_LAYOUT;
  afterEach(() => {
    if (saved === undefined) delete process.env.OLLM_CPU_LAYOUT;
    else process.env.OLLM_CPU_LAYOUT = saved;
  });

  it("row-major keeps 2-D weights as on disk, tiled tiles them; both compute the same", async () => {
    const [n, k] = [36, 72];
    const bytes = randomWeight("bf16", n * k, rng(3));
    const x = randomActivations(2 * k, rng(4));
    const outs: Float32Array[] = [];
    for (const layout of ["row-major", "tiled"] as const) {
      const fast = FastKernels.create({ kernels: "wasm", threads: 2, layout });
      expect(fast?.weightLayout()).toBe(layout);
      const w = fast?.place(bytes, "bf16", [n, k]);
      if (!fast || !w) throw new Error("no kernels");
      expect(tiledLayout(w) !== undefined).toBe(layout === "tiled");
      const out = fast.linear(x, 2, k, w, "bf16", n);
      if (!out) throw new Error("not run on the kernels");
      outs.push(out);
      releaseKernelData(w);
    }
    expect(relativeError(outs[0], outs[1])).toBeLessThanOrEqual(1e-6);
  });

  it("auto settles on one layout at the first large weight, by measuring, and keeps it", () => {
    const fast = FastKernels.create({ kernels: "wasm", threads: 1, layout: "auto" });
    if (!fast) throw new Error("no kernels");
    const small = fast.place(randomWeight("bf16", 64 * 64, rng(5)), "bf16", [64, 64]);
    expect(fast.weightLayout()).toBe("auto");
    const [n, k] = [4096, 2048]; // 16 MiB of bf16
    const big = fast.place(new Uint8Array(n * k * 2), "bf16", [n, k]);
    const chosen = fast.weightLayout();
    expect(["tiled", "row-major"]).toContain(chosen);
    if (big) expect(tiledLayout(big) !== undefined).toBe(chosen === "tiled");
    // Another instance with the same thread count reuses the measurement.
    const again = FastKernels.create({ kernels: "wasm", threads: 1, layout: "auto" });
    const big2 = again?.place(new Uint8Array(n * k * 2), "bf16", [n, k]);
    expect(again?.weightLayout()).toBe(chosen);
    for (const w of [small, big, big2]) if (w) releaseKernelData(w);
  });

  it("OLLM_CPU_LAYOUT picks the default; a bad value or option is a clear error", () => {
    process.env.OLLM_CPU_LAYOUT = "row-major";
    expect(FastKernels.create({ kernels: "wasm", threads: 1 })?.weightLayout()).toBe("row-major");
    process.env.OLLM_CPU_LAYOUT = "diagonal";
    expect(() => new CpuBackend({ kernels: "wasm", threads: 1 })).toThrow(/OLLM_CPU_LAYOUT=diagonal/);
    delete process.env.OLLM_CPU_LAYOUT;
    expect(() => FastKernels.create({ kernels: "wasm", layout: "zigzag" as never })).toThrow(
      /layout must be/,
    );
  });
});
