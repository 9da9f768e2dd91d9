import { describe, expect, it } from "vitest";
import type { RopeSpec } from "../../src/engine/backend.js";
import { attention } from "../../src/engine/backends/cpu/attention.js";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import * as elementwise from "../../src/engine/backends/cpu/elementwise.js";
import { exp, tanh } from "../../src/engine/backends/cpu/fast-math.js";
import type { HostTensor } from "../../src/engine/backends/cpu/host.js";
import * as norms from "../../src/engine/backends/cpu/norms.js";
import * as reference from "../../src/engine/backends/cpu/reference.js";
import { rope } from "../../src/engine/backends/cpu/rotary.js";
import { buildRope } from "../../src/engine/rope.js";
import { relativeError, rng, toBf16 } from "../cpu-fast/helpers.js";

function f32(shape: number[], data: Float32Array): HostTensor {
  return { shape, dtype: "f32", data };
}

function bf16(shape: number[], values: Float32Array): HostTensor {
  return { shape, dtype: "bf16", data: Uint16Array.from(values, (v) => toBf16(v)) };
}

/** Values over several magnitudes, a few large ones, as activations look. */
function values(count: number, next: () => number, spread = 1): Float32Array {
  const a = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const r = next();
    a[i] = (next() * 2 - 1) * spread * (r < 0.02 ? 40 : r < 0.05 ? 1e-4 : 1);
  }
  return a;
}

function data(t: HostTensor): Float32Array {
  return t.data as Float32Array;
}

const int = (next: () => number, lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));

