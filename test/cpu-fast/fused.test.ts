import { describe, expect, it } from "vitest";
import type { GatedActivation } from "../../src/engine/backend.js";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import type { Tensor } from "../../src/engine/tensor.js";
import { type MatDType, randomActivations, randomWeight, relativeError, rng } from "./helpers.js";

// linearMany and linearGated run as one kernel job each; they must match the reference's composition
// (linear per part; linear, linear, swiglu/gegluTanh) within 1e-5 relative.

const reference = new CpuBackend({ kernels: "reference" });
const fast = {
  1: new CpuBackend({ kernels: "wasm", threads: 1 }),
  2: new CpuBackend({ kernels: "wasm", threads: 2 }),
  3: new CpuBackend({ kernels: "wasm", threads: 3 }),
};
const DTYPES: MatDType[] = ["bf16", "f16", "f32"];

interface Weight {
  bytes: Uint8Array;
  dtype: MatDType;
  n: number;
  bias?: Float32Array;
}

function weight(dtype: MatDType, n: number, k: number, next: () => number, withBias: boolean): Weight {
  return {
    bytes: randomWeight(dtype, n * k, next),
    dtype,
    n,
    bias: withBias ? randomActivations(n, next) : undefined,
  };
}

function upload(b: CpuBackend, w: Weight, k: number): { weight: Tensor; bias?: Tensor } {
  return { weight: b.upload(w.bytes, w.dtype, [w.n, k]), bias: w.bias && b.fromFloat32(w.bias, [w.n]) };
}

/** Activations of moderate size so that silu/gelu see both signs and their saturated ends. */
function activations(count: number, next: () => number): Float32Array {
  const a = new Float32Array(count);
  for (let i = 0; i < count; i++) a[i] = (next() * 2 - 1) * (next() < 0.1 ? 3 : 0.5);
  return a;
}

describe.each([1, 2, 3] as const)("fused projections, %i thread(s)", (threads) => {
  const b = fast[threads];

  it("linearMany matches linear per part (q/k/v-like and random shapes, biases, mixed dtypes, rows 1 and >1)", async () => {
    const next = rng(100 + threads);
    const cases: { k: number; rows: number; parts: [MatDType, number, boolean][] }[] = [
      {
        k: 256,
        rows: 1,
        parts: [
          ["bf16", 256],
          ["bf16", 64],
          ["bf16", 64],
        ].map(([d, n]) => [d, n, false]) as [MatDType, number, boolean][],
      },
      {
        k: 96,
        rows: 5,
        parts: [
          ["f16", 96, true],
          ["f16", 32, true],
          ["f16", 32, true],
        ],
      },
      {
        k: 13,
        rows: 1,
        parts: [
          ["f32", 7, false],
          ["bf16", 5, true],
        ],
      },
      {
        k: 1000,
        rows: 3,
        parts: [
          ["bf16", 131, true],
          ["f32", 66, false],
          ["f16", 3, true],
          ["bf16", 260, false],
        ],
      },
    ];
    for (let i = 0; i < 8; i++) {
      const k = 1 + Math.floor(next() ** 2 * 1200);
      const rows = next() < 0.5 ? 1 : 1 + Math.floor(next() * 40);
      const parts = Array.from({ length: 1 + Math.floor(next() * 4) }, () => [
        DTYPES[Math.floor(next() * 3)],
        1 + Math.floor(next() ** 2 * 400),
        next() < 0.5,
      ]) as [MatDType, number, boolean][];
      cases.push({ k, rows, parts });
    }
    for (const c of cases) {
      const ws = c.parts.map(([d, n, bias]) => weight(d, n, c.k, next, bias));
      const x = randomActivations(c.rows * c.k, next);
      const want = await Promise.all(
        ws.map((w) => {
          const u = upload(reference, w, c.k);
          return reference.linear(reference.fromFloat32(x, [c.rows, c.k]), u.weight, u.bias).read();
        }),
      );
      const outs = b.linearMany(
        b.fromFloat32(x, [c.rows, c.k]),
        ws.map((w) => upload(b, w, c.k)),
      );
      expect(outs).toHaveLength(ws.length);
      for (let i = 0; i < ws.length; i++) {
        expect(outs[i].shape).toEqual([c.rows, ws[i].n]);
        const err = relativeError(await outs[i].read(), want[i]);
        expect(err, `k=${c.k} rows=${c.rows} part ${i} ${JSON.stringify(c.parts[i])}`).toBeLessThan(1e-5);
      }
    }
  });

  it.each(["silu", "gelu_tanh"] as const)(
    "linearGated (%s) matches linear, linear, then the activation",
    async (act) => {
      const next = rng(200 + threads + act.length);
      const shapes: [number, number, number][] = [
        [64, 256, 1],
        [256, 64, 1],
        [13, 7, 1],
        [96, 70, 9],
        [1000, 131, 2],
        [40, 9, 70],
      ];
      for (let i = 0; i < 6; i++)
        shapes.push([
          1 + Math.floor(next() ** 2 * 1500),
          1 + Math.floor(next() ** 2 * 600),
          next() < 0.5 ? 1 : 1 + Math.floor(next() * 30),
        ]);
      for (const [k, n, rows] of shapes) {
        const dtype = DTYPES[Math.floor(next() * 3)];
        const withBias = next() < 0.5;
        const gate = weight(dtype, n, k, next, withBias);
        const up = weight(dtype, n, k, next, withBias);
        const x = activations(rows * k, next);
        const run = (be: CpuBackend, composed: boolean) => {
          const g = upload(be, gate, k);
          const u = upload(be, up, k);
          const xt = be.fromFloat32(x, [rows, k]);
          if (!composed)
            return be.linearGated(xt, g.weight, u.weight, act as GatedActivation, g.bias, u.bias);
          const gl = be.linear(xt, g.weight, g.bias);
          const ul = be.linear(xt, u.weight, u.bias);
          return act === "silu" ? be.swiglu(gl, ul) : be.gegluTanh(gl, ul);
        };
        const want = await run(reference, true).read();
        expect(Array.from(await run(reference, false).read())).toEqual(Array.from(want));
        const got = run(b, false);
        expect(got.shape).toEqual([rows, n]);
        const err = relativeError(await got.read(), want);
        expect(err, `${dtype} k=${k} n=${n} rows=${rows} bias=${withBias}`).toBeLessThan(1e-5);
      }
    },
  );
});

