import { OllmError } from "../errors.js";
import { ReplaceDecoder } from "./library.js";
import { CHAR_TO_BYTE, utf8Lossy, utf8Strict } from "./byte-level.js";
import { isObject, type JsonObject } from "./files.js";
import { prependScheme } from "./pre-tokenizer.js";

/** One step of tokenizer.json's decoder: token strings in, strings out (joined at the end). */
export type DecodeChain = (tokens: string[]) => string[];

const utf8 = new TextEncoder();

/**
 * The decoders of tokenizers, written to match its Rust code (the library differs: ByteFallback gives one
 * U+FFFD per invalid byte run instead of per byte, ByteLevel maps unknown characters to byte 0, Metaspace
 * keeps the inner "▁" of the first token, Strip and CTC trim differently).
 */
export function buildDecoder(config: JsonObject | null | undefined): DecodeChain | undefined {
  if (config === null || config === undefined) return undefined;
  switch (config.type) {
    case "Sequence": {
      const list = Array.isArray(config.decoders) ? config.decoders : [];
      const steps = list.map((c) => buildDecoder(isObject(c) ? c : null)).filter((s) => s !== undefined);
      return (tokens) => steps.reduce((acc, step) => step(acc), tokens);
    }
    case "ByteLevel":
      return (tokens) => [byteLevel(tokens)];
    case "ByteFallback":
      return byteFallback;
    case "Fuse":
      return (tokens) => [tokens.join("")];
    case "Replace":
      return replace(config);
    case "Strip":
      return strip(String(config.content ?? " "), Number(config.start ?? 0), Number(config.stop ?? 0));
    case "Metaspace":
      return metaspace(config);
    case "WordPiece":
      return wordPiece(String(config.prefix ?? "##"), config.cleanup !== false);
    case "BPEDecoder":
      return bpeDecoder(String(config.suffix ?? "</w>"));
    case "CTC":
      return ctc(config);
    default:
      throw new OllmError("INVALID_TOKENIZER", `Unsupported decoder "${String(config.type)}".`);
  }
}

/** Whether the chain has ByteFallback: its byte runs decode all-or-nothing, so an open run is not final. */
export function hasByteFallback(config: unknown): boolean {
  if (!isObject(config)) return false;
  if (config.type === "ByteFallback") return true;
  return (
    config.type === "Sequence" && Array.isArray(config.decoders) && config.decoders.some(hasByteFallback)
  );
}

/** Bytes of each token's stand-in characters; a token with other characters contributes its own UTF-8. */
function byteLevel(tokens: string[]): string {
  const bytes: number[] = [];
  for (const token of tokens) {
    const mapped: number[] = [];
    let ok = true;
    for (const char of token) {
      const b = CHAR_TO_BYTE.get(char);
      if (b === undefined) {
        ok = false;
        break;
      }
      mapped.push(b);
    }
    if (ok) bytes.push(...mapped);
    else bytes.push(...utf8.encode(token));
  }
  return utf8Lossy(Uint8Array.from(bytes));
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** <0xNN> runs become text when they are valid UTF-8, else one U+FFFD per byte (tokenizers' rule). */
function byteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  let run: number[] = [];
  const flush = () => {
    if (run.length === 0) return;
    const text = utf8Strict(Uint8Array.from(run));
    if (text !== undefined) out.push(text);
    else for (let i = 0; i < run.length; i++) out.push("\uFFFD");
    run = [];
  };
  for (const token of tokens) {
    const m = BYTE_TOKEN.exec(token);
    if (m) run.push(Number.parseInt(m[1], 16));
    else {
      flush();
      out.push(token);
    }
  }
  flush();
  return out;
}

export function isByteToken(token: string): boolean {
  return BYTE_TOKEN.test(token);
}

function replace(config: JsonObject): DecodeChain {
  const content = String(config.content ?? "");
  let pattern: RegExp | null;
  try {
    pattern = new ReplaceDecoder(config).pattern;
  } catch (error) {
    throw new OllmError("INVALID_TOKENIZER", `Bad Replace pattern: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (pattern === null) return (tokens) => tokens;
  const re = pattern;
  return (tokens) => tokens.map((t) => t.replace(re, () => content));
}

/** Removes up to `start` leading and `stop` trailing `content` characters of each string. */
function strip(content: string, start: number, stop: number): DecodeChain {
  return (tokens) =>
    tokens.map((token) => {
      const chars = Array.from(token);
      let from = 0;
      while (from < start && from < chars.length && chars[from] === content) from++;
      let to = chars.length;
      while (chars.length - to < stop && to > from && chars[to - 1] === content) to--;
      return chars.slice(from, to).join("");
    });
}

/** "▁" becomes a space, except in the first token where every "▁" is dropped (unless prepend_scheme is never). */
function metaspace(config: JsonObject): DecodeChain {
  const replacement = typeof config.replacement === "string" ? config.replacement : "\u2581";
  const dropFirst = prependScheme(config) !== "never";
  return (tokens) => tokens.map((token, i) => token.replaceAll(replacement, i === 0 && dropFirst ? "" : " "));
}

function wordPiece(prefix: string, cleanup: boolean): DecodeChain {
  return (tokens) =>
    tokens.map((token, i) => {
      let t = token;
      if (i !== 0) t = t.startsWith(prefix) ? t.slice(prefix.length) : ` ${t}`;
      return cleanup ? wordPieceCleanup(t) : t;
    });
}

/** tokenizers' decoders::wordpiece::cleanup (it has " do not" which transformers' clean-up lacks). */
function wordPieceCleanup(text: string): string {
  return text
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" do not", " don't")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

function bpeDecoder(suffix: string): DecodeChain {
  return (tokens) => tokens.map((t, i) => t.replaceAll(suffix, i === tokens.length - 1 ? "" : " "));
}

function ctc(config: JsonObject): DecodeChain {
  const pad = String(config.pad_token ?? "<pad>");
  const delimiter = String(config.word_delimiter_token ?? "|");
  const cleanup = config.cleanup !== false;
  return (tokens) => {
    const out: string[] = [];
    tokens.forEach((token, i) => {
      if (i > 0 && token === tokens[i - 1]) return; // repeats collapse
      let t = token.replaceAll(pad, "");
      if (cleanup) t = wordPieceCleanup(t).replaceAll(delimiter, " ");
      if (t !== "") out.push(t);
    });
    return out;
  };
}

/** transformers' clean_up_tokenization (applied after decoding, never for BPE models). */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
