import { describe, expect, it } from "vitest";
import { CpuBackend, type CpuTensor } from "../../src/engine/backends/cpu/cpu-backend.js";
import { FastKernels, tiledLayout } from "../../src/engine/backends/cpu/kernels/fast-kernels.js";
import { tiledIndex, untiledCopy } from "../../src/engine/backends/cpu/kernels/tiled.js";
import type { Tensor } from "../../src/engine/tensor.js";
import { type MatDType, randomActivations, randomWeight, relativeError, rng } from "./helpers.js";

// The kernels keep placed 2-D weights (n ≥ 4, k ≥ 8) in a tiled layout. Every op that can be handed a
// weight must still see its values: linear/linearMany/linearGated/embedding/read use the tiles, every other
// reader goes through CpuTensor.data, which puts the weight back in row-major order.

const reference = new CpuBackend({ kernels: "reference" });
const fast = new CpuBackend({ kernels: "wasm", threads: 2 });

/** [n, k]: tails in n (not a multiple of 4) and k (not a multiple of 8), and exact tiles. */
const SHAPES: [number, number][] = [
  [4, 8],
  [5, 9],
  [7, 13],
  [8, 16],
  [12, 40],
  [33, 70],
  [64, 257],
  [130, 96],
];

function stored(t: Tensor): Uint16Array | Float32Array {
  return (t as CpuTensor).stored as Uint16Array | Float32Array;
}

function rowMajorBytes(dtype: MatDType, n: number, k: number): Uint8Array {
  // Element (r, c) holds r * k + c, exactly representable in every dtype here (n * k < 2048 for f16).
  if (dtype === "f32") return new Uint8Array(Float32Array.from({ length: n * k }, (_, i) => i).buffer);
  const h = new Uint16Array(n * k);
  for (let i = 0; i < h.length; i++) h[i] = i; // raw bits: only positions matter here
  return new Uint8Array(h.buffer);
}

