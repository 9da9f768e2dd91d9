/**
 * Prefill GEMM probe: kernels.ts's gemmKernel (8×8 outputs per thread) against every candidate tile shape of
 * gemm.ts at the llama weight shapes, M = 2048 rows, in TFLOP/s (2·M·N·K / s; GPU timestamps when the
 * adapter has them, else wall time; batches of ≥ 5 runs after a warm-up). Each variant is first checked
 * against the old kernel on an odd shape and on the first shape (a warning when they differ).
 *
 *   node gemm-probe.js [--quick] [--m ROWS] [--dtype bf16|f16|f32] [--json OUT]
 *   --quick: tiny shapes and few repetitions (checks the probe itself on a software adapter)
 */
import { writeFileSync } from "node:fs";
import {
  GEMM_PARAMS,
  type GemmTile,
  gemmGrid,
  gemmSharedBytes,
  gemmVariant,
  type TiledGemmVariant,
  tiledGemmKernel,
} from "../../src/engine/backends/webgpu/gemm.js";
import { openGpu } from "../../src/engine/backends/webgpu/gpu.js";
import { gemmKernel, type KernelSource, specialize } from "../../src/engine/backends/webgpu/kernels.js";
import type { DType } from "../../src/engine/tensor.js";
import { LLAMA_LINEAR_SHAPES } from "./common.js";

const STORAGE = 0x80;
const COPY_DST = 0x08;
const COPY_SRC = 0x04;
const MAP_READ = 0x01;
const UNIFORM = 0x40;
const QUERY_RESOLVE = 0x200;

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const quick = process.argv.includes("--quick");
const jsonOut = arg("--json");
const dtype = (arg("--dtype") ?? "bf16") as DType;
const log = (...parts: unknown[]) => console.log(`[${new Date().toISOString().slice(11, 19)}]`, ...parts);

const M = Number(arg("--m") ?? (quick ? 72 : 2048));
const SHAPES: [string, number, number][] = quick
  ? [
      ["tiny a", 136, 64],
      ["tiny b", 72, 98],
    ]
  : LLAMA_LINEAR_SHAPES;
const REPS = quick ? 2 : 5;

const TILES: GemmTile[] = [];
for (const bk of [8, 16, 32] as const)
  for (const pipeline of ["plain", "prefetch", "double"] as const) TILES.push({ tm: 8, tn: 8, bk, pipeline });
TILES.push(
  { tm: 8, tn: 4, bk: 16, pipeline: "prefetch" },
  { tm: 8, tn: 4, bk: 16, pipeline: "double" },
  { tm: 8, tn: 4, bk: 32, pipeline: "prefetch" },
  { tm: 4, tn: 8, bk: 16, pipeline: "prefetch" },
  { tm: 4, tn: 4, bk: 16, pipeline: "prefetch" },
  { tm: 4, tn: 4, bk: 16, pipeline: "double" },
  { tm: 4, tn: 4, bk: 32, pipeline: "double" },
);
const tileName = (t: GemmTile) => `${16 * t.tm}x${16 * t.tn} k${t.bk} ${t.pipeline}`;

const gpu = await openGpu({ timestamps: true });
const device = gpu.device;
const maxShared = gpu.limits.maxComputeWorkgroupStorageSize;
log(
  `adapter ${gpu.adapterName} (${gpu.dawnBackend}); toggles "${process.env.OLLM_DAWN_TOGGLES ?? ""}"; workgroup memory ${maxShared} B; ${gpu.timestamps ? "GPU timestamps" : "wall time"}; ${dtype} weights, M = ${M}`,
);
let gpuError: string | undefined;
device.addEventListener?.("uncapturederror", (e) => {
  gpuError ??= (e as GPUUncapturedErrorEvent).error.message;
});

interface Kernel {
  name: string;
  src: KernelSource;
  grid: (m: number, n: number) => [number, number, number];
}
const tiles = TILES.filter((t) => {
  if (gemmSharedBytes(t) <= maxShared) return true;
  log(`skipped ${tileName(t)}: needs ${gemmSharedBytes(t)} B of workgroup memory`);
  return false;
});
const variant = (t: GemmTile): TiledGemmVariant => ({
  ...t,
  dtype,
  transposed: false,
  bias: undefined,
  pairs: dtype !== "f32",
});
const kernels: Kernel[] = [
  {
    name: "old 128x128 k8",
    src: gemmKernel({ dtype, tm: 8, tn: 8, transposed: false, bias: undefined }),
    grid: (m, n) => [Math.ceil(n / 128), Math.ceil(m / 128), 1],
  },
  ...tiles.map((t) => ({
    name: tileName(t),
    src: tiledGemmKernel(variant(t)),
    grid: (m: number, n: number) => gemmGrid(t, m, n),
  })),
];

