/**
 * `--backend auto`: the WebGPU probe (adapters + GPU memory detection, with faked system calls), the choice
 * it leads to in the plan, and the loader's fallback to the CPU when WebGPU does not open.
 */
import { describe, expect, it, vi } from "vitest";
import { RuntimeClient } from "../../src/client.js";
import { type RuntimeConfigInput, validateRuntimeConfig } from "../../src/config/runtime-config.js";
import { loadModel } from "../../src/engine/model.js";
import { OllmError } from "../../src/errors.js";
import {
  AUTO_GPU_FREE_SHARE,
  AUTO_GPU_MEMORY_SHARE,
  chooseBackend,
} from "../../src/runtime/backend-choice.js";
import type { RuntimeEvent } from "../../src/runtime/events.js";
import { detectGpuMemory, matchGpuMemory } from "../../src/runtime/gpu-memory.js";
import {
  type GpuProbeSystem,
  listAdaptersQuietly,
  probeWebGpu,
  type RawAdapter,
} from "../../src/runtime/gpu-probe.js";
import { RuntimeLoader } from "../../src/runtime/loader.js";
import type { MachineInfo, WebGpuProbe } from "../../src/runtime/machine.js";
import { planRuntime } from "../../src/runtime/plan.js";
import { ModelResolver } from "../../src/runtime/resolver.js";
import { fixture } from "./helpers.js";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const H200_MIB = 143771;

const enoent = () => Object.assign(new Error("spawn nvidia-smi ENOENT"), { code: "ENOENT" });

/** A fake machine: files by path, directories by path, programs by name. */
function fakeSystem(
  options: {
    platform?: NodeJS.Platform;
    totalMemoryBytes?: number;
    files?: Record<string, string>;
    dirs?: Record<string, string[]>;
    programs?: Record<string, string | Error>;
    adapters?: RawAdapter[];
    listError?: string;
  } = {},
): GpuProbeSystem & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    platform: options.platform ?? "linux",
    totalMemoryBytes: () => options.totalMemoryBytes ?? 64 * GiB,
    run: async (file, args) => {
      calls.push(`${file} ${args.join(" ")}`);
      const out = options.programs?.[file];
      if (out === undefined) throw enoent();
      if (out instanceof Error) throw out;
      return out;
    },
    readDir: async (path) => {
      const d = options.dirs?.[path];
      if (!d) throw Object.assign(new Error(`ENOENT ${path}`), { code: "ENOENT" });
      return d;
    },
    readText: async (path) => {
      const f = options.files?.[path];
      if (f === undefined) throw Object.assign(new Error(`ENOENT ${path}`), { code: "ENOENT" });
      return f;
    },
    listAdapters: async () => {
      calls.push("listAdapters");
      return { adapters: options.adapters ?? [], error: options.listError };
    },
  };
}

function adapter(over: Partial<RawAdapter>): RawAdapter {
  return {
    backend: "vulkan",
    vendor: "",
    architecture: "",
    device: "",
    description: "",
    isFallbackAdapter: false,
    features: ["shader-f16", "subgroups"],
    limits: { maxBufferSize: 2 * GiB, maxStorageBufferBindingSize: 2 * GiB },
    ...over,
  };
}

const H200 = adapter({
  vendor: "nvidia",
  device: "nvidia-h200",
  description: "NVIDIA: 580.159.04 580.159.4.0",
});
const LLVMPIPE = adapter({
  backend: "opengles",
  device: "llvmpipe-llvm-15-0-6-256-bits-",
  description: "OpenGL version OpenGL ES 3.2 Mesa 22.3.6",
  features: [],
});
const NVIDIA_DEV = { "/dev": ["null", "nvidia0", "nvidiactl"], "/dev/dri": [] };

/** A probe that found one hardware adapter with 100 GiB detected. */
const H200_PROBED: WebGpuProbe = {
  adapters: [
    {
      index: 0,
      name: "nvidia nvidia-h200",
      vendor: "nvidia",
      backend: "vulkan",
      software: false,
      features: [],
      limits: {},
      memory: { bytes: 100 * GiB, source: "nvidia-smi", gpuName: "NVIDIA H200" },
    },
  ],
};

