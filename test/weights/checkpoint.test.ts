import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Checkpoint } from "../../src/engine/weights/safetensors.js";
import {
  buildSafetensors,
  expectOllmError,
  rawSafetensors,
  tempDir,
  type TensorSpec,
  writeFiles,
} from "./helpers.js";

const MODELS = fileURLToPath(new URL("../fixtures/models/", import.meta.url));

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, "utf8"));
}

const u8 = (name: string, values: number[]): TensorSpec => ({
  name,
  dtype: "U8",
  shape: [values.length],
  data: new Uint8Array(values),
});

describe("real fixtures", () => {
  it("tiny-llama: sharded in 4 files through its index", async () => {
    const dir = join(MODELS, "tiny-llama");
    const index = await readJson(join(dir, "model.safetensors.index.json"));
    const weightMap = index.weight_map as Record<string, string>;
    const config = await readJson(join(dir, "config.json"));
    const ckpt = await Checkpoint.open(dir);
    try {
      expect(ckpt.names().sort()).toEqual(Object.keys(weightMap).sort());
      expect(ckpt.names()).toHaveLength(30);
      expect(new Set(ckpt.names().map((n) => ckpt.info(n).file)).size).toBe(4);
      expect(ckpt.totalBytes()).toBe((index.metadata as { total_size: number }).total_size);

      const embed = ckpt.info("model.embed_tokens.weight");
      expect(embed.dtype).toBe("BF16");
      expect(embed.shape).toEqual([config.vocab_size, config.hidden_size]);
      expect(embed.file).toBe(join(dir, weightMap["model.embed_tokens.weight"]));

      // Every tensor read matches the bytes at its span in the raw shard.
      for (const name of ckpt.names()) {
        const info = ckpt.info(name);
        const raw = await readFile(info.file);
        const bytes = await ckpt.read(name);
        expect(bytes.byteLength).toBe(info.byteLength);
        expect(
          Buffer.from(bytes).equals(raw.subarray(info.byteOffset, info.byteOffset + info.byteLength)),
        ).toBe(true);
      }
    } finally {
      await ckpt.close();
    }
  });

  it("tiny-qwen2: a single model.safetensors", async () => {
    const dir = join(MODELS, "tiny-qwen2");
    const config = await readJson(join(dir, "config.json"));
    const ckpt = await Checkpoint.open(dir);
    try {
      expect(ckpt.names()).toHaveLength(38);
      const embed = ckpt.info("model.embed_tokens.weight");
      expect(embed).toMatchObject({ dtype: "BF16", shape: [config.vocab_size, config.hidden_size] });
      expect(embed.file).toBe(join(dir, "model.safetensors"));
      expect(embed.byteLength).toBe((config.vocab_size as number) * (config.hidden_size as number) * 2);
      expect((await ckpt.read("model.embed_tokens.weight")).byteLength).toBe(embed.byteLength);
    } finally {
      await ckpt.close();
    }
  });

  it("every fixture model opens and every tensor reads at its declared length", async () => {
    for (const model of await readdir(MODELS)) {
      const ckpt = await Checkpoint.open(join(MODELS, model));
      try {
        expect(ckpt.names().length).toBeGreaterThan(0);
        let total = 0;
        for (const name of ckpt.names()) total += (await ckpt.read(name)).byteLength;
        expect(total).toBe(ckpt.totalBytes());
      } finally {
        await ckpt.close();
      }
    }
  });
});

