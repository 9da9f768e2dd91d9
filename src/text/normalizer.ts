import { OllmError } from "../errors.js";
import { SequenceNormalizer } from "./library.js";
import { BYTE_TO_CHAR } from "./byte-level.js";
import { isObject, type JsonObject } from "./files.js";

export type Normalize = (text: string) => string;

const utf8 = new TextEncoder();

/** tokenizer.json's normalizer; the library's implementations except where tokenizers behaves differently. */
export function buildNormalizer(config: JsonObject | null | undefined): Normalize {
  if (config === null || config === undefined) return (text) => text;
  switch (config.type) {
    case "Sequence": {
      const steps = (Array.isArray(config.normalizers) ? config.normalizers : []).map((c) =>
        buildNormalizer(isObject(c) ? c : null),
      );
      return (text) => steps.reduce((t, step) => step(t), text);
    }
    case "Prepend": {
      // tokenizers prepends only to a non-empty string (the library always does).
      const prepend = String(config.prepend ?? "");
      return (text) => (text === "" ? text : prepend + text);
    }
    case "ByteLevel":
      // Not in the library: each UTF-8 byte becomes its printable stand-in, like the ByteLevel pre-tokenizer.
      return (text) => Array.from(utf8.encode(text), (b) => BYTE_TO_CHAR[b]).join("");
    default:
      return libraryNormalizer(config);
  }
}

function libraryNormalizer(config: JsonObject): Normalize {
  try {
    // A one-element Sequence is the library's public way to build any normalizer from its JSON.
    const normalizer = new SequenceNormalizer({ type: "Sequence", normalizers: [config] });
    return (text) => normalizer.normalize(text);
  } catch (error) {
    throw new OllmError("INVALID_TOKENIZER", `Unsupported normalizer: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