describe("GPU memory detection (faked system calls)", () => {
  it("reads nvidia-smi, and says so when it is missing", async () => {
    const sys = fakeSystem({
      programs: {
        "nvidia-smi": `${H200_MIB}, ${H200_MIB - 600}, NVIDIA H200\n${H200_MIB}, [N/A], NVIDIA H200\n`,
      },
    });
    const found = await detectGpuMemory(sys);
    expect(found.gpus).toEqual([
      {
        vendor: "nvidia",
        name: "NVIDIA H200",
        bytes: H200_MIB * MiB,
        freeBytes: (H200_MIB - 600) * MiB,
        source: "nvidia-smi",
      },
      { vendor: "nvidia", name: "NVIDIA H200", bytes: H200_MIB * MiB, source: "nvidia-smi" },
    ]);
    expect(sys.calls).toEqual([
      "nvidia-smi --query-gpu=memory.total,memory.free,name --format=csv,noheader,nounits",
    ]);
    const none = await detectGpuMemory(fakeSystem());
    expect(none.gpus).toEqual([]);
    expect(none.notes).toEqual(["nvidia-smi was not found"]);
  });

  it("reads AMD VRAM from sysfs (an integrated GPU's small carve-out does not count) and Apple's unified memory", async () => {
    const dev = "/sys/class/drm/card1/device";
    const found = await detectGpuMemory(
      fakeSystem({
        dirs: { "/sys/class/drm": ["card0", "card0-DP-1", "card1", "renderD128", "version"] },
        files: {
          "/sys/class/drm/card0/device/vendor": "0x1002\n",
          "/sys/class/drm/card0/device/mem_info_vram_total": String(512 * MiB),
          [`${dev}/vendor`]: "0x1002\n",
          [`${dev}/mem_info_vram_total`]: `${24 * GiB}\n`,
          [`${dev}/mem_info_vram_used`]: `${4 * GiB}\n`,
          [`${dev}/product_name`]: "Radeon RX 7900 XTX\n",
        },
      }),
    );
    expect(found.gpus).toEqual([
      {
        vendor: "amd",
        name: "Radeon RX 7900 XTX",
        bytes: 24 * GiB,
        freeBytes: 20 * GiB,
        source: `${dev}/mem_info_vram_total`,
      },
    ]);
    expect(found.notes.join("\n")).toMatch(/512\.0 MiB of VRAM, an integrated GPU's share/);

    const mac = await detectGpuMemory(fakeSystem({ platform: "darwin", totalMemoryBytes: 64 * GiB }));
    expect(mac.gpus).toEqual([
      expect.objectContaining({
        vendor: "apple",
        bytes: 48 * GiB,
        source: expect.stringMatching(/unified memory/),
      }),
    ]);
  });

  it("matches an adapter by vendor, by name among different sizes, and else leaves it unknown", () => {
    const gpu = (name: string, gib: number) => ({
      vendor: "nvidia" as const,
      name,
      bytes: gib * GiB,
      source: "nvidia-smi",
    });
    const h200 = { vendor: "nvidia", name: "nvidia nvidia-h200 NVIDIA: 580.159.04" };
    expect(matchGpuMemory(h200, { gpus: [gpu("NVIDIA H200", 140)], notes: [] }).memory?.bytes).toBe(
      140 * GiB,
    );
    // Eight of the same size: any of them.
    expect(
      matchGpuMemory(h200, { gpus: Array(8).fill(gpu("NVIDIA H200", 140)), notes: [] }).memory?.bytes,
    ).toBe(140 * GiB);
    // Different sizes: the one the adapter's name names.
    const mixed = { gpus: [gpu("NVIDIA GeForce RTX 4090", 24), gpu("NVIDIA H200", 140)], notes: [] };
    expect(matchGpuMemory(h200, mixed).memory?.bytes).toBe(140 * GiB);
    const vague = matchGpuMemory({ vendor: "nvidia", name: "nvidia ada" }, mixed);
    expect(vague.memory).toBeUndefined();
    expect(vague.note).toMatch(/different memory sizes/);
    // Another vendor's memory is not this adapter's.
    const amd = matchGpuMemory(
      { vendor: "amd", name: "amd rdna3" },
      { gpus: [gpu("NVIDIA H200", 140)], notes: [] },
    );
    expect(amd.memory).toBeUndefined();
    expect(amd.note).toMatch(/no AMD GPU memory was detected/);
    expect(matchGpuMemory({ vendor: "", name: "mystery" }, mixed).note).toMatch(/vendor is not recognised/);
  });
});

describe("the WebGPU probe (faked system calls)", () => {
  it("lists hardware adapters first, with the memory nvidia-smi reports", async () => {
    const sys = fakeSystem({
      dirs: NVIDIA_DEV,
      programs: { "nvidia-smi": `${H200_MIB}, ${H200_MIB}, NVIDIA H200\n` },
      adapters: [LLVMPIPE, H200],
    });
    const probe = await probeWebGpu(sys);
    expect(probe.adapters.map((a) => [a.index, a.software, a.backend])).toEqual([
      [0, false, "vulkan"],
      [1, true, "opengles"],
    ]);
    expect(probe.adapters[0].name).toBe("nvidia nvidia-h200 NVIDIA: 580.159.04 580.159.4.0");
    expect(probe.adapters[0].memory).toEqual({
      bytes: H200_MIB * MiB,
      freeBytes: H200_MIB * MiB,
      source: "nvidia-smi",
      gpuName: "NVIDIA H200",
    });
    expect(probe.adapters[1].memory).toBeUndefined();
  });

  it("does not start Dawn on Linux without a GPU device node (unless asked to list everything)", async () => {
    const sys = fakeSystem({ dirs: { "/dev": ["null", "tty"] }, adapters: [LLVMPIPE] });
    const probe = await probeWebGpu(sys);
    expect(probe).toEqual({ adapters: [], error: expect.stringMatching(/no GPU device/) });
    expect(sys.calls).toEqual([]);
    const all = await probeWebGpu(sys, { all: true });
    expect(all.adapters.map((a) => a.software)).toEqual([true]);
  });

  it("lists this machine's adapters in a child process, never throwing", async () => {
    const listing = await listAdaptersQuietly();
    if (listing.error) expect(listing.adapters).toEqual([]);
    else
      for (const a of listing.adapters) {
        expect(typeof a.backend).toBe("string");
        expect(Array.isArray(a.features)).toBe(true);
      }
  });

  it("reports a webgpu package that does not load", async () => {
    const sys = fakeSystem({
      dirs: NVIDIA_DEV,
      listError: "the `webgpu` package (Dawn) did not load: bad ELF",
    });
    expect(await probeWebGpu(sys)).toEqual({
      adapters: [],
      error: "the `webgpu` package (Dawn) did not load: bad ELF",
    });
  });
});

const machine: MachineInfo = {
  hostMemoryBytes: 32 * GiB,
  availableHostMemoryBytes: 16 * GiB,
  cpuCount: 8,
  gpus: [],
};
const llama = { modelReference: fixture("tiny-llama") };
const resolver = new ModelResolver();

async function plan(config: RuntimeConfigInput, webgpu: WebGpuProbe | undefined, notices: string[] = []) {
  const c = validateRuntimeConfig(config);
  return planRuntime(
    c,
    await resolver.resolve(c.modelReference, c.modelsDir),
    { ...machine, webgpu },
    {
      onNotice: (m) => notices.push(m),
    },
  );
}

const reason = (p: { reasons: { subject: string; reason: string }[] }, subject: string) =>
  p.reasons.find((r) => r.subject === subject)?.reason;

async function probeOf(options: Parameters<typeof fakeSystem>[0]): Promise<WebGpuProbe> {
  return probeWebGpu(fakeSystem({ dirs: NVIDIA_DEV, ...options }));
}

describe("--backend auto in the plan", () => {
  it("a hardware adapter with memory from nvidia-smi: webgpu, planned within 90% of it", async () => {
    const probe = await probeOf({
      programs: { "nvidia-smi": `${H200_MIB}, ${H200_MIB}, NVIDIA H200\n` },
      adapters: [H200, LLVMPIPE],
    });
    const notices: string[] = [];
    const p = await plan(llama, probe, notices);
    expect([p.backend, p.device]).toEqual(["webgpu", "gpu"]);
    expect(p.memory.gpuBudgetBytes).toBe(Math.floor(H200_MIB * MiB * AUTO_GPU_MEMORY_SHARE));
    expect(reason(p, "backend")).toBe("auto: WebGPU on NVIDIA H200 (140.4 GiB detected by nvidia-smi)");
    expect(reason(p, "device")).toMatch(/first hardware WebGPU adapter, nvidia nvidia-h200 .*Dawn vulkan/);
    expect(reason(p, "gpuMemoryBudget")).toMatch(/default under auto: 90% of the 140\.4 GiB of NVIDIA H200/);
    expect(p.layers.every((l) => l.residency === "gpu")).toBe(true);
    expect(notices).toEqual([]);
  });

  it("a GPU that other programs use: webgpu, planned within the memory free at the probe", async () => {
    // 140.4 GiB, of which 100 GiB free: 95% of the free memory is less than 90% of the total.
    const probe = await probeOf({
      programs: { "nvidia-smi": `${H200_MIB}, ${100 * 1024}, NVIDIA H200\n` },
      adapters: [H200],
    });
    const p = await plan(llama, probe);
    expect(p.backend).toBe("webgpu");
    expect(p.memory.gpuBudgetBytes).toBe(Math.floor(100 * GiB * AUTO_GPU_FREE_SHARE));
    expect(reason(p, "gpuMemoryBudget")).toMatch(
      /default under auto: 95% of the 100\.0 GiB free of the 140\.4 GiB of NVIDIA H200 \(nvidia-smi; other programs use the rest\)/,
    );
  });

  it("only a software adapter (llvmpipe, as on CI): cpu, with the reason", async () => {
    const p = await plan(llama, await probeOf({ adapters: [LLVMPIPE] }));
    expect([p.backend, p.device]).toEqual(["cpu", "cpu"]);
    expect(reason(p, "backend")).toMatch(
      /^auto: cpu — the only WebGPU adapter is a software one \(llvmpipe.*slower than the CPU backend/,
    );
  });

  it("a hardware adapter of unknown memory: cpu, with the --gpu-memory-budget hint (and a notice)", async () => {
    const notices: string[] = [];
    const p = await plan(llama, await probeOf({ adapters: [H200] }), notices);
    expect(p.backend).toBe("cpu");
    expect(reason(p, "backend")).toBe(
      "auto: cpu — WebGPU adapter 'nvidia nvidia-h200 NVIDIA: 580.159.04 580.159.4.0' found but its memory size is unknown (no NVIDIA GPU memory was detected: nvidia-smi was not found); pass --gpu-memory-budget SIZE to use it",
    );
    expect(notices).toEqual([
      expect.stringMatching(/memory size is unknown.*--gpu-memory-budget SIZE.*running on the CPU/),
    ]);
    // A share cannot be taken of an unknown size: cpu too.
    const share = await plan({ ...llama, gpuMemoryBudget: "50%" }, await probeOf({ adapters: [H200] }));
    expect(share.backend).toBe("cpu");
    expect(reason(share, "backend")).toMatch(/"50%" is a share of it; pass an absolute --gpu-memory-budget/);
  });

  it("an explicit --gpu-memory-budget under auto: webgpu with that budget", async () => {
    const p = await plan({ ...llama, gpuMemoryBudget: "2GiB" }, await probeOf({ adapters: [H200] }));
    expect([p.backend, p.device]).toEqual(["webgpu", "gpu"]);
    expect(p.memory.gpuBudgetBytes).toBe(2 * GiB);
    expect(reason(p, "backend")).toMatch(
      /^auto: WebGPU on nvidia nvidia-h200 .*\(gpuMemoryBudget 2GiB from the config\)/,
    );
    expect(reason(p, "gpuMemoryBudget")).toMatch(/requested by the config \(2GiB\)/);
    // A share of detected memory.
    const half = await plan(
      { ...llama, gpuMemoryBudget: "50%" },
      await probeOf({ programs: { "nvidia-smi": "8192, 8000, NVIDIA H200" }, adapters: [H200] }),
    );
    expect(half.memory.gpuBudgetBytes).toBe(4 * GiB);
    // Without a hardware adapter the budget changes nothing: cpu.
    expect(
      (await plan({ ...llama, gpuMemoryBudget: "2GiB" }, await probeOf({ adapters: [LLVMPIPE] }))).backend,
    ).toBe("cpu");
  });

  it("the webgpu package does not load: cpu, with that reason", async () => {
    const p = await plan(
      llama,
      await probeOf({ listError: "the `webgpu` package (Dawn) did not load: libvulkan.so.1: cannot open" }),
    );
    expect(p.backend).toBe("cpu");
    expect(reason(p, "backend")).toBe(
      "auto: cpu — WebGPU is not available: the `webgpu` package (Dawn) did not load: libvulkan.so.1: cannot open",
    );
  });

  it("a model that does not fit the detected GPU: cpu, with the GPU's error as the reason", async () => {
    const notices: string[] = [];
    const tiny = await probeOf({ programs: { "nvidia-smi": "64, 64, NVIDIA H200" }, adapters: [H200] });
    const p = await plan(llama, tiny, notices);
    expect(p.backend).toBe("cpu");
    expect(reason(p, "backend")).toMatch(
      /^auto: cpu — tiny-llama does not fit NVIDIA H200: .*GPU budget of 57\.6 MiB/,
    );
    expect(notices).toEqual([expect.stringMatching(/does not fit NVIDIA H200.*running on the CPU$/)]);
  });

  it("explicit choices: cpu and webgpu are not auto's (no detected budget for webgpu)", () => {
    const on = { ...machine, webgpu: H200_PROBED };
    const base = { gpuMemoryBudget: undefined, offloadGpuLayers: 0 };
    expect(chooseBackend({ ...base, backend: "cpu", device: "auto" }, on)).toMatchObject({
      backend: "cpu",
      reason: "requested by the config",
    });
    const webgpu = chooseBackend({ ...base, backend: "webgpu", device: "auto" }, on);
    expect(webgpu).toMatchObject({ backend: "webgpu", device: "gpu", autoGpu: false });
    expect(webgpu.defaultGpuBudget).toBeUndefined();
    // A GPU device under auto is asked for; the detected memory gives its budget.
    const device = chooseBackend({ ...base, backend: "auto", device: "gpu:0" }, on);
    expect(device).toMatchObject({ backend: "webgpu", device: "gpu:0", autoGpu: false });
    expect(device.defaultGpuBudget?.bytes).toBe(Math.floor(100 * GiB * AUTO_GPU_MEMORY_SHARE));
  });
});

describe("the loader and --backend auto", () => {
  const hardware = H200_PROBED;

  it("probes only for auto, at most once per client", async () => {
    const gpuProbe = vi.fn(async (): Promise<WebGpuProbe> => ({ adapters: [], error: "none here" }));
    const client = new RuntimeClient({ gpuProbe });
    expect((await client.plan({ ...llama, backend: "cpu" })).backend).toBe("cpu");
    expect((await client.plan({ ...llama, device: "cpu" })).backend).toBe("cpu");
    expect((await client.plan({ ...llama, backend: "webgpu" })).backend).toBe("webgpu");
    expect(gpuProbe).not.toHaveBeenCalled();
    const auto = await client.plan(llama);
    expect(auto.backend).toBe("cpu");
    expect(reason(auto, "backend")).toBe("auto: cpu — WebGPU is not available: none here");
    await client.plan({ ...llama, contextTokens: 1024 });
    expect(gpuProbe).toHaveBeenCalledTimes(1);
    await client.close();
  });

  it("auto's WebGPU does not open: the runtime loads on the CPU with a notice", async () => {
    const events: RuntimeEvent[] = [];
    const modelLoader = vi.fn(async (dir: string, options: Parameters<typeof loadModel>[1] = {}) => {
      if (options.backend === "webgpu")
        throw new OllmError("BACKEND_UNAVAILABLE", "the WebGPU adapter nvidia-h200 refused to open a device");
      return loadModel(dir, options);
    });
    const loader = new RuntimeLoader({
      gpuProbe: async () => hardware,
      modelLoader,
      onEvent: (e) => events.push(e),
    });
    expect((await loader.plan(llama)).plan.backend).toBe("webgpu");
    const runtime = await loader.load(llama);
    expect(modelLoader.mock.calls.map((c) => c[1]?.backend)).toEqual(["webgpu", "cpu"]);
    expect(runtime.plan.backend).toBe("cpu");
    expect(reason(runtime.plan, "backend")).toMatch(
      /^auto: cpu — WebGPU is not available: the WebGPU backend failed to open: the WebGPU adapter nvidia-h200 refused/,
    );
    expect(events).toContainEqual({
      type: "notice",
      message: expect.stringMatching(/WebGPU backend failed to open: .*; running on the CPU$/),
    });
    expect(Array.from(await runtime.engine.logits([1, 2])).every(Number.isFinite)).toBe(true);
    // Asked for explicitly, the same failure is the error.
    await expect(loader.load({ ...llama, backend: "webgpu" })).rejects.toMatchObject({
      code: "BACKEND_UNAVAILABLE",
    });
    await loader.close();
  });
});
