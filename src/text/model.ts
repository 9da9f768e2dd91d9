import { OllmError } from "../errors.js";
import { BPE, type LibModel, Unigram, WordPiece } from "./library.js";
import { isObject, type JsonObject } from "./files.js";

/** The subword model of tokenizer.json: pre-tokens in, token ids out. */
export interface TokenModel {
  readonly type: "BPE" | "Unigram" | "WordPiece" | "WordLevel";
  readonly vocab: ReadonlyMap<string, number>;
  tokenize(pieces: string[]): number[];
  idToToken(id: number): string | undefined;
}

export function buildModel(config: JsonObject): TokenModel {
  const type = modelType(config);
  if (type === "WordLevel") return wordLevel(config);
  let lib: LibModel;
  try {
    // The library's models are built from the same JSON; we keep them separate from added tokens
    // (its Tokenizer writes added tokens into the model vocab, which tokenizers does not).
    if (type === "BPE") lib = new BPE(config);
    else if (type === "Unigram") lib = new Unigram(config, "");
    else lib = new WordPiece(config);
  } catch (error) {
    throw new OllmError("INVALID_TOKENIZER", `Cannot build the ${type} model: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const vocab = lib.tokens_to_ids;
  const byId = lib.vocab;
  return {
    type,
    vocab,
    tokenize: (pieces) => {
      const ids: number[] = [];
      for (const token of lib(pieces)) {
        const id = vocab.get(token);
        if (id !== undefined) ids.push(id);
      }
      return ids;
    },
    idToToken: (id) => byId[id],
  };
}

/** tokenizers accepts a model without "type" (older files): infer it the way its deserializer does. */
function modelType(config: JsonObject): TokenModel["type"] {
  const type = config.type;
  if (type === "BPE" || type === "Unigram" || type === "WordPiece" || type === "WordLevel") return type;
  if (type !== undefined) {
    throw new OllmError("INVALID_TOKENIZER", `Unsupported tokenizer model type "${String(type)}".`);
  }
  if (Array.isArray(config.vocab)) return "Unigram";
  if (!isObject(config.vocab)) throw new OllmError("INVALID_TOKENIZER", "tokenizer.json model has no vocab.");
  if ("merges" in config) return "BPE";
  if ("continuing_subword_prefix" in config) return "WordPiece";
  return "WordLevel";
}

function wordLevel(config: JsonObject): TokenModel {
  if (!isObject(config.vocab)) throw new OllmError("INVALID_TOKENIZER", "WordLevel model has no vocab.");
  const vocab = new Map(Object.entries(config.vocab as Record<string, number>));
  const byId: string[] = [];
  for (const [token, id] of vocab) byId[id] = token;
  const unk = typeof config.unk_token === "string" ? vocab.get(config.unk_token) : undefined;
  return {
    type: "WordLevel",
    vocab,
    tokenize: (pieces) =>
      pieces.flatMap((piece) => {
        const id = vocab.get(piece) ?? unk;
        return id === undefined ? [] : [id];
      }),
    idToToken: (id) => byId[id],
  };
}
