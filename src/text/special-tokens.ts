import { OllmError } from "../errors.js";
import { isObject, type JsonObject, type TokenizerJson } from "./files.js";
import type { TokenModel } from "./model.js";

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  /** Matched against the normalized text (true) or the raw text (false). */
  normalized: boolean;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
}

/** The named special-token attributes of transformers (SPECIAL_TOKENS_ATTRIBUTES). */
const NAMED_ATTRIBUTES = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;

/** A config token value is a string or a serialized AddedToken ({content, lstrip, …}). */
export function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (isObject(value) && typeof value.content === "string") return value.content;
  return undefined;
}

/**
 * bos_token, eos_token, … plus any other "*_token" string of tokenizer_config.json (model-specific tokens
 * such as Gemma 3's image_token), as transformers' special_tokens_map: these are also the template variables.
 */
export function namedSpecialTokens(config: JsonObject): Record<string, string> {
  const named: Record<string, string> = {};
  for (const key of NAMED_ATTRIBUTES) {
    const content = tokenContent(config[key]);
    if (content !== undefined) named[key] = content;
  }
  for (const [key, value] of Object.entries(config)) {
    if (!key.endsWith("_token") || key in named) continue;
    const content = tokenContent(value);
    if (content !== undefined) named[key] = content;
  }
  if (isObject(config.extra_special_tokens)) {
    for (const [key, value] of Object.entries(config.extra_special_tokens)) {
      const content = tokenContent(value);
      if (content !== undefined) named[key] = content;
    }
  }
  return named;
}

/** extra_special_tokens (v5) or additional_special_tokens (v4) as a list. */
function extraSpecialTokens(config: JsonObject): unknown[] {
  const list = Array.isArray(config.extra_special_tokens)
    ? config.extra_special_tokens
    : config.additional_special_tokens;
  return Array.isArray(list) ? list : [];
}

/**
 * The added vocabulary as transformers ends up with it: tokenizer.json's added_tokens, then tokens that
 * tokenizer_config.json declares (added_tokens_decoder entries, named and extra special tokens) which
 * tokenizer.json lacks. Those are added as special tokens: with the id they have in the vocab, else new ids.
 */
export function collectAddedTokens(json: TokenizerJson, config: JsonObject, model: TokenModel): AddedToken[] {
  const tokens = ((json.added_tokens ?? []) as unknown as JsonObject[]).map(fromRaw);
  const known = new Map(tokens.map((t) => [t.content, t]));
  const pending: AddedToken[] = [];
  const queue = (value: unknown, special: boolean) => {
    const content = tokenContent(value);
    if (content === undefined || content === "" || known.has(content)) return;
    const flags = isObject(value) ? value : {};
    const token = fromRaw({ ...flags, id: -1, content, special });
    // A plain string becomes AddedToken(content, special=True): not normalized.
    if (!isObject(value)) token.normalized = false;
    known.set(content, token);
    pending.push(token);
  };
  if (isObject(config.added_tokens_decoder)) {
    const entries = Object.entries(config.added_tokens_decoder).sort((a, b) => Number(a[0]) - Number(b[0]));
    for (const [, value] of entries) queue(value, isObject(value) && value.special === true);
  }
  for (const value of Object.values(namedSpecialTokens(config))) queue(value, true);
  for (const value of extraSpecialTokens(config)) queue(value, true);

  // New ids continue after the model vocab, or after the highest added id when that is already past it.
  const modelSize = model.vocab.size;
  const maxAdded = Math.max(-1, ...tokens.map((t) => t.id));
  let nextId = maxAdded >= modelSize ? maxAdded + 1 : modelSize;
  for (const token of pending) {
    token.id = model.vocab.get(token.content) ?? nextId++;
    tokens.push(token);
  }
  return tokens;
}

function fromRaw(raw: JsonObject): AddedToken {
  if (typeof raw.content !== "string" || typeof raw.id !== "number") {
    throw new OllmError("INVALID_TOKENIZER", "An added token needs a string content and a numeric id.");
  }
  const special = raw.special === true;
  return {
    id: raw.id,
    content: raw.content,
    special,
    normalized: typeof raw.normalized === "boolean" ? raw.normalized : !special,
    lstrip: raw.lstrip === true,
    rstrip: raw.rstrip === true,
    singleWord: raw.single_word === true,
  };
}
