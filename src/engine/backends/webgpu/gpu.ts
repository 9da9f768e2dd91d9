/// <reference types="@webgpu/types" />
/**
 * Finding a WebGPU device through Dawn (the optional `webgpu` npm package): which adapter, with which
 * features and limits, and whether it is a real GPU or a software rasterizer (llvmpipe, SwiftShader).
 */
import { OllmError } from "../../../errors.js";

export interface GpuDeviceOptions {
  /**
   * Which adapter: "auto"/"gpu" (the first hardware adapter, else a software one), "gpu:N" or a number
   * (the N-th adapter in probe order), or a name (Dawn's `adapter=` option: a substring of the adapter name).
   */
  device?: string | number;
  /** Ask for timestamp queries (GPU time per submission, for --stats) when the adapter has them. */
  timestamps?: boolean;
}

/** What was found: the device, and what kernels may rely on. */
export interface GpuContext {
  readonly device: GPUDevice;
  readonly adapterName: string;
  /** "vulkan", "opengles", … (the Dawn backend the adapter came from). */
  readonly dawnBackend: string;
  /** True for CPU rasterizers (llvmpipe, SwiftShader, lavapipe): correct but slower than our CPU backend. */
  readonly software: boolean;
  readonly subgroups: boolean;
  /** Subgroup size when the adapter has exactly one (min = max), else 0. */
  readonly subgroupSize: number;
  readonly shaderF16: boolean;
  readonly timestamps: boolean;
  readonly limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    minUniformBufferOffsetAlignment: number;
    minStorageBufferOffsetAlignment: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupsPerDimension: number;
    maxStorageBuffersPerShaderStage: number;
  };
  /** Keeps the Dawn instance alive as long as the context is. */
  readonly instance: GPU;
}

interface DawnModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

let dawn: Promise<DawnModule | undefined> | undefined;

/** The `webgpu` package, or undefined when it is not installed or does not load on this platform. */
async function loadDawn(): Promise<DawnModule | undefined> {
  dawn ??= (async () => {
    try {
      const name = "webgpu";
      const mod = (await import(name)) as DawnModule;
      // The package's classes (GPUBufferUsage, GPUMapMode, …) are globals in browsers; Dawn expects them there too.
      for (const [k, v] of Object.entries(mod.globals))
        if (!(k in globalThis)) Object.assign(globalThis, { [k]: v });
      return mod;
    } catch {
      return undefined;
    }
  })();
  return dawn;
}

/** CPU rasterizers by adapter name (Mesa llvmpipe/softpipe, SwiftShader, lavapipe, Windows' basic renderer). */
export const SOFTWARE_ADAPTER = /llvmpipe|softpipe|swiftshader|lavapipe|software|microsoft basic render/i;

interface Candidate {
  adapter: GPUAdapter;
  instance: GPU;
  backend: string;
  name: string;
  software: boolean;
}

/** An adapter's name: vendor, architecture, device and description (the runtime's probe names it alike). */
export function adapterName(
  i: Pick<GPUAdapterInfo, "vendor" | "architecture" | "device" | "description">,
): string {
  return (
    [i.vendor, i.architecture, i.device, i.description].filter((s) => s && s.length > 0).join(" ") ||
    "unknown adapter"
  );
}

async function probe(
  mod: DawnModule,
  backend: string,
  adapter: string | undefined,
): Promise<Candidate | undefined> {
  // Headless Mesa (llvmpipe through EGL) needs these; harmless elsewhere.
  if (backend === "opengles") {
    process.env.EGL_PLATFORM ??= "surfaceless";
    process.env.XDG_RUNTIME_DIR ??= "/tmp";
  }
  const options = [`backend=${backend}`];
  if (adapter) options.push(`adapter=${adapter}`);
  // e.g. OLLM_DAWN_TOGGLES=allow_unsafe_apis,disable_robustness (benchmarks): Dawn toggles for the device.
  if (process.env.OLLM_DAWN_TOGGLES) options.push(`enable-dawn-features=${process.env.OLLM_DAWN_TOGGLES}`);
  let instance: GPU;
  try {
    instance = mod.create(options);
  } catch {
    return undefined;
  }
  const featureLevel = backend === "opengles" ? "compatibility" : "core";
  let found: GPUAdapter | null = null;
  try {
    found = await instance.requestAdapter({
      powerPreference: "high-performance",
      featureLevel,
    } as GPURequestAdapterOptions);
  } catch {
    found = null;
  }
  if (!found) return undefined;
  const name = adapterName(found.info);
  const software = found.info.isFallbackAdapter === true || SOFTWARE_ADAPTER.test(name);
  return { adapter: found, instance, backend, name, software };
}

