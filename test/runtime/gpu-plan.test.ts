/**
 * gpu-plan.ts copies predictKvBytes's terms (to split a KV prediction into its GPU and host parts): these
 * tests pin the copy against the engine, so a change on the engine's side fails here instead of drifting
 * silently; and they check the WebGPU backend's own memory it adds.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KV_STRATEGIES, type KvStrategy, predictKvBytes } from "../../src/engine/kv/strategies.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import type { KvSelection } from "../../src/engine/residency/index.js";
import { backendGpuBytes, kvGpuBytes } from "../../src/runtime/gpu-plan.js";
import { fixture, removeDir, tempDir } from "./helpers.js";

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const TIERED: readonly KvStrategy[] = [
  "quantized-cold-tier",
  "streamed-segmented",
  "log-structured-journal",
  "tiered-write-back",
];

interface Case {
  tokens: number;
  kvBytesPerToken: number;
  numKvLayers: number;
  blockTokens: number;
  hotBlocks: number;
  chunkTokens: number;
}

/** A KV selection as the planner makes one: predictKvBytes with the selection's parameters. */
function selection(strategy: KvStrategy, c: Case): KvSelection {
  const hotBlocks = strategy === "quantized-cold-tier" || strategy === "tiered-write-back" ? c.hotBlocks : 0;
  const windowTokens = strategy === "sliding-window-ring-buffer" ? Math.ceil(c.tokens / 2) : undefined;
  return {
    strategy,
    blockTokens: c.blockTokens,
    hotBlocks,
    windowTokens,
    prefillChunkTokens: c.chunkTokens,
    predicted: predictKvBytes(strategy, { ...c, hotBlocks, windowTokens }),
    reason: "test",
  };
}

function* cases(): Generator<Case> {
  for (const tokens of [1, 100, 1000, 4096, 5000, 131072])
    for (const blockTokens of [16, 64, 256])
      for (const chunkTokens of [16, 512, 2048])
        for (const [numKvLayers, kvBytesPerToken] of [
          [3, 768],
          [32, 131072],
          [26, 26 * 2 * 2 * 96 * 4], // per-layer bytes that are not a power of 2
        ])
          for (const hotBlocks of [0, 1, 8])
            yield { tokens, kvBytesPerToken, numKvLayers, blockTokens, hotBlocks, chunkTokens };
}

