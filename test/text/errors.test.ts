import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isOllmError } from "../../src/errors.js";
import { loadTokenizer, Tokenizer } from "../../src/text/index.js";
import { tokenizerDir } from "./helpers.js";

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "tok-err-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isOllmError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error("expected a failure");
}

const goodJson = readFileSync(join(tokenizerDir("bytelevel-chatml"), "tokenizer.json"), "utf8");

describe("malformed or missing tokenizer files are INVALID_TOKENIZER", () => {
  it("missing folder or tokenizer.json", async () => {
    expect(await failure(loadTokenizer(join(tmpdir(), "no-such-model-dir")))).toMatchObject({
      code: "INVALID_TOKENIZER",
      message: expect.stringContaining("No tokenizer.json"),
    });
    expect(await failure(loadTokenizer(dirWith({ "tokenizer_config.json": "{}" })))).toMatchObject({
      code: "INVALID_TOKENIZER",
    });
  });

  it("tokenizer.json that is not JSON, or has no model", async () => {
    expect(await failure(loadTokenizer(dirWith({ "tokenizer.json": '{"model": {' })))).toMatchObject({
      code: "INVALID_TOKENIZER",
      message: expect.stringContaining("not valid JSON"),
    });
    expect(await failure(loadTokenizer(dirWith({ "tokenizer.json": "[1, 2]" })))).toMatchObject({
      code: "INVALID_TOKENIZER",
    });
    expect(await failure(loadTokenizer(dirWith({ "tokenizer.json": '{"added_tokens": []}' })))).toMatchObject(
      {
        code: "INVALID_TOKENIZER",
        message: expect.stringContaining('no "model"'),
      },
    );
  });

  it("tokenizer_config.json that is not JSON", async () => {
    const dir = dirWith({ "tokenizer.json": goodJson, "tokenizer_config.json": "{oops" });
    expect(await failure(loadTokenizer(dir))).toMatchObject({ code: "INVALID_TOKENIZER" });
  });

  it("components it cannot build", async () => {
    const json = JSON.parse(goodJson);
    const unknownDecoder = { ...json, decoder: { type: "Mystery" } };
    expect(
      await failure(loadTokenizer(dirWith({ "tokenizer.json": JSON.stringify(unknownDecoder) }))),
    ).toMatchObject({ code: "INVALID_TOKENIZER", message: expect.stringContaining("Mystery") });
    const unknownModel = { ...json, model: { type: "Mystery", vocab: {} } };
    expect(
      await failure(loadTokenizer(dirWith({ "tokenizer.json": JSON.stringify(unknownModel) }))),
    ).toMatchObject({ code: "INVALID_TOKENIZER" });
  });

  it("a model without a chat template", async () => {
    const tok = await Tokenizer.fromDir(dirWith({ "tokenizer.json": goodJson }));
    expect(tok.chatTemplate).toBeUndefined();
    expect(() => tok.applyChatTemplate([{ role: "user", content: "hi" }])).toThrow(
      expect.objectContaining({
        code: "INVALID_TOKENIZER",
        message: expect.stringContaining("no chat template"),
      }),
    );
  });
});

describe("bad call arguments are INVALID_ARGUMENT", () => {
  it("ids that are not non-negative integers", async () => {
    const tok = await Tokenizer.fromDir(tokenizerDir("bytelevel-llama3"));
    for (const bad of [-1, 1.5, Number.NaN]) {
      expect(() => tok.decode([1, bad])).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
      expect(() => tok.createStreamDecoder().push(bad)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
    }
  });

  it("an empty conversation", async () => {
    const tok = await Tokenizer.fromDir(tokenizerDir("bytelevel-llama3"));
    expect(() => tok.applyChatTemplate([])).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });
});
