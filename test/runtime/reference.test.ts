import { homedir } from "node:os";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { OllmError } from "../../src/errors.js";
import { Catalog } from "../../src/runtime/catalog.js";
import { isRepoId, ModelReference } from "../../src/runtime/reference.js";

const catalog = Catalog.builtin();

describe("ModelReference.parse", () => {
  it("recognises built-in aliases, with an optional revision", () => {
    const ref = ModelReference.parse("llama3-8B-chat", catalog);
    expect([ref.kind, ref.identifier, ref.revision]).toEqual(["alias", "llama3-8B-chat", null]);
    expect(ModelReference.parse("gemma3-12B@v2", catalog).revision).toBe("v2");
  });

  it("parses Hugging Face repo ids, revisions and the hf: scheme", () => {
    const ref = ModelReference.parse("Qwen/Qwen3-0.6B@refs/pr/1", catalog);
    expect([ref.kind, ref.identifier, ref.revision]).toEqual(["hub", "Qwen/Qwen3-0.6B", "refs/pr/1"]);
    expect(ModelReference.parse("hf:org/name", catalog).identifier).toBe("org/name");
    expect(ModelReference.parse("hf://org/name@abc", catalog).revision).toBe("abc");
    expect(ref.materializationName()).toBe("Qwen--Qwen3-0.6B@refs--pr--1");
    expect(ModelReference.parse("org/name@main").materializationName()).toBe("org--name");
  });

  it("parses local paths to absolute paths, never guessing from the working directory", () => {
    expect(ModelReference.parse("./models/x").identifier).toBe(resolve("models/x"));
    expect(ModelReference.parse("../x").kind).toBe("local");
    expect(ModelReference.parse("/abs/model").identifier).toBe("/abs/model");
    expect(ModelReference.parse("~/m").identifier).toBe(`${homedir()}/m`);
    expect(ModelReference.parse("path:rel/dir").identifier).toBe(resolve("rel/dir"));
    expect(ModelReference.parse("file:///tmp/m").identifier).toBe("/tmp/m");
    expect(ModelReference.parse("C:\\models\\x").kind).toBe("local");
    const bare = ModelReference.parse("my-model", catalog);
    expect([bare.kind, bare.identifier]).toEqual(["name", "my-model"]);
  });

  it("rejects malformed references with INVALID_ARGUMENT", () => {
    for (const raw of [
      "",
      "   ",
      "a/b/c",
      "org/na--me",
      "org/@x",
      "x@",
      "s3://bucket/m",
      "bad name!",
      "name@rev",
    ]) {
      let error: unknown;
      try {
        ModelReference.parse(raw, catalog);
      } catch (e) {
        error = e;
      }
      expect(error, raw).toBeInstanceOf(OllmError);
      expect((error as OllmError).code).toBe("INVALID_ARGUMENT");
    }
    expect(isRepoId("meta-llama/Llama-3.2-1B-Instruct")).toBe(true);
    expect(isRepoId("a/b/c")).toBe(false);
  });
});

describe("Catalog", () => {
  it("lists the built-in aliases and their repositories", () => {
    expect(
      Object.fromEntries(
        catalog
          .list()
          .filter((e) => e.repoId)
          .map((e) => [e.alias, e.repoId]),
      ),
    ).toEqual({
      "llama3-1B-chat": "meta-llama/Llama-3.2-1B-Instruct",
      "llama3-3B-chat": "meta-llama/Llama-3.2-3B-Instruct",
      "llama3-8B-chat": "meta-llama/Llama-3.1-8B-Instruct",
      "gemma3-12B": "google/gemma-3-12b-it",
      "gpt-oss-20B": "openai/gpt-oss-20b",
      "qwen3-next-80B": "Qwen/Qwen3-Next-80B-A3B-Instruct",
      "voxtral-small-24B": "mistralai/Voxtral-Small-24B-2507",
    });
    expect(catalog.findByRepo("META-LLAMA/llama-3.2-1b-instruct")?.alias).toBe("llama3-1B-chat");
    expect(catalog.find("gemma3-12B")?.modalities).toEqual(["text", "image"]);
  });
});
