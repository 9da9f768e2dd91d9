/** Layers streamed from host memory or disk onto the WebGPU backend (the offload engine's residency). */
import { describe, expect, it } from "vitest";
import { WebGpuBackend } from "../../src/engine/backends/webgpu/webgpu-backend.js";
import { ResidentKvStore } from "../../src/engine/kv/kv-store.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import type { Residency } from "../../src/engine/residency/policy.js";
import { LayeredWeightStore } from "../../src/engine/residency/streaming-store.js";
import { Sequence } from "../../src/engine/sequence.js";
import { Checkpoint } from "../../src/engine/weights/safetensors.js";
import { fixtureDir } from "../engine/oracle.js";
import { encode, gpuOrSkip, random, relErr } from "./gpu-setup.js";

const probe = await gpuOrSkip();
await probe?.close();
const run = probe ? describe : describe.skip;

/** Prompt logits and three greedy decode steps' logits. */
async function logitsOf(model: Model, ids: number[]): Promise<Float32Array[]> {
  const seq = model.newSequence();
  try {
    return await logitsOfSequence(seq, ids);
  } finally {
    seq.dispose();
  }
}

async function logitsOfSequence(seq: Sequence, ids: number[]): Promise<Float32Array[]> {
  const out = [await (await seq.forward(ids, { logits: "last" })).read()];
  for (let i = 0; i < 3; i++) {
    const row = out[out.length - 1];
    const next = row.indexOf(Math.max(...row));
    out.push(await (await seq.forward([next], { logits: "last" })).read());
  }
  return out;
}

run("streamed layers on WebGPU", () => {
  const ids = [1, 5, 9, 23, 44, 7, 3, 99];

  it.each([
    ["tiny-llama", ["disk", "host", "device"]],
    ["tiny-llama", ["disk", "disk", "disk"]],
    ["tiny-gpt_oss", ["disk", "host", "disk"]],
  ] as const)("%s with residency %j gives the resident model's logits", async (name, residency) => {
    const resident = await loadModel(fixtureDir(name), { backend: "webgpu" });
    const streamed = await loadModel(fixtureDir(name), { backend: "webgpu", residency: [...residency] });
    try {
      const want = await logitsOf(resident, ids);
      const got = await logitsOf(streamed, ids);
      for (let i = 0; i < want.length; i++) expect(relErr(got[i], want[i])).toBeLessThan(1e-5);
      expect(streamed.streamingStats()?.layerLoads).toBeGreaterThan(0);
    } finally {
      await resident.close();
      await streamed.close();
    }
  });
});

run("host buffers on WebGPU", () => {
  it("copyFromHost lands in order with the ops, across chunks, and a buffer is refilled after map()", async () => {
    const gpu = await WebGpuBackend.create({ hostChunkBytes: 256 });
    try {
      const n = 300; // 1200 bytes: five chunks of 256
      const a = random(n, 1);
      const b = random(n, 2);
      const t = gpu.upload(encode(a, "f32"), "f32", [n]);
      const host = gpu.hostBuffer(n * 4 + 8);
      const fill = (values: Float32Array) => {
        let at = 0;
        const bytes = encode(values, "f32");
        for (const v of host.views(8, n * 4)) {
          v.set(bytes.subarray(at, at + v.byteLength));
          at += v.byteLength;
        }
      };
      fill(b);
      expect(() => gpu.copyFromHost(t, host, 8)).toThrow(/seal/);
      host.seal();
      expect(() => host.views(0, 4)).toThrow(/sealed/);
      const before = gpu.scale(t, 2);
      gpu.copyFromHost(t, host, 8);
      const after = gpu.scale(t, 2);
      expect(
        relErr(
          await before.read(),
          a.map((v) => 2 * v),
        ),
      ).toBe(0);
      expect(
        relErr(
          await after.read(),
          b.map((v) => 2 * v),
        ),
      ).toBe(0);
      await host.map();
      fill(a);
      host.seal();
      gpu.copyFromHost(t, host, 8);
      expect(relErr(await t.read(), a)).toBe(0);
      host.dispose();
    } finally {
      await gpu.close();
    }
  });

  it("close() waits for the prefetched layer's read into a host buffer before freeing it", async () => {
    const resident = await loadModel(fixtureDir("tiny-llama"), { backend: "webgpu" });
    const gpu = await WebGpuBackend.create();
    const ckpt = await Checkpoint.open(fixtureDir("tiny-llama"));
    try {
      const store = await LayeredWeightStore.load(ckpt, gpu, resident.lm, {
        residency: ["disk", "disk", "disk"],
      });
      await store.layer(0); // reads layer 0, then starts reading layer 1 into the other host buffer
      store.release(0);
      await store.close();
      expect(store.stats().layerLoads).toBe(2);
    } finally {
      await ckpt.close();
      await gpu.close();
      await resident.close();
    }
  });

  it.each([[["host", "host", "host"]], [["disk", "disk", "host"]]] as Residency[][][])(
    "streamed layers read across host buffer chunks (%j) give the resident logits",
    async (residency) => {
      const ids = [1, 5, 9, 23, 44, 7, 3, 99];
      const resident = await loadModel(fixtureDir("tiny-llama"), { backend: "webgpu" });
      const gpu = await WebGpuBackend.create({ hostChunkBytes: 1 << 12 });
      const ckpt = await Checkpoint.open(fixtureDir("tiny-llama"));
      const store = await LayeredWeightStore.load(ckpt, gpu, resident.lm, { residency });
      const specs = Array.from({ length: resident.lm.numLayers }, (_, i) => resident.lm.kvSpec(i));
      const seq = new Sequence(gpu, resident.lm, store, new ResidentKvStore(gpu, specs));
      try {
        const want = await logitsOf(resident, ids);
        const got = await logitsOfSequence(seq, ids);
        for (let i = 0; i < want.length; i++) expect(relErr(got[i], want[i])).toBeLessThan(1e-5);
        // Disk layers go through the two host buffers; host layers are never read again.
        const disk = residency.filter((r) => r === "disk").length;
        expect(store.bufferBytes.staging > 0).toBe(disk > 0);
        // Four forwards (prompt and three decode steps) run each disk layer once, plus a prefetch ahead.
        if (disk) expect(store.stats().layerLoads).toBeGreaterThanOrEqual(4 * disk);
        else expect(store.stats().layerLoads).toBe(0);
      } finally {
        seq.dispose();
        await store.close();
        await ckpt.close();
        await gpu.close();
        await resident.close();
      }
    },
  );
});
