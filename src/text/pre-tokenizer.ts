import { OllmError } from "../errors.js";
import { type LibPreTokenizer, SequencePreTokenizer, SplitPreTokenizer } from "./library.js";
import type { Piece } from "./added-vocabulary.js";
import { BYTE_TO_CHAR } from "./byte-level.js";
import { isObject, type JsonObject } from "./files.js";

export type PreTokenize = (pieces: Piece[]) => Piece[];

type Behavior = "Removed" | "Isolated" | "MergedWithPrevious" | "MergedWithNext" | "Contiguous";
interface Segment {
  start: number;
  end: number;
  match: boolean;
}

// GPT-2's split, as tokenizers compiles it with Oniguruma: \s there is Unicode White_Space (JS's \s is not).
const GPT2_SPLIT =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;
const utf8 = new TextEncoder();

/**
 * tokenizer.json's pre-tokenizer. Split, Metaspace and ByteLevel are implemented here because the library
 * treats every Split behaviour except Removed as Isolated, never splits in Metaspace, and uses JS's \s;
 * the rest (Digits, Punctuation, Whitespace, Bert, …) comes from the library.
 */
export function buildPreTokenizer(config: JsonObject | null | undefined): PreTokenize {
  if (config === null || config === undefined) return (pieces) => pieces;
  switch (config.type) {
    case "Sequence": {
      const list = Array.isArray(config.pretokenizers) ? config.pretokenizers : [];
      const steps = list.map((c) => buildPreTokenizer(isObject(c) ? c : null));
      return (pieces) => steps.reduce((p, step) => step(p), pieces);
    }
    case "Split":
      return splitPreTokenizer(config);
    case "Metaspace":
      return metaspace(config);
    case "ByteLevel":
      return byteLevel(config);
    default:
      return libraryPreTokenizer(config);
  }
}

function splitPreTokenizer(config: JsonObject): PreTokenize {
  const pattern = libraryPattern(config);
  const behavior = parseBehavior(config.behavior);
  const invert = config.invert === true;
  return (pieces) =>
    pieces.flatMap((piece) => {
      const segments = findMatches(piece.text, pattern).map((s) => (invert ? { ...s, match: !s.match } : s));
      return applyBehavior(segments, behavior).map((s) => toPiece(piece, s));
    });
}

function metaspace(config: JsonObject): PreTokenize {
  const replacement = typeof config.replacement === "string" ? config.replacement : "\u2581";
  const scheme = prependScheme(config);
  const split = config.split !== false;
  return (pieces) =>
    pieces.flatMap((piece) => {
      let text = piece.text.replaceAll(" ", replacement);
      const prepend = scheme === "always" || (scheme === "first" && piece.atStart);
      if (prepend && !text.startsWith(replacement)) text = replacement + text;
      if (!split) return [{ text, atStart: piece.atStart }];
      const segments = literalMatches(text, replacement);
      return applyBehavior(segments, "MergedWithNext").map((s) =>
        toPiece({ text, atStart: piece.atStart }, s),
      );
    });
}

/** Older files carry add_prefix_space instead of prepend_scheme. */
export function prependScheme(config: JsonObject): "always" | "first" | "never" {
  const scheme = config.prepend_scheme;
  if (scheme === "always" || scheme === "first" || scheme === "never") return scheme;
  if (config.add_prefix_space === false) return "never";
  return "always";
}

function byteLevel(config: JsonObject): PreTokenize {
  const addPrefixSpace = config.add_prefix_space !== false;
  const useRegex = config.use_regex !== false;
  return (pieces) =>
    pieces.flatMap((piece) => {
      let text = piece.text;
      if (addPrefixSpace && !text.startsWith(" ")) text = ` ${text}`;
      const parts = useRegex ? findMatches(text, GPT2_SPLIT).map((s) => text.slice(s.start, s.end)) : [text];
      return parts
        .filter((part) => part !== "")
        .map((part, i) => ({
          text: Array.from(utf8.encode(part), (b) => BYTE_TO_CHAR[b]).join(""),
          atStart: piece.atStart && i === 0,
        }));
    });
}