describe("directory layouts", () => {
  it("falls back to all *.safetensors files when there is neither model.safetensors nor an index", async () => {
    const dir = await tempDir();
    await writeFiles(dir, {
      "b.safetensors": buildSafetensors([u8("b.w", [3, 4])]),
      "a.safetensors": buildSafetensors([u8("a.w", [1]), u8("a.v", [2])]),
      "notes.txt": "not weights",
    });
    const ckpt = await Checkpoint.open(dir);
    expect(ckpt.names()).toEqual(["a.w", "a.v", "b.w"]);
    expect(await ckpt.read("b.w")).toEqual(new Uint8Array([3, 4]));
    expect(ckpt.info("a.v").file).toBe(join(dir, "a.safetensors"));
    await ckpt.close();
  });

  it("an index exposes exactly the tensors it names", async () => {
    const dir = await tempDir();
    await writeFiles(dir, {
      "s1.safetensors": buildSafetensors([u8("x", [1]), u8("extra", [9])]),
      "s2.safetensors": buildSafetensors([u8("y", [2, 3])]),
      "model.safetensors.index.json": JSON.stringify({
        weight_map: { x: "s1.safetensors", y: "s2.safetensors" },
      }),
    });
    const ckpt = await Checkpoint.open(dir);
    expect(ckpt.names()).toEqual(["x", "y"]);
    expect(ckpt.has("extra")).toBe(false);
    expect(await ckpt.read("y")).toEqual(new Uint8Array([2, 3]));
    await ckpt.close();
  });

  it("missing directory is MODEL_NOT_FOUND", async () => {
    await expectOllmError(
      Checkpoint.open(join(await tempDir(), "no-such-model")),
      "MODEL_NOT_FOUND",
      "no-such-model",
    );
  });

  it("a file where a directory is expected is MODEL_NOT_FOUND", async () => {
    const dir = await tempDir();
    await writeFiles(dir, { "config.json": "{}" });
    await expectOllmError(Checkpoint.open(join(dir, "config.json")), "MODEL_NOT_FOUND", "not a directory");
  });

  it("a directory without safetensors files is MODEL_NOT_FOUND", async () => {
    const dir = await tempDir();
    await writeFiles(dir, { "pytorch_model.bin": "x" });
    await expectOllmError(Checkpoint.open(dir), "MODEL_NOT_FOUND", "No safetensors weights", dir);
  });

  it("the same tensor in two files is INVALID_CHECKPOINT naming both", async () => {
    const dir = await tempDir();
    await writeFiles(dir, {
      "a.safetensors": buildSafetensors([u8("w", [1])]),
      "b.safetensors": buildSafetensors([u8("w", [2])]),
    });
    await expectOllmError(
      Checkpoint.open(dir),
      "INVALID_CHECKPOINT",
      '"w"',
      "a.safetensors",
      "b.safetensors",
    );
  });

  it("a malformed shard is reported with the shard's path", async () => {
    const dir = await tempDir();
    await writeFiles(dir, {
      "s1.safetensors": buildSafetensors([u8("x", [1])]),
      "s2.safetensors": rawSafetensors(
        { y: { dtype: "U8", shape: [4], data_offsets: [0, 4] } },
        new Uint8Array(2),
      ),
      "model.safetensors.index.json": JSON.stringify({
        weight_map: { x: "s1.safetensors", y: "s2.safetensors" },
      }),
    });
    await expectOllmError(Checkpoint.open(dir), "INVALID_CHECKPOINT", join(dir, "s2.safetensors"), '"y"');
  });
});

describe("malformed indexes are INVALID_CHECKPOINT naming the index", () => {
  const shards = () => ({
    "s1.safetensors": buildSafetensors([u8("x", [1])]),
    "s2.safetensors": buildSafetensors([u8("y", [2])]),
  });
  const cases: { what: string; index: string; message: (string | RegExp)[] }[] = [
    { what: "bad JSON", index: "{ weight_map", message: ["not valid JSON"] },
    { what: "JSON null", index: "null", message: ["weight_map"] },
    { what: "no weight_map", index: JSON.stringify({ metadata: {} }), message: ["weight_map"] },
    {
      what: "weight_map an array",
      index: JSON.stringify({ weight_map: ["s1.safetensors"] }),
      message: ["weight_map"],
    },
    { what: "empty weight_map", index: JSON.stringify({ weight_map: {} }), message: ["no tensors"] },
    {
      what: "shard name not a string",
      index: JSON.stringify({ weight_map: { x: 1 } }),
      message: ['"x"', "not a file name"],
    },
    {
      what: "missing shard",
      index: JSON.stringify({ weight_map: { x: "s1.safetensors", y: "s3.safetensors" } }),
      message: ['"s3.safetensors"', "missing"],
    },
    {
      what: "tensor absent from its shard",
      index: JSON.stringify({ weight_map: { x: "s1.safetensors", z: "s2.safetensors" } }),
      message: ['"z"', '"s2.safetensors"'],
    },
    {
      what: "tensor mapped to the wrong shard",
      index: JSON.stringify({ weight_map: { x: "s2.safetensors", y: "s2.safetensors" } }),
      message: ['"x"', '"s2.safetensors"'],
    },
    {
      what: "path traversal with ..",
      index: JSON.stringify({ weight_map: { x: "../s1.safetensors" } }),
      message: ['"x"', "../s1.safetensors", "inside the model directory"],
    },
    {
      what: "a subdirectory path",
      index: JSON.stringify({ weight_map: { x: "sub/s1.safetensors" } }),
      message: ["sub/s1.safetensors"],
    },
    {
      what: "an absolute path",
      index: JSON.stringify({ weight_map: { x: "/etc/passwd" } }),
      message: ["/etc/passwd"],
    },
    {
      what: "the parent directory itself",
      index: JSON.stringify({ weight_map: { x: ".." } }),
      message: ['".."'],
    },
  ];

  for (const c of cases) {
    it(c.what, async () => {
      const dir = await tempDir();
      await writeFiles(dir, { ...shards(), "model.safetensors.index.json": c.index });
      await expectOllmError(
        Checkpoint.open(dir),
        "INVALID_CHECKPOINT",
        join(dir, "model.safetensors.index.json"),
        ...c.message,
      );
    });
  }

  it("traversal is refused even when the target exists", async () => {
    const parent = await tempDir();
    const dir = join(parent, "model");
    await writeFiles(parent, { "outside.safetensors": buildSafetensors([u8("x", [1])]) });
    await mkdir(dir);
    await writeFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: { x: "../outside.safetensors" } }),
    );
    await expectOllmError(Checkpoint.open(dir), "INVALID_CHECKPOINT", "../outside.safetensors");
  });
});
