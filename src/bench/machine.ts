import { readFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";

export interface MachineInfo {
  cpu: string;
  /** Logical cores available to this process. */
  cores: number;
  memoryBytes: number;
  node: string;
  v8: string;
  platform: string;
  /** 1-minute load average when the run started (other work on the machine skews every number). */
  loadAverage: number;
  /** CPU features that matter to the kernels (Linux only). */
  features: string[];
}

function cpuFlags(): string[] {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const flags = /^flags\s*:\s*(.*)$/m.exec(info)?.[1]?.split(/\s+/) ?? [];
    return ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_fp16"].filter((f) =>
      flags.includes(f),
    );
  } catch {
    return [];
  }
}

export function machineInfo(): MachineInfo {
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform}-${process.arch}`,
    loadAverage: loadavg()[0],
    features: cpuFlags(),
  };
}
