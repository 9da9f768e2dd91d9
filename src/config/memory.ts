import { OllmError } from "../errors.js";
import { MEMORY_BUDGET_PATTERN, type MemoryBudget } from "./runtime-config.js";

const UNIT_BYTES: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/**
 * Bytes of a memory budget. `"75%"` is a share of `totalBytes` (the machine's memory of that kind);
 * units: B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB and bare K/M/G/T (powers of 1024).
 */
export function parseMemoryBudget(budget: MemoryBudget, totalBytes?: number): number {
  if (typeof budget === "number") return budget;
  const match = MEMORY_BUDGET_PATTERN.exec(budget);
  if (!match) throw new OllmError("INVALID_CONFIG", `"${budget}" is not a memory size`);
  const value = Number(match[1]);
  const unit = (match[2] ?? "").toLowerCase();
  if (unit === "%") {
    if (totalBytes === undefined)
      throw new OllmError("INVALID_CONFIG", `"${budget}" is a share of memory the machine does not report`);
    if (value > 100) throw new OllmError("INVALID_CONFIG", `"${budget}" is more than 100% of the memory`);
    return Math.floor((totalBytes * value) / 100);
  }
  return Math.floor(value * UNIT_BYTES[unit]);
}

/** A byte count for people: "1.50 GiB", "312.0 KiB", "12 B". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}