describe("tiled layout", () => {
  it.each(["bf16", "f16", "f32"] as const)(
    "tiles %s weights where tiledIndex says (WASM and JS agree)",
    (dtype) => {
      for (const [n, k] of SHAPES) {
        const t = fast.upload(rowMajorBytes(dtype, n, k), dtype, [n, k]);
        const data = stored(t);
        const layout = tiledLayout(data);
        expect(layout, `[${n}, ${k}]`).toEqual({ n, k });
        for (let r = 0; r < n; r++)
          for (let c = 0; c < k; c++) expect(data[tiledIndex(layout!, r, c)], `(${r}, ${c})`).toBe(r * k + c);
        const plain = untiledCopy(data, layout!);
        for (let i = 0; i < plain.length; i++) expect(plain[i]).toBe(i);
        t.dispose();
      }
    },
  );

  it("leaves other shapes row-major (1-D, 3-D, fewer than 4 rows or 8 columns) and the reference path alone", () => {
    const cases: number[][] = [[64], [2, 4, 16], [3, 64], [16, 7]];
    for (const shape of cases) {
      const count = shape.reduce((a, b) => a * b, 1);
      const t = fast.upload(randomWeight("bf16", count, rng(1)), "bf16", shape);
      expect(tiledLayout(stored(t)), `[${shape}]`).toBeUndefined();
    }
    const ref = reference.upload(randomWeight("bf16", 64, rng(2)), "bf16", [8, 8]);
    expect(tiledLayout(stored(ref))).toBeUndefined();
    const kernels = FastKernels.create({ kernels: "wasm", threads: 1 })!;
    // Without a shape (the bench's raw placement) the data stays row-major.
    expect(tiledLayout(kernels.place(randomWeight("bf16", 64, rng(3)), "bf16")!)).toBeUndefined();
  });

  it.each(["bf16", "f16", "f32"] as const)(
    "read() and embedding of a tiled %s weight match the reference and keep the tiles",
    async (dtype) => {
      for (const [n, k] of SHAPES) {
        const bytes = randomWeight(dtype, n * k, rng(n * 100 + k));
        const a = reference.upload(bytes, dtype, [n, k]);
        const b = fast.upload(bytes, dtype, [n, k]);
        expect(Array.from(await b.read())).toEqual(Array.from(await a.read()));
        const ids = Int32Array.from([0, n - 1, Math.floor(n / 2), 3, n - 1]);
        expect(Array.from(await fast.embedding(b, ids, 0.5).read())).toEqual(
          Array.from(await reference.embedding(a, ids, 0.5).read()),
        );
        expect(tiledLayout(stored(b))).toBeDefined();
        b.dispose();
      }
    },
  );

  it("a tied embedding serves as embedding and lm_head from the same tiles", async () => {
    const [vocab, dim] = [103, 72];
    const next = rng(17);
    const bytes = randomWeight("bf16", vocab * dim, next);
    const a = reference.upload(bytes, "bf16", [vocab, dim]);
    const b = fast.upload(bytes, "bf16", [vocab, dim]);
    const ids = Int32Array.from([5, 101, 0, 102]);
    const hRef = reference.embedding(a, ids);
    const hFast = fast.embedding(b, ids);
    expect(Array.from(await hFast.read())).toEqual(Array.from(await hRef.read()));
    const want = await reference.linear(hRef, a).read();
    const got = await fast.linear(hFast, b).read();
    expect(relativeError(got, want)).toBeLessThan(1e-5);
    expect(tiledLayout(stored(b))).toBeDefined();
  });

  it("CpuTensor.data puts a tiled weight back in row-major order for good, and linear still agrees", async () => {
    const [n, k] = [21, 43];
    const next = rng(23);
    const bytes = randomWeight("bf16", n * k, next);
    const t = fast.upload(bytes, "bf16", [n, k]) as CpuTensor;
    expect(tiledLayout(t.stored)).toBeDefined();
    const data = t.data as Uint16Array;
    expect(tiledLayout(t.stored)).toBeUndefined();
    expect(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).toEqual(bytes);
    const x = randomActivations(3 * k, next);
    const want = await reference
      .linear(reference.fromFloat32(x, [3, k]), reference.upload(bytes, "bf16", [n, k]))
      .read();
    const got = await fast.linear(fast.fromFloat32(x, [3, k]), t).read();
    expect(relativeError(got, want)).toBeLessThan(1e-5);
  });

  it("a weight filled in place through .data (streamed layers) computes with the bytes written", async () => {
    for (const dtype of ["bf16", "f32"] as const) {
      const [n, k] = [16, 24];
      const next = rng(29);
      const bytes = randomWeight(dtype, n * k, next);
      const pooled = fast.upload(new Uint8Array(bytes.byteLength), dtype, [n, k]) as CpuTensor;
      const view = pooled.data;
      new Uint8Array(view.buffer, view.byteOffset, view.byteLength).set(bytes);
      const x = randomActivations(k, next);
      const want = await reference
        .linear(reference.fromFloat32(x, [1, k]), reference.upload(bytes, dtype, [n, k]))
        .read();
      const got = await fast.linear(fast.fromFloat32(x, [1, k]), pooled).read();
      expect(relativeError(got, want)).toBeLessThan(1e-5);
    }
  });

  it("ops written for row-major data see a tiled weight's values (subTensor, sliceRows, matmul, add, writeRows)", async () => {
    const [n, k] = [12, 20];
    const next = rng(31);
    const bytes = randomWeight("f32", n * k, next);
    const up = () => [reference.upload(bytes, "f32", [n, k]), fast.upload(bytes, "f32", [n, k])] as const;
    const same = async (a: Tensor, b: Tensor) =>
      expect(Array.from(await b.read())).toEqual(Array.from(await a.read()));

    let [a, b] = up();
    await same(reference.subTensor(a, 5), fast.subTensor(b, 5));
    [a, b] = up();
    await same(reference.sliceRows(a, 3, 6), fast.sliceRows(b, 3, 6));
    [a, b] = up();
    await same(reference.add(a, a), fast.add(b, b));
    // matmul reads w as [in, out]: a [n, k] weight is in = n, out = k.
    [a, b] = up();
    const x = randomActivations(2 * n, next);
    const mm = (be: CpuBackend, w: Tensor) => be.matmul(be.fromFloat32(x, [2, n]), w).read();
    expect(relativeError(await mm(fast, b), await mm(reference, a))).toBeLessThan(1e-6);
    // An uploaded f32 tensor written in place by writeRows, then used by linear.
    [a, b] = up();
    const rowsIn = randomActivations(2 * k, next);
    reference.writeRows(a, 4, reference.fromFloat32(rowsIn, [2, k]));
    fast.writeRows(b, 4, fast.fromFloat32(rowsIn, [2, k]));
    await same(a, b);
    const xs = randomActivations(k, next);
    const lin = (be: CpuBackend, w: Tensor) => be.linear(be.fromFloat32(xs, [1, k]), w).read();
    expect(relativeError(await lin(fast, b), await lin(reference, a))).toBeLessThan(1e-5);
  });
});
