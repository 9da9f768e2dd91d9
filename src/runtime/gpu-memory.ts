/**
 * How much memory a GPU has, best effort and without Python: WebGPU does not report it, so `backend: "auto"`
 * asks the system. NVIDIA through `nvidia-smi`; AMD (and Intel discrete) through the DRM driver's
 * `mem_info_vram_total` in sysfs; Apple silicon shares host memory, of which macOS lets the GPU use a part.
 * Then the detected GPUs are matched to a WebGPU adapter by vendor (and by name when there are several of
 * different sizes); when unsure the size stays unknown. Every system call goes through {@link GpuMemorySystem},
 * so tests fake them.
 */
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { totalmem } from "node:os";
import { formatBytes } from "../config/memory.js";
import type { GpuMemory } from "./machine.js";

export type GpuVendor = "nvidia" | "amd" | "intel" | "apple";

/** A GPU a system tool reported, with its memory. */
export interface DetectedGpu {
  vendor: GpuVendor;
  name: string;
  bytes: number;
  /** Free when probed, where the source reports it (nvidia-smi, amdgpu's mem_info_vram_used). */
  freeBytes?: number;
  source: string;
}

/** What was detected, and notes on what could not be (a missing nvidia-smi, an integrated GPU). */
export interface GpuMemoryDetection {
  gpus: DetectedGpu[];
  notes: string[];
}

/** The system calls of the detection (replaced in tests). */
export interface GpuMemorySystem {
  platform: NodeJS.Platform;
  /** Host memory in bytes (unified memory on Apple silicon). */
  totalMemoryBytes(): number;
  /** Runs a program and resolves its stdout; rejects when it is missing (code ENOENT), fails or times out. */
  run(file: string, args: readonly string[], timeoutMs: number): Promise<string>;
  readDir(path: string): Promise<string[]>;
  readText(path: string): Promise<string>;
}

/** This machine. */
export const nodeGpuMemorySystem: GpuMemorySystem = {
  platform: process.platform,
  totalMemoryBytes: totalmem,
  run: (file, args, timeoutMs) =>
    new Promise((resolve, reject) => {
      execFile(file, [...args], { timeout: timeoutMs, windowsHide: true }, (error, stdout) =>
        error ? reject(error) : resolve(String(stdout)),
      );
    }),
  readDir: (path) => readdir(path),
  readText: (path) => readFile(path, "utf8"),
};

/** nvidia-smi can take a few seconds on a multi-GPU host without persistence mode; not more. */
const NVIDIA_SMI_TIMEOUT_MS = 5000;
const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
/** Below this, an AMD/Intel "VRAM" is an integrated GPU's carve-out of host memory: not a size to plan with. */
const MIN_DISCRETE_VRAM = GIB;
/** PCI vendor ids of the DRM devices. */
const PCI_VENDORS: Record<string, GpuVendor> = { "0x10de": "nvidia", "0x1002": "amd", "0x8086": "intel" };

async function nvidiaSmi(sys: GpuMemorySystem, out: GpuMemoryDetection): Promise<void> {
  let stdout: string;
  try {
    stdout = await sys.run(
      "nvidia-smi",
      ["--query-gpu=memory.total,memory.free,name", "--format=csv,noheader,nounits"],
      NVIDIA_SMI_TIMEOUT_MS,
    );
  } catch (error) {
    const e = error as { code?: unknown; killed?: boolean; message?: string };
    if (e.code === "ENOENT") out.notes.push("nvidia-smi was not found");
    else if (e.killed) out.notes.push(`nvidia-smi did not answer within ${NVIDIA_SMI_TIMEOUT_MS / 1000} s`);
    else out.notes.push(`nvidia-smi failed: ${firstLine(e.message ?? String(error))}`);
    return;
  }
  // "total, free, name" in MiB; free may be "[N/A]" on some boards.
  for (const line of stdout.split(/\r?\n/)) {
    const m = /^\s*(\d+(?:\.\d+)?)\s*,\s*([^,]*?)\s*,\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    const bytes = Math.round(Number(m[1]) * MIB);
    const free = Math.round(Number(m[2]) * MIB);
    if (bytes > 0)
      out.gpus.push({
        vendor: "nvidia",
        name: m[3] || "NVIDIA GPU",
        bytes,
        ...(Number.isFinite(free) && free >= 0 && m[2] !== "" ? { freeBytes: Math.min(free, bytes) } : {}),
        source: "nvidia-smi",
      });
  }
}