const pipelines = new Map<string, GPUComputePipeline>();
async function pipelineOf(src: KernelSource): Promise<GPUComputePipeline> {
  let p = pipelines.get(src.key);
  if (!p) {
    const physical = src.bindings.map((b) => ({
      names: [b.name],
      access: b.access,
      type: b.type,
      host: false,
    }));
    const code = specialize(src, physical);
    p = await device.createComputePipelineAsync({
      layout: "auto",
      compute: { module: device.createShaderModule({ code, label: src.key }), entryPoint: "main" },
    });
    pipelines.set(src.key, p);
  }
  return p;
}

/** Deterministic values in [-1, 1) stored as `dtype`. */
function randomBytes(n: number, seed: number, as: DType): Uint8Array {
  const f = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[i] = s / 2 ** 31 - 1;
  }
  if (as === "f32") return new Uint8Array(f.buffer);
  const h = new Uint16Array(n);
  if (as === "bf16") {
    const bits = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) h[i] = bits[i] >>> 16;
  } else {
    // f16 of values in [-1, 1): exponent and top mantissa bits (tiny values flushed to zero).
    const bits = new Uint32Array(f.buffer);
    for (let i = 0; i < n; i++) {
      const b = bits[i];
      const e = ((b >>> 23) & 0xff) - 112;
      h[i] = e <= 0 ? 0 : ((b >>> 16) & 0x8000) | (e << 10) | ((b >>> 13) & 0x3ff);
    }
  }
  return new Uint8Array(h.buffer);
}

function buffer(bytes: number, usage: number, data?: Uint8Array): GPUBuffer {
  const b = device.createBuffer({
    size: Math.ceil(bytes / 16) * 16,
    usage,
    mappedAtCreation: data !== undefined,
  });
  if (data) {
    new Uint8Array(b.getMappedRange()).set(data);
    b.unmap();
  }
  return b;
}

interface Problem {
  m: number;
  n: number;
  k: number;
  x: GPUBuffer;
  w: GPUBuffer;
  y: GPUBuffer;
  params: GPUBuffer;
}

function problem(m: number, n: number, k: number): Problem {
  const named: Record<string, number> = { M: m, N: n, K: k, ldy: n, ldw: k };
  const values = Uint32Array.from(GEMM_PARAMS, (name) => named[name] ?? 0);
  const params = buffer(64, UNIFORM | COPY_DST, new Uint8Array(values.buffer));
  const wBytes = dtype === "f32" ? 4 : 2;
  return {
    m,
    n,
    k,
    x: buffer(m * k * 4, STORAGE, randomBytes(m * k, 1 + k, "f32")),
    w: buffer(n * k * wBytes, STORAGE, randomBytes(n * k, 7 + n, dtype)),
    y: buffer(m * n * 4, STORAGE | COPY_SRC),
    params,
  };
}

function destroy(p: Problem): void {
  for (const b of [p.x, p.w, p.y, p.params]) b.destroy();
}

