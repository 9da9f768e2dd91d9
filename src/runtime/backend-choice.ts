/**
 * Which backend and device a plan runs on, and why (`--backend webgpu|cpu|auto`, `--device`). Pure: what
 * `auto` may choose from was probed before planning (MachineInfo.webgpu, from gpu-probe.ts).
 *
 * - `cpu` (or device `cpu`): the CPU backend.
 * - `webgpu` (or a device `gpu`/`gpu:N`): WebGPU, with only the memory the config gives (gpuMemoryBudget).
 * - `auto`: WebGPU on the first hardware adapter when there is a GPU memory size to plan with — an explicit
 *   gpuMemoryBudget, or the size detected for that adapter (of which it plans with {@link AUTO_GPU_MEMORY_SHARE});
 *   otherwise the CPU, with the reason. Software adapters (llvmpipe, SwiftShader) never count: our CPU
 *   backend is faster than them.
 */
import { formatBytes } from "../config/memory.js";
import type { RuntimeConfig } from "../config/runtime-config.js";
import type { GpuMemory, MachineInfo } from "./machine.js";

/**
 * The share of a detected GPU memory size `auto` budgets for the model: the rest is a margin for the driver,
 * the display and other programs. The WebGPU backend's own buffers (staging ring, activation heaps, pool)
 * come out of the budget in the plan (gpu-plan.ts backendGpuBytes).
 */
export const AUTO_GPU_MEMORY_SHARE = 0.9;

/** A backend and device, with the reasons the plan gives for them. */
export interface BackendDecision {
  backend: "cpu" | "webgpu";
  /** "cpu", "gpu" (the engine's first hardware adapter, else a software one) or "gpu:N". */
  device: string;
  reason: string;
  deviceReason: string;
  /** auto chose WebGPU by itself (device auto): when it cannot be used, the runtime falls back to the CPU. */
  autoGpu: boolean;
  /** The planned GPU's memory, when known: shares of gpuMemoryBudget ("75%") are of it. */
  gpuMemory?: GpuMemory;
  /** The GPU budget when the config gives none: a share of the detected memory (auto only). */
  defaultGpuBudget?: { bytes: number; reason: string };
  /** Why auto plans on the cpu, in a few words (for other messages of the plan). */
  cpuWhy?: string;
  /** A line for the user: auto keeps the CPU although a hardware GPU is there, and how to use it. */
  notice?: string;
}

type BackendConfig = Pick<RuntimeConfig, "backend" | "device" | "gpuMemoryBudget" | "offloadGpuLayers">;

const RESIDENT_DEVICE =
  "the first hardware WebGPU adapter (else a software one); every weight resident in GPU memory unless layers stream";

/** The memory of adapter `index`: the embedder's `gpus` first, else what the WebGPU probe detected. */
export function gpuMemoryOf(machine: MachineInfo, index: number): GpuMemory | undefined {
  const known = machine.gpus[index];
  if (known) return { bytes: known.memoryBytes, source: "the machine description", gpuName: known.name };
  return machine.webgpu?.adapters[index]?.memory;
}

/** The share of the memory free at the probe auto budgets when that is less (the display, other programs). */
export const AUTO_GPU_FREE_SHARE = 0.95;

function defaultBudget(memory: GpuMemory): { bytes: number; reason: string } {
  const counted = "the WebGPU backend's own buffers are counted within it";
  const ofTotal = Math.floor(memory.bytes * AUTO_GPU_MEMORY_SHARE);
  const free = memory.freeBytes;
  if (free !== undefined && Math.floor(free * AUTO_GPU_FREE_SHARE) < ofTotal)
    return {
      bytes: Math.floor(free * AUTO_GPU_FREE_SHARE),
      reason: `default under auto: ${Math.round(AUTO_GPU_FREE_SHARE * 100)}% of the ${formatBytes(free)} free of the ${formatBytes(memory.bytes)} of ${memory.gpuName} (${memory.source}; other programs use the rest); ${counted}`,
    };
  return {
    bytes: ofTotal,
    reason: `default under auto: ${Math.round(AUTO_GPU_MEMORY_SHARE * 100)}% of the ${formatBytes(memory.bytes)} of ${memory.gpuName} (${memory.source}), a margin for the driver and other programs; ${counted}`,
  };
}