function libraryPreTokenizer(config: JsonObject): PreTokenize {
  let lib: LibPreTokenizer;
  try {
    lib = new SequencePreTokenizer({ type: "Sequence", pretokenizers: [config] });
  } catch (error) {
    throw new OllmError("INVALID_TOKENIZER", `Unsupported pre-tokenizer: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return (pieces) =>
    pieces.flatMap((piece) =>
      lib.pre_tokenize_text(piece.text).map((text, i) => ({ text, atStart: piece.atStart && i === 0 })),
    );
}

/** The library's translation of an Oniguruma pattern (or an escaped literal) to a global JS RegExp. */
function libraryPattern(config: JsonObject): RegExp {
  let pattern: RegExp | null;
  try {
    pattern = new SplitPreTokenizer({ ...config, invert: true }).pattern;
  } catch (error) {
    throw new OllmError("INVALID_TOKENIZER", `Bad Split pattern: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (pattern === null) throw new OllmError("INVALID_TOKENIZER", "Split pre-tokenizer without a pattern.");
  return pattern;
}

function parseBehavior(value: unknown): Behavior {
  const names: Record<string, Behavior> = {
    removed: "Removed",
    isolated: "Isolated",
    mergedwithprevious: "MergedWithPrevious",
    mergedwithnext: "MergedWithNext",
    contiguous: "Contiguous",
  };
  const behavior = names[String(value).replaceAll("_", "").toLowerCase()];
  if (behavior === undefined)
    throw new OllmError("INVALID_TOKENIZER", `Unknown Split behavior ${String(value)}.`);
  return behavior;
}

/** Matches and the gaps between them, covering the whole text (tokenizers' Pattern::find_matches). */
function findMatches(text: string, pattern: RegExp): Segment[] {
  if (text === "") return [];
  const segments: Segment[] = [];
  let prev = 0;
  for (const m of text.matchAll(pattern)) {
    const start = m.index ?? 0;
    if (prev !== start) segments.push({ start: prev, end: start, match: false });
    segments.push({ start, end: start + m[0].length, match: true });
    prev = start + m[0].length;
  }
  if (prev !== text.length) segments.push({ start: prev, end: text.length, match: false });
  return segments;
}

function literalMatches(text: string, literal: string): Segment[] {
  const escaped = literal.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return findMatches(text, new RegExp(escaped, "gu"));
}

/** tokenizers' NormalizedString::split: how delimiters are kept; empty parts are dropped. */
function applyBehavior(segments: Segment[], behavior: Behavior): Segment[] {
  let out: Segment[];
  switch (behavior) {
    case "Removed":
      out = segments.filter((s) => !s.match);
      break;
    case "Isolated":
      out = segments;
      break;
    case "Contiguous":
      out = mergeRuns(segments, (s, prev) => s.match === prev);
      break;
    case "MergedWithPrevious":
      out = mergeRuns(segments, (s, prev) => s.match && !prev);
      break;
    case "MergedWithNext":
      out = mergeRuns([...segments].reverse(), (s, prev) => s.match && !prev, true).reverse();
      break;
  }
  return out.filter((s) => s.end > s.start);
}

/** Folds each segment into the last kept one when `join` says so (tracking whether the previous matched). */
function mergeRuns(
  segments: Segment[],
  join: (segment: Segment, previousMatched: boolean) => boolean,
  backwards = false,
): Segment[] {
  const out: Segment[] = [];
  let previousMatched = false;
  for (const s of segments) {
    const last = out.at(-1);
    if (join(s, previousMatched) && last !== undefined) {
      if (backwards) last.start = s.start;
      else last.end = s.end;
    } else out.push({ ...s });
    previousMatched = s.match;
  }
  return out;
}

function toPiece(parent: Piece, segment: Segment): Piece {
  return {
    text: parent.text.slice(segment.start, segment.end),
    atStart: parent.atStart && segment.start === 0,
  };
}
