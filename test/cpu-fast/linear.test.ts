import { describe, expect, it } from "vitest";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import { type MatDType, randomActivations, randomWeight, relativeError, rng } from "./helpers.js";

const reference = new CpuBackend({ kernels: "reference" });
const fast = {
  1: new CpuBackend({ kernels: "wasm", threads: 1 }),
  2: new CpuBackend({ kernels: "wasm", threads: 2 }),
  3: new CpuBackend({ kernels: "wasm", threads: 3 }),
};

/** [k, n, rows]: tails in k (not a multiple of 8) and n (not a multiple of 4), GEMV and GEMM, small and threaded. */
const FIXED_SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 2],
  [8, 4, 1],
  [13, 7, 3],
  [64, 160, 5],
  [160, 64, 1],
  [257, 33, 1],
  [512, 300, 1],
  [2048, 259, 1],
  [96, 70, 131],
  [1000, 131, 3],
];

function randomShapes(count: number, next: () => number): [number, number, number][] {
  const pick = (max: number) => 1 + Math.floor(next() ** 2 * max);
  return Array.from({ length: count }, () => [pick(1500), pick(600), next() < 0.5 ? 1 : pick(40)]);
}

async function compare(
  dtype: MatDType,
  threads: 1 | 2 | 3,
  k: number,
  n: number,
  rows: number,
  seed: number,
) {
  const next = rng(seed);
  const bytes = randomWeight(dtype, n * k, next);
  const x = randomActivations(rows * k, next);
  const wRef = reference.upload(bytes, dtype, [n, k]);
  const wFast = fast[threads].upload(bytes, dtype, [n, k]);
  const want = await reference.linear(reference.fromFloat32(x, [rows, k]), wRef).read();
  const got = await fast[threads].linear(fast[threads].fromFloat32(x, [rows, k]), wFast).read();
  wFast.dispose();
  return relativeError(got, want);
}

describe.each(["bf16", "f16", "f32"] as const)(
  "WASM linear with %s weights matches the TypeScript reference",
  (dtype) => {
    it.each([1, 2, 3] as const)("fixed shapes, %i thread(s), within 1e-5 relative", async (threads) => {
      for (const [k, n, rows] of FIXED_SHAPES) {
        const err = await compare(dtype, threads, k, n, rows, k * 7919 + n * 31 + rows);
        expect(err, `k=${k} n=${n} rows=${rows}`).toBeLessThan(1e-5);
      }
    });

    it.each([1, 2] as const)("randomized shapes, %i thread(s), within 1e-5 relative", async (threads) => {
      const next = rng(dtype.length * 1000 + threads);
      let worst = 0;
      for (const [k, n, rows] of randomShapes(25, next)) {
        const err = await compare(dtype, threads, k, n, rows, Math.floor(next() * 1e9));
        worst = Math.max(worst, err);
        expect(err, `k=${k} n=${n} rows=${rows}`).toBeLessThan(1e-5);
      }
      expect(worst).toBeGreaterThanOrEqual(0);
    });
  },
);