/** AMD (amdgpu) and Intel discrete GPUs: the DRM driver's VRAM size in sysfs. */
async function drmVram(sys: GpuMemorySystem, out: GpuMemoryDetection): Promise<void> {
  let cards: string[];
  try {
    cards = (await sys.readDir("/sys/class/drm")).filter((c) => /^card\d+$/.test(c)).sort();
  } catch {
    return;
  }
  for (const card of cards) {
    const dir = `/sys/class/drm/${card}/device`;
    const vendor = PCI_VENDORS[(await sys.readText(`${dir}/vendor`).catch(() => "")).trim().toLowerCase()];
    // NVIDIA's driver has no such file (nvidia-smi covers it).
    if (vendor !== "amd" && vendor !== "intel") continue;
    const text = await sys.readText(`${dir}/mem_info_vram_total`).catch(() => undefined);
    const bytes = Number(text?.trim());
    if (text === undefined || !Number.isFinite(bytes) || bytes <= 0) continue;
    const product = (await sys.readText(`${dir}/product_name`).catch(() => "")).trim();
    const name = product || `${vendor === "amd" ? "AMD" : "Intel"} GPU (${card})`;
    if (bytes < MIN_DISCRETE_VRAM) {
      out.notes.push(
        `${name} reports ${formatBytes(bytes)} of VRAM, an integrated GPU's share of host memory, not a size to plan with`,
      );
      continue;
    }
    const usedText = await sys.readText(`${dir}/mem_info_vram_used`).catch(() => undefined);
    const used = Number(usedText?.trim());
    const free =
      usedText !== undefined && Number.isFinite(used) && used >= 0 && used <= bytes
        ? { freeBytes: bytes - used }
        : {};
    out.gpus.push({ vendor, name, bytes, ...free, source: `${dir}/mem_info_vram_total` });
  }
}

/** Apple silicon: unified memory, of which macOS lets the GPU keep about 2/3 (≤ 36 GiB of RAM) or 3/4. */
function appleUnified(sys: GpuMemorySystem, out: GpuMemoryDetection): void {
  const total = sys.totalMemoryBytes();
  const share = total > 36 * GIB ? 0.75 : 2 / 3;
  out.gpus.push({
    vendor: "apple",
    name: "Apple GPU",
    bytes: Math.floor(total * share),
    source: `os.totalmem() (unified memory: macOS lets the GPU use about ${share === 0.75 ? "3/4" : "2/3"} of the ${formatBytes(total)} of RAM)`,
  });
}

/** The GPUs of this machine whose memory a system tool reports. Never throws. */
export async function detectGpuMemory(
  sys: GpuMemorySystem = nodeGpuMemorySystem,
): Promise<GpuMemoryDetection> {
  const out: GpuMemoryDetection = { gpus: [], notes: [] };
  if (sys.platform === "darwin") {
    appleUnified(sys, out);
    return out;
  }
  await Promise.all([nvidiaSmi(sys, out), sys.platform === "linux" ? drmVram(sys, out) : undefined]);
  return out;
}

/** The vendor of a WebGPU adapter from its info.vendor and name ("nvidia nvidia-h200 NVIDIA: 580.159.04"). */
export function adapterVendor(adapter: { vendor: string; name: string }): GpuVendor | undefined {
  const text = `${adapter.vendor} ${adapter.name}`.toLowerCase();
  if (/nvidia|geforce|quadro|tesla|0x10de/.test(text)) return "nvidia";
  if (/\bamd\b|radeon|\bati\b|advanced micro|0x1002/.test(text)) return "amd";
  if (/intel|0x8086/.test(text)) return "intel";
  if (/apple|0x106b/.test(text)) return "apple";
  return undefined;
}

const VENDOR_NAMES: Record<GpuVendor, string> = {
  nvidia: "NVIDIA",
  amd: "AMD",
  intel: "Intel",
  apple: "Apple",
};

const compact = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, "");

/**
 * The memory of the GPU behind a WebGPU adapter: the detected GPU of the adapter's vendor, or — several of
 * them — those whose name the adapter's contains, when they all have the same size. Otherwise unknown,
 * with a note saying why.
 */
export function matchGpuMemory(
  adapter: { vendor: string; name: string },
  detection: GpuMemoryDetection,
): { memory?: GpuMemory; note?: string } {
  const vendor = adapterVendor(adapter);
  const why = detection.notes.length ? `: ${detection.notes.join("; ")}` : "";
  if (!vendor) return { note: "its vendor is not recognised" };
  const same = detection.gpus.filter((g) => g.vendor === vendor);
  if (same.length === 0) return { note: `no ${VENDOR_NAMES[vendor]} GPU memory was detected${why}` };
  const sized = (gpus: DetectedGpu[]) => new Set(gpus.map((g) => g.bytes)).size === 1;
  let picked = same;
  if (!sized(picked)) {
    const name = compact(adapter.name);
    picked = same.filter((g) => name.includes(compact(g.name)));
    if (picked.length === 0 || !sized(picked))
      return {
        note: `${same.length} ${VENDOR_NAMES[vendor]} GPUs of different memory sizes were detected (${same.map((g) => `${g.name} ${formatBytes(g.bytes)}`).join(", ")}) and the adapter could not be told apart`,
      };
  }
  const g = picked[0];
  // Several alike: the least free of them (the adapter could be any).
  const frees = picked.map((p) => p.freeBytes);
  const free = frees.every((f) => f !== undefined) ? Math.min(...(frees as number[])) : undefined;
  return {
    memory: {
      bytes: g.bytes,
      source: g.source,
      gpuName: g.name,
      ...(free !== undefined ? { freeBytes: free } : {}),
    },
  };
}

function firstLine(text: string): string {
  return (
    text
      .split(/\r?\n/)
      .find((l) => l.trim())
      ?.trim() ?? text
  );
}
