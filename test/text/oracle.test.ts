import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Tokenizer } from "../../src/text/index.js";
import { buildVariantDir, type EncodeCase, ORACLE_DIR, readJson, type VariantSpec } from "./helpers.js";

interface OracleVariant {
  name: string;
  vocab_size: number;
  added_special: number[];
  bos_token_id: number | null;
  eos_token_id: number | null;
  encode: EncodeCase[];
  decode: Array<{ ids: number[]; decoded: string; decoded_skip_special: string }>;
}

// oracle.json is what transformers 5.17 / tokenizers 0.23.2 compute (test/text/oracle/generate.py) on the
// fixture tokenizers and on variants of them (variants.json): other post-processors, pre-tokenizer
// behaviours, decoders, added-token flags, config-declared special tokens, clean-up on a WordPiece model.
const spec = readJson<VariantSpec>(join(ORACLE_DIR, "variants.json"));
const oracle = readJson<{ variants: OracleVariant[] }>(join(ORACLE_DIR, "oracle.json"));

describe.each(spec.variants.map((v) => [v.name, v] as const))("oracle variant %s", (name, variant) => {
  const expected = oracle.variants.find((v) => v.name === name)!;
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await Tokenizer.fromDir(buildVariantDir(variant));
  });

  it("has the same vocabulary, special tokens, bos and eos", () => {
    expect(tok.vocabSize).toBe(expected.vocab_size);
    expect([...tok.specialTokenIds].sort((a, b) => a - b)).toEqual(expected.added_special);
    expect(tok.bosTokenId ?? null).toBe(expected.bos_token_id);
    expect(tok.eosTokenIds[0] ?? null).toBe(expected.eos_token_id);
  });

  it("encodes and decodes every text the same way", () => {
    for (const e of expected.encode) {
      const got = {
        text: e.text,
        ids: tok.encode(e.text),
        ids_no_special: tok.encode(e.text, { addSpecialTokens: false }),
        decoded: tok.decode(e.ids),
        decoded_skip_special: tok.decode(e.ids, { skipSpecialTokens: true }),
      };
      expect(got).toEqual(e);
    }
  });

  it("decodes random id sequences the same way (invalid bytes, unknown ids, specials)", () => {
    for (const d of expected.decode) {
      expect({ ids: d.ids, decoded: tok.decode(d.ids) }).toEqual({ ids: d.ids, decoded: d.decoded });
      expect(tok.decode(d.ids, { skipSpecialTokens: true })).toBe(d.decoded_skip_special);
    }
  });

  it("streams every sequence to exactly decode()", () => {
    const sequences = [...expected.encode.map((e) => e.ids), ...expected.decode.map((d) => d.ids)];
    for (const ids of sequences) {
      for (const skipSpecialTokens of [false, true]) {
        const stream = tok.createStreamDecoder({ skipSpecialTokens });
        const text = ids.map((id) => stream.push(id)).join("") + stream.flush();
        expect({ ids, skipSpecialTokens, text }).toEqual({
          ids,
          skipSpecialTokens,
          text: tok.decode(ids, { skipSpecialTokens }),
        });
      }
    }
  });
});
