import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KvCacheDir, modelCacheKey, sweepStaleKvDirs } from "../../src/engine/kv/cache-dir.js";
import { JournalColdTier } from "../../src/engine/kv/cold-tiers.js";
import type { KvCacheOptions } from "../../src/engine/kv/strategies.js";
import { loadModel, type Model } from "../../src/engine/model.js";
import { fixtureDir, readGolden } from "../engine/oracle.js";
import { maxRelativeError, runScript, type Script, scriptFor, tempDir } from "./helpers.js";

const DISK: KvCacheOptions["strategy"][] = [
  "streamed-segmented",
  "log-structured-journal",
  "tiered-write-back",
];

function listDirs(root: string): string[] {
  return existsSync(root) ? readdirSync(root).filter((n) => n.startsWith("kv-")) : [];
}

describe("disk-backed KV files", () => {
  let model: Model;
  let script: Script;
  const root = tempDir("ollm-kv-disk-");
  beforeAll(async () => {
    model = await loadModel(fixtureDir("tiny-llama"), { backend: "cpu" });
    script = await scriptFor(model, "tiny-llama", 2);
  });
  afterAll(async () => {
    await model.close();
    root.remove();
  });

  it.each(DISK)(
    "%s: files live in the cache dir, per model and sequence, and go with dispose",
    async (strategy) => {
      const kv: KvCacheOptions = { strategy, blockTokens: 16, hotBlocks: 1, cacheDir: root.path };
      const a = model.newSequence(kv);
      const b = model.newSequence(kv);
      expect(listDirs(root.path)).toEqual([]); // nothing is created before a block goes cold
      await runScript(a, script);
      await runScript(b, script);
      const dirs = listDirs(root.path);
      expect(dirs).toHaveLength(2);
      const key = modelCacheKey(fixtureDir("tiny-llama"));
      for (const d of dirs) {
        expect(d.startsWith(`kv-${key}-`)).toBe(true);
        const owner = JSON.parse(readFileSync(join(root.path, d, "owner.json"), "utf8"));
        expect(owner).toMatchObject({ pid: process.pid, model: key });
        const files = readdirSync(join(root.path, d));
        if (strategy === "log-structured-journal") {
          expect(files).toEqual(expect.arrayContaining(["kv.journal", "kv.index.json"]));
          const index = JSON.parse(readFileSync(join(root.path, d, "kv.index.json"), "utf8"));
          expect(index.layers).toHaveLength(3);
          expect(files.some((f) => f.endsWith(".tmp"))).toBe(false);
        } else expect(files).toEqual(expect.arrayContaining(["layer-0.seg", "layer-1.seg", "layer-2.seg"]));
      }
      expect(a.kvStore.usage().diskBytes).toBeGreaterThan(0);
      a.dispose();
      expect(listDirs(root.path)).toHaveLength(1);
      b.dispose();
      expect(listDirs(root.path)).toEqual([]);
    },
  );

  it("another model gets other directories", async () => {
    const other = await loadModel(fixtureDir("tiny-mistral"), { backend: "cpu" });
    try {
      const kv: KvCacheOptions = { strategy: "streamed-segmented", blockTokens: 16, cacheDir: root.path };
      const s1 = model.newSequence(kv);
      const s2 = other.newSequence(kv);
      try {
        await s1.forward(script.prompt.slice(0, 40), { logits: "last" });
        await s2.forward(readGolden("tiny-mistral").golden.long_prompt_ids.slice(0, 40), { logits: "last" });
        const dirs = listDirs(root.path).sort();
        expect(dirs).toHaveLength(2);
        expect(new Set(dirs.map((d) => d.split("-")[1])).size).toBe(2);
      } finally {
        s1.dispose();
        s2.dispose();
      }
      expect(listDirs(root.path)).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it("reset (truncate 0) and truncation inside a cold block recompute like the resident cache", async () => {
    const ids = script.prompt.slice(0, 120);
    const ref = model.newSequence({ strategy: "resident" });
    await ref.forward(ids.slice(0, 70), { logits: "last" });
    const want = await (await ref.forward(ids.slice(70), { logits: "all", chunkTokens: 13 })).read();
    ref.dispose();
    for (const strategy of [...DISK, "quantized-cold-tier", "paged"] as const) {
      const seq = model.newSequence({ strategy, blockTokens: 16, hotBlocks: 1, cacheDir: root.path });
      await seq.forward(ids.slice(0, 30), { logits: "last" });
      seq.reset();
      expect(seq.kvStore.length).toBe(0);
      await seq.forward(ids.slice(0, 100), { logits: "last", chunkTokens: 32 });
      // 70 = block 4 (rows 64..79) + 6 rows: a cold block comes back partially.
      seq.truncate(70);
      expect(seq.kvStore.length).toBe(70);
      expect(seq.length).toBe(70);
      const got = await (await seq.forward(ids.slice(70), { logits: "all", chunkTokens: 13 })).read();
      const err = maxRelativeError([got], [want]);
      if (strategy === "quantized-cold-tier") expect(err).toBeLessThan(1e-2);
      else expect(err, strategy).toBe(0);
      seq.dispose();
    }
    expect(listDirs(root.path)).toEqual([]);
  });

  it("sweeps directories of dead processes, keeps live ones", () => {
    const dead = spawnSync(process.execPath, [
      "-e",
      "process.stdout.write(String(process.pid))",
    ]).stdout.toString();
    const stale = join(root.path, "kv-deadbeef-stale");
    const alive = join(root.path, "kv-deadbeef-alive");
    for (const [d, pid] of [
      [stale, Number(dead)],
      [alive, process.ppid],
    ] as const) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "owner.json"), JSON.stringify({ pid, model: "deadbeef" }));
      writeFileSync(join(d, "layer-0.seg"), "x");
    }
    // Creating a store's directory sweeps first.
    const dir = new KvCacheDir(root.path, "abc");
    expect(existsSync(dir.path)).toBe(true);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(alive)).toBe(true);
    dir.remove();
    expect(sweepStaleKvDirs(root.path)).toBe(0);
    expect(existsSync(alive)).toBe(true);
  });

  it("journal: truncation only edits the index; compaction rewrites the live records", async () => {
    const dir = new KvCacheDir(root.path, "journal");
    const specs = [{ numKvHeads: 1, headDim: 4 }];
    const tier = new JournalColdTier(specs, 2, dir, 0);
    const block = (b: number) => Float32Array.from({ length: 8 }, (_, i) => b * 100 + i);
    for (let b = 0; b < 4; b++)
      await tier.put(
        0,
        b,
        block(b),
        block(b).map((x) => -x),
      );
    await tier.flush();
    const path = join(dir.path, "kv.journal");
    const before = statSync(path).size;
    tier.truncate(0, 1);
    await tier.put(0, 1, block(7), block(7));
    await tier.flush();
    expect(tier.compacted).toBe(1);
    expect(statSync(path).size).toBeLessThan(before);
    const out = new Float32Array(32);
    await tier.load(0, 0, 2, out);
    expect(Array.from(out.subarray(0, 8))).toEqual(Array.from(block(0)));
    expect(Array.from(out.subarray(8, 16))).toEqual(Array.from(block(0).map((x) => -x)));
    expect(Array.from(out.subarray(16, 24))).toEqual(Array.from(block(7)));
    const index = JSON.parse(readFileSync(join(dir.path, "kv.index.json"), "utf8"));
    expect(index.layers[0]).toHaveLength(2);
    tier.dispose();
    dir.remove();
  });
});
