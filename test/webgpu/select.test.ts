import { describe, expect, it } from "vitest";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import { findAdapter } from "../../src/engine/backends/webgpu/gpu.js";
import { selectBackend } from "../../src/engine/backends/webgpu/select.js";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { loadModel } from "../../src/engine/model.js";
import { fixtureDir } from "../engine/oracle.js";
import "./gpu-setup.js";

const adapter = await findAdapter().catch((e: Error) => {
  console.warn(`no WebGPU adapter: ${e.message}`);
  return undefined;
});

describe("backend selection", () => {
  it("cpu is the CPU backend", async () => {
    expect(await selectBackend("cpu")).toBeInstanceOf(CpuBackend);
  });

  it("webgpu with an adapter that does not exist is a clear BACKEND_UNAVAILABLE error", async () => {
    await expect(selectBackend("webgpu", { device: "no-such-adapter-xyz" })).rejects.toMatchObject({
      code: "BACKEND_UNAVAILABLE",
      message: expect.stringMatching(/no WebGPU adapter/),
    });
    await expect(selectBackend("webgpu", { device: "gpu:7" })).rejects.toMatchObject({
      code: "BACKEND_UNAVAILABLE",
    });
    await expect(
      loadModel(fixtureDir("tiny-llama"), { backend: "webgpu", device: "no-such-adapter-xyz" }),
    ).rejects.toMatchObject({
      code: "BACKEND_UNAVAILABLE",
    });
  });

  it("auto with a named adapter that does not exist falls back to the CPU with a notice", async () => {
    const notices: string[] = [];
    const b = await selectBackend("auto", {
      device: "no-such-adapter-xyz",
      onNotice: (m) => notices.push(m),
    });
    expect(b).toBeInstanceOf(CpuBackend);
    expect(notices.join("\n")).toMatch(/WebGPU is not available .*using the CPU backend/);
  });

  it("auto uses WebGPU only on a hardware adapter (the CPU backend beats llvmpipe)", async () => {
    const notices: string[] = [];
    const b = await selectBackend("auto", { onNotice: (m) => notices.push(m) });
    if (!adapter) {
      expect(b).toBeInstanceOf(CpuBackend);
      expect(notices.length).toBe(1);
    } else if (adapter.software) {
      expect(b).toBeInstanceOf(CpuBackend);
      expect(notices).toEqual([]);
    } else {
      expect(b).toBeInstanceOf(WebGpuBackend);
      await (b as WebGpuBackend).close();
    }
  });

  it.skipIf(!adapter)("webgpu opens the adapter and describes it", async () => {
    const b = await selectBackend("webgpu", { device: "gpu:0" });
    expect(b).toBeInstanceOf(WebGpuBackend);
    expect((b as WebGpuBackend).describe()).toContain(adapter?.name ?? "");
    await (b as WebGpuBackend).close();
  });
});
