import { readFileSync } from "node:fs";
import { expect } from "vitest";
import { OllmError } from "../../src/errors.js";
import type { ChatTokenizer, TemplateMessage, TokenizerLoader } from "../../src/runtime/tokenizer.js";
import { defaultTokenizerLoader } from "../../src/runtime/tokenizer.js";
import { fixture } from "../runtime/helpers.js";

export { copyModel, fixture, removeDir, tempDir } from "../runtime/helpers.js";

/** golden.json fields these tests use. */
export interface Golden {
  conversation: { role: string; content: string }[];
  prompt_ids: number[];
  greedy_ids: number[];
}

export function golden(name: string): Golden {
  return JSON.parse(readFileSync(`${fixture(name)}/golden.json`, "utf8")) as Golden;
}

/** Awaits a promise that must reject with an OllmError of `code`; returns the error. */
export async function rejectsWith(
  promise: Promise<unknown> | (() => unknown),
  code: string,
): Promise<OllmError> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (error) {
    expect(error).toBeInstanceOf(OllmError);
    expect((error as OllmError).code, (error as Error).message).toBe(code);
    return error as OllmError;
  }
  throw new Error(`expected an OllmError ${code}`);
}

/** A tokenizer loader that records the messages every chat template is applied to. */
export function spyingTokenizerLoader(): { loader: TokenizerLoader; templated: TemplateMessage[][] } {
  const templated: TemplateMessage[][] = [];
  const loader: TokenizerLoader = async (dir) => {
    const real = await defaultTokenizerLoader(dir);
    const spy: ChatTokenizer = Object.create(real);
    spy.applyChatTemplate = (messages, options) => {
      templated.push(structuredClone(messages));
      return real.applyChatTemplate(messages, options);
    };
    return spy;
  };
  return { loader, templated };
}
