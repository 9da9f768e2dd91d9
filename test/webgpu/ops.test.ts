import { afterAll, describe, expect, it } from "vitest";
import type { DeltaRuleOptions } from "../../src/engine/backend.js";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { buildRope } from "../../src/engine/rope.js";
import type { DType } from "../../src/engine/tensor.js";
import { compare, cpu, gpuOrSkip, pair, random } from "./gpu-setup.js";

const gpu = await gpuOrSkip();
/** A second device whose weights are split into many small buffers (the > binding-size path). */
const split = gpu ? await WebGpuBackend.create({ maxSegmentBytes: 4096 }) : undefined;

afterAll(async () => {
  await gpu?.close();
  await split?.close();
});

const run = gpu ? describe : describe.skip;

run("WebGPU ops match the CPU backend", () => {
  const g = gpu as WebGpuBackend;
  const s = split as WebGpuBackend;

  describe.each(["f32", "bf16", "f16", "i8"] as DType[])("linear with %s weights", (dtype) => {
    it.each([
      [1, 64, 40],
      [3, 64, 72],
      [5, 96, 33],
      [20, 136, 24],
      [70, 64, 80],
      [130, 48, 140],
      [2, 37, 19],
    ])("rows %i, in %i, out %i", async (rows, inDim, outDim) => {
      const x = random(rows * inDim, rows + inDim);
      const w = random(outDim * inDim, outDim * 7, 0.5);
      const b = random(outDim, 99);
      const [xc, xg] = pair(g, x, [rows, inDim]);
      const [wc, wg] = pair(g, w, [outDim, inDim], dtype);
      const [bc, bg] = pair(g, b, [outDim], "bf16");
      await compare(g.linear(xg, wg), cpu.linear(xc, wc));
      await compare(g.linear(xg, wg, bg), cpu.linear(xc, wc, bc));
    });
  });

  /** The GEMV layouts the tuner picks from, forced per weight shape. */
  const tuned = (g as unknown as { gemvTuned: Map<string, { wg: number; unroll: number; out: number }> })
    .gemvTuned;

  it("every GEMV variant (threads × loads in flight × output rows per workgroup) and the tuner", async () => {
    const variants: [number, number, number][] = [
      [32, 1, 1],
      [64, 4, 2],
      [128, 2, 4],
      [256, 1, 2],
      [128, 1, 4],
    ];
    const [wc, wg] = pair(g, random(24 * 512, 7, 0.5), [24, 512], "bf16");
    for (const rows of [1, 3, 6]) {
      const [xc, xg] = pair(g, random(rows * 512, 8), [rows, 512]);
      const want = cpu.linear(xc, wc);
      for (const [wgSize, unroll, out] of variants) {
        tuned.set("bf16:24:512", { wg: wgSize, unroll, out });
        await compare(g.linear(xg, wg), want);
      }
    }
    tuned.clear();
    const best = await g.tuneGemv("bf16", 40, 64, { maxReps: 2 });
    expect(best.gbps).toBeGreaterThan(0);
    expect(best.tried.length).toBe(18);
    const [wc2, wg2] = pair(g, random(40 * 64, 9), [40, 64], "bf16");
    const [xc2, xg2] = pair(g, random(64, 10), [1, 64]);
    await compare(g.linear(xg2, wg2), cpu.linear(xc2, wc2));
  });

  it.each([2, 4])(
    "%i output rows per workgroup: fused norm/residual, q/k/v parts, gate/up; rows that do not divide fall back",
    async (out) => {
      const k = 256;
      const [xc, xg] = pair(g, random(k, 20, 2), [1, k]);
      const [nc, ng] = pair(g, random(k, 21), [k], "bf16");
      const normed = cpu.rmsNorm(xc, nc, 1e-5, 0);
      const norm = { weight: ng, eps: 1e-5 };
      for (const n of [8, 6, 5]) {
        const [wc, wg] = pair(g, random(n * k, 22 + n, 0.5), [n, k], "bf16");
        const [rc, rg] = pair(g, random(n, 23), [1, n]);
        tuned.set(`bf16:${n}:${k}`, { wg: 64, unroll: 2, out });
        await compare(
          g.linear(xg, wg, undefined, { norm, residual: rg }),
          cpu.add(cpu.linear(normed, wc), rc),
          1e-4,
        );
      }
      const widths = [16, 8, 8];
      const parts = widths.map((n, i) => pair(g, random(n * k, 30 + i, 0.5), [n, k], "f16"));
      tuned.set(`f16:16:${k}`, { wg: 32, unroll: 1, out });
      const many = g.linearMany(
        xg,
        parts.map(([, wg]) => ({ weight: wg })),
        { norm },
      );
      for (const [i, [wc]] of parts.entries()) await compare(many[i], cpu.linear(normed, wc), 1e-4);
      const [gc, gg] = pair(g, random(12 * k, 40, 0.5), [12, k], "bf16");
      const [uc, ug] = pair(g, random(12 * k, 41, 0.5), [12, k], "bf16");
      tuned.set(`bf16:12:${k}`, { wg: 128, unroll: 2, out });
      await compare(
        g.linearGated(xg, gg, ug, "silu", undefined, undefined, { norm }),
        cpu.linearGated(normed, gc, uc, "silu"),
        1e-4,
      );
      tuned.clear();
    },
  );

  describe.each(["bf16", "f16", "f32", "i8"] as DType[])("fused GEMV, %s weights", (dtype) => {
    it.each([
      [1, 64, true],
      [3, 128, false],
      [6, 40, true],
      [2, 37, false],
    ])(
      "rows %i, in %i, biases %s: linearMany (q/k/v) and linearGated (silu, gelu_tanh)",
      async (rows, inDim, withBias) => {
        const [xc, xg] = pair(g, random(rows * inDim, rows * 3 + inDim), [rows, inDim]);
        const sizes = [48, 16, 16];
        const weights = sizes.map((n, i) => pair(g, random(n * inDim, 50 + i, 0.5), [n, inDim], dtype));
        const biases = sizes.map((n, i) => pair(g, random(n, 60 + i), [n], "bf16"));
        const parts = (side: 0 | 1) =>
          weights.map((w, i) => ({ weight: w[side], bias: withBias ? biases[i][side] : undefined }));
        const got = g.linearMany(xg, parts(1));
        const want = cpu.linearMany(xc, parts(0));
        for (let i = 0; i < sizes.length; i++) await compare(got[i], want[i]);
        const [gate, up] = [48, 48].map((n, i) => pair(g, random(n * inDim, 70 + i, 0.5), [n, inDim], dtype));
        for (const act of ["silu", "gelu_tanh"] as const) {
          const gb = withBias ? biases[0] : undefined;
          await compare(
            g.linearGated(xg, gate[1], up[1], act, gb?.[1], gb?.[1]),
            cpu.linearGated(xc, gate[0], up[0], act, gb?.[0], gb?.[0]),
          );
        }
      },
    );
  });

  it("linear and embedding over weights split into many buffers", async () => {
    for (const rows of [1, 40]) {
      const x = random(rows * 64, 3);
      const w = random(300 * 64, 4);
      const [xc, xg] = pair(s, x, [rows, 64]);
      const [wc, wg] = pair(s, w, [300, 64], "bf16");
      await compare(s.linear(xg, wg), cpu.linear(xc, wc));
    }
    const table = random(500 * 32, 5);
    const [tc, tg] = pair(s, table, [500, 32], "bf16");
    const ids = Int32Array.from([0, 499, 17, 128, 256, 3]);
    await compare(s.embedding(tg, ids, 2.5), cpu.embedding(tc, ids, 2.5));
    // Ids in a tensor (the first value of each row), on both backends, over the split table.
    const rows = Float32Array.from([0, 9, 9, 499, 9, 9, 17, 9, 9, 256, 9, 9]);
    const [ic, ig] = pair(s, rows, [4, 3]);
    const picked = Int32Array.from([0, 499, 17, 256]);
    await compare(s.embedding(tg, ig, 2.5), cpu.embedding(tc, picked, 2.5));
    await compare(cpu.embedding(tc, ic, 2.5), cpu.embedding(tc, picked, 2.5));
  });

  it.each(["f32", "bf16", "f16"] as DType[])("embedding of a %s table", async (dtype) => {
    const [tc, tg] = pair(g, random(50 * 24, 6), [50, 24], dtype);
    const ids = Int32Array.from([3, 0, 49, 3]);
    await compare(g.embedding(tg, ids), cpu.embedding(tc, ids));
    expect(() => g.embedding(tg, Int32Array.from([50]))).toThrow(/outside the vocabulary/);
  });

  it.each([
    [4, 64, 64, 0],
    [3, 128, 16, 0],
    [2, 2048, 2048, 1],
    [5, 40, 40, 1],
  ])("rmsNorm rows %i width %i weight %i offset %i", async (rows, width, dim, offset) => {
    const [xc, xg] = pair(g, random(rows * width, width, 3), [rows, width]);
    const [wc, wg] = pair(g, random(dim, 8), [dim], "bf16");
    await compare(g.rmsNorm(xg, wg, 1e-6, offset), cpu.rmsNorm(xc, wc, 1e-6, offset));
  });

  it("elementwise ops", async () => {
    const n = 3 * 1000;
    const [ac, ag] = pair(g, random(n, 11, 4), [3, 1000]);
    const [bc, bg] = pair(g, random(n, 12, 4), [3, 1000]);
    const [hc, hg] = pair(g, random(n, 13, 4), [3, 1000], "bf16");
    await compare(g.add(ag, bg), cpu.add(ac, bc));
    await compare(g.add(ag, hg), cpu.add(ac, hc));
    await compare(g.mul(ag, bg), cpu.mul(ac, bc));
    await compare(g.scale(ag, 0.37), cpu.scale(ac, 0.37));
    await compare(g.swiglu(ag, bg), cpu.swiglu(ac, bc));
    await compare(g.gegluTanh(ag, bg), cpu.gegluTanh(ac, bc));
    await compare(g.softcap(ag, 2.5), cpu.softcap(ac, 2.5));
    await compare(g.sigmoidGate(ag, bg), cpu.sigmoidGate(ac, bc));
    const [rc, rg] = pair(g, random(3, 14, 4), [3, 1]);
    await compare(g.sigmoidGate(ag, rg), cpu.sigmoidGate(ac, rc));
    const big = random(70000, 15);
    const [xc, xg] = pair(g, big, [70000]);
    await compare(g.add(xg, xg), cpu.add(xc, xc));
  });

  it.each([
    ["default", 64, undefined, { rope_type: "default" }],
    ["partial rotary", 32, 16, { rope_type: "default" }],
    ["yarn", 64, undefined, { rope_type: "yarn", factor: 4, original_max_position_embeddings: 256 }],
  ])("rope %s", async (_name, headDim, rotaryDim, params) => {
    const spec = buildRope({ rope_theta: 10000, ...params } as never, rotaryDim ?? headDim, 4096);
    const rows = 5;
    const width = 4 * headDim;
    const [xc, xg] = pair(g, random(rows * width, 21), [rows, width]);
    const positions = Int32Array.from([0, 1, 7, 300, 2047]);
    const opts = { headDim, rotaryDim };
    await compare(g.rope(xg, positions, spec, opts), cpu.rope(xc, positions, spec, opts));
  });

  it("zeros, sliceRows, writeRows", async () => {
    const zg = g.zeros([10, 12]);
    const zc = cpu.zeros([10, 12]);
    const [xc, xg] = pair(g, random(4 * 12, 41), [4, 12]);
    const [hc, hg] = pair(g, random(2 * 12, 42), [2, 12], "bf16");
    g.writeRows(zg, 3, xg);
    cpu.writeRows(zc, 3, xc);
    g.writeRows(zg, 8, hg);
    cpu.writeRows(zc, 8, hc);
    await compare(zg, zc, 0);
    await compare(g.sliceRows(zg, 2, 5), cpu.sliceRows(zc, 2, 5), 0);
  });

  it("subTensor + matmul ([in, out] experts)", async () => {
    const [wc, wg] = pair(g, random(3 * 40 * 24, 51, 0.5), [3, 40, 24], "bf16");
    const [bc, bg] = pair(g, random(3 * 24, 52), [3, 24], "bf16");
    for (const rows of [2, 37]) {
      const [xc, xg] = pair(g, random(rows * 40, 53 + rows), [rows, 40]);
      await compare(
        g.matmul(xg, g.subTensor(wg, 1), g.subTensor(bg, 1)),
        cpu.matmul(xc, cpu.subTensor(wc, 1), cpu.subTensor(bc, 1)),
      );
    }
    await compare(g.subTensor(wg, 2), cpu.subTensor(wc, 2), 0);
  });

  it("linearMxfp4", async () => {
    const out = 20;
    const groups = 3;
    for (const rows of [1, 4]) {
      const [xc, xg] = pair(g, random(rows * groups * 32, 61), [rows, groups * 32]);
      const blocks = Uint8Array.from(random(2 * out * groups * 16, 62), (v) => Math.floor((v + 1) * 127.9));
      const scales = Uint8Array.from(random(2 * out * groups, 63), (v) => 120 + Math.round(v * 6));
      const bc = cpu.upload(blocks, "u8", [2, out, groups, 16]);
      const bg = g.upload(blocks.slice(), "u8", [2, out, groups, 16]);
      const sc = cpu.upload(scales, "u8", [2, out, groups]);
      const sg = g.upload(scales.slice(), "u8", [2, out, groups]);
      const [biasc, biasg] = pair(g, random(out, 64), [out], "bf16");
      await compare(
        g.linearMxfp4(xg, g.subTensor(bg, 1), g.subTensor(sg, 1), biasg),
        cpu.linearMxfp4(xc, cpu.subTensor(bc, 1), cpu.subTensor(sc, 1), biasc),
      );
    }
  });

  it("gatherRows, scatterAddRows, clampedSwiglu", async () => {
    const [xc, xg] = pair(g, random(6 * 10, 71, 10), [6, 10]);
    const rows = Int32Array.from([4, 0, 5]);
    await compare(g.gatherRows(xg, rows), cpu.gatherRows(xc, rows), 0);
    const [dc, dg] = pair(g, random(6 * 10, 72), [6, 10]);
    const [sc, sg] = pair(g, random(3 * 10, 73), [3, 10]);
    const weights = Float32Array.from([0.5, -1.25, 2]);
    g.scatterAddRows(dg, rows, sg, weights);
    cpu.scatterAddRows(dc, rows, sc, weights);
    await compare(dg, dc);
    await compare(g.clampedSwiglu(xg, 1.702, 7), cpu.clampedSwiglu(xc, 1.702, 7));
  });

  it("sliceColumns and concatColumns", async () => {
    const [xc, xg] = pair(g, random(3 * 24, 81), [3, 24]);
    await compare(g.sliceColumns(xg, 2, 5), cpu.sliceColumns(xc, 2, 5), 0);
    await compare(g.sliceColumns(xg, 1, 3, 6), cpu.sliceColumns(xc, 1, 3, 6), 0);
    const [yc, yg] = pair(g, random(3 * 5, 82), [3, 5], "bf16");
    await compare(g.concatColumns([xg, yg, xg]), cpu.concatColumns([xc, yc, xc]), 0);
  });

  it("causalConv1d with and without state, deltaRuleGates", async () => {
    const ch = 12;
    const [wc, wg] = pair(g, random(ch * 4, 91), [ch, 1, 4], "bf16");
    const [xc, xg] = pair(g, random(5 * ch, 92), [5, ch]);
    const a = cpu.causalConv1d(xc, wc, undefined);
    const b = g.causalConv1d(xg, wg, undefined);
    await compare(b.y, a.y);
    await compare(b.state, a.state, 0);
    const [x2c, x2g] = pair(g, random(ch, 93), [1, ch]);
    await compare(g.causalConv1d(x2g, wg, b.state).y, cpu.causalConv1d(x2c, wc, a.state).y);
    const [ac, ag] = pair(g, random(5 * 4, 94, 3), [5, 4]);
    const [bc, bg] = pair(g, random(5 * 4, 95, 3), [5, 4]);
    const [lc, lg] = pair(g, random(4, 96), [4]);
    const [tc, tg] = pair(g, random(4, 97), [4], "bf16");
    const gc = cpu.deltaRuleGates(ac, bc, lc, tc);
    const gg = g.deltaRuleGates(ag, bg, lg, tg);
    await compare(gg.g, gc.g);
    await compare(gg.beta, gc.beta);
  });

  it.each(["recurrent", "chunked"] as const)("gatedDeltaRule (%s)", async (mode) => {
    const o: DeltaRuleOptions = {
      numKeyHeads: 2,
      numValueHeads: 4,
      keyHeadDim: 16,
      valueHeadDim: 24,
      mode,
      chunkSize: 4,
    };
    const rows = 7;
    const [qc, qg] = pair(g, random(rows * 32, 101), [rows, 32]);
    const [kc, kg] = pair(g, random(rows * 32, 102), [rows, 32]);
    const [vc, vg] = pair(g, random(rows * 96, 103), [rows, 96]);
    const [gc, gg] = pair(
      g,
      random(rows * 4, 104, 0.5).map((v) => v - 0.5),
      [rows, 4],
    );
    const [bc, bg] = pair(
      g,
      random(rows * 4, 105).map((v) => (v + 1) / 2),
      [rows, 4],
    );
    const [sc, sg] = pair(g, random(4 * 16 * 24, 106, 0.2), [4, 16, 24]);
    const a = cpu.gatedDeltaRule(qc, kc, vc, gc, bc, sc, o);
    const b = g.gatedDeltaRule(qg, kg, vg, gg, bg, sg, o);
    await compare(b.out, a.out, 1e-4);
    await compare(b.state, a.state, 1e-4);
    const a0 = cpu.gatedDeltaRule(qc, kc, vc, gc, bc, undefined, o);
    const b0 = g.gatedDeltaRule(qg, kg, vg, gg, bg, undefined, o);
    await compare(b0.out, a0.out, 1e-4);
  });

  it("one submission per read: ops record, read flushes", async () => {
    const before = g.stats().submits;
    const [, xg] = pair(g, random(64, 111), [1, 64]);
    let h = xg;
    for (let i = 0; i < 20; i++) h = g.add(h, xg);
    expect(g.stats().submits).toBe(before);
    await h.read();
    expect(g.stats().submits).toBe(before + 1);
    // Submitting every few dispatches computes the same thing.
    const want = await h.read();
    g.setSubmitEvery(3);
    let p = xg;
    for (let i = 0; i < 20; i++) p = g.add(p, xg);
    expect(await p.read()).toEqual(want);
    // A submit never lands inside synchronous recording (an op's later dispatches may use data written for
    // the submission its first ones went into): it waits for the code to yield.
    g.setSubmitEvery(1);
    const noYield = g.stats().submits;
    let q = xg;
    for (let i = 0; i < 20; i++) q = g.add(q, xg);
    expect(g.stats().submits).toBe(noYield);
    await Promise.resolve();
    expect(g.stats().submits).toBe(noYield + 1);
    expect(await q.read()).toEqual(want);
    // After a read the interval ramps up from `first`: submits after 2, 4 and 8 more of these 20 dispatches
    // when the recording yields after each.
    g.setSubmitEvery(8, 2);
    const afterRead = g.stats().submits;
    let r = xg;
    for (let i = 0; i < 20; i++) {
      r = g.add(r, xg);
      await Promise.resolve();
    }
    expect(g.stats().submits - afterRead).toBe(3);
    expect(await r.read()).toEqual(want);
    g.setSubmitEvery(0);
  });

  it("dispatch profiling times each dispatch where timestamps exist, and says why not elsewhere", async () => {
    const timed = await WebGpuBackend.create({ stats: true });
    try {
      if (!timed.gpu.timestamps) {
        expect(() => timed.startProfile()).toThrow(/timestamp queries/);
        return;
      }
      const [, xg] = pair(timed, random(64, 112), [1, 64]);
      timed.startProfile();
      let h = xg;
      for (let i = 0; i < 5; i++) h = timed.add(h, xg);
      await h.read();
      const profile = await timed.stopProfile();
      expect(profile.dispatches).toBe(5);
      expect(profile.kernels.reduce((n, k) => n + k.count, 0)).toBe(5);
      expect(profile.spanMs).toBeGreaterThanOrEqual(profile.busyMs);
    } finally {
      await timed.close();
    }
  });
});
