import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type KvCacheOptions, predictKvBytes } from "../../src/engine/kv/strategies.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import { argmax, fixtureDir } from "../engine/oracle.js";
import {
  KV_FIXTURES,
  maxRelativeError,
  runScript,
  runWith,
  type Script,
  scriptFor,
  tempDir,
} from "./helpers.js";

/**
 * Measured bound of the int8 cold tier: max |Δlogit| / max |logit| over a 160-token prompt and 6 decode steps,
 * blocks of 16 rows, 1 hot block (so ~80% of the history attention reads is int8). Measured 4.1e-4 (gemma3)
 * … 6.3e-3 (mistral) on the fixtures.
 */
const INT8_BOUND = 1e-2;

const dir = tempDir("ollm-kv-test-");
afterAll(() => dir.remove());

const EXACT: [string, KvCacheOptions][] = [
  ["chunked", { strategy: "chunked", blockTokens: 16 }],
  ["paged", { strategy: "paged", blockTokens: 16 }],
  [
    "sliding-window-ring-buffer (window ≥ context)",
    { strategy: "sliding-window-ring-buffer", windowTokens: 200 },
  ],
  ["streamed-segmented", { strategy: "streamed-segmented", blockTokens: 16, cacheDir: dir.path }],
  ["log-structured-journal", { strategy: "log-structured-journal", blockTokens: 16, cacheDir: dir.path }],
  ["tiered-write-back", { strategy: "tiered-write-back", blockTokens: 16, hotBlocks: 2, cacheDir: dir.path }],
  [
    "streamed-segmented without prefetch",
    { strategy: "streamed-segmented", blockTokens: 16, prefetch: false, cacheDir: dir.path },
  ],
];