/** `reps` back-to-back runs in one pass, timestamped at its start and end when `query` is given. */
async function encodeRuns(kernel: Kernel, pr: Problem, reps: number, query?: GPUQuerySet): Promise<void> {
  const pipe = await pipelineOf(kernel.src);
  const group = device.createBindGroup({
    layout: pipe.getBindGroupLayout(0),
    entries: [pr.params, pr.x, pr.w, pr.y].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass(
    query
      ? { timestampWrites: { querySet: query, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } }
      : {},
  );
  pass.setPipeline(pipe);
  pass.setBindGroup(0, group);
  const [gx, gy, gz] = kernel.grid(pr.m, pr.n);
  for (let i = 0; i < reps; i++) pass.dispatchWorkgroups(gx, gy, gz);
  pass.end();
  device.queue.submit([enc.finish()]);
}

async function readBack(src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const dst = device.createBuffer({ size: Math.ceil(bytes / 16) * 16, usage: MAP_READ | COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, dst, 0, dst.size);
  device.queue.submit([enc.finish()]);
  await dst.mapAsync(MAP_READ);
  const out = dst.getMappedRange().slice(0, bytes);
  dst.destroy();
  return out;
}

/**
 * Seconds per run: the best of 3 batches of ≥ REPS runs, each batch long enough (≥ 30 ms) that the
 * timestamps' quantization (Dawn may round them) and the submit cost do not matter.
 */
async function time(kernel: Kernel, pr: Problem): Promise<number> {
  const t0 = performance.now();
  await encodeRuns(kernel, pr, 1); // warm-up, and a first guess of the time
  await device.queue.onSubmittedWorkDone();
  const reps = Math.min(200, Math.max(REPS, Math.ceil(30 / (performance.now() - t0))));
  let best = Number.POSITIVE_INFINITY;
  for (let batch = 0; batch < 3; batch++) {
    let seconds: number;
    if (gpu.timestamps) {
      const query = device.createQuerySet({ type: "timestamp", count: 2 });
      await encodeRuns(kernel, pr, reps, query);
      const resolve = buffer(16, QUERY_RESOLVE | COPY_SRC);
      const enc = device.createCommandEncoder();
      enc.resolveQuerySet(query, 0, 2, resolve, 0);
      device.queue.submit([enc.finish()]);
      const ns = new BigInt64Array(await readBack(resolve, 16));
      query.destroy();
      resolve.destroy();
      seconds = Number(ns[1] - ns[0]) / 1e9;
    } else {
      const t1 = performance.now();
      await encodeRuns(kernel, pr, reps);
      await device.queue.onSubmittedWorkDone();
      seconds = (performance.now() - t1) / 1000;
    }
    best = Math.min(best, seconds / reps);
  }
  return best;
}

/** max |a − b| / max |b| of each kernel's output a against the old kernel's b. */
async function verify(m: number, n: number, k: number): Promise<Record<string, number>> {
  const pr = problem(m, n, k);
  const out: Record<string, number> = {};
  let ref: Float32Array | undefined;
  for (const kernel of kernels) {
    await encodeRuns(kernel, pr, 1);
    const y = new Float32Array(await readBack(pr.y, m * n * 4));
    ref ??= y;
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < y.length; i++) {
      diff = Math.max(diff, Math.abs(y[i] - ref[i]) || (Number.isNaN(y[i]) ? Infinity : 0));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    out[kernel.name] = scale > 0 ? diff / scale : Number.POSITIVE_INFINITY; // all zeros: nothing ran
  }
  destroy(pr);
  return out;
}

const result: Record<string, unknown> = {
  adapter: gpu.adapterName,
  toggles: process.env.OLLM_DAWN_TOGGLES ?? "",
  maxComputeWorkgroupStorageSize: maxShared,
  timing: gpu.timestamps ? "timestamps" : "wall",
  dtype,
  M,
};
const started = performance.now();
for (const kernel of [...kernels]) {
  try {
    await pipelineOf(kernel.src);
  } catch (error) {
    log(`${kernel.name} does not compile here: ${String(error)}`);
    kernels.splice(kernels.indexOf(kernel), 1);
  }
}
const checks = [
  await verify(quick ? 37 : 301, quick ? 70 : 203, quick ? 46 : 138),
  await verify(M, SHAPES[0][1], SHAPES[0][2]),
];
result.verify = checks;
for (const kernel of kernels) {
  const worst = Math.max(...checks.map((c) => c[kernel.name]));
  if (!(worst < 1e-4)) log(`WARNING ${kernel.name}: differs from the old kernel by ${worst} (relative)`);
}
log(`verified every variant against the old kernel (${((performance.now() - started) / 1000).toFixed(1)} s)`);

const rows: Record<string, unknown>[] = [];
const table = new Map<string, string[]>(kernels.map((k) => [k.name, []]));
for (const [label, n, k] of SHAPES) {
  const pr = problem(M, n, k);
  const tflops: Record<string, number> = {};
  for (const kernel of kernels) {
    const s = await time(kernel, pr);
    tflops[kernel.name] = (2 * M * n * k) / s / 1e12;
    table.get(kernel.name)?.push(tflops[kernel.name].toFixed(quick ? 4 : 1).padStart(10));
  }
  destroy(pr);
  const auto = gemmVariant(dtype, false, undefined, M, n, k, 0, maxShared);
  const best = Object.entries(tflops).sort((a, b) => b[1] - a[1])[0];
  rows.push({ label, N: n, K: k, tflops, auto: tileName(auto), best: best[0] });
  log(
    `${label} N ${n} K ${k}: best ${best[0]} ${best[1].toPrecision(3)} TFLOP/s; old ${tflops[kernels[0].name].toPrecision(3)}; default ${tileName(auto)} ${tflops[tileName(auto)]?.toPrecision(3) ?? "-"}`,
  );
}
result.shapes = rows;
console.log(`\nTFLOP/s, M = ${M}, ${dtype} weights [N, K]`);
console.log(`${"".padEnd(26)}${SHAPES.map(([, n, k]) => `${n}x${k}`.padStart(10)).join("")}`);
for (const [name, cells] of table) console.log(`${name.padEnd(26)}${cells.join("")}`);
if (gpuError) {
  log(`GPU error: ${gpuError}`);
  result.error = gpuError;
}
log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(result, null, 2)}\n`);
process.exit(gpuError ? 1 : 0);
