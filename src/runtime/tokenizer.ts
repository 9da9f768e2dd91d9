import type { Detokenizer } from "../engine/generate.js";
import { loadTokenizer } from "../text/index.js";

/** A chat message as a chat template takes it (a type alias, so it is assignable to src/text's ChatMessage). */
export type TemplateMessage = {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** An assistant's function calls, as transformers passes them (`arguments` parsed when it is JSON). */
  tool_calls?: { id: string; type: "function"; function: { name: string; arguments: unknown } }[];
  /** The call a tool message answers. */
  tool_call_id?: string;
};

/** What the runtime needs of a tokenizer (src/text's Tokenizer provides it). */
export interface ChatTokenizer extends Detokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  applyChatTemplate(
    messages: TemplateMessage[],
    options: { addGenerationPrompt: boolean; tools?: unknown[] },
  ): string;
  readonly eosTokenIds: readonly number[];
}

/** Loads the tokenizer of a model directory. */
export type TokenizerLoader = (dir: string) => Promise<ChatTokenizer>;

/** The default tokenizer loader: src/text's `loadTokenizer`. */
export const defaultTokenizerLoader: TokenizerLoader = (dir) => loadTokenizer(dir);
