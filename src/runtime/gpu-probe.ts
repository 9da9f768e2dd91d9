/**
 * The WebGPU probe of `backend: "auto"`: which adapters Dawn offers (hardware or software) and how much
 * memory each hardware one has (gpu-memory.ts). The plan stays synchronous: the loader runs this probe
 * before planning, once per process, and hands the result in as `MachineInfo.webgpu`.
 *
 * Dawn prints warnings about the adapters it rejects straight to the process's stderr (native code, not
 * `console`), so the adapters are listed in a short-lived child process whose stderr is captured. The
 * listing follows the engine's (gpu.ts: its Dawn backends in its order, its software test and adapter
 * names, hardware adapters first), so "gpu:N" means the same adapter in both.
 */
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { adapterName, BACKEND_ORDER, SOFTWARE_ADAPTER } from "../engine/backends/webgpu/gpu.js";
import { detectGpuMemory, type GpuMemorySystem, matchGpuMemory, nodeGpuMemorySystem } from "./gpu-memory.js";
import type { WebGpuAdapterInfo, WebGpuProbe } from "./machine.js";

/** One adapter as Dawn describes it (GPUAdapterInfo plus features and limits). */
export interface RawAdapter {
  backend: string;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  features: string[];
  limits: Record<string, number>;
}

/** The adapters Dawn offers, or why there are none (package missing or broken, probe failed). */
export interface AdapterListing {
  adapters: RawAdapter[];
  error?: string;
}

/** The system calls of the probe (replaced in tests). */
export interface GpuProbeSystem extends GpuMemorySystem {
  /** Lists the WebGPU adapters (default: {@link listAdaptersQuietly}). */
  listAdapters(): Promise<AdapterListing>;
}

/** Limits worth reporting (ollm doctor). */
const LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
];

const PROBE_TIMEOUT_MS = 15_000;

/** Runs in the child: argv = [webgpu module URL, backends JSON, limits JSON]; prints one JSON line. */
const CHILD_SCRIPT = `
const [url, backends, limitNames] = process.argv.slice(1);
const print = (v) => { process.stdout.write(JSON.stringify(v) + "\\n"); process.exit(0); };
let mod;
try { mod = await import(url); } catch (e) { print({ loadError: String((e && e.message) || e) }); }
const adapters = [];
for (const backend of JSON.parse(backends)) {
  let instance;
  try { instance = mod.create(["backend=" + backend]); } catch { continue; }
  let a = null;
  try {
    a = await instance.requestAdapter({ powerPreference: "high-performance", featureLevel: backend === "opengles" ? "compatibility" : "core" });
  } catch { a = null; }
  if (!a) continue;
  const i = a.info || {};
  const limits = {};
  for (const k of JSON.parse(limitNames)) if (typeof a.limits[k] === "number") limits[k] = a.limits[k];
  adapters.push({
    backend, vendor: i.vendor || "", architecture: i.architecture || "", device: i.device || "",
    description: i.description || "", isFallbackAdapter: i.isFallbackAdapter === true,
    features: [...a.features].map(String).sort(), limits,
  });
}
print({ adapters });
`;

/**
 * Lists the WebGPU adapters in a child process (Dawn's warnings stay in its captured stderr). Never throws:
 * a missing or broken `webgpu` package, a crash or a timeout is the listing's `error`.
 */
export async function listAdaptersQuietly(timeoutMs = PROBE_TIMEOUT_MS): Promise<AdapterListing> {
  const url = webgpuUrl();
  if (!url) return { adapters: [], error: "the optional `webgpu` package (Dawn) is not installed" };
  // Headless Mesa (llvmpipe through EGL) needs these, as in the engine.
  const env = {
    ...process.env,
    // Where process.execPath is Electron's, run it as Node.
    ELECTRON_RUN_AS_NODE: "1",
    EGL_PLATFORM: process.env.EGL_PLATFORM ?? "surfaceless",
    XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? "/tmp",
  };
  const args = [
    "--input-type=module",
    "-e",
    CHILD_SCRIPT,
    url,
    JSON.stringify(BACKEND_ORDER),
    JSON.stringify(LIMITS),
  ];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      { env, timeout: timeoutMs, maxBuffer: 4 << 20, windowsHide: true },
      (error, stdout, stderr) => {
        const line = String(stdout).trim().split("\n").pop() ?? "";
        let parsed: { adapters?: RawAdapter[]; loadError?: string } | undefined;
        try {
          parsed = line ? JSON.parse(line) : undefined;
        } catch {
          parsed = undefined;
        }
        if (parsed?.loadError)
          resolve({ adapters: [], error: `the \`webgpu\` package (Dawn) did not load: ${parsed.loadError}` });
        else if (parsed?.adapters) resolve({ adapters: parsed.adapters });
        else if ((error as { killed?: boolean } | null)?.killed)
          resolve({ adapters: [], error: `the WebGPU probe did not answer within ${timeoutMs / 1000} s` });
        else
          resolve({
            adapters: [],
            error: `the WebGPU probe failed: ${lastLines(String(stderr)) || error?.message || "no answer"}`,
          });
      },
    );
  });
}

