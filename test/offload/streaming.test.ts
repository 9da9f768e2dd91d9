import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel, type LoadModelOptions, type Model } from "../../src/engine/model.js";
import type { Residency } from "../../src/engine/residency/policy.js";
import { EXPERT_TENSOR } from "../../src/engine/residency/streaming-store.js";
import { Checkpoint } from "../../src/engine/weights/safetensors.js";
import { fixtureDir, readGolden } from "../engine/oracle.js";
import { maxRelativeError, runWith, type Script, scriptFor, WEIGHT_FIXTURES } from "./helpers.js";

/** Bytes of each layer read with the layer, and of one expert of it (stacked [experts, …] or per-expert tensors). */
async function layerBytes(name: string, numLayers: number): Promise<{ unit: number[]; perExpert: number[] }> {
  const model = await loadModel(fixtureDir(name), { backend: "cpu" });
  const ckpt = await Checkpoint.open(fixtureDir(name));
  try {
    const unit = Array(numLayers).fill(0);
    const perExpert = Array(numLayers).fill(0);
    for (let l = 0; l < numLayers; l++) {
      const prefix = model.lm.layerPrefix(l);
      const indices = new Set<string>();
      let unstacked = 0;
      for (const n of ckpt.names()) {
        if (!n.startsWith(prefix)) continue;
        const rel = n.slice(prefix.length);
        const info = ckpt.info(n);
        const e = /experts\.(\d+)\./.exec(rel);
        if (e) {
          indices.add(e[1]);
          unstacked += info.byteLength;
        } else if (EXPERT_TENSOR.test(rel)) perExpert[l] += info.byteLength / info.shape[0];
        else unit[l] += info.byteLength;
      }
      if (indices.size) perExpert[l] += unstacked / indices.size;
    }
    return { unit, perExpert };
  } finally {
    await ckpt.close();
    await model.close();
  }
}

async function withModel<T>(
  name: string,
  options: LoadModelOptions,
  f: (m: Model) => Promise<T>,
): Promise<T> {
  const model = await loadModel(fixtureDir(name), { backend: "cpu", ...options });
  try {
    return await f(model);
  } finally {
    await model.close();
  }
}

describe.each(WEIGHT_FIXTURES)("%s: weight residency", (name) => {
  let script: Script;
  let resident: Float32Array[];
  let L: number;
  beforeAll(async () => {
    await withModel(name, {}, async (m) => {
      L = m.lm.numLayers;
      script = await scriptFor(m, name, 4);
      resident = await runWith(m, script);
    });
  });

  const placements: [string, (n: number) => Residency[], Partial<LoadModelOptions>][] = [
    ["every layer from disk", (n) => Array(n).fill("disk"), {}],
    ["every layer from disk, no prefetch", (n) => Array(n).fill("disk"), { prefetchWeights: false }],
    [
      "alternating host / disk, expert LRU",
      (n) => Array.from({ length: n }, (_, i) => (i % 2 ? "disk" : "host")),
      { expertCacheBytes: 1 << 20 },
    ],
    [
      "first layer on the device, rest from disk, tiny LRU",
      (n) => Array.from({ length: n }, (_, i) => (i === 0 ? "device" : "disk")),
      { expertCacheBytes: 4096 },
    ],
  ];

  it.each(placements)("%s: identical logits, layer-major and token-major", async (_, residency, extra) => {
    await withModel(name, { residency: residency(L), ...extra }, async (m) => {
      expect(maxRelativeError(await runWith(m, script), resident)).toBe(0);
      expect(maxRelativeError(await runWith(m, { ...script, order: "token-major" }), resident)).toBe(0);
    });
  });

  it("through the staging buffer (as on a GPU) and with reference kernels (uploads alias it): identical logits", async () => {
    const { LayeredWeightStore } = await import("../../src/engine/residency/streaming-store.js");
    const { CpuBackend } = await import("../../src/engine/backends/cpu/cpu-backend.js");
    const { Sequence } = await import("../../src/engine/sequence.js");
    const { ResidentKvStore } = await import("../../src/engine/kv/kv-store.js");
    const { runScript } = await import("./helpers.js");
    for (const kernels of ["wasm", "reference"] as const) {
      await withModel(name, {}, async (m) => {
        const ckpt = await Checkpoint.open(fixtureDir(name));
        const backend = new CpuBackend({ kernels });
        const store = await LayeredWeightStore.load(ckpt, backend, m.lm, {
          residency: Array(L).fill("disk"),
          readInPlace: false,
        });
        expect(store.bufferBytes.staging).toBeGreaterThan(0);
        const specs = Array.from({ length: L }, (_, i) => m.lm.kvSpec(i));
        const seq = new Sequence(backend, m.lm, store, new ResidentKvStore(backend, specs));
        const got = await runScript(seq, script);
        expect(maxRelativeError(got, resident), kernels).toBeLessThan(kernels === "wasm" ? 1e-30 : 1e-5);
        seq.dispose();
        store.dispose();
        await ckpt.close();
      });
    }
  });

  it("reference kernels (tensors are plain arrays, read in place) give identical logits", async () => {
    const saved = process.env.OLLM_CPU_KERNELS;
    process.env.OLLM_CPU_KERNELS = "reference";
    try {
      await withModel(name, {}, async (m) => {
        const ref = await runWith(m, script);
        await withModel(name, { residency: Array(L).fill("disk") }, async (s) => {
          expect(maxRelativeError(await runWith(s, script), ref)).toBe(0);
        });
      });
    } finally {
      if (saved === undefined) delete process.env.OLLM_CPU_KERNELS;
      else process.env.OLLM_CPU_KERNELS = saved;
    }
  });

  it("prefill: layer-major reads each streamed layer once, token-major once per chunk; decode once per token", async () => {
    const { unit } = await layerBytes(name, L);
    const total = unit.reduce((a, b) => a + b, 0);
    const chunks = Math.ceil(script.prompt.length / script.chunkTokens);
    await withModel(name, { residency: Array(L).fill("disk"), prefetchWeights: false }, async (m) => {
      const seq = m.newSequence();
      await seq.forward(script.prompt, { logits: "last", chunkTokens: script.chunkTokens });
      expect(m.streamingStats()!.layerBytesRead).toBe(total);
      expect(m.streamingStats()!.layerLoads).toBe(L);
      await seq.forward([script.decode[0]], { logits: "last" });
      await seq.forward([script.decode[1]], { logits: "last" });
      expect(m.streamingStats()!.layerBytesRead).toBe(3 * total);
      await seq.forward(script.prompt, {
        logits: "last",
        chunkTokens: script.chunkTokens,
        order: "token-major",
      });
      expect(m.streamingStats()!.layerBytesRead).toBe((3 + chunks) * total);
      seq.dispose();
    });
  });
});