describe.each(KV_FIXTURES)("%s: KV strategies give the resident logits", (name) => {
  let model: Model;
  let script: Script;
  let resident: Float32Array[];
  beforeAll(async () => {
    model = await loadModel(fixtureDir(name), { backend: "cpu" });
    script = await scriptFor(model, name);
    resident = await runWith(model, script, { strategy: "resident" });
  });
  afterAll(() => model.close());

  it.each(EXACT)("%s: identical logits", async (_, kv) => {
    const err = maxRelativeError(await runWith(model, script, kv), resident);
    expect(err).toBe(0);
  });

  it("quantized-cold-tier: within the measured int8 bound, same greedy ids", async () => {
    const got = await runWith(model, script, {
      strategy: "quantized-cold-tier",
      blockTokens: 16,
      hotBlocks: 1,
    });
    const err = maxRelativeError(got, resident);
    console.log(`${name}: int8 cold tier max relative logit error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(INT8_BOUND);
    expect(err).toBeGreaterThan(0);
    expect(got.map(argmax)).toEqual(resident.map(argmax));
  });

  it("layer-major prefill gives the token-major logits with every strategy", async () => {
    for (const [label, kv] of [
      ...EXACT,
      ["quantized-cold-tier", { strategy: "quantized-cold-tier", blockTokens: 16 }] as const,
    ]) {
      const tm = await runWith(model, { ...script, order: "token-major" }, kv);
      const lm = await runWith(model, { ...script, order: "layer-major" }, kv);
      expect(maxRelativeError(lm, tm), label).toBe(0);
    }
  });
});

describe("sliding-window ring buffer", () => {
  it("matches resident KV on a sliding-window model with the model's window, while it wraps", async () => {
    const model = await loadModel(fixtureDir("tiny-mistral"), { backend: "cpu" });
    try {
      const script = await scriptFor(model, "tiny-mistral");
      const resident = await runWith(model, script, { strategy: "resident" });
      // mistral's sliding_window is 32; the prompt (160) and decode wrap the ring several times.
      for (const chunkTokens of [48, 7, 1]) {
        const got = await runWith(
          model,
          { ...script, chunkTokens },
          { strategy: "sliding-window-ring-buffer", windowTokens: 32 },
        );
        // Same keys, same masks; only the chunk sizes differ, and the CPU GEMM's summation order depends on
        // how many rows one call has (row kernels below ~10 rows, panel kernel above), so f32 rounding may.
        expect(maxRelativeError(got, resident)).toBeLessThanOrEqual(1e-5);
      }
      const seq = model.newSequence({ strategy: "sliding-window-ring-buffer", windowTokens: 32 });
      await runScript(seq, script);
      // Bounded: two mirrored copies of (window + the largest chunk − 1) rows per layer, not the 166 tokens.
      const usage = seq.kvStore.usage().deviceBytes;
      expect(usage).toBeLessThanOrEqual(3 * 2 * 2 * (32 + 64 + 48) * 32 * 4);
      seq.dispose();
    } finally {
      await model.close();
    }
  });

  it("on full-attention layers equals attention limited to the window (lossy, bounded memory)", async () => {
    for (const name of ["tiny-llama", "tiny-gemma3", "tiny-gpt_oss", "tiny-qwen3_next"]) {
      const model = await loadModel(fixtureDir(name), { backend: "cpu" });
      try {
        const script = await scriptFor(model, name);
        const windowed = await runWith(model, script, { strategy: "resident", windowTokens: 24 });
        const ring = await runWith(model, script, {
          strategy: "sliding-window-ring-buffer",
          windowTokens: 24,
        });
        expect(maxRelativeError(ring, windowed)).toBe(0);
        const full = await runWith(model, script, { strategy: "resident" });
        expect(maxRelativeError(ring, full)).toBeGreaterThan(0);
      } finally {
        await model.close();
      }
    }
  });

  it("truncates back inside its window, and refuses to go further back", async () => {
    const model = await loadModel(fixtureDir("tiny-mistral"), { backend: "cpu" });
    try {
      const script = await scriptFor(model, "tiny-mistral");
      const ids = script.prompt.slice(0, 120);
      const ref = model.newSequence({ strategy: "resident" });
      await ref.forward(ids.slice(0, 100), { logits: "last" });
      const want = await (await ref.forward(ids.slice(100), { logits: "all" })).read();
      const ring = model.newSequence({ strategy: "sliding-window-ring-buffer", windowTokens: 32 });
      // 8-token chunks keep the ring at 95 slots: after 110 tokens it holds positions [15, 110).
      await ring.forward(ids.slice(0, 110), { logits: "last", chunkTokens: 8 });
      ring.truncate(100);
      const got = await (await ring.forward(ids.slice(100), { logits: "all", chunkTokens: 8 })).read();
      // Rounding only (8-token chunks against one 100-token and one 20-token call: see above).
      expect(maxRelativeError([got], [want])).toBeLessThanOrEqual(1e-5);
      expect(() => ring.kvStore.truncate(10)).toThrow(/cannot go back/);
      ring.kvStore.truncate(0);
      expect(ring.kvStore.length).toBe(0);
      ref.dispose();
      ring.dispose();
    } finally {
      await model.close();
    }
  });
});

describe("KV memory follows the selector's predictions", () => {
  it("usage after 166 tokens stays within predictKvBytes", async () => {
    const model = await loadModel(fixtureDir("tiny-llama"), { backend: "cpu" });
    try {
      const script = await scriptFor(model, "tiny-llama");
      const tokens = script.prompt.length + script.decode.length;
      const bpt = 3 * 2 * 2 * 16 * 4; // layers · (k, v) · kvHeads · headDim · f32
      const cases: [KvCacheOptions, Parameters<typeof predictKvBytes>[0]][] = [
        [{ strategy: "resident" }, "resident"],
        [{ strategy: "paged", blockTokens: 16 }, "paged"],
        [{ strategy: "quantized-cold-tier", blockTokens: 16, hotBlocks: 1 }, "quantized-cold-tier"],
        [{ strategy: "streamed-segmented", blockTokens: 16, cacheDir: dir.path }, "streamed-segmented"],
        [
          { strategy: "tiered-write-back", blockTokens: 16, hotBlocks: 2, cacheDir: dir.path },
          "tiered-write-back",
        ],
      ];
      for (const [kv, strategy] of cases) {
        const seq = model.newSequence(kv);
        await runScript(seq, script);
        const u = seq.kvStore.usage();
        const p = predictKvBytes(strategy, {
          tokens,
          kvBytesPerToken: bpt,
          numKvLayers: 3,
          blockTokens: 16,
          hotBlocks: kv.hotBlocks,
          chunkTokens: 48,
          headDim: 16,
        });
        console.log(
          `${strategy}: memory ${u.deviceBytes + u.hostBytes} (predicted ${Math.round(p.memoryBytes)}), disk ${u.diskBytes} (predicted ${p.diskBytes})`,
        );
        expect(u.deviceBytes + u.hostBytes).toBeLessThanOrEqual(p.memoryBytes);
        expect(u.diskBytes).toBeLessThanOrEqual(p.diskBytes);
        seq.dispose();
      }
    } finally {
      await model.close();
    }
  });
});
