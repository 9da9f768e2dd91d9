import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Tokenizer } from "../../src/text/index.js";
import { buildVariantDir, ORACLE_DIR, readJson, tokenizerDir, type VariantSpec } from "./helpers.js";

// Where @huggingface/tokenizers (used alone) disagrees with transformers 5.17 / tokenizers 0.23.2, and what
// the wrapper does instead. Expected values come from oracle.json (transformers' own output).
interface Entry {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decoded: string;
  decoded_skip_special: string;
}
const spec = readJson<VariantSpec>(join(ORACLE_DIR, "variants.json"));
const oracle = readJson<{ variants: Array<{ name: string; encode: Entry[] }> }>(
  join(ORACLE_DIR, "oracle.json"),
);

async function variant(name: string): Promise<{ tok: Tokenizer; entry: (text: string) => Entry }> {
  const tok = await Tokenizer.fromDir(buildVariantDir(spec.variants.find((v) => v.name === name)!));
  const entries = oracle.variants.find((v) => v.name === name)!.encode;
  return { tok, entry: (text) => entries.find((e) => e.text === text)! };
}

const SPACED = "Hello , world . isn 't it ? yes ! don 't do not i 'm they 're";

describe("decoding", () => {
  it("ignores clean_up_tokenization_spaces for BPE models (the library applies it, and defaults it on)", async () => {
    const { tok, entry } = await variant("bytelevel-llama3"); // its config sets clean_up_tokenization_spaces: true
    const e = entry(SPACED);
    expect(tok.decode(e.ids, { skipSpecialTokens: true })).toBe(SPACED);
    expect(e.decoded_skip_special).toBe(SPACED);
  });

  it("still cleans up for other models (WordPiece)", async () => {
    const { tok, entry } = await variant("wordpiece-cleanup");
    const e = entry(SPACED);
    expect(tok.decode(e.ids, { skipSpecialTokens: true })).toBe(e.decoded_skip_special);
    expect(e.decoded_skip_special).toBe("hello, world. isn't it? yes! don't do not i'm they're");
  });

  it("turns an invalid byte-fallback run into one U+FFFD per byte (the library: per invalid sequence)", async () => {
    const tok = await Tokenizer.fromDir(tokenizerDir("sentencepiece-mistral"));
    const [e4, bd, a0] = ["<0xE4>", "<0xBD>", "<0xA0>"].map((t) => tok.tokenToId(t)!);
    expect(tok.decode([e4, bd, a0])).toBe("\u4f60");
    expect(tok.decode([e4, bd, tok.tokenToId("x")!])).toBe("\uFFFD\uFFFDx");
  });

  it("keeps a leading byte-order mark (the library's TextDecoder drops it)", async () => {
    const { tok, entry } = await variant("sentencepiece-mistral");
    const e = entry("\ufeffbom");
    expect(tok.decode(e.ids, { skipSpecialTokens: true })).toBe("\ufeffbom");
  });

  it("drops ids outside the vocabulary (the library prints the unknown token)", async () => {
    const tok = await Tokenizer.fromDir(tokenizerDir("sentencepiece-mistral"));
    expect(tok.decode([tok.vocabSize + 3, tok.tokenToId("\u2581the")!])).toBe("the");
  });

  it("decodes a normalized added token through its normalized form", async () => {
    const { tok, entry } = await variant("mistral-added-normalized");
    const e = entry("hello world hello  world");
    expect(tok.decode(e.ids)).toBe("<s> hello world hello  world");
    expect(e.decoded).toBe("<s> hello world hello  world");
  });
});

describe("special tokens and post-processing", () => {
  it("keeps tokenizer.json's post-processor whatever add_bos_token / add_eos_token say", async () => {
    const { tok, entry } = await variant("llama3-config-add-bos-eos"); // add_bos_token false, add_eos_token true
    expect(tok.encode("Hello, world!")).toEqual(entry("Hello, world!").ids);
    expect(tok.encode("Hello, world!")[0]).toBe(tok.bosTokenId);
    const none = await variant("mistral-null-post-processor"); // no post_processor, add_bos_token true
    expect(none.tok.encode("Hello, world!")).toEqual(none.entry("Hello, world!").ids_no_special);
  });

  it("adds the special tokens tokenizer_config.json names (the library ignores them)", async () => {
    const { tok, entry } = await variant("llama3-named-specials");
    expect(tok.tokenToId("<|finetune_right_pad_id|>")).toBe(1029);
    expect(tok.specialTokenIds.has(tok.tokenToId("Return")!)).toBe(true); // unk_token "Return" is a vocab token
    const e = entry("the cat isn't catty, a cat's world.");
    expect(tok.encode(e.text)).toEqual(e.ids);
    expect(tok.decode([tok.tokenToId("Return")!, 263], { skipSpecialTokens: true })).toBe(" the");
  });

  it("honours single_word, lstrip and rstrip on added tokens (the library ignores single_word)", async () => {
    const { tok, entry } = await variant("llama3-added-token-flags");
    for (const text of [
      " <|eot_id|> spaced  <|eot_id|>  x",
      "a<|eot_id|>b<|start_header_id|>c",
      "foo bar foobar xfoo foo.",
    ]) {
      expect(tok.encode(text)).toEqual(entry(text).ids);
    }
  });
});

describe("pre-tokenizer Split behaviours (the library treats all but Removed as Isolated)", () => {
  it.each([
    "chatml-split-contiguous",
    "chatml-split-removed",
    "chatml-split-inverted",
    "chatml-split-merged-next",
  ])("%s", async (name) => {
    const { tok, entry } = await variant(name);
    for (const text of ["  two  spaces  ", "Hello, world!", "Numbers 1234567890 3.14 x2"]) {
      expect(tok.encode(text, { addSpecialTokens: false })).toEqual(entry(text).ids_no_special);
    }
  });
});