describe("fast exp and tanh", () => {
  it("match Math.exp / Math.tanh to a few f64 ulp over their whole range, edges included", () => {
    const next = rng(1);
    let worstExp = 0;
    let worstTanh = 0;
    for (let i = 0; i < 200_000; i++) {
      const r = next();
      const x = i % 3 === 0 ? -745 + r * (745 + 709) : (r * 2 - 1) * (i % 3 === 1 ? 30 : 0.05);
      const e = Math.exp(x);
      if (e > 1e-300) worstExp = Math.max(worstExp, Math.abs(exp(x) / e - 1));
      worstTanh = Math.max(worstTanh, Math.abs(tanh(x) - Math.tanh(x)));
    }
    expect(worstExp).toBeLessThan(2e-15);
    expect(worstTanh).toBeLessThan(2e-15);
    expect(exp(0)).toBe(1);
    expect(exp(800)).toBe(Number.POSITIVE_INFINITY);
    expect(exp(Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
    expect(exp(-800)).toBe(0);
    expect(exp(Number.NEGATIVE_INFINITY)).toBe(0);
    expect(exp(Number.NaN)).toBeNaN();
    expect(tanh(Number.NaN)).toBeNaN();
    expect(tanh(Number.POSITIVE_INFINITY)).toBe(1);
    expect(tanh(-1e300)).toBe(-1);
    expect(Object.is(tanh(-0), -0)).toBe(true);
    expect(tanh(1e-300)).toBe(1e-300);
  });
});

describe("element-wise ops match the reference", () => {
  it("add, mul and scale exactly; the activations, gate and softcap within 1e-6 relative", () => {
    const next = rng(2);
    for (const n of [1, 7, 64, 1000, 8192]) {
      const a = f32([n], values(n, next, 4));
      const b = f32([n], values(n, next, 4));
      expect(data(elementwise.add(a, b))).toEqual(data(reference.add(a, b)));
      expect(data(elementwise.mul(a, b))).toEqual(data(reference.mul(a, b)));
      expect(data(elementwise.scale(a, 0.37))).toEqual(data(reference.scale(a, 0.37)));
      const ops = [
        [elementwise.swiglu(a, b), reference.swiglu(a, b)],
        [elementwise.gegluTanh(a, b), reference.gegluTanh(a, b)],
        [elementwise.softcap(a, 3), reference.softcap(a, 3)],
        [elementwise.softcap(a, 30), reference.softcap(a, 30)],
      ];
      for (const [got, want] of ops) expect(relativeError(data(got), data(want))).toBeLessThan(1e-6);
    }
  });

  it("swiglu and gegluTanh at large |gate| (overflowing exp), zeros and NaN", () => {
    const g = new Float32Array([-1e30, -1000, -100, -20, -0.5, 0, 0.5, 20, 100, 1000, 1e30, Number.NaN]);
    const u = new Float32Array(g.length).fill(1.5);
    const gate = f32([g.length], g);
    const up = f32([g.length], u);
    for (const [got, want] of [
      [elementwise.swiglu(gate, up), reference.swiglu(gate, up)],
      [elementwise.gegluTanh(gate, up), reference.gegluTanh(gate, up)],
    ]) {
      const a = data(got);
      const b = data(want);
      for (let i = 0; i < g.length; i++) {
        if (Number.isNaN(b[i])) expect(a[i]).toBeNaN();
        else expect(Math.abs(a[i] - b[i])).toBeLessThanOrEqual(1e-6 * Math.abs(b[i]) + 1e-30);
      }
    }
  });

  it("sigmoidGate with a full and a per-row gate", () => {
    const next = rng(3);
    for (const [rows, cols] of [
      [1, 1],
      [3, 17],
      [5, 256],
    ]) {
      const x = f32([rows, cols], values(rows * cols, next, 3));
      for (const gateCols of [cols, 1]) {
        const gate = f32([rows, gateCols], values(rows * gateCols, next, 8));
        const got = data(elementwise.sigmoidGate(x, gate));
        const want = data(reference.sigmoidGate(x, gate));
        expect(relativeError(got, want)).toBeLessThan(1e-6);
      }
    }
    expect(() =>
      elementwise.sigmoidGate(f32([2, 4], new Float32Array(8)), f32([2, 3], new Float32Array(6))),
    ).toThrow();
    expect(() => elementwise.add(f32([4], new Float32Array(4)), f32([5], new Float32Array(5)))).toThrow();
  });
});

describe("norms match the reference bit for bit", () => {
  it("rmsNorm and addRmsNorm: whole rows, per-head groups, f32 and bf16 weights, weight offsets", () => {
    const next = rng(4);
    for (const [rows, width, dim] of [
      [1, 2048, 2048],
      [3, 96, 96],
      [2, 4096, 128],
      [7, 10, 5],
      [1, 1, 1],
    ]) {
      for (const wDtype of ["f32", "bf16"] as const) {
        for (const offset of [0, 1]) {
          const w = wDtype === "f32" ? f32([dim], values(dim, next)) : bf16([dim], values(dim, next));
          const a = f32([rows, width], values(rows * width, next, 3));
          const b = f32([rows, width], values(rows * width, next, 3));
          expect(data(norms.rmsNorm(a, w, 1e-6, offset))).toEqual(
            data(reference.rmsNorm(a, w, 1e-6, offset)),
          );
          const got = norms.addRmsNorm(a, b, w, 1e-5, offset);
          const want = reference.addRmsNorm(a, b, w, 1e-5, offset);
          expect(data(got.sum)).toEqual(data(want.sum));
          expect(data(got.normed)).toEqual(data(want.normed));
        }
      }
    }
  });

  it("rejects inputs that are not whole groups of the weight", () => {
    const w = f32([4], new Float32Array(4).fill(1));
    expect(() => norms.rmsNorm(f32([1, 6], new Float32Array(6)), w, 1e-6)).toThrow();
    expect(() =>
      norms.addRmsNorm(f32([1, 8], new Float32Array(8)), f32([1, 4], new Float32Array(4)), w, 1e-6),
    ).toThrow();
  });
});

describe("rope matches the reference bit for bit", () => {
  const llama3 = buildRope(
    {
      rope_type: "llama3",
      rope_theta: 500000,
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
    64,
    131072,
  );
  const yarn = buildRope({ rope_type: "yarn", rope_theta: 150000, factor: 32 }, 64, 131072);
  const partial = buildRope({ rope_theta: 10000 }, 32, 4096);

  it("over specs (attentionScaling ≠ 1 for yarn), partial rotary, rows, and the cached table", () => {
    const next = rng(5);
    const cases: [RopeSpec, number, number | undefined, number][] = [
      [llama3, 64, undefined, 32],
      [yarn, 64, undefined, 8],
      [partial, 64, 32, 4],
      [llama3, 64, undefined, 8],
    ];
    for (let round = 0; round < 3; round++) {
      for (const [spec, headDim, rotaryDim, heads] of cases) {
        const rows = int(next, 1, 9);
        const positions = Int32Array.from(
          { length: rows },
          (_, i) => (round === 2 ? 7 : int(next, 0, 5000)) + i,
        );
        const x = f32([rows, heads * headDim], values(rows * heads * headDim, next, 2));
        const options = { headDim, rotaryDim };
        // Twice with the same positions (the second hits the table), then the reference.
        const first = data(rope(x, positions, spec, options));
        const again = data(rope(x, positions, spec, options));
        const want = data(reference.rope(x, positions, spec, options));
        expect(first).toEqual(want);
        expect(again).toEqual(want);
      }
    }
  });

  it("recomputes the table when the positions array is reused with new values", () => {
    const positions = new Int32Array([3]);
    const x = f32([1, 64], values(64, rng(6)));
    rope(x, positions, llama3, { headDim: 64 });
    positions[0] = 900;
    expect(data(rope(x, positions, llama3, { headDim: 64 }))).toEqual(
      data(reference.rope(x, positions, llama3, { headDim: 64 })),
    );
  });
});

interface AttentionCase {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rows: number;
  kvLength: number;
  offset: number;
  window?: number;
  softcap?: number;
  sinks?: "f32" | "bf16";
  /** Query positions anywhere (some before the first key), not just the last `rows`. */
  scattered?: boolean;
}

function runAttention(c: AttentionCase, seed: number): number {
  const next = rng(seed);
  const kvWidth = c.numKvHeads * c.headDim;
  const capacity = c.kvLength + int(next, 0, 3); // buffers may hold more rows than kvLength
  const q = f32([c.rows, c.numHeads * c.headDim], values(c.rows * c.numHeads * c.headDim, next, 2));
  const k = f32([capacity, kvWidth], values(capacity * kvWidth, next, 2));
  const v = f32([capacity, kvWidth], values(capacity * kvWidth, next, 2));
  const end = c.offset + c.kvLength;
  const queryPositions = Int32Array.from({ length: c.rows }, (_, i) =>
    c.scattered ? int(next, Math.max(0, c.offset - 5), end + 3) : end - c.rows + i,
  );
  const sinkValues = values(c.numHeads, next, 3);
  const sinks =
    c.sinks === "f32" ? f32([c.numHeads], sinkValues) : c.sinks ? bf16([c.numHeads], sinkValues) : undefined;
  const options = {
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    scale: 1 / Math.sqrt(c.headDim),
    queryPositions,
    kvLength: c.kvLength,
    kvPositionOffset: c.offset === 0 && next() < 0.5 ? undefined : c.offset,
    window: c.window,
    softcap: c.softcap,
  };
  const got = data(attention(q, k, v, options, sinks));
  const want = data(reference.attention(q, k, v, { ...options, sinks }));
  return relativeError(got, want);
}

describe("attention matches the reference", () => {
  it("at decode and prefill shapes of real models", () => {
    const cases: AttentionCase[] = [
      // llama 1B: 32 heads over 8 KV heads, head dim 64; decode at short and long context, a prefill chunk
      { numHeads: 32, numKvHeads: 8, headDim: 64, rows: 1, kvLength: 16, offset: 0 },
      { numHeads: 32, numKvHeads: 8, headDim: 64, rows: 1, kvLength: 2500, offset: 0 },
      { numHeads: 32, numKvHeads: 8, headDim: 64, rows: 48, kvLength: 300, offset: 0 },
      // gemma3: 4 heads over 1, head dim 256, window 512 on a ring buffer, softcap
      {
        numHeads: 4,
        numKvHeads: 1,
        headDim: 256,
        rows: 1,
        kvLength: 512,
        offset: 1900,
        window: 512,
        softcap: 50,
      },
      // gpt-oss: 64 heads over 8, sinks (bf16), window 128
      {
        numHeads: 64,
        numKvHeads: 8,
        headDim: 64,
        rows: 3,
        kvLength: 700,
        offset: 0,
        window: 128,
        sinks: "bf16",
      },
      // qwen3 0.6B: 16 over 8 (group 2), head dim 128; qwen2 7B: 28 over 4 (group 7)
      { numHeads: 16, numKvHeads: 8, headDim: 128, rows: 5, kvLength: 200, offset: 0 },
      { numHeads: 28, numKvHeads: 4, headDim: 128, rows: 1, kvLength: 333, offset: 0 },
      // multi-head (group 1)
      { numHeads: 6, numKvHeads: 6, headDim: 80, rows: 9, kvLength: 90, offset: 0 },
    ];
    cases.forEach((c, i) => {
      expect(runAttention(c, 100 + i), JSON.stringify(c)).toBeLessThan(1e-5);
    });
  });

  it("on randomized shapes: GQA ratios, head dims, rows, long KV, windows, sinks, softcap, offsets", () => {
    const next = rng(7);
    let worst = 0;
    for (let i = 0; i < 120; i++) {
      const numKvHeads = int(next, 1, 4);
      const group = [1, 2, 3, 4, 5, 7, 8, 9][int(next, 0, 7)];
      const kvLength = next() < 0.15 ? int(next, 1000, 3000) : int(next, 1, 120);
      const c: AttentionCase = {
        numHeads: numKvHeads * group,
        numKvHeads,
        headDim: [1, 2, 3, 8, 17, 32, 64, 80][int(next, 0, 7)],
        rows: next() < 0.4 ? 1 : int(next, 1, Math.min(kvLength, 24)),
        kvLength,
        offset: next() < 0.3 ? int(next, 1, 5000) : 0,
        window: next() < 0.35 ? int(next, 1, kvLength + 4) : undefined,
        softcap: next() < 0.25 ? [0.5, 20, 50][int(next, 0, 2)] : undefined,
        sinks: next() < 0.25 ? (next() < 0.5 ? "f32" : "bf16") : undefined,
        scattered: next() < 0.15,
      };
      const err = runAttention(c, 1000 + i);
      worst = Math.max(worst, err);
      expect(err, JSON.stringify(c)).toBeLessThan(1e-5);
    }
    // Same arithmetic in the same order: only exp/tanh differ, by f64 ulps, which f32 rounding hides.
    expect(worst).toBeLessThan(1e-6);
  });

  it("rows that see no key give zeros, with or without sinks", () => {
    const q = f32([2, 16], values(32, rng(8)));
    const kv = f32([4, 8], values(32, rng(9)));
    const options = {
      numHeads: 2,
      numKvHeads: 1,
      headDim: 8,
      scale: 0.3,
      queryPositions: new Int32Array([1, 2]),
      kvLength: 4,
      kvPositionOffset: 10,
    };
    const sinks = f32([2], new Float32Array([0.5, -1]));
    expect(Array.from(data(attention(q, kv, kv, options)))).toEqual(new Array(32).fill(0));
    expect(Array.from(data(attention(q, kv, kv, options, sinks)))).toEqual(new Array(32).fill(0));
  });
});

describe("CpuBackend runs the fast ops", () => {
  it("matches the reference through the Backend seam", async () => {
    const b = new CpuBackend({ kernels: "reference" });
    const next = rng(10);
    const h = values(2 * 256, next);
    const a = values(2 * 256, next);
    const w = values(256, next);
    const hT = b.fromFloat32(h, [2, 256]);
    const aT = b.fromFloat32(a, [2, 256]);
    const wT = b.fromFloat32(w, [256]);
    const { sum, normed } = b.addRmsNorm(hT, aT, wT, 1e-5);
    const want = reference.addRmsNorm(f32([2, 256], h), f32([2, 256], a), f32([256], w), 1e-5);
    expect(await sum.read()).toEqual(data(want.sum));
    expect(await normed.read()).toEqual(data(want.normed));
    const sw = await b.swiglu(hT, aT).read();
    expect(relativeError(sw, data(reference.swiglu(f32([512], h), f32([512], a))))).toBeLessThan(1e-6);
    const options = {
      numHeads: 4,
      numKvHeads: 2,
      headDim: 32,
      scale: 0.2,
      queryPositions: new Int32Array([2, 3]),
      kvLength: 4,
    };
    const q = values(2 * 128, next);
    const kv = values(4 * 64, next);
    const kvT = b.fromFloat32(kv, [4, 64]);
    const att = await b.attention(b.fromFloat32(q, [2, 128]), kvT, kvT, options).read();
    const wantAtt = reference.attention(f32([2, 128], q), f32([4, 64], kv), f32([4, 64], kv), options);
    expect(relativeError(att, data(wantAtt))).toBeLessThan(1e-6);
  });
});
