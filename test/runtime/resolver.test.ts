import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OllmError } from "../../src/errors.js";
import { Catalog } from "../../src/runtime/catalog.js";
import { ResolvedModelSchema } from "../../src/runtime/resolved-model.js";
import { ModelResolver } from "../../src/runtime/resolver.js";
import { commitId, copyModel, fixture, hfCacheRepo, removeDir, tempDir } from "./helpers.js";

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<OllmError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(OllmError);
    expect((error as OllmError).code).toBe(code);
    return error as OllmError;
  }
  throw new Error(`expected ${code}`);
}

describe("ModelResolver", () => {
  const resolver = new ModelResolver();
  let root: string;
  let models: string;

  beforeAll(async () => {
    root = await tempDir();
    models = join(root, "models");
    await mkdir(models);
    await copyModel("tiny-qwen3", join(models, "my-qwen"));
    await copyModel("tiny-llama", join(models, "llama3-1B-chat"));
    await copyModel("tiny-mistral", join(models, "mistralai--Tiny-Mistral"));
    await copyModel("tiny-qwen2", join(models, "acme", "nested-qwen2"));
    await hfCacheRepo(models, "acme/cached-llama", "tiny-llama", commitId("cached"));
    await mkdir(join(models, "not-a-model"));
    await writeFile(join(models, "not-a-model", "README.md"), "hi");
  });
  afterAll(() => removeDir(root));

  it("resolves a local path without loading weights: architecture, family, dtype, sizes, capabilities", async () => {
    const m = await resolver.resolve(fixture("tiny-llama"), models);
    expect(ResolvedModelSchema.parse(m)).toEqual(m);
    expect(m).toMatchObject({
      referenceKind: "local",
      name: "tiny-llama",
      source: "path",
      materialized: true,
      path: fixture("tiny-llama"),
      architecture: "LlamaForCausalLM",
      modelType: "llama",
      family: "llama",
      dtype: "BF16",
      modalities: ["text"],
      supportedBackends: ["cpu", "webgpu"],
      hasTokenizer: true,
      hasChatTemplate: true,
      issues: [],
    });
    expect(m.parameterCount).toBeGreaterThan(0);
    expect(m.weightBytes).toBe(m.parameterCount! * 2);
    expect(m.layerBytes).toHaveLength(3);
    expect(m.globalBytes! + m.layerBytes!.reduce((a, b) => a + b, 0)).toBe(m.weightBytes);
    expect(m.files.map((f) => f.name)).toContain("model.safetensors.index.json");
    expect(m.geometry).toMatchObject({ numLayers: 3, hiddenSize: 64, vocabSize: 1029, maxPositions: 1024 });
    expect(m.geometry!.kvBytesPerToken).toBe(3 * 2 * 2 * 16 * 4);
  });

  it("reads multimodal checkpoints' modalities and counts packed MXFP4 weights", async () => {
    const mm = await resolver.resolve(fixture("tiny-gemma3-mm"), models);
    expect(mm.modalities).toEqual(["text", "image"]);
    expect(mm.family).toBe("gemma3");
    expect(mm.layerBytes).toHaveLength(3);
    const mx = await resolver.resolve(fixture("tiny-gpt_oss-mxfp4"), models);
    expect(mx.dtypeBytes.U8).toBeGreaterThan(0);
    expect(mx.parameterCount).toBeGreaterThan(mx.weightBytes! / 2);
  });

  it("finds a bare name under modelsDir, and fails clearly when there is none", async () => {
    const m = await resolver.resolve("my-qwen", models);
    expect(m).toMatchObject({
      referenceKind: "name",
      source: "models-dir",
      family: "qwen3",
      path: join(models, "my-qwen"),
    });
    const error = await rejectsWith(resolver.resolve("nothing-here", models), "MODEL_NOT_FOUND");
    expect(error.hint).toContain("llama3-8B-chat");
    await rejectsWith(resolver.resolve("./does/not/exist", models), "MODEL_NOT_FOUND");
    await rejectsWith(resolver.resolve("a/b/c", models), "INVALID_ARGUMENT");
  });

  it("resolves an alias that is not downloaded as not materialized, with catalog capabilities", async () => {
    const m = await resolver.resolve("gemma3-12B", models);
    expect(m).toMatchObject({
      referenceKind: "alias",
      alias: "gemma3-12B",
      repoId: "google/gemma-3-12b-it",
      source: "hub",
      materialized: false,
      path: null,
      downloadPath: join(models, "gemma3-12B"),
      modalities: ["text", "image"],
      family: "gemma3",
      supportedBackends: ["cpu", "webgpu"],
    });
    expect(m.issues[0].code).toBe("MODEL_NOT_FOUND");
    expect((await resolver.resolve("voxtral-small-24B", models)).supportedBackends).toEqual([]);
  });

  it("finds an alias materialized under its own name, and the same model by its repo id", async () => {
    const byAlias = await resolver.resolve("llama3-1B-chat", models);
    expect(byAlias).toMatchObject({ materialized: true, source: "models-dir", alias: "llama3-1B-chat" });
    const byRepo = await resolver.resolve("meta-llama/Llama-3.2-1B-Instruct", models);
    expect(byRepo).toMatchObject({ referenceKind: "hub", alias: "llama3-1B-chat", path: byAlias.path });
  });

  it("resolves hub repos: not downloaded, in the managed layout, and in the Hugging Face cache layout", async () => {
    const missing = await resolver.resolve("acme/unknown@v1", models);
    expect(missing).toMatchObject({
      materialized: false,
      repoId: "acme/unknown",
      revision: "v1",
      downloadPath: join(models, "acme--unknown@v1"),
      modalities: [],
    });
    const managed = await resolver.resolve("mistralai/Tiny-Mistral", models);
    expect(managed).toMatchObject({ materialized: true, source: "models-dir", family: "mistral" });
    const cached = await resolver.resolve("acme/cached-llama", models);
    expect(cached).toMatchObject({
      materialized: true,
      source: "hf-cache",
      path: join(models, "models--acme--cached-llama", "snapshots", commitId("cached")),
      family: "llama",
    });
    const pinned = await resolver.resolve(`acme/cached-llama@${commitId("cached")}`, models);
    expect(pinned.path).toBe(cached.path);
    expect((await resolver.resolve("acme/cached-llama@other", models)).materialized).toBe(false);
    // Pointing modelsDir at the repository directory itself works too.
    const inside = await resolver.resolve("acme/cached-llama", join(models, "models--acme--cached-llama"));
    expect(inside.path).toBe(cached.path);
  });

  it("prefers a bundled model of the catalog", async () => {
    const catalog = new Catalog([
      {
        alias: "demo",
        summary: "demo",
        repoId: null,
        modalities: ["text"],
        family: "llama",
        bundledPath: fixture("tiny-llama"),
      },
      {
        alias: "gone",
        summary: "gone",
        repoId: null,
        modalities: ["text"],
        family: "llama",
        bundledPath: join(root, "nope"),
      },
    ]);
    const bundled = new ModelResolver(catalog);
    expect(await bundled.resolve("demo", models)).toMatchObject({
      source: "bundled",
      path: fixture("tiny-llama"),
      alias: "demo",
    });
    const gone = await bundled.resolve("gone", models);
    expect(gone).toMatchObject({ materialized: false, source: "bundled", downloadPath: null });
    expect(gone.issues[0].message).toMatch(/missing from this installation/);
  });

  it("reports why an unsupported or incomplete model cannot run", async () => {
    const dir = await copyModel("tiny-llama", join(root, "weird"), {
      patchConfig: (c) => {
        c.architectures = ["MysteryForCausalLM"];
      },
      drop: ["tokenizer.json"],
    });
    const m = await resolver.resolve(dir, models);
    expect(m.family).toBeNull();
    expect(m.supportedBackends).toEqual([]);
    expect(m.issues.map((i) => i.code)).toEqual(["UNSUPPORTED_ARCHITECTURE", "INVALID_TOKENIZER"]);
    const empty = await resolver.resolve(join(models, "not-a-model"), models);
    expect(empty).toMatchObject({ materialized: false, path: null });
  });

  it("discovers every materialized model, including nested and Hugging Face cache layouts", async () => {
    const found = await resolver.discover(models);
    const byPath = Object.fromEntries(found.map((m) => [m.path, m]));
    expect(Object.keys(byPath).sort()).toEqual(
      [
        join(models, "acme", "nested-qwen2"),
        join(models, "llama3-1B-chat"),
        join(models, "mistralai--Tiny-Mistral"),
        join(models, "models--acme--cached-llama", "snapshots", commitId("cached")),
        join(models, "my-qwen"),
      ].sort(),
    );
    expect(byPath[join(models, "llama3-1B-chat")].alias).toBe("llama3-1B-chat");
    const cached = byPath[join(models, "models--acme--cached-llama", "snapshots", commitId("cached"))];
    expect(cached).toMatchObject({
      name: "acme/cached-llama",
      repoId: "acme/cached-llama",
      source: "hf-cache",
    });
    expect(await resolver.discover(join(root, "missing"))).toEqual([]);
    expect((await resolver.discover(join(models, "models--acme--cached-llama"))).map((m) => m.path)).toEqual([
      cached.path,
    ]);
  });

  it("treats a directory with a download in progress as not materialized", async () => {
    const dir = await copyModel("tiny-qwen3", join(root, "partial"));
    await writeFile(join(dir, "model-00002.safetensors.partial"), "");
    expect((await resolver.resolve(dir, models)).materialized).toBe(false);
  });
});