describe("fused projections: fallbacks", () => {
  it("a part the kernels cannot take (f16 with infinities) sends linearMany and linearGated down the composed path", async () => {
    const [k, n] = [16, 8];
    const h = new Uint16Array(n * k).fill(0x3c00);
    h[5] = 0x7c00;
    const bad = new Uint8Array(h.buffer);
    const next = rng(7);
    const good = randomWeight("f16", n * k, next);
    const x = new Float32Array(k).fill(0.25);
    const many = async (be: CpuBackend) =>
      Promise.all(
        be
          .linearMany(be.fromFloat32(x, [1, k]), [
            { weight: be.upload(good, "f16", [n, k]) },
            { weight: be.upload(bad, "f16", [n, k]) },
          ])
          .map((t) => t.read()),
      );
    const [wantGood, wantBad] = await many(reference);
    const [gotGood, gotBad] = await many(fast[2]);
    expect(relativeError(gotGood, wantGood)).toBeLessThan(1e-5);
    expect(Array.from(gotBad)).toEqual(Array.from(wantBad));
    const gated = (be: CpuBackend) =>
      be
        .linearGated(
          be.fromFloat32(x, [1, k]),
          be.upload(good, "f16", [n, k]),
          be.upload(bad, "f16", [n, k]),
          "silu",
        )
        .read();
    expect(Array.from(await gated(fast[2]))).toEqual(Array.from(await gated(reference)));
  });

  it("activations at the extremes (silu and gelu of ±large, NaN-free) match the reference", async () => {
    const k = 8;
    const n = 8;
    // Identity-like gate so each output is one input value: g = x[o] * 1.
    const eye = new Float32Array(n * k);
    for (let i = 0; i < n; i++) eye[i * k + i] = 1;
    const bytes = new Uint8Array(eye.buffer);
    const ones = new Uint8Array(new Float32Array(n * k).fill(1 / k).buffer);
    const x = Float32Array.from([-120, -30, -5, -1e-4, 0, 1e-4, 7, 90]);
    for (const act of ["silu", "gelu_tanh"] as const) {
      const run = (be: CpuBackend) =>
        be
          .linearGated(
            be.fromFloat32(x, [1, k]),
            be.upload(bytes, "f32", [n, k]),
            be.upload(ones, "f32", [n, k]),
            act,
          )
          .read();
      const want = await run(reference);
      const got = await run(fast[1]);
      expect(got.every(Number.isFinite)).toBe(true);
      expect(relativeError(got, want), act).toBeLessThan(1e-6);
    }
  });
});
