/**
 * The fused WebGPU ops against the CPU backend: addRmsNorm (one dispatch), topKRows (the sampling reduction),
 * linear ops with the input norm and the residual folded into the GEMV, and paired copies/ropes. Attention is in
 * attention-decode.test.ts.
 */
import { afterAll, describe, expect, it } from "vitest";
import { type Backend, type GatedActivation, TOPK_MAX } from "../../src/engine/backend.js";
import type { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { buildRope } from "../../src/engine/rope.js";
import type { DType, Tensor } from "../../src/engine/tensor.js";
import { compare, cpu, gpuOrSkip, pair, random } from "./gpu-setup.js";

const gpu = await gpuOrSkip();

afterAll(async () => {
  await gpu?.close();
});

const run = gpu ? describe : describe.skip;

run("fused WebGPU ops match the CPU backend", () => {
  const g = gpu as WebGpuBackend;

  it.each([
    [1, 64, 64, 0, "f32"],
    [3, 2048, 2048, 1, "f32"],
    [4, 128, 32, 0, "bf16"],
    [2, 40, 40, 1, "bf16"],
  ] as const)(
    "addRmsNorm rows %i width %i weight %i offset %i (b %s)",
    async (rows, width, dim, offset, bType) => {
      const [ac, ag] = pair(g, random(rows * width, width + 1, 3), [rows, width]);
      const [bc, bg] = pair(g, random(rows * width, width + 2, 3), [rows, width], bType);
      const [wc, wg] = pair(g, random(dim, dim + 3), [dim], "bf16");
      const before = g.stats().dispatches;
      const got = g.addRmsNorm(ag, bg, wg, 1e-6, offset);
      expect(g.stats().dispatches - before).toBe(1);
      const want = cpu.addRmsNorm(ac, bc, wc, 1e-6, offset);
      await compare(got.sum, want.sum, 0);
      await compare(got.normed, want.normed);
    },
  );

  describe("topKRows", () => {
    /** Indices exact, values exact, log-sum-exp within 1e-5 relative. */
    async function checkTopK(x: Float32Array, rows: number, cols: number, k: number): Promise<void> {
      const [xc, xg] = pair(g, x, [rows, cols]);
      const before = g.stats().dispatches;
      const got = g.topKRows(xg, k);
      expect(g.stats().dispatches - before).toBe(1);
      expect(got.shape).toEqual([rows, 2 * k + 1]);
      const gv = await got.read();
      const wv = await cpu.topKRows(xc, k).read();
      for (let r = 0; r < rows; r++) {
        const o = r * (2 * k + 1);
        expect(Array.from(gv.subarray(o, o + 2 * k))).toEqual(Array.from(wv.subarray(o, o + 2 * k)));
        const lse = gv[o + 2 * k];
        const want = wv[o + 2 * k];
        expect(Math.abs(lse - want) / Math.max(1, Math.abs(want))).toBeLessThanOrEqual(1e-5);
      }
    }

    it.each([
      [1, 1029, 1],
      [3, 1029, 5],
      [2, 37, 17],
      [1, 300, TOPK_MAX],
      [2, 5, 5],
      [1, 20000, 1],
      [2, 20000, 8],
      [1, 20000, 20],
      [1, 70000, 2],
    ])("rows %i, cols %i, k %i", async (rows, cols, k) => {
      await checkTopK(random(rows * cols, rows * 7 + cols + k, 8), rows, cols, k);
    });

    it("ties go to the lower index; large negative values; k = 1 picks the first maximum", async () => {
      const cols = 600;
      const x = new Float32Array(2 * cols).fill(-1e30);
      for (const c of [5, 77, 300, 599]) x[c] = 3.5;
      x[400] = 2;
      x[401] = 2;
      for (let c = 0; c < cols; c++) x[cols + c] = (c % 7) - 3; // many ties in row 1
      await checkTopK(x, 2, cols, 1);
      await checkTopK(x, 2, cols, 6);
      await checkTopK(x, 2, cols, 40);
    });

    it("rejects k outside 1..min(TOPK_MAX, cols)", () => {
      const [, xg] = pair(g, random(10, 3), [1, 10]);
      expect(() => g.topKRows(xg, 0)).toThrow(/topKRows/);
      expect(() => g.topKRows(xg, 11)).toThrow(/topKRows/);
      expect(() => g.topKRows(xg, TOPK_MAX + 1)).toThrow(/topKRows/);
    });
  });

  describe("linear ops with the input norm and the residual folded in", () => {
    const eps = 1e-5;
    /** x [rows, k], a norm weight [k] (CPU and GPU), and the CPU's normed x: the unfused reference. */
    function input(rows: number, k: number, seed: number, offset: number) {
      const [xc, xg] = pair(g, random(rows * k, seed, 3), [rows, k]);
      const [nc, ng] = pair(g, random(k, seed + 1), [k], "bf16");
      return {
        xg,
        normed: cpu.rmsNorm(xc, nc, eps, offset),
        norm: { weight: ng, eps, weightOffset: offset },
      };
    }
    function weight(n: number, k: number, seed: number, dtype: DType): [Tensor, Tensor] {
      return pair(g, random(n * k, seed, 0.5), [n, k], dtype);
    }
    /** Dispatches `op` records (counted once recorded: the backend may hold an op back for the next). */
    async function dispatches(op: () => unknown): Promise<number> {
      const before = g.stats().dispatches;
      op();
      await g.sync();
      return g.stats().dispatches - before;
    }

    it.each([
      // rows, k, n, weight dtype, norm, residual, bias, norm weight offset, dispatches (0: unfused, not counted)
      [1, 64, 48, "bf16", true, true, false, 0, 1],
      [1, 64, 48, "f16", true, false, true, 1, 1],
      [3, 128, 40, "f32", true, true, true, 0, 1],
      [5, 256, 33, "bf16", true, true, false, 1, 2],
      [2, 30, 20, "bf16", true, true, true, 0, 1],
      [2, 64, 64, "bf16", false, true, false, 0, 1],
      [20, 64, 32, "bf16", true, true, false, 0, 0],
      // Long rows: several weight loads in flight per thread (the unrolled loop).
      [1, 4096, 4, "bf16", true, true, false, 0, 1],
      [2, 2048, 3, "f32", true, false, false, 1, 1],
    ] as const)(
      "linear rows %i k %i n %i %s (norm %s, residual %s, bias %s, offset %i)",
      async (rows, k, n, dtype, withNorm, withResidual, withBias, offset, expected) => {
        const seed = rows * 31 + k + n;
        const x = input(rows, k, seed, offset);
        const [wc, wg] = weight(n, k, seed + 2, dtype);
        const [bc, bg] = pair(g, random(n, seed + 3), [n]);
        const [rc, rg] = pair(g, random(rows * n, seed + 4, 2), [rows, n]);
        let got: Tensor | undefined;
        const count = await dispatches(() => {
          got = g.linear(x.xg, wg, withBias ? bg : undefined, {
            norm: withNorm ? x.norm : undefined,
            residual: withResidual ? rg : undefined,
          });
        });
        if (expected > 0) expect(count).toBe(expected);
        const product = cpu.linear(withNorm ? x.normed : await cpuCopy(x.xg), wc, withBias ? bc : undefined);
        await compare(got as Tensor, withResidual ? cpu.add(product, rc) : product, 1e-4);
      },
    );

    it.each([1, 3])("linearMany (q/k/v of different widths) with the norm, %i rows", async (rows) => {
      const k = 96;
      const x = input(rows, k, rows + 40, 0);
      const widths = [64, 16, 16];
      const weights = widths.map((n, i) => weight(n, k, 50 + i, "bf16"));
      let got: Tensor[] = [];
      expect(
        await dispatches(() => {
          got = g.linearMany(
            x.xg,
            weights.map(([, wg]) => ({ weight: wg })),
            { norm: x.norm },
          );
        }),
      ).toBe(1);
      for (const [i, [wc]] of weights.entries()) await compare(got[i], cpu.linear(x.normed, wc), 1e-4);
    });

    it.each([
      ["silu", 1],
      ["gelu_tanh", 2],
    ] as const)("linearGated %s with the norm, %i rows", async (activation: GatedActivation, rows) => {
      const k = 128;
      const n = 72;
      const x = input(rows, k, rows + 60, 1);
      const [gc, gg] = weight(n, k, 70, "bf16");
      const [uc, ug] = weight(n, k, 71, "bf16");
      let got: Tensor | undefined;
      expect(
        await dispatches(() => {
          got = g.linearGated(x.xg, gg, ug, activation, undefined, undefined, { norm: x.norm });
        }),
      ).toBe(1);
      await compare(got as Tensor, cpu.linearGated(x.normed, gc, uc, activation), 1e-4);
    });

    it.each([
      // rows, head width, heads, KV heads, biases, input norm, rotary width, dispatches
      [1, 16, 4, 2, false, true, 16, 1],
      [1, 32, 2, 1, true, false, 32, 1],
      [1, 8, 8, 8, true, true, 8, 1],
      // Several rows: one output row per workgroup, so no rope pair in one; rope and KV append apart.
      [3, 16, 4, 2, true, true, 16, 2],
      // Partial rotary: not folded (rope and KV append in their own dispatch), same values.
      [1, 16, 4, 2, false, true, 8, 2],
    ] as const)(
      "q/k/v GEMV, rope of q and k and the KV append fold into one dispatch (rows %i, head %i, %i:%i heads)",
      async (rows, hd, heads, kvHeads, withBias, withNorm, rotary, expected) => {
        const k = 64;
        const x = input(rows, k, rows * 7 + hd, 0);
        const widths = [heads * hd, kvHeads * hd, kvHeads * hd];
        const weights = widths.map((n, i) => weight(n, k, 80 + i, "bf16"));
        const biases = widths.map((n, i) => pair(g, random(n, 90 + i), [n]));
        const spec = buildRope({ rope_theta: 10000 } as never, rotary, 4096);
        const positions = Int32Array.from({ length: rows }, (_, i) => 5 + i);
        const o = { headDim: hd, rotaryDim: rotary };
        const layer = (
          b: Backend,
          xin: Tensor,
          side: 0 | 1,
          norm: typeof x.norm | undefined,
          kv: Tensor[],
        ) => {
          const parts = weights.map((w, i) => ({
            weight: w[side],
            bias: withBias ? biases[i][side] : undefined,
          }));
          const [q, kk, v] = b.linearMany(xin, parts, { norm });
          const rq = b.rope(q, positions, spec, o);
          const rk = b.rope(kk, positions, spec, o);
          b.writeRows(kv[0], 2, rk);
          b.writeRows(kv[1], 2, v);
          return [q, kk, v, rq, rk, ...kv];
        };
        const kvG = [g.zeros([8, widths[1]]), g.zeros([8, widths[2]])];
        await kvG[1].read();
        const before = g.stats().dispatches;
        const gotG = layer(g, x.xg, 1, withNorm ? x.norm : undefined, kvG);
        await g.sync();
        const counted = g.stats().dispatches - before;
        const xc = withNorm ? x.normed : await cpuCopy(x.xg);
        const gotC = layer(cpu, xc, 0, undefined, [cpu.zeros([8, widths[1]]), cpu.zeros([8, widths[2]])]);
        for (const [i, t] of gotG.entries()) await compare(t, gotC[i], 1e-4);
        expect(counted).toBe(expected);
      },
    );

    /** A GPU tensor's values as a CPU tensor. */
    async function cpuCopy(t: Tensor): Promise<Tensor> {
      return cpu.fromFloat32(await t.read(), [...t.shape]);
    }
  });

  describe("independent copies and ropes pair up into one dispatch", () => {
    it("the k and v rows of a KV append, and rope of q then k", async () => {
      const [kc, kg] = pair(g, random(2 * 32, 141), [2, 32]);
      const [vc, vg] = pair(g, random(2 * 32, 142), [2, 32], "bf16");
      const cacheG = [g.zeros([8, 32]), g.zeros([8, 32])];
      const cacheC = [cpu.zeros([8, 32]), cpu.zeros([8, 32])];
      await cacheG[1].read();
      const d0 = g.stats().dispatches;
      g.writeRows(cacheG[0], 3, kg);
      g.writeRows(cacheG[1], 3, vg);
      cpu.writeRows(cacheC[0], 3, kc);
      cpu.writeRows(cacheC[1], 3, vc);
      await compare(cacheG[0], cacheC[0], 0);
      await compare(cacheG[1], cacheC[1], 0);
      expect(g.stats().dispatches - d0).toBe(1);

      const spec = buildRope({ rope_theta: 10000 } as never, 16, 4096);
      const positions = Int32Array.from([5, 6, 900]);
      const [qc, qg] = pair(g, random(3 * 64, 143), [3, 64]);
      const [k2c, k2g] = pair(g, random(3 * 32, 144), [3, 32]);
      const d1 = g.stats().dispatches;
      const rq = g.rope(qg, positions, spec, { headDim: 16 });
      const rk = g.rope(k2g, positions, spec, { headDim: 16 });
      await compare(rq, cpu.rope(qc, positions, spec, { headDim: 16 }));
      await compare(rk, cpu.rope(k2c, positions, spec, { headDim: 16 }));
      expect(g.stats().dispatches - d1).toBe(1);
      // Other positions (another table): two dispatches.
      const d2 = g.stats().dispatches;
      const other = Int32Array.from([1, 2, 3]);
      const ra = g.rope(qg, positions, spec, { headDim: 16, rotaryDim: 8 });
      const rb = g.rope(qg, other, spec, { headDim: 16, rotaryDim: 8 });
      await compare(ra, cpu.rope(qc, positions, spec, { headDim: 16, rotaryDim: 8 }));
      await compare(rb, cpu.rope(qc, other, spec, { headDim: 16, rotaryDim: 8 }));
      expect(g.stats().dispatches - d2).toBe(2);
    });

    it("rope of q and k and the KV append of the roped k and of v are one dispatch", async () => {
      const spec = buildRope({ rope_theta: 10000 } as never, 16, 4096);
      const positions = Int32Array.from([7, 8]);
      const [qc, qg] = pair(g, random(2 * 64, 161), [2, 64]);
      const [kc, kg] = pair(g, random(2 * 32, 162), [2, 32]);
      const [vc, vg] = pair(g, random(2 * 32, 163), [2, 32]);
      const o = { headDim: 16 };
      /** rope q, rope k, then `append` on both backends; the dispatches it took on the GPU. */
      const run = async (append: (b: Backend, k: Tensor, v: Tensor, kv: Tensor[]) => void) => {
        const kvG = [g.zeros([6, 32]), g.zeros([6, 32])];
        const kvC = [cpu.zeros([6, 32]), cpu.zeros([6, 32])];
        await kvG[1].read();
        const d0 = g.stats().dispatches;
        const rq = g.rope(qg, positions, spec, o);
        const rk = g.rope(kg, positions, spec, o);
        append(g, rk, vg, kvG);
        const rkc = cpu.rope(kc, positions, spec, o);
        append(cpu, rkc, vc, kvC);
        await compare(kvG[0], kvC[0]);
        await compare(kvG[1], kvC[1]);
        await compare(rq, cpu.rope(qc, positions, spec, o));
        await compare(rk, rkc);
        return g.stats().dispatches - d0;
      };
      // The KV append as the KV store does it: one dispatch for everything.
      expect(
        await run((b, k, v, kv) => {
          b.writeRows(kv[0], 3, k);
          b.writeRows(kv[1], 3, v);
        }),
      ).toBe(1);
      // Only k appended before another op: the rope pair stores k into the cache, then the op and the copy.
      expect(
        await run((b, k, v, kv) => {
          b.writeRows(kv[0], 1, k);
          b.writeRows(kv[1], 0, b.add(v, v));
        }),
      ).toBe(3);
      // Part of k only: not joined (rope pair, then the copies paired).
      expect(
        await run((b, k, v, kv) => {
          b.writeRows(kv[0], 0, b.sliceRows(k, 1, 1));
          b.writeRows(kv[1], 0, v);
        }),
      ).toBe(3);
      // A "v" copy that reads the roped k depends on the held pair: it runs after it.
      expect(
        await run((b, k, _v, kv) => {
          b.writeRows(kv[0], 0, k);
          b.writeRows(kv[1], 2, k);
        }),
      ).toBe(2);
    });

    it("dependent copies keep their order (read after write, write after write, write after read)", async () => {
      const init = random(6 * 8, 151);
      const [ac, ag] = pair(g, init, [6, 8]);
      const [xc, xg] = pair(g, random(8, 152), [1, 8]);
      const [yc, yg] = pair(g, random(8, 153), [1, 8]);
      // Read after write: the slice is written by the first copy and read by the second.
      for (const b of [g, cpu] as const) {
        const a = b === g ? ag : ac;
        b.writeRows(a, 2, b.sliceRows(a, 0, 2));
        b.writeRows(a, 0, b === g ? xg : xc);
        b.writeRows(a, 0, b === g ? yg : yc); // write after write: y wins
      }
      const sliced = g.sliceRows(ag, 0, 1); // write after read: the next copy overwrites row 0
      g.writeRows(ag, 0, xg);
      await compare(sliced, cpu.sliceRows(ac, 0, 1), 0);
      cpu.writeRows(ac, 0, xc);
      await compare(ag, ac, 0);
    });
  });
});
