/**
 * Backend selection (`--backend webgpu|cpu|auto`, `--device`).
 *
 * - `cpu`: the CPU backend.
 * - `webgpu`: the adapter `device` names (default: the first hardware adapter, else a software one);
 *   a missing `webgpu` package, no adapter or a failed device is a BACKEND_UNAVAILABLE error.
 * - `auto`: WebGPU only on a hardware adapter (discrete or integrated GPU). Software rasterizers
 *   (Mesa llvmpipe, SwiftShader, lavapipe) run our kernels correctly but slower than the CPU backend, so
 *   auto keeps the CPU there; when WebGPU is missing or fails, auto falls back to the CPU with a notice.
 */
import { isOllmError, OllmError } from "../../../errors.js";
import type { Backend } from "../../backend.js";
import { CpuBackend } from "../cpu/cpu-backend.js";
import { findAdapter } from "./gpu.js";
import { WebGpuBackend, type WebGpuBackendOptions } from "./webgpu-backend.js";

export type BackendChoice = "cpu" | "webgpu" | "auto";

export interface SelectBackendOptions extends WebGpuBackendOptions {
  /** Where auto's fallback notice goes (default: console.warn). */
  onNotice?: (message: string) => void;
}

interface Probe {
  hardware: boolean;
  /** A software adapter was found (an ordinary outcome, not worth a notice). */
  software: boolean;
  reason: string;
}

let autoProbe: Promise<Probe> | undefined;

/** Whether auto should use WebGPU on this machine (probed once per process). */
async function probeAuto(device: string | number | undefined): Promise<Probe> {
  const run = async (): Promise<Probe> => {
    try {
      const a = await findAdapter(device ?? "auto");
      return a.software
        ? {
            hardware: false,
            software: true,
            reason: `the WebGPU adapter is a software one (${a.name}); the CPU backend is faster`,
          }
        : { hardware: true, software: false, reason: a.name };
    } catch (error) {
      return { hardware: false, software: false, reason: isOllmError(error) ? error.message : String(error) };
    }
  };
  if (device !== undefined && device !== "auto") return run();
  autoProbe ??= run();
  return autoProbe;
}

export async function selectBackend(
  name: BackendChoice,
  options: SelectBackendOptions = {},
): Promise<Backend> {
  if (name === "cpu") return new CpuBackend();
  if (name === "webgpu") return WebGpuBackend.create(options);
  if (name !== "auto")
    throw new OllmError("INVALID_ARGUMENT", `unknown backend "${String(name)}"`, {
      hint: "use cpu, webgpu or auto",
    });
  const device = options.device === "gpu" ? "auto" : options.device;
  const probe = await probeAuto(device);
  if (!probe.hardware) {
    // A software adapter is an ordinary outcome; a missing or broken one deserves a word.
    if (!probe.software) notify(options, `WebGPU is not available (${probe.reason}); using the CPU backend`);
    return new CpuBackend();
  }
  try {
    return await WebGpuBackend.create({ ...options, device });
  } catch (error) {
    notify(
      options,
      `the WebGPU adapter ${probe.reason} failed (${(error as Error).message}); using the CPU backend`,
    );
    return new CpuBackend();
  }
}

function notify(options: SelectBackendOptions, message: string): void {
  (options.onNotice ?? ((m: string) => console.warn(m)))(message);
}
