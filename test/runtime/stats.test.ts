/** --stats of a reply: what weight streaming and a disk KV cache did during that reply; the expert LRU. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RuntimeClient } from "../../src/client.js";
import type { RuntimeConfigInput } from "../../src/config/runtime-config.js";
import { OllmError } from "../../src/errors.js";
import { engineOptions } from "../../src/runtime/loader.js";
import { fixture, removeDir, tempDir } from "./helpers.js";

const MiB = 2 ** 20;
const gen = { maxNewTokens: 6, temperature: 0 };

describe("reply stats", () => {
  const client = new RuntimeClient();
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir();
  });
  afterAll(async () => {
    await client.close();
    await removeDir(dir);
  });

  it("a streamed run reports its layer loads and bytes, counted per reply", async () => {
    const config = {
      modelReference: fixture("tiny-llama"),
      offloadCpuLayers: 1,
      kvCacheStrategy: "resident",
      contextTokens: 256,
      stats: true,
    } as const;
    const { plan } = await client.describePlan(config);
    const streamed = plan.layers.filter((l) => l.residency === "disk");
    expect(streamed).toHaveLength(2);
    const session = client.session({ runtimeConfig: config, generationConfig: gen });
    for (const text of ["Hello there", "And again"]) {
      const r = await session.prompt(text);
      const s = r.stats?.streaming;
      expect(s, text).toBeDefined();
      if (!s) return;
      // Each forward pass (the prefill, then one per generated token but the last) loads every streamed
      // layer once; a prefetch that finishes after the reply counts in the next one.
      const passes = r.usage.completionTokens;
      expect(Math.abs(s.layerLoads - streamed.length * passes), text).toBeLessThanOrEqual(1);
      expect(s.layerBytesRead).toBe(s.layerLoads * streamed[0].bytes);
      expect(s.bytesRead).toBe(s.layerBytesRead);
      expect(s.expertBytesRead).toBe(0);
      expect(s.readMs).toBeGreaterThan(0);
      expect(s.waitMs).toBeGreaterThanOrEqual(0);
      expect(s.overlap).toBeGreaterThanOrEqual(0);
      expect(s.overlap).toBeLessThanOrEqual(1);
      expect(s.expertCache).toEqual({ hits: 0, misses: 0, evictions: 0, bytes: 0 });
      expect(r.stats?.kv).toBeUndefined();
    }
    session.close();
    // Without stats, and without streaming, there is no streaming section.
    const quiet = await client.prompt("Hi", {
      runtimeConfig: { ...config, stats: false },
      generationConfig: gen,
    });
    expect(quiet.stats).toBeUndefined();
    const resident = await client.prompt("Hi", {
      runtimeConfig: { ...config, offloadCpuLayers: 0 },
      generationConfig: gen,
    });
    expect(resident.stats?.streaming).toBeUndefined();
    await client.unload(config);
  });

  it("a disk KV cache reports what it wrote and read during the reply, and what it holds", async () => {
    const config = {
      modelReference: fixture("tiny-llama"),
      kvCacheStrategy: "streamed-segmented",
      cacheDir: dir,
      contextTokens: 256,
      stats: true,
    } as const;
    const { plan } = await client.describePlan(config);
    const session = client.session({ runtimeConfig: config, generationConfig: gen });
    const layers = plan.layers.length;
    const B = plan.kvCache.blockTokens;
    let blockBytes = 0;
    for (const text of ["Tell me about the sea, the waves and the wind over the water.", "And the sky?"]) {
      const r = await session.prompt(text);
      const kv = r.stats?.kv;
      expect(r.stats?.streaming).toBeUndefined();
      expect(kv, text).toBeDefined();
      if (!kv) return;
      // No hot blocks: every block filled during this reply went to disk (the last token is not fed back).
      const held = r.usage.promptTokens + r.usage.completionTokens - 1;
      const filled = Math.floor(held / B) - Math.floor(r.usage.cachedPromptTokens / B);
      expect(kv.blocksEvicted, text).toBe(filled * layers);
      expect(kv.blocksEvicted).toBeGreaterThan(0);
      blockBytes ||= kv.bytesWritten / kv.blocksEvicted;
      expect(kv.bytesWritten).toBe(kv.blocksEvicted * blockBytes);
      // Attention read the cold blocks back; the cache holds its blocks on disk, the newest rows in memory.
      expect(kv.bytesRead).toBeGreaterThan(0);
      expect(kv.diskBytes).toBe(Math.floor(held / B) * layers * blockBytes);
      expect(kv.deviceBytes).toBeGreaterThan(0);
    }
    session.close();
    await client.unload(config);
  });
});

describe("expert cache", () => {
  const client = new RuntimeClient();
  afterAll(() => client.close());
  const moe = {
    modelReference: fixture("tiny-gpt_oss"),
    offloadCpuLayers: 1,
    kvCacheStrategy: "resident",
    contextTokens: 256,
    stats: true,
  } as const;

  it("counts against host memory in the plan and reaches the loader, only when MoE layers stream", async () => {
    const off = (await client.describePlan(moe)).plan;
    const on = (await client.describePlan({ ...moe, expertCacheSize: "1MiB" })).plan;
    expect(off.memory.expertCacheBytes).toBe(0);
    expect(off.reasons.some((r) => r.subject === "expertCache")).toBe(false);
    expect(on.memory.expertCacheBytes).toBe(MiB);
    expect(on.memory.predictedPeak.host.expertCache).toBe(MiB);
    expect(on.memory.predictedPeak.host.total).toBe(off.memory.predictedPeak.host.total + MiB);
    expect(on.memory.predictedPeak.host.weights).toBe(off.memory.predictedPeak.host.weights);
    expect(on.reasons.find((r) => r.subject === "expertCache")?.decision).toBe("1.00 MiB");
    expect(engineOptions(on).expertCacheBytes).toBe(MiB);
    expect(engineOptions(off).expertCacheBytes).toBe(0);

    // A share of the machine's memory; nothing to cache when every layer is resident or there are no experts.
    const share = (await client.describePlan({ ...moe, expertCacheSize: "1%" })).plan;
    expect(share.memory.expertCacheBytes).toBeGreaterThan(0);
    const resident = (await client.describePlan({ ...moe, offloadCpuLayers: 0, expertCacheSize: "1MiB" }))
      .plan;
    expect(resident.memory.expertCacheBytes).toBe(0);
    expect(resident.reasons.find((r) => r.subject === "expertCache")?.reason).toMatch(
      /every expert is resident/,
    );
    const dense = (
      await client.describePlan({ ...moe, modelReference: fixture("tiny-llama"), expertCacheSize: "1MiB" })
    ).plan;
    expect(dense.memory.expertCacheBytes).toBe(0);
    expect(dense.reasons.find((r) => r.subject === "expertCache")?.reason).toMatch(/no mixture-of-experts/);

    // A cache that does not fit the host budget is refused, naming it.
    const budget = off.memory.predictedPeak.host.total + MiB - 1;
    const tight: RuntimeConfigInput = { ...moe, hostMemoryBudget: budget, expertCacheSize: "1MiB" };
    await expect(client.describePlan({ ...tight, expertCacheSize: 0 })).resolves.toBeDefined();
    const error = await client.describePlan(tight).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OllmError);
    expect((error as OllmError).code).toBe("OUT_OF_MEMORY_BUDGET");
    expect((error as OllmError).message).toMatch(/expert cache of 1\.00 MiB .* does not fit/);
    expect((error as OllmError).hint).toMatch(/expertCacheSize/);
  });

  it("a streamed MoE model with a cache hits it on the next reply; without one it never does", async () => {
    const run = async (config: RuntimeConfigInput) => {
      const replies = [];
      for (let i = 0; i < 2; i++)
        replies.push(
          (await client.prompt("Hello there", { runtimeConfig: config, generationConfig: gen })).stats,
        );
      await client.unload(config);
      return replies.map((s) => s?.streaming);
    };
    const [a1, a2] = await run({ ...moe, expertCacheSize: "1MiB" });
    expect(a1?.expertBytesRead).toBeGreaterThan(0);
    expect(a2?.expertCache.hits).toBeGreaterThan(0);
    // The same reply again: every routed expert is still cached, none is read from disk.
    expect(a2?.expertCache.misses).toBe(0);
    expect(a2?.expertBytesRead).toBe(0);
    expect(a2?.expertCache.bytes).toBeGreaterThan(0);
    expect(a2?.expertCache.bytes).toBeLessThanOrEqual(MiB);
    const [b1, b2] = await run(moe);
    for (const s of [b1, b2]) {
      expect(s?.expertCache.hits).toBe(0);
      expect(s?.expertCache.misses).toBeGreaterThan(0);
      expect(s?.expertBytesRead).toBeGreaterThan(0);
    }
    // Per reply: the second reply reads as much as the first, not the sum of both.
    expect(b2?.expertBytesRead).toBe(b1?.expertBytesRead);
  });
});