/** The CPU under auto, because of `why`. */
export function autoCpu(
  config: Pick<RuntimeConfig, "device">,
  why: string,
  notice?: string,
): BackendDecision {
  return {
    backend: "cpu",
    device: "cpu",
    reason: `auto: cpu — ${why}`,
    deviceReason:
      config.device === "auto" ? "auto: the cpu backend runs on the host" : "requested by the config",
    autoGpu: false,
    cpuWhy: why,
    notice,
  };
}

/** Chooses the backend and device of a plan (see the module's comment). */
export function chooseBackend(config: BackendConfig, machine: MachineInfo): BackendDecision {
  const requested = "requested by the config";
  if (config.backend === "cpu" || config.device === "cpu")
    return {
      backend: "cpu",
      device: "cpu",
      reason: config.backend === "cpu" ? requested : 'auto: device "cpu"',
      deviceReason: requested,
      autoGpu: false,
    };
  // A GPU asked for: backend webgpu, or a GPU device.
  if (config.backend === "webgpu" || config.device.startsWith("gpu")) {
    const device = config.device === "auto" ? "gpu" : config.device;
    const memory = gpuMemoryOf(machine, Number(/^gpu:(\d+)$/.exec(device)?.[1] ?? 0));
    const auto = config.backend === "auto";
    return {
      backend: "webgpu",
      device,
      reason: auto ? `auto: device "${config.device}" is a GPU` : requested,
      deviceReason: device === "gpu" ? RESIDENT_DEVICE : requested,
      autoGpu: false,
      gpuMemory: memory,
      // auto probed this GPU's memory: plan with it; an explicit webgpu gets only the config's budget.
      defaultGpuBudget: auto && memory ? defaultBudget(memory) : undefined,
    };
  }

  // auto: a hardware adapter, and a memory size to plan with.
  const probe = machine.webgpu;
  if (!probe)
    return autoCpu(
      config,
      "no WebGPU adapter was probed (pass --backend webgpu or --device gpu for a GPU, with --gpu-memory-budget SIZE or --offload-gpu-layers N to stream the layers that do not fit)",
    );
  const hw = probe.adapters.find((a) => !a.software);
  if (!hw) {
    const software = probe.adapters.filter((a) => a.software);
    return autoCpu(
      config,
      software.length
        ? `the only WebGPU adapter is a software one (${software.map((a) => a.name).join("; ")}), slower than the CPU backend`
        : `WebGPU is not available: ${probe.error ?? "no WebGPU adapter was found"}`,
    );
  }
  const memory = gpuMemoryOf(machine, hw.index);
  const budget = config.gpuMemoryBudget;
  const share = typeof budget === "string" && budget.trim().endsWith("%");
  const unknown = `WebGPU adapter '${hw.name}' found but its memory size is unknown${hw.memoryNote ? ` (${hw.memoryNote})` : ""}`;
  if (!memory && share) {
    const why = `${unknown}, and gpuMemoryBudget "${budget}" is a share of it; pass an absolute --gpu-memory-budget SIZE (e.g. 8GiB) to use it`;
    return autoCpu(config, why, `${why}; running on the CPU`);
  }
  const gpu = (why: string, extra: Partial<BackendDecision> = {}): BackendDecision => ({
    backend: "webgpu",
    device: "gpu",
    reason: `auto: WebGPU on ${memory?.gpuName ?? hw.name} (${why})`,
    deviceReason: `auto: the first hardware WebGPU adapter, ${hw.name} (Dawn ${hw.backend})`,
    autoGpu: true,
    gpuMemory: memory,
    ...extra,
  });
  const detected = memory ? `${formatBytes(memory.bytes)} detected by ${memory.source}` : "";
  if (budget !== undefined)
    return gpu(`gpuMemoryBudget ${String(budget)} from the config${detected ? `; ${detected}` : ""}`);
  if (memory) return gpu(detected, { defaultGpuBudget: defaultBudget(memory) });
  if (config.offloadGpuLayers > 0)
    return gpu(
      `offloadGpuLayers=${config.offloadGpuLayers} from the config places the layers; its memory size is unknown, so the GPU is not checked`,
    );
  const why = `${unknown}; pass --gpu-memory-budget SIZE to use it`;
  return autoCpu(config, why, `${why} (running on the CPU)`);
}
