/**
 * WebGPU attention against the CPU backend across the decode kernel's boundaries: key counts around its
 * 32-key blocks and its splits, GQA groups (one to several query-head blocks per KV head), vector and scalar
 * head widths, and the masks and logit options.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { AttentionOptions } from "../../src/engine/backend.js";
import { attentionPlan } from "../../src/engine/backends/webgpu/attention-kernels.js";
import type { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
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
  len: number;
  /** Position of the first query row (default: the last rows of the cache). */
  start?: number;
  offset?: number;
  window?: number;
  sinks?: boolean;
  softcap?: number;
}

const LENGTHS = [1, 7, 31, 64, 65, 200, 300, 1000];
const GROUPS = [1, 2, 4, 8];
const cases: [string, Case][] = [];
// Every key count with every head width; groups and row counts rotate.
[64, 128, 80, 6].forEach((dim, di) => {
  LENGTHS.forEach((len, li) => {
    const group = GROUPS[(di + li) % 4];
    const kv = group === 8 ? 1 : 2;
    const rows = Math.min(len, li % 3 === 0 ? 3 : 1);
    cases.push([
      `dim ${dim}, ${len} keys, group ${group}, ${rows} rows`,
      { rows, heads: kv * group, kv, dim, len },
    ]);
  });
});
// The llama-8B decode shape at every key count.
for (const len of LENGTHS)
  cases.push([`llama 32:8×128, ${len} keys`, { rows: 1, heads: 32, kv: 8, dim: 128, len }]);
cases.push(
  ["kvHeads == heads", { rows: 2, heads: 6, kv: 6, dim: 64, len: 300 }],
  ["group 12 (two query blocks)", { rows: 1, heads: 24, kv: 2, dim: 128, len: 65 }],
  ["group 8 at width 256 (two query blocks)", { rows: 1, heads: 8, kv: 1, dim: 256, len: 200 }],
  ["group 8 at width 512", { rows: 2, heads: 8, kv: 1, dim: 512, len: 70 }],
  ["scalar width 258 (two vectors per value thread)", { rows: 1, heads: 4, kv: 2, dim: 258, len: 90 }],
  ["scalar width 10", { rows: 4, heads: 6, kv: 3, dim: 10, len: 1000 }],
  ["window", { rows: 1, heads: 8, kv: 2, dim: 64, len: 1000, window: 100 }],
  ["window inside one block", { rows: 3, heads: 4, kv: 2, dim: 128, len: 300, window: 5 }],
  ["sinks, one split", { rows: 1, heads: 8, kv: 1, dim: 64, len: 31, sinks: true }],
  ["sinks, split", { rows: 2, heads: 16, kv: 2, dim: 64, len: 1000, sinks: true, window: 128 }],
  ["softcap", { rows: 1, heads: 8, kv: 4, dim: 128, len: 200, softcap: 3 }],
  [
    "sinks + softcap + offset",
    { rows: 2, heads: 4, kv: 1, dim: 80, len: 65, offset: 500, sinks: true, softcap: 2 },
  ],
  ["offset, window", { rows: 1, heads: 4, kv: 2, dim: 64, len: 300, offset: 4000, window: 250 }],
  ["query before every key", { rows: 1, heads: 4, kv: 2, dim: 64, len: 200, start: 10, offset: 50 }],
  [
    "query before every key, sinks",
    { rows: 2, heads: 4, kv: 2, dim: 64, len: 20, start: 3, offset: 50, sinks: true },
  ],
  [
    "rows reaching back before the keys",
    { rows: 5, heads: 4, kv: 2, dim: 128, len: 65, start: 48, offset: 50 },
  ],
  // 15 rows: the most the decode kernel takes before the tiled prefill kernel (attention-prefill.ts).
  ["prefill", { rows: 15, heads: 8, kv: 2, dim: 64, len: 40, start: 25 }],
  // Several blocks per workgroup (the online softmax across blocks).
  ["16 blocks per split", { rows: 8, heads: 8, kv: 8, dim: 64, len: 1000 }],
  ["rows over a cache, one split", { rows: 32, heads: 8, kv: 4, dim: 128, len: 300, window: 200 }],
  ["long context, 64 splits", { rows: 1, heads: 2, kv: 1, dim: 64, len: 5000, sinks: true }],
);

