import type { AddedToken } from "./special-tokens.js";

/** A stretch of input: either an added token (id set) or text still to be tokenized by the model. */
export interface Piece {
  text: string;
  id?: number;
  /** Whether the piece starts at offset 0 of the original input (Metaspace's "first" scheme needs it). */
  atStart: boolean;
}

interface TrieNode {
  next: Map<string, TrieNode>;
  token?: AddedToken;
}

const WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;
const LEADING_SPACE = /^\p{White_Space}*/u;
const TRAILING_SPACE = /\p{White_Space}*$/u;

/**
 * Finds added tokens in text the way tokenizers' AddedVocabulary does: leftmost-longest matches, tokens with
 * normalized=false against the raw text, the others against each normalized piece; lstrip/rstrip swallow the
 * whitespace beside the token, single_word tokens only match between non-word characters.
 */
export class AddedVocabulary {
  private readonly raw: TrieNode = { next: new Map() };
  private readonly normalized: TrieNode = { next: new Map() };

  constructor(tokens: readonly AddedToken[], normalize: (text: string) => string, splitSpecial = false) {
    for (const token of tokens) {
      // split_special_tokens: special tokens in the text are plain text, as in transformers.
      if (splitSpecial && token.special) continue;
      if (token.normalized) insert(this.normalized, normalize(token.content), token);
      else insert(this.raw, token.content, token);
    }
  }

  splitRaw(text: string): Piece[] {
    return split(this.raw, text, true);
  }

  /** Splits an already normalized piece; only its first part can still be at the start of the input. */
  splitNormalized(piece: Piece): Piece[] {
    return split(this.normalized, piece.text, piece.atStart);
  }
}

function insert(root: TrieNode, content: string, token: AddedToken): void {
  if (content === "") return;
  let node = root;
  for (const char of content) {
    let child = node.next.get(char);
    if (child === undefined) {
      child = { next: new Map() };
      node.next.set(char, child);
    }
    node = child;
  }
  node.token = token;
}

/** The longest token starting at `start` (JS string index), with its end. */
function longestMatch(
  root: TrieNode,
  text: string,
  start: number,
): { token: AddedToken; end: number } | undefined {
  let node: TrieNode | undefined = root;
  let found: { token: AddedToken; end: number } | undefined;
  let i = start;
  while (i < text.length) {
    const cp = text.codePointAt(i)!;
    const char = String.fromCodePoint(cp);
    node = node.next.get(char);
    if (node === undefined) break;
    i += char.length;
    if (node.token !== undefined) found = { token: node.token, end: i };
  }
  return found;
}

function split(root: TrieNode, text: string, atStart: boolean): Piece[] {
  if (root.next.size === 0 || text === "") return text === "" ? [] : [{ text, atStart }];
  const pieces: Piece[] = [];
  let done = 0; // end of the last emitted piece
  let i = 0;
  while (i < text.length) {
    const match = longestMatch(root, text, i);
    if (match === undefined) {
      i += text.codePointAt(i)! > 0xffff ? 2 : 1;
      continue;
    }
    const { token } = match;
    let start = i;
    let end = match.end;
    i = end; // like the Aho-Corasick iterator, scanning resumes after the match even if it is rejected
    if (token.singleWord && !isSingleWord(text, start, end)) continue;
    if (token.lstrip) start = Math.max(done, start - TRAILING_SPACE.exec(text.slice(0, start))![0].length);
    if (token.rstrip) end += LEADING_SPACE.exec(text.slice(end))![0].length;
    if (done < start) pieces.push({ text: text.slice(done, start), atStart: atStart && done === 0 });
    pieces.push({ text: text.slice(start, end), id: token.id, atStart: atStart && start === 0 });
    done = Math.max(done, end);
    i = Math.max(i, done);
  }
  if (done < text.length) pieces.push({ text: text.slice(done), atStart: atStart && done === 0 });
  return pieces;
}

function isSingleWord(text: string, start: number, end: number): boolean {
  const before = start === 0 ? "" : String.fromCodePoint(codePointBefore(text, start));
  const after = end >= text.length ? "" : String.fromCodePoint(text.codePointAt(end)!);
  return !WORD_CHAR.test(before) && !WORD_CHAR.test(after);
}

function codePointBefore(text: string, index: number): number {
  const low = text.charCodeAt(index - 1);
  if (index >= 2 && low >= 0xdc00 && low <= 0xdfff) {
    const high = text.charCodeAt(index - 2);
    if (high >= 0xd800 && high <= 0xdbff) return text.codePointAt(index - 2)!;
  }
  return low;
}