describe("MoE experts stream per router pick", () => {
  it.each([
    ["tiny-gpt_oss", 2, 4],
    ["tiny-gpt_oss-mxfp4", 2, 4],
    ["tiny-qwen3_next", 2, 4],
  ] as const)(
    "%s: a decode step reads exactly top-k experts per layer; the LRU serves repeats",
    async (name, k, experts) => {
      const { golden } = readGolden(name);
      const L = await withModel(name, {}, async (m) => m.lm.numLayers);
      const { perExpert } = await layerBytes(name, L);
      const moeLayers = perExpert.filter((b) => b > 0).length;
      expect(moeLayers).toBeGreaterThan(0);
      const step = perExpert.reduce((a, b) => a + b, 0) * k;
      await withModel(name, { residency: Array(L).fill("disk"), prefetchWeights: false }, async (m) => {
        const seq = m.newSequence();
        await seq.forward(golden.prompt_ids.slice(0, 1), { logits: "last" });
        let s = m.streamingStats()!;
        expect(s.expertBytesRead).toBe(step);
        // A 12-token chunk: the union of its picks, each expert read once, never more than all of them.
        await seq.forward(golden.prompt_ids.slice(1, 13), { logits: "last" });
        const chunk = m.streamingStats()!.expertBytesRead - s.expertBytesRead;
        expect(chunk).toBeGreaterThanOrEqual(step);
        expect(chunk).toBeLessThanOrEqual((step / k) * experts);
        expect(chunk % (step / k / moeLayers)).toBe(0);
        s = m.streamingStats()!;
        expect(s.experts.hits).toBe(0);
        seq.dispose();
      });
      await withModel(name, { residency: Array(L).fill("disk"), expertCacheBytes: 1 << 24 }, async (m) => {
        const ids = golden.prompt_ids.slice(0, 6);
        const first = m.newSequence();
        await first.forward(ids, { logits: "last" });
        const read = m.streamingStats()!.expertBytesRead;
        first.dispose();
        const again = m.newSequence();
        await again.forward(ids, { logits: "last" });
        const s = m.streamingStats()!;
        expect(s.expertBytesRead).toBe(read);
        expect(s.experts.hits).toBeGreaterThan(0);
        again.dispose();
      });
    },
  );
});

describe("residency option", () => {
  it("must name every layer", async () => {
    await expect(
      loadModel(fixtureDir("tiny-llama"), { backend: "cpu", residency: ["disk"] }),
    ).rejects.toThrow(/names 1 layers, but the model has 3/);
  });

  it("host layers on a GPU-like backend stay in host RAM and are uploaded per use", async () => {
    const { LayeredWeightStore } = await import("../../src/engine/residency/streaming-store.js");
    const { CpuBackend } = await import("../../src/engine/backends/cpu/cpu-backend.js");
    const name = "tiny-gpt_oss";
    await withModel(name, {}, async (m) => {
      const script = await scriptFor(m, name, 2);
      const want = await runWith(m, script);
      const ckpt = await Checkpoint.open(fixtureDir(name));
      const backend = new CpuBackend();
      const store = await LayeredWeightStore.load(ckpt, backend, m.lm, {
        residency: ["host", "disk", "host"],
        hostIsDevice: false,
      });
      const { Sequence } = await import("../../src/engine/sequence.js");
      const { ResidentKvStore } = await import("../../src/engine/kv/kv-store.js");
      const specs = Array.from({ length: m.lm.numLayers }, (_, i) => m.lm.kvSpec(i));
      const seq = new Sequence(backend, m.lm, store, new ResidentKvStore(backend, specs));
      const { runScript } = await import("./helpers.js");
      expect(maxRelativeError(await runScript(seq, script), want)).toBe(0);
      expect(store.residency).toEqual(["host", "disk", "host"]);
      // Only the disk layer is read after load.
      const { unit } = await layerBytes(name, 3);
      expect(store.stats().layerBytesRead % unit[1]).toBe(0);
      seq.dispose();
      store.dispose();
      await ckpt.close();
    });
  });
});

afterAll(() => undefined);
