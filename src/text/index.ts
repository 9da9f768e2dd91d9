import { Tokenizer } from "./tokenizer.js";

export type { ChatTemplates, TokenizerFiles } from "./files.js";
export { readTokenizerFiles } from "./files.js";
export type { StreamDecoder } from "./stream-decoder.js";
export type { ChatMessage, ChatTemplateOptions } from "./tokenizer.js";
export { Tokenizer } from "./tokenizer.js";

/** Loads tokenizer.json, tokenizer_config.json and the chat template(s) of a model folder. */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  return Tokenizer.fromDir(dir);
}
