import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Tokenizer } from "../../src/text/index.js";
import type { ChatMessage } from "../../src/text/index.js";
import { type EncodeCase, readJson, TOKENIZER_NAMES, tokenizerDir } from "./helpers.js";

interface Golden {
  vocab_size: number;
  encode: EncodeCase[];
  chat: Array<{ messages: ChatMessage[]; add_generation_prompt: boolean; text: string; ids: number[] }>;
}

// transformers 5.17 on the four fixture tokenizers (test/fixtures/tokenizers/*/tokenizer_golden.json).
describe.each(TOKENIZER_NAMES)("%s matches tokenizer_golden.json", (name) => {
  const golden = readJson<Golden>(join(tokenizerDir(name), "tokenizer_golden.json"));
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await Tokenizer.fromDir(tokenizerDir(name));
  });

  it("has the vocabulary size of len(tokenizer)", () => {
    expect(tok.vocabSize).toBe(golden.vocab_size);
  });

  it.each(golden.encode.map((e) => [JSON.stringify(e.text).slice(0, 40), e] as const))(
    "encode %s",
    (_, e) => {
      expect(tok.encode(e.text)).toEqual(e.ids);
      expect(tok.encode(e.text, { addSpecialTokens: false })).toEqual(e.ids_no_special);
      expect(tok.decode(e.ids)).toBe(e.decoded);
      expect(tok.decode(e.ids, { skipSpecialTokens: true })).toBe(e.decoded_skip_special);
    },
  );

  it.each(golden.chat.map((c, i) => [i, c.add_generation_prompt, c] as const))(
    "chat #%i (add_generation_prompt=%s)",
    (_, addGenerationPrompt, c) => {
      const text = tok.applyChatTemplate(c.messages, { addGenerationPrompt });
      expect(text).toBe(c.text);
      expect(tok.encode(text, { addSpecialTokens: false })).toEqual(c.ids);
    },
  );
});
