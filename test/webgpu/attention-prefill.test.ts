/**
 * WebGPU prefill attention (the tiled kernel, attention-prefill.ts) against the CPU backend: row counts that are
 * not multiples of its blocks, head widths and GQA groups, chunks after a cached prefix, masks and logit options,
 * rows that see no key, and K/V at offsets in their buffers (vec4 and scalar reads).
 */
import { afterAll, describe, expect, it } from "vitest";
import type { AttentionOptions } from "../../src/engine/backend.js";
import { prefillAttentionPlan } from "../../src/engine/backends/webgpu/attention-prefill.js";
import type { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import type { Tensor } from "../../src/engine/tensor.js";
import { compare, cpu, gpuOrSkip, pair, random } from "./gpu-setup.js";

const gpu = await gpuOrSkip();
afterAll(async () => {
  await gpu?.close();
});

interface Case {
  rows: number;
  heads: number;
  kv: number;
  dim: number;
  /** Keys (default: rows, a prompt without a cache). */
  len?: number;
  /** Position of the first query row (default: the last rows of the cache). */
  start?: number;
  offset?: number;
  window?: number;
  sinks?: boolean;
  softcap?: number;
  /** Query positions reversed (the kernel must not assume them sorted). */
  reversed?: boolean;
  /** K and V as views at this many floats into a larger buffer. */
  at?: number;
}

const cases: [string, Case][] = [
  ["17 rows, width 64, group 1", { rows: 17, heads: 2, kv: 2, dim: 64 }],
  ["64 rows, width 128, group 4", { rows: 64, heads: 8, kv: 2, dim: 128 }],
  ["100 rows, width 128, group 1", { rows: 100, heads: 2, kv: 2, dim: 128 }],
  ["100 rows, width 64, group 4", { rows: 100, heads: 4, kv: 1, dim: 64 }],
  ["width 256, group 2", { rows: 40, heads: 4, kv: 2, dim: 256 }],
  ["width 80 (4 vectors per thread)", { rows: 33, heads: 2, kv: 1, dim: 80 }],
  ["group 3 (blocks of 21 positions)", { rows: 50, heads: 6, kv: 2, dim: 64 }],
  ["group 12", { rows: 36, heads: 12, kv: 1, dim: 64 }],
  ["group 96 (two head blocks)", { rows: 32, heads: 96, kv: 1, dim: 64 }],
  ["chunk after a cached prefix", { rows: 40, heads: 8, kv: 2, dim: 128, len: 300 }],
  ["key position offset", { rows: 35, heads: 4, kv: 2, dim: 64, len: 90, offset: 1000 }],
  ["window", { rows: 100, heads: 4, kv: 1, dim: 64, window: 24 }],
  ["window, offset, chunk", { rows: 48, heads: 4, kv: 2, dim: 128, len: 200, offset: 500, window: 70 }],
  // Sinks with K/V at odd offsets (read as scalars): one kernel variant for both, to keep compiles few.
  ["sinks, K/V at odd offsets", { rows: 70, heads: 8, kv: 2, dim: 64, sinks: true, at: 3 }],
  ["softcap", { rows: 45, heads: 4, kv: 2, dim: 128, softcap: 4 }],
  [
    "sinks, softcap, window",
    { rows: 64, heads: 4, kv: 1, dim: 64, sinks: true, softcap: 3, window: 16, at: 3 },
  ],
  // Positions 0..19 come before key 0 (position 20): the first block of 16 positions sees no key at all.
  ["rows before every key", { rows: 40, heads: 8, kv: 2, dim: 64, len: 30, start: 0, offset: 20 }],
  [
    "rows before every key, sinks",
    { rows: 33, heads: 2, kv: 1, dim: 64, len: 30, start: 0, offset: 20, sinks: true, at: 3 },
  ],
  ["positions in reverse", { rows: 37, heads: 4, kv: 2, dim: 64, len: 80, reversed: true }],
  ["K/V at offsets (vec4)", { rows: 32, heads: 4, kv: 2, dim: 128, len: 50, at: 256 }],
];

const run = gpu ? describe : describe.skip;

run("WebGPU prefill attention matches the CPU backend", () => {
  const g = gpu as WebGpuBackend;

  /**
   * k/v on the GPU, or a view starting `at` floats into a larger buffer (row 1 of [n, at]; attention reads only
   * its offset, so the view's shape does not matter).
   */
  function kvOnGpu(values: Float32Array, rows: number, width: number, at: number | undefined): Tensor {
    if (at === undefined) return g.fromFloat32(values, [rows, width]);
    const n = 2 + Math.ceil(values.length / at);
    const data = new Float32Array(n * at);
    data.set(values, at);
    return g.subTensor(g.fromFloat32(data, [n, at]), 1);
  }

  it.each(cases)("%s", async (_, c) => {
    const len = c.len ?? c.rows;
    const cap = len + 5; // cache buffers longer than kvLength
    const offset = c.offset ?? 0;
    const start = c.start ?? offset + len - c.rows;
    const kvw = c.kv * c.dim;
    // Queries in [-3, 3): scores spread over a few units, so the running maximum moves between tiles.
    const [qc, qg] = pair(g, random(c.rows * c.heads * c.dim, 91, 3), [c.rows, c.heads * c.dim]);
    const kv = random(cap * kvw, 92);
    const vv = random(cap * kvw, 93);
    const kc = cpu.fromFloat32(kv, [cap, kvw]);
    const vc = cpu.fromFloat32(vv, [cap, kvw]);
    const kg = kvOnGpu(kv, cap, kvw, c.at);
    const vg = kvOnGpu(vv, cap, kvw, c.at === undefined ? undefined : c.at + 4);
    const [sc, sg] = pair(g, random(c.heads, 94, 2), [c.heads], "bf16");
    const positions = Int32Array.from({ length: c.rows }, (_, i) => start + i);
    if (c.reversed) positions.reverse();
    const opts: AttentionOptions = {
      numHeads: c.heads,
      numKvHeads: c.kv,
      headDim: c.dim,
      scale: 1 / Math.sqrt(c.dim),
      queryPositions: positions,
      kvLength: len,
      kvPositionOffset: c.offset,
      window: c.window,
      softcap: c.softcap,
    };
    expect(prefillAttentionPlan(c.rows, c.heads, c.kv, c.dim, g.gpu.limits)).toBeDefined();
    const before = g.stats().dispatches;
    const got = g.attention(qg, kg, vg, { ...opts, sinks: c.sinks ? sg : undefined });
    expect(g.stats().dispatches - before).toBe(1);
    await compare(got, cpu.attention(qc, kc, vc, { ...opts, sinks: c.sinks ? sc : undefined }), 1e-4);
  });
});

describe("prefillAttentionPlan", () => {
  const limits = {
    maxComputeWorkgroupStorageSize: 32768,
    maxComputeInvocationsPerWorkgroup: 256,
    maxComputeWorkgroupsPerDimension: 65535,
  };

  it("leaves decode-sized calls and unsupported widths to the decode kernel", () => {
    expect(prefillAttentionPlan(15, 32, 8, 128, limits)).toBeUndefined();
    expect(prefillAttentionPlan(2048, 8, 2, 72, limits)).toBeUndefined();
    expect(prefillAttentionPlan(2048, 8, 2, 512, limits)).toBeUndefined();
  });

  it("blocks 64 (position, head) rows of one KV head, tiles keys to fit workgroup memory", () => {
    expect(prefillAttentionPlan(2048, 32, 8, 128, limits)).toEqual({
      bc: 16,
      hb: 4,
      qBlocks: 1,
      positions: 16,
      pBlocks: 128,
      grid: [8, 128, 1],
    });
    expect(prefillAttentionPlan(2048, 32, 8, 256, limits)?.bc).toBe(8);
    expect(
      prefillAttentionPlan(2048, 32, 8, 128, { ...limits, maxComputeWorkgroupStorageSize: 16384 })?.bc,
    ).toBe(8);
  });
});
