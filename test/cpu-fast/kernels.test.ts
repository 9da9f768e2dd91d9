import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Arena, arenaOf } from "../../src/engine/backends/cpu/kernels/arena.js";
import {
  FastKernels,
  kernelsModule,
  tiledLayout,
} from "../../src/engine/backends/cpu/kernels/fast-kernels.js";
import { claimChunk } from "../../src/engine/backends/cpu/kernels/worker-source.js";
import { KERNELS_SOURCE_SHA256 } from "../../src/engine/backends/cpu/wasm/kernels-wasm.js";
import { randomActivations, randomWeight, rng } from "./helpers.js";

const WASM_DIR = join(import.meta.dirname, "..", "..", "src", "engine", "backends", "cpu", "wasm");

describe("kernels module", () => {
  it("was built from the kernels.c in the tree (run wasm/build.mjs after editing it)", () => {
    const sha = createHash("sha256")
      .update(readFileSync(join(WASM_DIR, "kernels.c")))
      .digest("hex");
    expect(KERNELS_SOURCE_SHA256).toBe(sha);
  });

  it("compiles on this runtime", () => {
    expect(kernelsModule()).toBeDefined();
  });
});

describe("FastKernels", () => {
  it("runs placed weights on the kernels (no silent fallback) for every dtype", () => {
    const fast = FastKernels.create({ kernels: "wasm", threads: 2 })!;
    const next = rng(1);
    for (const dtype of ["bf16", "f16", "f32"] as const) {
      const [k, n, rows] = [256, 520, 2];
      const w = fast.place(randomWeight(dtype, n * k, next), dtype)!;
      expect(w).toBeDefined();
      expect(arenaOf(w.buffer)).toBeDefined();
      const out = fast.linear(randomActivations(rows * k, next), rows, k, w, dtype, n);
      expect(out).toBeInstanceOf(Float32Array);
      expect(out!.length).toBe(rows * n);
    }
  });

  it("runs linearMany and linearGated as kernel jobs on tiled weights (no silent fallback)", () => {
    const fast = FastKernels.create({ kernels: "wasm", threads: 2 })!;
    const next = rng(4);
    for (const dtype of ["bf16", "f16", "f32"] as const) {
      const [k, rows] = [264, 3];
      const parts = [256, 64, 66].map((n) => ({
        w: fast.place(randomWeight(dtype, n * k, next), dtype, [n, k])!,
        dtype,
        n,
        bias: randomActivations(n, next),
      }));
      for (const p of parts) expect(tiledLayout(p.w)).toEqual({ n: p.n, k });
      const x = randomActivations(rows * k, next);
      const outs = fast.linearMany(x, rows, k, parts);
      expect(outs?.map((o) => o.length)).toEqual(parts.map((p) => rows * p.n));
      const gated = fast.linearGated(x, rows, k, parts[0], { ...parts[0], bias: undefined }, "silu");
      expect(gated?.length).toBe(rows * 256);
      // Parts in different arenas are not one job.
      const other = FastKernels.create({ kernels: "wasm", threads: 2 })!;
      const elsewhere = { ...parts[1], w: other.place(randomWeight(dtype, 64 * k, next), dtype, [64, k])! };
      expect(fast.linearMany(x, rows, k, [parts[0], elsewhere])).toBeUndefined();
    }
  });

  it("leaves dtypes it has no kernel for to the caller", () => {
    const fast = FastKernels.create({ kernels: "wasm", threads: 1 })!;
    expect(fast.place(new Uint8Array(16), "u8")).toBeUndefined();
    expect(fast.place(new Uint8Array(16), "i32")).toBeUndefined();
    const plain = new Uint16Array(16);
    expect(fast.linear(new Float32Array(4), 1, 4, plain, "bf16", 4)).toBeUndefined();
  });

  it("measures a streaming-read bandwidth", () => {
    const fast = FastKernels.create({ kernels: "wasm", threads: 2 })!;
    const bw = fast.readBandwidth(64 << 20, 2, 2);
    expect(bw).toBeGreaterThan(1e8);
  });

  it("is not created for kernels: reference", () => {
    expect(FastKernels.create({ kernels: "reference" })).toBeUndefined();
  });
});

