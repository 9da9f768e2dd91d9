import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { OllmError } from "../../src/errors.js";
import { loadModel } from "../../src/engine/model.js";
import { fixtureDir } from "./oracle.js";

const temps: string[] = [];
afterEach(() => {
  for (const t of temps.splice(0)) rmSync(t, { recursive: true, force: true });
});

function fixtureConfig(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(fixtureDir("tiny-qwen2"), "config.json"), "utf8"));
}

/** A copy of a fixture model whose config.json is replaced. */
function withConfig(config: string): string {
  const dir = mkdtempSync(join(tmpdir(), "ollm-model-"));
  temps.push(dir);
  cpSync(fixtureDir("tiny-qwen2"), dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), config);
  return dir;
}

async function loadError(dir: string): Promise<OllmError> {
  try {
    await loadModel(dir);
  } catch (error) {
    expect(error).toBeInstanceOf(OllmError);
    return error as OllmError;
  }
  throw new Error("loadModel succeeded");
}

describe("loadModel errors", () => {
  it("names the supported architectures for an unknown one", async () => {
    const e = await loadError(withConfig(JSON.stringify({ architectures: ["FancyNetForCausalLM"] })));
    expect(e.code).toBe("UNSUPPORTED_ARCHITECTURE");
    expect(e.message).toContain("FancyNetForCausalLM");
    expect(e.hint).toContain("LlamaForCausalLM");
  });

  it("reports malformed config.json", async () => {
    expect((await loadError(withConfig("{not json"))).code).toBe("INVALID_CONFIG");
    expect((await loadError(withConfig("[1,2]"))).code).toBe("INVALID_CONFIG");
  });

  it("names every invalid field at once", async () => {
    const e = await loadError(
      withConfig(JSON.stringify({ architectures: ["Qwen2ForCausalLM"], vocab_size: -3, hidden_size: "64" })),
    );
    expect(e.code).toBe("INVALID_CONFIG");
    for (const field of ["vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size"])
      expect(e.message).toContain(field);
  });

  it("rejects inconsistent head counts", async () => {
    const e = await loadError(withConfig(JSON.stringify({ ...fixtureConfig(), num_key_value_heads: 3 })));
    expect(e.message).toMatch(/multiple of num_key_value_heads/);
  });

  it("reports a missing model directory", async () => {
    expect((await loadError(join(tmpdir(), "ollm-no-such-model"))).code).toBe("MODEL_NOT_FOUND");
  });

  it("reports a checkpoint that lacks a tensor the config needs", async () => {
    const e = await loadError(withConfig(JSON.stringify({ ...fixtureConfig(), tie_word_embeddings: false })));
    expect(e.code).toBe("INVALID_CHECKPOINT");
    expect(e.message).toContain("lm_head.weight");
  });

  it("rejects token ids outside the vocabulary", async () => {
    const model = await loadModel(fixtureDir("tiny-qwen2"));
    try {
      await expect(model.logits([5, 99999])).rejects.toThrow(/outside the vocabulary/);
      await expect(model.logits([])).rejects.toThrow(/at least one token/);
    } finally {
      await model.close();
    }
  });
});