/** The Dawn backends tried, in order: Vulkan (NVIDIA/AMD/Intel drivers), then OpenGL ES (Mesa llvmpipe). */
export const BACKEND_ORDER =
  process.platform === "darwin"
    ? ["metal"]
    : process.platform === "win32"
      ? ["d3d12", "vulkan"]
      : ["vulkan", "opengles"];

/** Adapters in probe order; quiet (Dawn's warnings about rejected adapters go to stderr). */
async function candidates(mod: DawnModule, adapter: string | undefined): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (const backend of BACKEND_ORDER) {
    const c = await probe(mod, backend, adapter);
    if (c) out.push(c);
  }
  // Hardware first, software last.
  return out.sort((a, b) => Number(a.software) - Number(b.software));
}

function unavailable(message: string, hint?: string): OllmError {
  return new OllmError("BACKEND_UNAVAILABLE", message, {
    hint:
      hint ??
      "install a GPU driver with Vulkan support (or Mesa: mesa-vulkan-drivers libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri for the software llvmpipe adapter), or use --backend cpu",
  });
}

/** Describes the adapter that `device` would select, without creating a device (for `auto`). */
export async function findAdapter(device: string | number = "auto"): Promise<Candidate> {
  const mod = await loadDawn();
  if (!mod)
    throw unavailable(
      "the WebGPU backend needs the optional `webgpu` package (Dawn), which is not installed",
      "npm install webgpu, or use --backend cpu",
    );
  let index = 0;
  let name: string | undefined;
  if (typeof device === "number") index = device;
  else if (/^gpu:\d+$/.test(device)) index = Number(device.slice(4));
  else if (/^\d+$/.test(device)) index = Number(device);
  else if (device !== "auto" && device !== "gpu") name = device;
  const found = await candidates(mod, name);
  if (found.length === 0)
    throw unavailable(
      name
        ? `no WebGPU adapter named like "${name}" was found`
        : "no WebGPU adapter was found on this machine",
    );
  if (index >= found.length)
    throw unavailable(
      `WebGPU adapter ${index} does not exist: found ${found.map((c, i) => `${i}: ${c.name} (${c.backend})`).join(", ")}`,
    );
  return found[index];
}

/** Opens a device on the selected adapter with the features the kernels can use. */
export async function openGpu(options: GpuDeviceOptions = {}): Promise<GpuContext> {
  const c = await findAdapter(options.device ?? "auto");
  const a = c.adapter;
  const want: GPUFeatureName[] = [];
  const has = (f: string) => a.features.has(f);
  if (has("subgroups")) want.push("subgroups" as GPUFeatureName);
  if (has("shader-f16")) want.push("shader-f16");
  const timestamps = options.timestamps === true && has("timestamp-query");
  if (timestamps) want.push("timestamp-query");
  const l = a.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
  };
  let device: GPUDevice;
  try {
    device = await a.requestDevice({ requiredFeatures: want, requiredLimits });
  } catch (error) {
    throw unavailable(`the WebGPU adapter ${c.name} refused to open a device: ${String(error)}`);
  }
  const sgMin = a.info.subgroupMinSize ?? 0;
  const sgMax = a.info.subgroupMaxSize ?? 0;
  const dl = device.limits;
  return {
    device,
    adapterName: c.name,
    dawnBackend: c.backend,
    software: c.software,
    subgroups: device.features.has("subgroups"),
    subgroupSize: sgMin > 0 && sgMin === sgMax ? sgMin : 0,
    shaderF16: device.features.has("shader-f16"),
    timestamps,
    limits: {
      maxStorageBufferBindingSize: dl.maxStorageBufferBindingSize,
      maxBufferSize: dl.maxBufferSize,
      minUniformBufferOffsetAlignment: dl.minUniformBufferOffsetAlignment,
      minStorageBufferOffsetAlignment: dl.minStorageBufferOffsetAlignment,
      maxComputeWorkgroupStorageSize: dl.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: dl.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: dl.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: dl.maxStorageBuffersPerShaderStage,
    },
    instance: c.instance,
  };
}
