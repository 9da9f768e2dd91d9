import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { OllmError } from "../../src/errors.js";
import { Checkpoint, SafetensorsFile } from "../../src/engine/weights/safetensors.js";
import { buildSafetensors, rawSafetensors, tempDir } from "./helpers.js";

/** mulberry32: a seeded PRNG so a failing case can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NASTY: unknown[] = [
  -1,
  0,
  1,
  2,
  3,
  1.5,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  1e308,
  -0,
  "1",
  "",
  null,
  true,
  [],
  {},
  [0],
  [1, 2],
  [0, 0],
  [0, 4],
  [4, 0],
  [-1, 3],
  [0, 2 ** 53],
  [[1]],
  "F32",
  "BF16",
  "U8",
  "toString",
  "__proto__",
];

const NASTY_NAME = ["a", "b", "c", "missing", "__proto__", "constructor", ""];

function valid(): Uint8Array {
  return buildSafetensors(
    [
      { name: "a", dtype: "F32", shape: [2, 2], data: new Uint8Array(16).fill(1) },
      { name: "b", dtype: "BF16", shape: [3], data: new Uint8Array(6).fill(2) },
      { name: "c", dtype: "U8", shape: [], data: new Uint8Array([3]) },
    ],
    { format: "pt" },
  );
}

function garbled(next: () => number): Uint8Array {
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: T[]): T => xs[int(xs.length)];
  switch (int(5)) {
    case 0: // pure noise
      return Uint8Array.from({ length: int(80) }, () => int(256));
    case 1: {
      // a valid file with a few bytes flipped, mostly in the header
      const b = valid();
      for (let k = 1 + int(6); k > 0; k--) b[int(Math.min(b.length, 200))] = int(256);
      return b;
    }
    case 2: // a valid file cut short
      return valid().subarray(0, int(valid().length));
    case 3: {
      // a valid body behind a random header length
      const b = valid();
      new DataView(b.buffer).setUint32(int(2) * 4, int(2 ** 32), true);
      return b;
    }
    default: {
      // structurally plausible JSON with hostile values
      const header: Record<string, unknown> = {};
      for (let k = int(4); k >= 0; k--) {
        header[pick(["w", "v", "__metadata__", "__proto__", `t${k}`])] = {
          dtype: pick(NASTY),
          shape: pick(NASTY),
          data_offsets: pick(NASTY),
        };
      }
      return rawSafetensors(header, new Uint8Array(int(40)));
    }
  }
}

/** Runs `attempt`; anything thrown must be an OllmError. Returns whether it succeeded. */
async function onlyOllmErrors(attempt: () => Promise<void>, seed: number, i: number): Promise<boolean> {
  try {
    await attempt();
    return true;
  } catch (e) {
    if (!(e instanceof OllmError)) throw new Error(`seed ${seed} case ${i}: non-OllmError ${String(e)}`);
    return false;
  }
}

describe("fuzz: garbled inputs only ever raise OllmError", () => {
  it("SafetensorsFile.open and reads on random and garbled files", async () => {
    const seed = 0x5afe;
    const next = rng(seed);
    const path = join(await tempDir(), "fuzz.safetensors");
    let opened = 0;
    for (let i = 0; i < 400; i++) {
      const bytes = garbled(next);
      await writeFile(path, bytes);
      const ok = await onlyOllmErrors(
        async () => {
          const file = await SafetensorsFile.open(path);
          try {
            // Whatever passes validation must lie inside the file.
            const size = (await stat(path)).size;
            for (const info of file.tensors.values()) {
              expect(info.byteOffset + info.byteLength).toBeLessThanOrEqual(size);
              expect((await file.read(info.name)).byteLength).toBe(info.byteLength);
            }
          } finally {
            await file.close();
          }
        },
        seed,
        i,
      );
      if (ok) opened++;
    }
    // The generator must exercise the success path too, not only rejections.
    expect(opened).toBeGreaterThan(0);
  });

  it("Checkpoint.open on random indexes", async () => {
    const seed = 0x1de8;
    const next = rng(seed);
    const dir = await tempDir();
    await writeFile(join(dir, "s.safetensors"), valid());
    const shardNames: unknown[] = [
      "s.safetensors",
      "../s.safetensors",
      "x.safetensors",
      "",
      ".",
      7,
      null,
      {},
    ];
    for (let i = 0; i < 150; i++) {
      const weightMap: Record<string, unknown> = {};
      for (let k = Math.floor(next() * 4); k > 0; k--) {
        weightMap[NASTY_NAME[Math.floor(next() * NASTY_NAME.length)]] =
          shardNames[Math.floor(next() * shardNames.length)];
      }
      const text =
        next() < 0.2 ? JSON.stringify(weightMap).slice(0, -1) : JSON.stringify({ weight_map: weightMap });
      await writeFile(join(dir, "model.safetensors.index.json"), text);
      await onlyOllmErrors(
        async () => {
          const ckpt = await Checkpoint.open(dir);
          for (const name of ckpt.names()) await ckpt.read(name);
          await ckpt.close();
        },
        seed,
        i,
      );
    }
  });
});