describe("WASM linear edge cases", () => {
  it("stays exact over many back-to-back threaded jobs of changing shapes (chunk claiming)", async () => {
    const next = rng(21);
    const shapes: [number, number][] = [
      [256, 1024],
      [2048, 96],
      [640, 700],
    ];
    const cases = shapes.map(([k, n]) => {
      const bytes = randomWeight("bf16", n * k, next);
      return {
        k,
        n,
        fast: fast[3].upload(bytes, "bf16", [n, k]),
        ref: reference.upload(bytes, "bf16", [n, k]),
      };
    });
    for (let i = 0; i < 300; i++) {
      const c = cases[i % cases.length];
      const x = randomActivations(c.k, next);
      const got = await fast[3].linear(fast[3].fromFloat32(x, [1, c.k]), c.fast).read();
      if (i % 10 === 0) {
        const want = await reference.linear(reference.fromFloat32(x, [1, c.k]), c.ref).read();
        expect(relativeError(got, want)).toBeLessThan(1e-5);
      }
    }
  });

  it("widens every finite f16 exactly (normals, subnormals, signed zeros), tiled and not", async () => {
    const patterns: number[] = [];
    for (let h = 0; h < 65536; h++) if ((h & 0x7c00) !== 0x7c00) patterns.push(h);
    for (const k of [8, 9]) {
      // Row i holds pattern i in column 0 (k = 9 puts it in a tiled block and leaves a tail).
      const w = new Uint16Array(patterns.length * k);
      patterns.forEach((h, i) => {
        w[i * k] = h;
      });
      const x = new Float32Array(k);
      x[0] = 1;
      const bytes = new Uint8Array(w.buffer);
      const got = await fast[1]
        .linear(fast[1].fromFloat32(x, [1, k]), fast[1].upload(bytes, "f16", [patterns.length, k]))
        .read();
      const want = await reference
        .linear(reference.fromFloat32(x, [1, k]), reference.upload(bytes, "f16", [patterns.length, k]))
        .read();
      let mismatches = 0;
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) mismatches++;
      expect(mismatches, `k=${k}`).toBe(0);
    }
  });

  it("adds the bias", async () => {
    const next = rng(5);
    const [k, n, rows] = [48, 36, 3];
    const bytes = randomWeight("bf16", n * k, next);
    const bias = randomActivations(n, next);
    const x = randomActivations(rows * k, next);
    const run = (b: CpuBackend) =>
      b.linear(b.fromFloat32(x, [rows, k]), b.upload(bytes, "bf16", [n, k]), b.fromFloat32(bias, [n])).read();
    expect(relativeError(await run(fast[2]), await run(reference))).toBeLessThan(1e-5);
  });

  it("keeps f16 weights with infinities or NaNs on the reference path (same Inf/NaN out)", async () => {
    const [k, n] = [16, 8];
    const h = new Uint16Array(n * k).fill(0x3c00); // 1.0
    h[3] = 0x7c00; // +Inf in row 0
    h[k + 2] = 0x7e00; // NaN in row 1
    const bytes = new Uint8Array(h.buffer);
    const x = new Float32Array(k).fill(0.5);
    const run = (b: CpuBackend) => b.linear(b.fromFloat32(x, [1, k]), b.upload(bytes, "f16", [n, k])).read();
    const want = await run(reference);
    const got = await run(fast[2]);
    expect(want[0]).toBe(Number.POSITIVE_INFINITY);
    expect(Number.isNaN(want[1])).toBe(true);
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it("forgets a disposed f16 weight's infinities (its bytes may next hold a finite, tiled weight)", async () => {
    const { tiledLayout } = await import("../../src/engine/backends/cpu/kernels/fast-kernels.js");
    const backend = new CpuBackend({ kernels: "wasm", threads: 1 });
    const [k, n] = [16, 8];
    const h = new Uint16Array(n * k).fill(0x3c00);
    h[3] = 0x7c00;
    backend.upload(new Uint8Array(h.buffer), "f16", [n, k]).dispose();
    const next = rng(12);
    const bytes = randomWeight("f16", n * k, next);
    const w = backend.upload(bytes, "f16", [n, k]) as InstanceType<
      typeof import("../../src/engine/backends/cpu/cpu-backend.js").CpuTensor
    >;
    const x = randomActivations(k, next);
    const got = await backend.linear(backend.fromFloat32(x, [1, k]), w).read();
    const want = await reference
      .linear(reference.fromFloat32(x, [1, k]), reference.upload(bytes, "f16", [n, k]))
      .read();
    expect(relativeError(got, want)).toBeLessThan(1e-5);
    expect(tiledLayout(w.stored)).toBeDefined();
  });

  it("reads placed weights like the reference (embedding, read) and frees them on dispose", async () => {
    const next = rng(9);
    const bytes = randomWeight("bf16", 32 * 16, next);
    const a = reference.upload(bytes, "bf16", [32, 16]);
    const b = fast[2].upload(bytes, "bf16", [32, 16]);
    expect(Array.from(await b.read())).toEqual(Array.from(await a.read()));
    const ids = Int32Array.from([3, 0, 31]);
    expect(Array.from(await fast[2].embedding(b, ids).read())).toEqual(
      Array.from(await reference.embedding(a, ids).read()),
    );
    b.dispose();
    b.dispose();
  });

  it("views into a placed weight (stacked experts) also run on the kernels", async () => {
    const next = rng(11);
    const [experts, n, k] = [3, 12, 40];
    const bytes = randomWeight("bf16", experts * n * k, next);
    const stacked = fast[2].upload(bytes, "bf16", [experts, n, k]);
    const x = randomActivations(2 * k, next);
    const { CpuTensor } = await import("../../src/engine/backends/cpu/cpu-backend.js");
    const data = (stacked as InstanceType<typeof CpuTensor>).data as Uint16Array;
    for (let e = 0; e < experts; e++) {
      const view = new CpuTensor([n, k], "bf16", data.subarray(e * n * k, (e + 1) * n * k));
      const own = reference.upload(bytes.slice(e * n * k * 2, (e + 1) * n * k * 2), "bf16", [n, k]);
      const got = await fast[2].linear(fast[2].fromFloat32(x, [2, k]), view).read();
      const want = await reference.linear(reference.fromFloat32(x, [2, k]), own).read();
      expect(relativeError(got, want)).toBeLessThan(1e-5);
    }
  });
});
