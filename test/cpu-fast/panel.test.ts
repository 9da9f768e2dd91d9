import { describe, expect, it } from "vitest";
import type { GatedActivation } from "../../src/engine/backend.js";
import { CpuBackend, CpuTensor } from "../../src/engine/backends/cpu/cpu-backend.js";
import { PANEL_MIN_ROWS } from "../../src/engine/backends/cpu/kernels/fast-kernels.js";
import { type MatDType, randomActivations, randomWeight, relativeError, rng } from "./helpers.js";

// The panel GEMM (kernels.c: many activation rows) against the TypeScript reference. Its blocking: tiles of
// 4 rows, panels of 8 outputs, k blocks of 512, row blocks of 128, sub-chunks of 64 outputs; the shapes
// below cross every one of those edges (tails in rows, k, n; several k blocks, row blocks and sub-chunks).

const reference = new CpuBackend({ kernels: "reference" });
const fast = {
  1: new CpuBackend({ kernels: "wasm", threads: 1 }),
  2: new CpuBackend({ kernels: "wasm", threads: 2 }),
  3: new CpuBackend({ kernels: "wasm", threads: 3 }),
};
const DTYPES: MatDType[] = ["bf16", "f16", "f32"];

/** [k, n, rows] */
const SHAPES: [number, number, number][] = [
  [8, 4, Math.max(...Object.values(PANEL_MIN_ROWS))],
  [13, 7, 12],
  [64, 12, 13],
  [520, 67, 16],
  [1030, 130, 33],
  [300, 70, 130],
  [1100, 21, 257],
  [9, 200, 131],
];

describe.each(DTYPES)("panel GEMM with %s weights matches the reference", (dtype) => {
  it.each([1, 2, 3] as const)("linear, %i thread(s), within 1e-5 relative", async (threads) => {
    const b = fast[threads];
    for (const [k, n, rows] of SHAPES) {
      const next = rng(k * 131 + n * 7 + rows + threads);
      const bytes = randomWeight(dtype, n * k, next);
      const bias = next() < 0.5 ? randomActivations(n, next) : undefined;
      const x = randomActivations(rows * k, next);
      const run = (be: CpuBackend) =>
        be
          .linear(
            be.fromFloat32(x, [rows, k]),
            be.upload(bytes, dtype, [n, k]),
            bias && be.fromFloat32(bias, [n]),
          )
          .read();
      const err = relativeError(await run(b), await run(reference));
      expect(err, `k=${k} n=${n} rows=${rows} bias=${!!bias}`).toBeLessThan(1e-5);
    }
  });
});

describe("panel GEMM: fused jobs and untiled weights", () => {
  it.each([1, 3] as const)("linearMany over parts of uneven widths (%i thread(s))", async (threads) => {
    const b = fast[threads];
    const next = rng(40 + threads);
    const [k, rows] = [530, 21];
    const parts = [
      { dtype: "bf16" as const, n: 13 },
      { dtype: "f32" as const, n: 8 },
      { dtype: "f16" as const, n: 70 },
      { dtype: "bf16" as const, n: 3 },
    ].map((p) => ({ ...p, bytes: randomWeight(p.dtype, p.n * k, next), bias: randomActivations(p.n, next) }));
    const x = randomActivations(rows * k, next);
    const outs = b.linearMany(
      b.fromFloat32(x, [rows, k]),
      parts.map((p) => ({
        weight: b.upload(p.bytes, p.dtype, [p.n, k]),
        bias: b.fromFloat32(p.bias, [p.n]),
      })),
    );
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      const want = await reference
        .linear(
          reference.fromFloat32(x, [rows, k]),
          reference.upload(p.bytes, p.dtype, [p.n, k]),
          reference.fromFloat32(p.bias, [p.n]),
        )
        .read();
      expect(relativeError(await outs[i].read(), want), `part ${i}`).toBeLessThan(1e-5);
    }
  });

  it.each([
    ["silu", 1],
    ["gelu_tanh", 2],
    ["silu", 3],
  ] as const)(
    "linearGated (%s, %i thread(s)) over several k blocks, row blocks and sub-chunks",
    async (act, threads) => {
      const b = fast[threads];
      const next = rng(50 + threads);
      for (const [k, n, rows, dtype] of [
        [1040, 150, 140, "bf16"],
        [77, 13, 9, "f16"],
        [600, 70, 36, "f32"],
      ] as const) {
        const gate = randomWeight(dtype, n * k, next);
        const up = randomWeight(dtype, n * k, next);
        const gb = randomActivations(n, next);
        const ub = randomActivations(n, next);
        const x = new Float32Array(rows * k);
        for (let i = 0; i < x.length; i++) x[i] = (next() * 2 - 1) * (next() < 0.1 ? 0.3 : 0.05);
        const run = (be: CpuBackend) =>
          be
            .linearGated(
              be.fromFloat32(x, [rows, k]),
              be.upload(gate, dtype, [n, k]),
              be.upload(up, dtype, [n, k]),
              act as GatedActivation,
              be.fromFloat32(gb, [n]),
              be.fromFloat32(ub, [n]),
            )
            .read();
        const want = await run(reference);
        expect(relativeError(await run(b), want), `${dtype} k=${k} n=${n} rows=${rows}`).toBeLessThan(1e-5);
      }
    },
  );

  it("reads row-major weights (views into a stacked tensor)", async () => {
    const next = rng(60);
    const [experts, n, k, rows] = [2, 22, 100, 19];
    const bytes = randomWeight("bf16", experts * n * k, next);
    const stacked = fast[2].upload(bytes, "bf16", [experts, n, k]) as CpuTensor;
    const data = stacked.data as Uint16Array;
    const x = randomActivations(rows * k, next);
    for (let e = 0; e < experts; e++) {
      const view = new CpuTensor([n, k], "bf16", data.subarray(e * n * k, (e + 1) * n * k));
      const own = reference.upload(bytes.slice(e * n * k * 2, (e + 1) * n * k * 2), "bf16", [n, k]);
      const got = await fast[2].linear(fast[2].fromFloat32(x, [rows, k]), view).read();
      const want = await reference.linear(reference.fromFloat32(x, [rows, k]), own).read();
      expect(relativeError(got, want)).toBeLessThan(1e-5);
    }
  });
});
