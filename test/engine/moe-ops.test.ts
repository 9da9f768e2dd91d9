import { describe, expect, it } from "vitest";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import { decodeMxfp4Row } from "../../src/engine/backends/cpu/mxfp4.js";
import { softmaxTopKRoutes, topKSoftmaxRoutes } from "../../src/engine/models/moe.js";
import { Checkpoint } from "../../src/engine/weights/safetensors.js";
import { fixtureDir, relativeError } from "./oracle.js";

const b = new CpuBackend();

/** The OCP FP4 (e2m1) code points, written out by hand: sign · 2^(e-1) · (1 + m/2), e = 0 subnormal. */
const E2M1 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

function random(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

function bf16ToF32(bytes: Uint8Array): Float32Array {
  const u16 = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return new Float32Array(Uint32Array.from(u16, (h) => h << 16).buffer);
}

describe("MXFP4", () => {
  it("decodes every nibble, low nibble first, times 2^(scale-127)", () => {
    for (const [scale, factor] of [
      [127, 1],
      [130, 8],
      [120, 2 ** -7],
    ]) {
      // byte j holds nibble 2j mod 16 (low) and 2j+1 mod 16 (high): every code point appears twice in a block
      const blocks = Uint8Array.from({ length: 16 }, (_, j) => ((2 * j) % 16) | (((2 * j + 1) % 16) << 4));
      const out = new Float32Array(32);
      decodeMxfp4Row(blocks, Uint8Array.of(scale), 0, 1, out);
      const expected = Array.from({ length: 32 }, (_, i) => E2M1[i % 16] * factor);
      expect(Array.from(out)).toEqual(expected);
    }
    const out = new Float32Array(32);
    decodeMxfp4Row(Uint8Array.of(0x21, ...new Uint8Array(15)), Uint8Array.of(127), 0, 1, out);
    expect([out[0], out[1]]).toEqual([0.5, 1]);
  });

  it("decodes the fixture's blocks to exactly the bf16 experts ([out, in] blocks vs [in, out] weights)", async () => {
    const q = await Checkpoint.open(fixtureDir("tiny-gpt_oss-mxfp4"));
    const ref = await Checkpoint.open(fixtureDir("tiny-gpt_oss"));
    try {
      for (let layer = 0; layer < 3; layer++)
        for (const proj of ["gate_up_proj", "down_proj"]) {
          const name = `model.layers.${layer}.mlp.experts.${proj}`;
          const blocks = await q.read(`${name}_blocks`);
          const scales = await q.read(`${name}_scales`);
          const [experts, outDim, groups] = q.info(`${name}_scales`).shape;
          const weights = bf16ToF32(await ref.read(name)); // [experts, in, out]
          const inDim = groups * 32;
          expect(ref.info(name).shape).toEqual([experts, inDim, outDim]);
          const row = new Float32Array(inDim);
          let mismatches = 0;
          for (let e = 0; e < experts; e++)
            for (let o = 0; o < outDim; o++) {
              decodeMxfp4Row(blocks, scales, e * outDim + o, groups, row);
              for (let i = 0; i < inDim; i++)
                if (row[i] !== weights[(e * inDim + i) * outDim + o]) mismatches++;
            }
          expect(mismatches, name).toBe(0);
        }
    } finally {
      await q.close();
      await ref.close();
    }
  });

  it("linearMxfp4 equals linear over the decoded weight", () => {
    const outDim = 5;
    const groups = 3;
    const inDim = groups * 32;
    const blocks = Uint8Array.from(random(outDim * groups * 16, 7), (v) => Math.floor((v + 1) * 127.99));
    const scales = Uint8Array.from(random(outDim * groups, 9), (v) => 124 + Math.round(v * 3));
    const dense = new Float32Array(outDim * inDim);
    for (let o = 0; o < outDim; o++) decodeMxfp4Row(blocks, scales, o, groups, dense.subarray(o * inDim));
    const x = b.fromFloat32(random(4 * inDim, 3), [4, inDim]);
    const bias = b.fromFloat32(random(outDim, 5), [outDim]);
    const got = b.linearMxfp4(
      x,
      b.upload(blocks, "u8", [outDim, groups, 16]),
      b.upload(scales, "u8", [outDim, groups]),
      bias,
    );
    const want = b.linear(x, b.fromFloat32(dense, [outDim, inDim]), bias);
    return Promise.all([got.read(), want.read()]).then(([g, w]) =>
      expect(relativeError(g, w)).toBeLessThan(1e-6),
    );
  });
});

describe("expert ops", () => {
  it("matmul with [in, out] weights equals linear with the transpose; subTensor picks one expert", async () => {
    const [experts, inDim, outDim] = [3, 6, 4];
    const stacked = random(experts * inDim * outDim, 11);
    const w = b.fromFloat32(stacked, [experts, inDim, outDim]);
    const x = b.fromFloat32(random(2 * inDim, 13), [2, inDim]);
    for (let e = 0; e < experts; e++) {
      const wt = new Float32Array(outDim * inDim);
      for (let i = 0; i < inDim; i++)
        for (let o = 0; o < outDim; o++) wt[o * inDim + i] = stacked[(e * inDim + i) * outDim + o];
      const one = b.subTensor(w, e);
      expect(one.shape).toEqual([inDim, outDim]);
      const got = await b.matmul(x, one).read();
      const want = await b.linear(x, b.fromFloat32(wt, [outDim, inDim])).read();
      expect(relativeError(got, want)).toBeLessThan(1e-6);
    }
  });

  it("clampedSwiglu: interleaved gate/up, gate clamped above, up on both sides", async () => {
    const gateUp = b.fromFloat32(Float32Array.of(1, 2, 9, -9, -3, 0.5), [1, 6]);
    const got = await b.clampedSwiglu(gateUp, 1.702, 7).read();
    const glu = (g: number) => g / (1 + Math.exp(-1.702 * g));
    const want = [glu(1) * (2 + 1), glu(7) * (-7 + 1), glu(-3) * (0.5 + 1)];
    expect(relativeError(got, want)).toBeLessThan(1e-6);
  });

  it("gatherRows and scatterAddRows route rows to an expert and back, weighted", async () => {
    const x = b.fromFloat32(Float32Array.of(1, 2, 3, 4, 5, 6), [3, 2]);
    const picked = b.gatherRows(x, Int32Array.of(2, 0));
    expect(Array.from(await picked.read())).toEqual([5, 6, 1, 2]);
    const out = b.zeros([3, 2]);
    b.scatterAddRows(out, Int32Array.of(2, 0), picked, Float32Array.of(0.5, 2));
    b.scatterAddRows(out, Int32Array.of(2), b.fromFloat32(Float32Array.of(1, 1), [1, 2]), Float32Array.of(1));
    expect(Array.from(await out.read())).toEqual([2, 4, 0, 0, 3.5, 4]);
  });

  it("routes: gpt-oss softmax over the top-k logits; qwen softmax then top-k, renormalised", () => {
    const logits = Float32Array.of(0.1, 2, -1, 1.5, /* row 1 */ 3, 0, 0.5, -2);
    const gpt = topKSoftmaxRoutes(logits, 4, 2);
    const p = 1 / (1 + Math.exp(1.5 - 2));
    expect(gpt.map((r) => [r.expert, Array.from(r.rows)])).toEqual([
      [0, [1]],
      [1, [0]],
      [2, [1]],
      [3, [0]],
    ]);
    expect(gpt[1].weights[0]).toBeCloseTo(p, 6);
    expect(gpt[3].weights[0]).toBeCloseTo(1 - p, 6);
    const qwen = softmaxTopKRoutes(logits, 4, 2, false);
    const z = Math.exp(0.1) + Math.exp(2) + Math.exp(-1) + Math.exp(1.5);
    expect(qwen[1].weights[0]).toBeCloseTo(Math.exp(2) / z, 6);
    const normed = softmaxTopKRoutes(logits, 4, 2, true);
    expect(normed[1].weights[0]).toBeCloseTo(p, 6);
  });

  it("column ops: per-group slices, concatenation, sigmoid gates, soft-capping", async () => {
    const x = b.fromFloat32(
      Float32Array.from({ length: 12 }, (_, i) => i),
      [2, 6],
    );
    expect(Array.from(await b.sliceColumns(x, 1, 2, 3).read())).toEqual([1, 2, 4, 5, 7, 8, 10, 11]);
    expect(Array.from(await b.sliceColumns(x, 4, 2).read())).toEqual([4, 5, 10, 11]);
    const cat = b.concatColumns([b.sliceColumns(x, 0, 1), b.sliceColumns(x, 5, 1)]);
    expect(Array.from(await cat.read())).toEqual([0, 5, 6, 11]);
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    const gated = await b.sigmoidGate(x, b.fromFloat32(Float32Array.of(0, 2), [2, 1])).read();
    expect(gated[3]).toBeCloseTo(3 * sig(0), 6);
    expect(gated[9]).toBeCloseTo(9 * sig(2), 5);
    const capped = await b.softcap(b.fromFloat32(Float32Array.of(100, -1), [1, 2]), 30).read();
    expect(capped[0]).toBeCloseTo(30 * Math.tanh(100 / 30), 4);
    expect(capped[1]).toBeCloseTo(30 * Math.tanh(-1 / 30), 6);
  });
});