// The backend's general cases (prefill, chunks after a cache, masks, offsets), named.
const named: (Case & { name: string })[] = [
  {
    name: "decode over a long cache (several splits)",
    rows: 1,
    heads: 4,
    kv: 2,
    dim: 64,
    len: 700,
    start: 699,
  },
  { name: "prefill, GQA 4:1", rows: 20, heads: 8, kv: 2, dim: 32, len: 20, start: 0 },
  { name: "chunk after a cache", rows: 9, heads: 2, kv: 2, dim: 16, len: 300, start: 291 },
  { name: "sliding window", rows: 12, heads: 4, kv: 1, dim: 32, len: 400, start: 388, window: 37 },
  {
    name: "sinks and softcap",
    rows: 6,
    heads: 4,
    kv: 2,
    dim: 64,
    len: 270,
    start: 264,
    sinks: true,
    softcap: 20,
  },
  { name: "odd head width", rows: 3, heads: 2, kv: 1, dim: 18, len: 3, start: 0 },
  // Short contexts, with and without sinks / softcap / window.
  { name: "direct decode", rows: 1, heads: 4, kv: 2, dim: 16, len: 40, start: 39 },
  { name: "direct with sinks", rows: 3, heads: 4, kv: 2, dim: 64, len: 200, start: 197, sinks: true },
  {
    name: "direct sinks + softcap",
    rows: 2,
    heads: 2,
    kv: 1,
    dim: 32,
    len: 9,
    start: 7,
    sinks: true,
    softcap: 5,
  },
  // Key position offsets (a ring buffer: row j holds position j + offset), direct and split.
  {
    name: "offset, direct",
    rows: 1,
    heads: 4,
    kv: 2,
    dim: 16,
    len: 100,
    start: 1099,
    offset: 1000,
    window: 64,
  },
  {
    name: "offset, window, chunk",
    rows: 5,
    heads: 4,
    kv: 4,
    dim: 32,
    len: 180,
    start: 5175,
    offset: 5000,
    window: 100,
  },
  {
    name: "offset, split",
    rows: 2,
    heads: 2,
    kv: 1,
    dim: 16,
    len: 600,
    start: 2598,
    offset: 2000,
    window: 300,
  },
  {
    name: "offset, split, sinks",
    rows: 2,
    heads: 4,
    kv: 2,
    dim: 16,
    len: 520,
    start: 819,
    offset: 300,
    sinks: true,
  },
];
for (const { name, ...c } of named) cases.push([name, c]);

const run = gpu ? describe : describe.skip;

run("WebGPU decode attention matches the CPU backend", () => {
  const g = gpu as WebGpuBackend;

  it.each(cases)("%s", async (_, c) => {
    const cap = c.len + 5; // cache buffers longer than kvLength
    const offset = c.offset ?? 0;
    const start = c.start ?? offset + c.len - c.rows;
    // Queries in [-3, 3): scores spread over a few units, so the running maximum moves between blocks.
    const [qc, qg] = pair(g, random(c.rows * c.heads * c.dim, 71, 3), [c.rows, c.heads * c.dim]);
    const [kc, kg] = pair(g, random(cap * c.kv * c.dim, 72), [cap, c.kv * c.dim]);
    const [vc, vg] = pair(g, random(cap * c.kv * c.dim, 73), [cap, c.kv * c.dim]);
    const [sc, sg] = pair(g, random(c.heads, 74, 2), [c.heads], "bf16");
    const opts: AttentionOptions = {
      numHeads: c.heads,
      numKvHeads: c.kv,
      headDim: c.dim,
      scale: 1 / Math.sqrt(c.dim),
      queryPositions: Int32Array.from({ length: c.rows }, (_, i) => start + i),
      kvLength: c.len,
      kvPositionOffset: c.offset,
      window: c.window,
      softcap: c.softcap,
    };
    const before = g.stats().dispatches;
    const got = g.attention(qg, kg, vg, { ...opts, sinks: c.sinks ? sg : undefined });
    const { splits } = attentionPlan(c.rows, c.heads, c.kv, c.dim, c.len);
    expect(g.stats().dispatches - before).toBe(splits > 1 ? 2 : 1);
    await compare(got, cpu.attention(qc, kc, vc, { ...opts, sinks: c.sinks ? sc : undefined }), 1e-4);
  });

  it("K and V read as scalars where they share the output's buffer", async () => {
    const c = { rows: 1, heads: 8, kv: 2, dim: 64, len: 100 };
    const [qc, qg] = pair(g, random(c.heads * c.dim, 81), [1, c.heads * c.dim]);
    const [kc, kg] = pair(g, random(c.len * c.kv * c.dim, 82), [c.len, c.kv * c.dim]);
    const [vc, vg] = pair(g, random(c.len * c.kv * c.dim, 83), [c.len, c.kv * c.dim]);
    const opts: AttentionOptions = {
      numHeads: c.heads,
      numKvHeads: c.kv,
      headDim: c.dim,
      scale: 0.125,
      queryPositions: Int32Array.of(c.len - 1),
      kvLength: c.len,
    };
    // Activations (as in prefill without a cache) live in the heap pages the output comes from.
    const got = g.attention(g.scale(qg, 1), g.scale(kg, 1), g.scale(vg, 1), opts);
    await compare(got, cpu.attention(qc, kc, vc, opts), 1e-4);
  });
});

