/**
 * Kernel-level measurements: the machine's streaming-read bandwidth (the bound a GEMV can reach) and the
 * GEMV throughput of the WASM kernels over weights much larger than the caches.
 */
import { FastKernels, releaseKernelData } from "../engine/backends/cpu/kernels/fast-kernels.js";
import type { DType } from "../engine/tensor.js";
import { OllmError } from "../errors.js";
import { median, seededRandom } from "./stats.js";

export interface BandwidthResult {
  threads: number;
  bytes: number;
  /** Median pass, bytes per second. */
  bytesPerSecond: number;
}

export interface GemvResult {
  dtype: "bf16" | "f16" | "f32";
  threads: number;
  /** Weight shape [n, k] of each matrix, and how many distinct matrices were cycled through. */
  n: number;
  k: number;
  matrices: number;
  /** Weight bytes streamed per second (median of the repeats). */
  bytesPerSecond: number;
}

function fastKernels(threads: number): FastKernels {
  const fast = FastKernels.create({ kernels: "wasm", threads });
  if (!fast) throw new OllmError("BACKEND_UNAVAILABLE", "the WASM kernels cannot run on this runtime");
  return fast;
}

/** Streaming-read bandwidth with `threads` threads over `bytes` (default 1 GiB). */
export function measureReadBandwidth(threads: number, bytes = 1 << 30, repeats = 5): BandwidthResult {
  const fast = fastKernels(threads);
  return { threads, bytes, bytesPerSecond: fast.readBandwidth(bytes, threads, repeats) };
}

const ELEMENT_BYTES = { bf16: 2, f16: 2, f32: 4 } as const;

/**
 * GEMV (one activation row) over matrices [n, k] that together take `totalBytes` (default 512 MiB, far
 * above any last-level cache), each read once per pass as in a decode step.
 */
export function measureGemv(
  dtype: GemvResult["dtype"],
  threads: number,
  options: {
    n?: number;
    k?: number;
    totalBytes?: number;
    repeats?: number;
    /** "tiled" (default: as the backend stores 2-D weights) or "row-major" (the layout on disk). */
    layout?: "tiled" | "row-major";
  } = {},
): GemvResult {
  const n = options.n ?? 8192;
  const k = options.k ?? 2048;
  const matrixBytes = n * k * ELEMENT_BYTES[dtype];
  const matrices = Math.max(1, Math.round((options.totalBytes ?? 512 << 20) / matrixBytes));
  const fast = fastKernels(threads);
  const next = seededRandom(7);
  const bytes = new Uint8Array(matrixBytes);
  // Small finite values in every dtype: random low bytes under a fixed sign/exponent pattern.
  const view16 = new Uint16Array(bytes.buffer);
  if (dtype === "f32") {
    const f = new Float32Array(bytes.buffer);
    for (let i = 0; i < f.length; i++) f[i] = next() - 0.5;
  } else {
    const base = dtype === "bf16" ? 0x3c00 : 0x2000;
    for (let i = 0; i < view16.length; i++) view16[i] = base | Math.floor(next() * 0x3ff);
  }
  // With the shape, place stores the matrix tiled, as the backend's upload does for 2-D weights.
  const shape = options.layout === "row-major" ? undefined : [n, k];
  const weights = Array.from({ length: matrices }, () => fast.place(bytes, dtype as DType, shape));
  const x = new Float32Array(k);
  for (let i = 0; i < k; i++) x[i] = next() - 0.5;
  try {
    const rates: number[] = [];
    for (let r = 0; r < (options.repeats ?? 5) + 1; r++) {
      const t0 = performance.now();
      for (const w of weights) {
        if (!w || !fast.linear(x, 1, k, w, dtype, n))
          throw new OllmError("INTERNAL", "GEMV benchmark: weight not placed in an arena");
      }
      const seconds = (performance.now() - t0) / 1000;
      // The first pass warms the code (WebAssembly tier-up) and the pages.
      if (r > 0) rates.push((matrices * matrixBytes) / seconds);
    }
    return { dtype, threads, n, k, matrices, bytesPerSecond: median(rates) };
  } finally {
    for (const w of weights) if (w) releaseKernelData(w);
  }
}