describe("kvGpuBytes against predictKvBytes", () => {
  it("covers every KV strategy of the engine", () => {
    expect(new Set(KV_STRATEGIES)).toEqual(
      new Set(["resident", "chunked", "paged", "sliding-window-ring-buffer", ...TIERED]),
    );
  });

  it("splits every strategy's prediction into a GPU part and a host part that add up to it", () => {
    let checked = 0;
    for (const c of cases())
      for (const strategy of KV_STRATEGIES) {
        const kv = selection(strategy, c);
        const memory = Math.ceil(kv.predicted.memoryBytes);
        const gpu = kvGpuBytes(kv, c.tokens, c.kvBytesPerToken, c.numKvLayers);
        const host = memory - gpu;
        const at = `${strategy} ${JSON.stringify(c)}`;
        expect(gpu, at).toBeGreaterThan(0);
        expect(host, at).toBeGreaterThanOrEqual(0);
        expect(gpu + host, at).toBe(memory);
        if (!TIERED.includes(strategy)) {
          // Every row in backend tensors.
          expect(host, at).toBe(0);
          continue;
        }
        // The tiered stores: one layer's gather buffer on the GPU with the hot blocks; the disk tiers read
        // cold blocks into two host buffers of that size, the int8 tier keeps its blocks and one such
        // buffer on the host. Each term comes from predictKvBytes itself: the gather buffer is what paged
        // holds besides its blocks (chunked), and the GPU part is that of tiered-write-back with the same
        // hot blocks (hot + 3 gathers) less its two read buffers.
        const p = (s: KvStrategy, hotBlocks = kv.hotBlocks) =>
          predictKvBytes(s, { ...c, hotBlocks }).memoryBytes;
        const gather = p("paged") - p("chunked");
        const want = p("tiered-write-back") - 2 * gather;
        expect(Math.abs(gpu - want), at).toBeLessThanOrEqual(1);
        if (strategy !== "quantized-cold-tier")
          expect(Math.abs(host - 2 * gather), at).toBeLessThanOrEqual(1);
        checked++;
      }
    expect(checked).toBeGreaterThan(1000);
  });

  describe("the stores' measured memory, by where it is (cpu backend, tiny-llama)", () => {
    let model: Model;
    let dir: string;
    beforeAll(async () => {
      model = await loadModel(fixture("tiny-llama"), { backend: "cpu" });
      dir = await tempDir();
    });
    afterAll(async () => {
      await model?.close();
      await removeDir(dir);
    });

    /** After a prompt in chunks and three decode steps: the store's bytes by where they are, and the split. */
    async function measure(strategy: KvStrategy, c: Case) {
      const kv = selection(strategy, c);
      const seq = model.newSequence({
        strategy,
        blockTokens: c.blockTokens,
        hotBlocks: kv.hotBlocks,
        windowTokens: kv.windowTokens,
        cacheDir: dir,
      });
      try {
        const ids = Array.from({ length: c.tokens - 3 }, (_, i) => (i * 7) % 1000);
        await (await seq.forward(ids, { logits: "last", chunkTokens: c.chunkTokens })).read();
        for (let i = 0; i < 3; i++) await (await seq.forward([5], { logits: "last" })).read();
        const gpu = kvGpuBytes(kv, c.tokens, c.kvBytesPerToken, c.numKvLayers);
        return { usage: seq.kvStore.usage(), gpu, host: Math.ceil(kv.predicted.memoryBytes) - gpu };
      } finally {
        seq.dispose();
      }
    }
    // tiny-llama: 3 layers · (k, v) · 2 kv heads · 16 wide · f32.
    const tiny = { tokens: 150, kvBytesPerToken: 768, numKvLayers: 3, blockTokens: 16, hotBlocks: 2 };

    it("backend tensors within kvGpuBytes, host buffers within the rest (prefill chunks of a block)", async () => {
      for (const strategy of KV_STRATEGIES) {
        const { usage, gpu, host } = await measure(strategy, { ...tiny, chunkTokens: 16 });
        expect(usage.deviceBytes, strategy).toBeGreaterThan(0);
        expect(usage.deviceBytes, strategy).toBeLessThanOrEqual(gpu);
        expect(usage.hostBytes, strategy).toBeLessThanOrEqual(host);
        if (TIERED.includes(strategy)) expect(usage.hostBytes, strategy).toBeGreaterThan(0);
      }
    });

    // A tiered store's hot buffers grow to hold the rows kept plus a whole prefill chunk before eviction,
    // which predictKvBytes counts (tieredHotRows): chunks longer than a block stay within the prediction.
    it("chunks longer than a block stay within the predicted tiered hot buffers", async () => {
      for (const strategy of TIERED) {
        const { usage, gpu } = await measure(strategy, { ...tiny, chunkTokens: 48 });
        expect(usage.deviceBytes, strategy).toBeLessThanOrEqual(gpu);
      }
    });
  });
});

describe("the WebGPU backend's own memory", () => {
  it("counts the staging ring, a page per heap, the arena and the pool (up to its keep limit)", () => {
    expect(backendGpuBytes(0, 0)).toBe(128 * MiB + 2 * 128 * MiB + 4 * MiB);
    expect(backendGpuBytes(10 * MiB, 5 * MiB)).toBe(backendGpuBytes(0, 0) + 15 * MiB);
    expect(backendGpuBytes(2 * GiB, 300 * MiB)).toBe(backendGpuBytes(0, 0) + GiB);
  });
});