describe("attentionPlan", () => {
  const group = { targetWorkgroups: 128, maxQueries: 8 };
  it("splits short decode contexts into ~128 workgroups of whole 32-key blocks", () => {
    expect(attentionPlan(1, 32, 8, 128, 128, group)).toEqual({ qBlock: 4, qBlocks: 1, chunk: 32, splits: 4 });
    expect(attentionPlan(1, 32, 8, 128, 31, group)).toEqual({ qBlock: 4, qBlocks: 1, chunk: 32, splits: 1 });
    expect(attentionPlan(1, 32, 8, 128, 1000, group)).toEqual({
      qBlock: 4,
      qBlocks: 1,
      chunk: 64,
      splits: 16,
    });
    // Prefill: enough workgroups from the rows alone.
    expect(attentionPlan(64, 32, 8, 128, 1000, group).splits).toBe(1);
    // Long contexts: at most 64 splits.
    expect(attentionPlan(1, 8, 1, 64, 100000, group).splits).toBe(64);
  });

  it("cuts large groups into query blocks that fit workgroup memory", () => {
    expect(attentionPlan(1, 64, 8, 64, 10, group)).toMatchObject({ qBlock: 8, qBlocks: 1 });
    expect(attentionPlan(1, 16, 1, 128, 10, group)).toMatchObject({ qBlock: 8, qBlocks: 2 });
    expect(attentionPlan(1, 8, 1, 256, 10, group)).toMatchObject({ qBlock: 4, qBlocks: 2 });
    expect(attentionPlan(1, 71, 1, 64, 10, group)).toMatchObject({ qBlock: 8, qBlocks: 9 });
  });

  it("by default serves a whole GQA group per workgroup below 128-wide heads, one query head from 128", () => {
    expect(attentionPlan(1, 32, 8, 64, 256)).toEqual(
      attentionPlan(1, 32, 8, 64, 256, { ...group, minSplitKeys: 64 }),
    );
    expect(attentionPlan(1, 32, 8, 128, 1000)).toEqual({ qBlock: 1, qBlocks: 4, chunk: 128, splits: 8 });
  });

  it("by default splits no fewer than 128 keys (64 below 128-wide heads): short contexts skip the combine pass", () => {
    expect(attentionPlan(1, 32, 8, 128, 128)).toEqual({ qBlock: 1, qBlocks: 4, chunk: 128, splits: 1 });
    expect(attentionPlan(1, 32, 8, 128, 129).splits).toBe(2);
    expect(attentionPlan(1, 32, 8, 64, 64).splits).toBe(1);
    expect(attentionPlan(1, 32, 8, 64, 128).splits).toBe(2);
    // Without the floor, one 32-key block per split.
    expect(attentionPlan(1, 32, 8, 128, 128, { targetWorkgroups: 256, maxQueries: 1 }).splits).toBe(4);
  });
});

describe("attention masking options are checked alike on every backend", () => {
  const backends = gpu ? [cpu, gpu] : [cpu];
  it.each([
    [{ window: 0 }, /window = 0/],
    [{ window: 2.5 }, /window = 2.5/],
    [{ softcap: 0 }, /softcap = 0/],
    [{ softcap: -1 }, /softcap = -1/],
  ] as [Partial<AttentionOptions>, RegExp][])("%j is refused", (bad, message) => {
    for (const b of backends) {
      const q = b.fromFloat32(random(8, 1), [1, 8]);
      const kv = b.fromFloat32(random(8, 2), [1, 8]);
      const options: AttentionOptions = {
        numHeads: 1,
        numKvHeads: 1,
        headDim: 8,
        scale: 1,
        queryPositions: new Int32Array([0]),
        kvLength: 1,
        ...bad,
      };
      expect(() => b.attention(q, kv, kv, options)).toThrow(message);
    }
  });
});