/** The URL of the `webgpu` package's entry, or undefined when it is not installed. */
function webgpuUrl(): string | undefined {
  try {
    return pathToFileURL(createRequire(import.meta.url).resolve("webgpu")).href;
  } catch {
    // A package whose exports have no "require" condition: ask the ESM resolver.
    try {
      return import.meta.resolve?.("webgpu");
    } catch {
      return undefined;
    }
  }
}

/** This machine. */
export const nodeGpuProbeSystem: GpuProbeSystem = {
  ...nodeGpuMemorySystem,
  listAdapters: () => listAdaptersQuietly(),
};

/**
 * Whether Linux has a GPU device node: a DRM render node (Mesa, amdgpu, i915), NVIDIA's, or WSL's /dev/dxg.
 * Without one no hardware adapter can exist, and Dawn need not start.
 */
async function linuxGpuDevice(sys: GpuProbeSystem): Promise<boolean> {
  const [dri, dev] = await Promise.all([
    sys.readDir("/dev/dri").catch(() => [] as string[]),
    sys.readDir("/dev").catch(() => [] as string[]),
  ]);
  return dri.some((n) => /^(renderD|card)\d+$/.test(n)) || dev.some((n) => /^nvidia\d+$|^dxg$/.test(n));
}

export interface ProbeWebGpuOptions {
  /** List every adapter even where Linux has no GPU device node (ollm doctor lists software adapters too). */
  all?: boolean;
}

/**
 * The WebGPU adapters of this machine in the engine's order, each hardware one with its memory where a
 * system tool reports it. Never throws (what went wrong is the result's `error` or an adapter's `memoryNote`).
 */
export async function probeWebGpu(
  sys: GpuProbeSystem = nodeGpuProbeSystem,
  options: ProbeWebGpuOptions = {},
): Promise<WebGpuProbe> {
  if (!options.all && sys.platform === "linux" && !(await linuxGpuDevice(sys)))
    return {
      adapters: [],
      error:
        "this machine has no GPU device (no /dev/dri render node, /dev/nvidia* or /dev/dxg): at most a software WebGPU adapter, slower than the CPU backend",
    };
  const [listing, detection] = await Promise.all([sys.listAdapters(), detectGpuMemory(sys)]);
  if (listing.adapters.length === 0)
    return { adapters: [], error: listing.error ?? "no WebGPU adapter was found on this machine" };
  const adapters = listing.adapters
    .map((a) => {
      const name = adapterName(a);
      return { raw: a, name, software: a.isFallbackAdapter || SOFTWARE_ADAPTER.test(name) };
    })
    // Hardware first, software last (a stable sort, as in the engine).
    .sort((a, b) => Number(a.software) - Number(b.software))
    .map(({ raw, name, software }, index): WebGpuAdapterInfo => {
      const info: WebGpuAdapterInfo = {
        index,
        name,
        vendor: raw.vendor,
        backend: raw.backend,
        software,
        features: raw.features,
        limits: raw.limits,
      };
      if (software) return info;
      const { memory, note } = matchGpuMemory(info, detection);
      return memory ? { ...info, memory } : { ...info, memoryNote: note };
    });
  return { adapters };
}

let once: Promise<WebGpuProbe> | undefined;

/**
 * {@link probeWebGpu} of this machine, run at most once per process (the loader's default gpuProbe). Env
 * OLLM_GPU_PROBE=0 skips it: auto then plans on the CPU (the test suite sets it, so a developer's GPU does not
 * change what the tests plan).
 */
export function probeWebGpuOnce(): Promise<WebGpuProbe> {
  once ??=
    process.env.OLLM_GPU_PROBE === "0"
      ? Promise.resolve(notProbed("WebGPU probing is off (OLLM_GPU_PROBE=0)"))
      : probeWebGpu();
  return once;
}

/** A probe result for "not probed": auto then plans on the CPU with this reason. */
export function notProbed(why: string): WebGpuProbe {
  return { adapters: [], error: why };
}

function lastLines(text: string): string {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-3)
    .join(" / ");
}