describe("Arena", () => {
  it("allocates 64-byte aligned blocks, reuses and coalesces freed ones", () => {
    const arena = new Arena(8 << 20);
    const a = arena.alloc(100)!;
    const b = arena.alloc(1000)!;
    const c = arena.alloc(10)!;
    for (const o of [a, b, c]) expect(o % 64).toBe(0);
    expect(b).toBeGreaterThanOrEqual(a + 100);
    expect(c).toBeGreaterThanOrEqual(b + 1000);
    arena.release(a);
    arena.release(b);
    // a and b coalesced: a block of their combined size fits where a was.
    expect(arena.alloc(1100)).toBe(a);
    arena.release(c);
    expect(() => arena.release(c)).toThrow();
  });

  it("grows its memory and refuses what exceeds its capacity", () => {
    const arena = new Arena(4 << 20);
    const before = arena.buffer.byteLength;
    const big = arena.alloc(3 << 20)!;
    expect(big).toBeDefined();
    expect(arena.buffer.byteLength).toBeGreaterThan(before);
    expect(arenaOf(arena.buffer)).toBe(arena);
    expect(arena.alloc(2 << 20)).toBeUndefined();
    arena.release(big);
    expect(arena.allocated).toBe(0);
    expect(arena.alloc(2 << 20)).toBeDefined();
  });

  it("knows its views' buffers after another shared memory grew (V8 then hands out new buffer objects)", () => {
    const a = new Arena(8 << 20);
    a.alloc(1000);
    const before = new Uint8Array(a.buffer, 0, 4);
    const other = new Arena(8 << 20);
    other.alloc(4 << 20);
    const after = new Uint8Array(a.buffer, 0, 4);
    expect(arenaOf(before.buffer)).toBe(a);
    expect(arenaOf(after.buffer)).toBe(a);
    expect(arenaOf(other.buffer)).toBe(other);
  });

  it("keeps a random sequence of allocations disjoint", () => {
    const arena = new Arena(64 << 20);
    const next = rng(3);
    const live = new Map<number, number>();
    let overlaps = 0;
    for (let i = 0; i < 2000; i++) {
      if (live.size > 0 && next() < 0.45) {
        const keys = [...live.keys()];
        const key = keys[Math.floor(next() * keys.length)];
        arena.release(key);
        live.delete(key);
      } else {
        const size = 1 + Math.floor(next() * 50_000);
        const at = arena.alloc(size)!;
        for (const [o, s] of live) if (!(at + size <= o || o + s <= at)) overlaps++;
        live.set(at, size);
      }
    }
    expect(overlaps).toBe(0);
    for (const key of live.keys()) arena.release(key);
    expect(arena.allocated).toBe(0);
  });
});

describe("claimChunk", () => {
  it("hands out each chunk of the current job once and nothing after the job's tag changed", () => {
    const ctl = new Int32Array(new SharedArrayBuffer(64));
    const [NEXT, CHUNKS] = [3, 4];
    Atomics.store(ctl, CHUNKS, 5);
    Atomics.store(ctl, NEXT, 7 << 16);
    const got: number[] = [];
    for (let c = claimChunk(ctl, 7, NEXT, CHUNKS); c >= 0; c = claimChunk(ctl, 7, NEXT, CHUNKS)) got.push(c);
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(claimChunk(ctl, 7, NEXT, CHUNKS)).toBe(-1);
    // ThreadPool.run's order for job 8: retag with nothing to claim, then the new count, then open it.
    Atomics.store(ctl, NEXT, (8 << 16) | 0xffff);
    Atomics.store(ctl, CHUNKS, 9);
    // A thread still on job 7 gets nothing, though job 8's count is above job 7's last index.
    expect(claimChunk(ctl, 7, NEXT, CHUNKS)).toBe(-1);
    expect(claimChunk(ctl, 8, NEXT, CHUNKS)).toBe(-1);
    Atomics.store(ctl, NEXT, 8 << 16);
    expect(claimChunk(ctl, 7, NEXT, CHUNKS)).toBe(-1);
    expect(claimChunk(ctl, 8, NEXT, CHUNKS)).toBe(0);
  });
});
