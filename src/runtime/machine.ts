import { availableParallelism, freemem, totalmem } from "node:os";

/** A GPU's memory size and where it was read (gpu-memory.ts). */
export interface GpuMemory {
  bytes: number;
  /** How it was measured: "nvidia-smi", "/sys/class/drm/card1/device/mem_info_vram_total", "unified memory …". */
  source: string;
  /** The GPU as that source names it ("NVIDIA H200"). */
  gpuName: string;
  /** Memory free when it was probed (other programs, the display), where the source reports it. */
  freeBytes?: number;
}

/** One WebGPU adapter as the runtime's probe found it (gpu-probe.ts). */
export interface WebGpuAdapterInfo {
  /** Position in the engine's adapter order (hardware first, software last): the device "gpu:N". */
  index: number;
  /** The engine's name of the adapter (vendor, architecture, device, description). */
  name: string;
  /** GPUAdapterInfo.vendor ("nvidia", "amd", "intel", "apple"; may be empty). */
  vendor: string;
  /** The Dawn backend it came from: "vulkan", "metal", "d3d12", "opengles". */
  backend: string;
  /** A CPU rasterizer (llvmpipe, SwiftShader, lavapipe, a fallback adapter): never chosen by auto. */
  software: boolean;
  features: string[];
  limits: Record<string, number>;
  /** The adapter's memory when a system tool reports it and the GPU could be matched to the adapter. */
  memory?: GpuMemory;
  /** Why `memory` is missing (for the plan's reasons). */
  memoryNote?: string;
}

/** What the runtime's WebGPU probe found (run only for backend auto; see gpu-probe.ts). */
export interface WebGpuProbe {
  /** Adapters in the engine's order; empty when `error` says why. */
  adapters: WebGpuAdapterInfo[];
  /** Why no adapter is listed: the `webgpu` package is missing or failed to load, no GPU device, no adapter… */
  error?: string;
}

/** What the planner knows about the machine. */
export interface MachineInfo {
  /** Total host memory in bytes. */
  hostMemoryBytes: number;
  /** Host memory free right now, in bytes. */
  availableHostMemoryBytes: number;
  /** CPU threads. */
  cpuCount: number;
  /**
   * GPUs with a memory size an embedder knows, by WebGPU adapter index (the device "gpu:N"); they take
   * precedence over what `webgpu` detected. The runtime's own probe leaves this empty and fills `webgpu`.
   */
  gpus: { name: string; memoryBytes: number }[];
  /**
   * The WebGPU adapters, with their memory where it could be detected: what `backend: "auto"` chooses from.
   * Undefined when no probe ran (backend cpu or webgpu); auto then plans on the CPU. The loader fills it
   * (RuntimeLoaderOptions.gpuProbe) when the config's backend is auto and the machine probe did not.
   */
  webgpu?: WebGpuProbe;
}

/** Measures the machine; injected into the client so tests and embedders can plan for another machine. */
export type MachineProbe = () => MachineInfo | Promise<MachineInfo>;

/** The machine this process runs on (host memory and CPUs; the WebGPU probe is separate: gpu-probe.ts). */
export const probeMachine: MachineProbe = () => ({
  hostMemoryBytes: totalmem(),
  availableHostMemoryBytes: freemem(),
  cpuCount: availableParallelism(),
  gpus: [],
});
