/**
 * The prefill GEMM (gemm.ts) against the CPU backend: through the backend's linear/matmul (rows above the
 * GEMV limit), and every tile shape / k depth / pipeline dispatched directly with offsets, strides and edges.
 */
import { afterAll, describe, expect, it } from "vitest";
import {
  GEMM_PARAMS,
  type GemmTile,
  gemmGrid,
  type TiledGemmVariant,
  tiledGemmKernel,
} from "../../src/engine/backends/webgpu/gemm.js";
import { specialize } from "../../src/engine/backends/webgpu/kernels.js";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import type { DType, Tensor } from "../../src/engine/tensor.js";
import { compare, cpu, encode, gpuOrSkip, pair, random, relErr } from "./gpu-setup.js";

const gpu = await gpuOrSkip();
/** Weights split into 4 KiB buffers: a GEMM per segment, writing its columns of a wider output. */
const split = gpu ? await WebGpuBackend.create({ maxSegmentBytes: 4096 }) : undefined;

afterAll(async () => {
  await gpu?.close();
  await split?.close();
});

const run = gpu ? describe : describe.skip;
const TOL = 1e-4;

run("tiled GEMM matches the CPU backend", () => {
  const g = gpu as WebGpuBackend;

  describe.each(["bf16", "f16", "f32"] as DType[])("linear with %s weights", (dtype) => {
    it.each([
      [33, 64, 40],
      [64, 37, 72],
      [129, 70, 133],
      [300, 130, 66],
    ])("rows %i, in %i, out %i (with and without bias)", async (rows, inDim, outDim) => {
      const [xc, xg] = pair(g, random(rows * inDim, rows + inDim), [rows, inDim]);
      const [wc, wg] = pair(g, random(outDim * inDim, outDim, 0.5), [outDim, inDim], dtype);
      const [bc, bg] = pair(g, random(outDim, 3), [outDim], "bf16");
      await compare(g.linear(xg, wg), cpu.linear(xc, wc), TOL);
      await compare(g.linear(xg, wg, bg), cpu.linear(xc, wc, bc), TOL);
    });
  });

  it("weights at odd offsets (subTensor of [experts, out, in]) and split over buffers", async () => {
    const s = split as WebGpuBackend;
    for (const [dtype, outDim, inDim] of [
      ["bf16", 37, 35],
      ["f16", 21, 33],
      ["bf16", 40, 70],
    ] as [DType, number, number][]) {
      const values = random(3 * outDim * inDim, outDim + inDim, 0.5);
      const [xc, xg] = pair(g, random(70 * inDim, 5), [70, inDim]);
      const [wc, wg] = pair(g, values, [3, outDim, inDim], dtype);
      await compare(g.linear(xg, g.subTensor(wg, 1)), cpu.linear(xc, cpu.subTensor(wc, 1)), TOL);
      const [xc2, xg2] = pair(s, random(70 * inDim, 5), [70, inDim]);
      const big = random(160 * inDim, 9, 0.5);
      const [bc, bs] = pair(s, random(160, 4), [160], "bf16");
      const [wc2, ws] = pair(s, big, [160, inDim], dtype);
      expect((ws as unknown as { segments: unknown[] }).segments.length).toBeGreaterThan(1);
      await compare(s.linear(xg2, ws, bs), cpu.linear(xc2, wc2, bc), TOL);
    }
  });

  it.each(["bf16", "f32"] as DType[])("matmul with %s [in, out] weights", async (dtype) => {
    const [xc, xg] = pair(g, random(129 * 45, 11), [129, 45]);
    const [wc, wg] = pair(g, random(45 * 67, 12, 0.5), [45, 67], dtype);
    const [bc, bg] = pair(g, random(67, 13), [67], "bf16");
    await compare(g.matmul(xg, wg), cpu.matmul(xc, wc), TOL);
    await compare(g.matmul(xg, wg, bg), cpu.matmul(xc, wc, bc), TOL);
  });

  /** Every tile shape, k depth and pipeline, dispatched directly: X, W, Y, bias all at offsets, Y strided. */
  const tiles: [GemmTile, DType, boolean][] = [
    [{ tm: 8, tn: 8, bk: 16, pipeline: "plain" }, "bf16", true],
    [{ tm: 8, tn: 8, bk: 16, pipeline: "prefetch" }, "bf16", true],
    [{ tm: 8, tn: 8, bk: 16, pipeline: "double" }, "f16", true],
    [{ tm: 8, tn: 8, bk: 32, pipeline: "prefetch" }, "bf16", true],
    [{ tm: 8, tn: 4, bk: 8, pipeline: "double" }, "bf16", true],
    [{ tm: 4, tn: 8, bk: 32, pipeline: "plain" }, "f32", false],
    [{ tm: 4, tn: 4, bk: 8, pipeline: "prefetch" }, "bf16", false],
    [{ tm: 4, tn: 4, bk: 32, pipeline: "double" }, "f16", false],
  ];
  it.each(tiles)("%o %s weights, pairs %s", async (tile, dtype, pairs) => {
    for (const transposed of pairs ? [false] : [false, true])
      await direct({ ...tile, dtype, pairs, transposed, bias: "bf16" }, 129, 133, pairs ? 70 : 37);
  });

  /** Runs one variant on a raw device and checks it against cpu.linear / cpu.matmul, and that no other Y changed. */
  async function direct(v: TiledGemmVariant, m: number, n: number, k: number): Promise<void> {
    const device = g.gpu.device;
    const x = random(m * k, 21);
    const wv = random(n * k, 22, 0.5);
    const bv = random(n + 8, 23);
    const [xo, wo, yo, no, bo] = [3, v.pairs ? 2 : 3, 5, v.transposed ? 0 : 2, 1];
    const ldy = n + no + 3;
    const ldw = n; // [K, N] rows when transposed
    const wShape = v.transposed ? [k, n] : [n, k];
    const sentinel = 7;

    /** A buffer holding `bytes` from byte `offset` on (zeros before and after). */
    const storage = (bytes: Uint8Array, usage = 0x80, offset = 0) => {
      const padded = new Uint8Array(Math.ceil((offset + bytes.byteLength) / 16) * 16);
      padded.set(bytes, offset);
      const b = device.createBuffer({ size: padded.byteLength, usage: usage | 0x08 });
      device.queue.writeBuffer(b, 0, padded);
      return b;
    };
    const elem = v.dtype === "f32" ? 4 : 2;
    const xb = storage(new Uint8Array(x.buffer), 0x80, xo * 4);
    const wb = storage(encode(wv, v.dtype), 0x80, wo * elem);
    const biasBytes = encode(bv, "bf16");
    const bb = storage(biasBytes);
    const yInit = new Float32Array(yo + m * ldy + 8).fill(sentinel);
    const yb = storage(new Uint8Array(yInit.buffer), 0x80 | 0x04);
    const named: Record<string, number> = { M: m, N: n, K: k, xo, wo, yo, no, bo, ldy, ldw };
    const params = Uint32Array.from(GEMM_PARAMS, (name) => named[name]);
    const pb = storage(new Uint8Array(params.buffer), 0x40);

    const src = tiledGemmKernel(v);
    const code = specialize(
      src,
      src.bindings.map((b) => ({ names: [b.name], access: b.access, type: b.type, host: false })),
    );
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
    });
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [pb, xb, wb, yb, bb].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const read = device.createBuffer({ size: yb.size, usage: 0x01 | 0x08 });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(...gemmGrid(v, m, n));
    pass.end();
    enc.copyBufferToBuffer(yb, 0, read, 0, yb.size);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(0x01);
    const y = new Float32Array(read.getMappedRange().slice(0, yInit.byteLength));
    read.destroy();
    for (const b of [xb, wb, bb, yb, pb]) b.destroy();

    const xc = cpu.upload(new Uint8Array(x.buffer.slice(0)), "f32", [m, k]);
    const wc = cpu.upload(encode(wv, v.dtype), v.dtype, wShape);
    const bc = cpu.upload(encode(bv.subarray(bo + no, bo + no + n), "bf16"), "bf16", [n]);
    const want: Tensor = v.transposed ? cpu.matmul(xc, wc, bc) : cpu.linear(xc, wc, bc);
    const wantValues = await want.read();
    const got = new Float32Array(m * n);
    let touched = 0;
    for (let i = 0; i < y.length; i++) {
      const row = Math.floor((i - yo) / ldy);
      const col = i - yo - row * ldy - no;
      if (i >= yo && row < m && col >= 0 && col < n) got[row * n + col] = y[i];
      else if (y[i] !== sentinel) touched++;
    }
    expect(touched).toBe(0);
    expect(relErr(got, wantValues)).toBeLessThanOrEqual(TOL);
  }
});
