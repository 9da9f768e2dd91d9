import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type ChatMessage, loadTokenizer } from "../../src/text/index.js";
import { FIXTURES, readJson } from "./helpers.js";

interface ModelGolden {
  conversation: ChatMessage[];
  add_generation_prompt: boolean;
  prompt_text: string;
  prompt_ids: number[];
}

const MODELS = readdirSync(join(FIXTURES, "models")).sort();

// Every tiny checkpoint's golden.json: the rendered prompt and the ids transformers fed the model.
describe.each(MODELS)("model %s", (model) => {
  const dir = join(FIXTURES, "models", model);
  const golden = readJson<ModelGolden>(join(dir, "golden.json"));

  it("renders the conversation and encodes it like transformers", async () => {
    const tok = await loadTokenizer(dir);
    const text = tok.applyChatTemplate(golden.conversation, {
      addGenerationPrompt: golden.add_generation_prompt,
    });
    expect(text).toBe(golden.prompt_text);
    expect(tok.encode(text, { addSpecialTokens: false })).toEqual(golden.prompt_ids);
  });
});
