import { OllmError } from "../errors.js";
import { isObject, type JsonObject } from "./files.js";

/** Adds the special tokens of tokenizer.json's post_processor around one sequence of ids. */
export type PostProcess = (ids: number[]) => number[];

/**
 * transformers v5 uses tokenizer.json's post_processor as it is: add_bos_token / add_eos_token in
 * tokenizer_config.json are dropped whenever tokenizer.json exists, and a missing post_processor adds nothing.
 */
export function buildPostProcessor(config: JsonObject | null | undefined): PostProcess {
  if (config === null || config === undefined) return (ids) => ids;
  switch (config.type) {
    case "Sequence": {
      const list = Array.isArray(config.processors) ? config.processors : [];
      const steps = list.map((c) => buildPostProcessor(isObject(c) ? c : null));
      return (ids) => steps.reduce((acc, step) => step(acc), ids);
    }
    case "ByteLevel":
      return (ids) => ids; // only trims offsets
    case "TemplateProcessing":
      return templateProcessing(config);
    case "BertProcessing":
    case "RobertaProcessing": {
      const cls = tokenPairId(config.cls, "cls");
      const sep = tokenPairId(config.sep, "sep");
      return (ids) => [cls, ...ids, sep];
    }
    default:
      throw new OllmError("INVALID_TOKENIZER", `Unsupported post-processor "${String(config.type)}".`);
  }
}

function templateProcessing(config: JsonObject): PostProcess {
  const single = Array.isArray(config.single) ? config.single : [];
  const specials = isObject(config.special_tokens) ? config.special_tokens : {};
  const parts: Array<number[] | "A"> = single.map((item) => {
    if (isObject(item) && isObject(item.Sequence)) return "A";
    if (isObject(item) && isObject(item.SpecialToken)) {
      const name = String(item.SpecialToken.id);
      const entry = specials[name];
      if (!isObject(entry) || !Array.isArray(entry.ids)) {
        throw new OllmError("INVALID_TOKENIZER", `TemplateProcessing: special token ${name} has no ids.`);
      }
      return entry.ids.map(Number);
    }
    throw new OllmError("INVALID_TOKENIZER", "TemplateProcessing: unknown template item.");
  });
  return (ids) => parts.flatMap((part) => (part === "A" ? ids : part));
}

function tokenPairId(value: unknown, name: string): number {
  if (Array.isArray(value) && typeof value[1] === "number") return value[1];
  throw new OllmError("INVALID_TOKENIZER", `Post-processor ${name} token must be [token, id].`);
}
