import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Tokenizer } from "../../src/text/index.js";
import { readJson, rng, TOKENIZER_NAMES, tokenizerDir } from "./helpers.js";

interface Golden {
  encode: Array<{ text: string; ids: number[]; ids_no_special: number[] }>;
}

const MULTIBYTE = [
  "caf\u00e9 na\u00efve \u00fcber",
  "\u4f60\u597d\uff0c\u4e16\u754c \u3053\u3093\u306b\u3061\u306f",
  "emoji \u{1F600}\u{1F680} and \u2603",
  "\u{1F3F3}\uFE0F\u200D\u{1F308} \u041F\u0440\u0438\u0432\u0435\u0442",
  "def join(a, *p):\n    return a\n",
];

/** Pushes ids one by one, checking after each push that everything returned so far is final. */
function streamed(tok: Tokenizer, ids: number[], skipSpecialTokens: boolean): string {
  const full = tok.decode(ids, { skipSpecialTokens });
  const stream = tok.createStreamDecoder({ skipSpecialTokens });
  let out = "";
  for (const id of ids) {
    out += stream.push(id);
    // Never ahead of the final text: no broken UTF-8 or wrong space was emitted and later corrected.
    if (!full.startsWith(out))
      throw new Error(`stream emitted ${JSON.stringify(out)}, decode is ${JSON.stringify(full)}`);
  }
  return out + stream.flush();
}

function randomSequences(tok: Tokenizer, seed: number): number[][] {
  const next = rng(seed);
  const pick = <T>(list: T[]) => list[Math.floor(next() * list.length)];
  const specials = [...tok.specialTokenIds];
  const bytes = Array.from({ length: 256 }, (_, b) =>
    tok.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`),
  ).filter((id) => id !== undefined);
  const encoded = MULTIBYTE.map((t) => tok.encode(t, { addSpecialTokens: false }));
  const sequences: number[][] = [];
  for (let n = 0; n < 150; n++) {
    const length = 1 + Math.floor(next() * 40);
    const kind = n % 3;
    const seq: number[] = [];
    for (let i = 0; i < length; i++) {
      if (kind === 0) seq.push(Math.floor(next() * tok.vocabSize));
      else if (kind === 1 && bytes.length > 0 && next() < 0.7) seq.push(pick(bytes));
      else {
        // a slice of a real multi-byte encoding, cut anywhere
        const source = pick(encoded);
        seq.push(source[Math.floor(next() * source.length)]);
      }
      if (specials.length > 0 && next() < 0.05) seq.push(pick(specials));
    }
    sequences.push(seq);
  }
  // Long runs of real text move the window anchor many times.
  const long = encoded.flat();
  sequences.push([...long, ...long, ...long]);
  for (const source of encoded) {
    for (let cut = 1; cut < source.length; cut++) sequences.push(source.slice(cut - 1, cut + 2));
  }
  return sequences;
}

describe.each(TOKENIZER_NAMES)("stream decoder on %s", (name) => {
  const golden = readJson<Golden>(join(tokenizerDir(name), "tokenizer_golden.json"));
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await Tokenizer.fromDir(tokenizerDir(name));
  });

  it("equals decode() for every golden text, ids with and without special tokens", () => {
    for (const e of golden.encode) {
      for (const ids of [e.ids, e.ids_no_special]) {
        for (const skip of [false, true]) {
          expect(streamed(tok, ids, skip)).toBe(tok.decode(ids, { skipSpecialTokens: skip }));
        }
      }
    }
  });

  it("equals decode() for random id sequences, including ones that split multi-byte characters", () => {
    for (const ids of randomSequences(tok, name.length * 7919)) {
      for (const skip of [false, true]) {
        expect({ ids, text: streamed(tok, ids, skip) }).toEqual({
          ids,
          text: tok.decode(ids, { skipSpecialTokens: skip }),
        });
      }
    }
  });

  it("emits plain text as it comes, not only at flush", () => {
    const ids = tok.encode("Return the canonical path of the specified filename.", {
      addSpecialTokens: false,
    });
    const stream = tok.createStreamDecoder();
    const deltas = ids.map((id) => stream.push(id));
    expect(stream.flush()).toBe("");
    expect(deltas.filter((d) => d !== "").length).toBeGreaterThan(ids.length / 2);
  });

  it("holds a character split over several tokens until it is complete", () => {
    const ids = tok.encode("\u{1F680}", { addSpecialTokens: false });
    expect(ids.length).toBeGreaterThan(1); // the fixture vocabularies spell it in bytes
    const stream = tok.createStreamDecoder();
    const deltas = ids.map((id) => stream.push(id));
    expect(deltas.slice(0, -1).join("")).not.toContain("\u{1F680}");
    expect(deltas.join("") + stream.flush()).toBe(tok.decode(ids));
    expect(deltas.join("")).not.toContain("\uFFFD");
  });
});
