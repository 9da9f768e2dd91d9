import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { OllmError } from "../errors.js";

/** tokenizer.json, loosely typed: each component is validated where it is built. */
export interface TokenizerJson {
  added_tokens?: RawAddedToken[];
  normalizer?: JsonObject | null;
  pre_tokenizer?: JsonObject | null;
  post_processor?: JsonObject | null;
  decoder?: JsonObject | null;
  model: JsonObject;
}

export interface RawAddedToken {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

export type JsonObject = { [key: string]: unknown };

/** A single template, or named templates ("default", "tool_use", …) as transformers keeps them. */
export type ChatTemplates = string | Record<string, string>;

export interface TokenizerFiles {
  dir: string;
  tokenizerJson: TokenizerJson;
  /** tokenizer_config.json ({} when the file is absent, as transformers allows). */
  config: JsonObject;
  chatTemplates?: ChatTemplates;
}

const TOKENIZER_FILE = "tokenizer.json";
const CONFIG_FILE = "tokenizer_config.json";

export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const tokenizerText = await readText(dir, TOKENIZER_FILE);
  if (tokenizerText === undefined) {
    throw new OllmError("INVALID_TOKENIZER", `No ${TOKENIZER_FILE} in ${dir}.`, {
      hint: "Point at a Hugging Face model folder that has the fast-tokenizer file tokenizer.json.",
    });
  }
  const tokenizerJson = parseJsonObject(tokenizerText, join(dir, TOKENIZER_FILE));
  if (!isObject(tokenizerJson.model)) {
    throw new OllmError("INVALID_TOKENIZER", `${join(dir, TOKENIZER_FILE)} has no "model" section.`);
  }
  if (tokenizerJson.added_tokens !== undefined && !Array.isArray(tokenizerJson.added_tokens)) {
    throw new OllmError("INVALID_TOKENIZER", `${join(dir, TOKENIZER_FILE)}: "added_tokens" is not a list.`);
  }
  const configText = await readText(dir, CONFIG_FILE);
  const config = configText === undefined ? {} : parseJsonObject(configText, join(dir, CONFIG_FILE));
  return {
    dir,
    tokenizerJson: tokenizerJson as unknown as TokenizerJson,
    config,
    chatTemplates: await readChatTemplates(dir, config),
  };
}

/**
 * Where transformers finds chat templates: chat_template.jinja and additional_chat_templates/*.jinja take
 * priority over tokenizer_config.json's chat_template; chat_template.json (a processor file) comes last.
 */
async function readChatTemplates(dir: string, config: JsonObject): Promise<ChatTemplates | undefined> {
  const named: Record<string, string> = {};
  const main = await readText(dir, "chat_template.jinja");
  if (main !== undefined) named.default = main;
  const extraDir = join(dir, "additional_chat_templates");
  const extras = await readdir(extraDir).catch(() => [] as string[]);
  for (const file of extras.filter((f) => f.endsWith(".jinja")).sort()) {
    named[file.slice(0, -".jinja".length)] = (await readText(extraDir, file)) ?? "";
  }
  const keys = Object.keys(named);
  if (keys.length === 1 && keys[0] === "default") return named.default;
  if (keys.length > 0) return named;

  const fromConfig = templatesFromValue(config.chat_template, join(dir, CONFIG_FILE));
  if (fromConfig !== undefined) return fromConfig;
  const jsonText = await readText(dir, "chat_template.json");
  if (jsonText === undefined) return undefined;
  const file = parseJsonObject(jsonText, join(dir, "chat_template.json"));
  return templatesFromValue(file.chat_template, join(dir, "chat_template.json"));
}

/** A template value is a string, or a list of {name, template} (saved form of several templates). */
function templatesFromValue(value: unknown, where: string): ChatTemplates | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named: Record<string, string> = {};
    for (const entry of value) {
      if (!isObject(entry) || typeof entry.name !== "string" || typeof entry.template !== "string") {
        throw new OllmError(
          "INVALID_TOKENIZER",
          `${where}: chat_template entries need a name and a template.`,
        );
      }
      named[entry.name] = entry.template;
    }
    return named;
  }
  if (isObject(value) && Object.values(value).every((v) => typeof v === "string")) {
    return value as Record<string, string>;
  }
  throw new OllmError("INVALID_TOKENIZER", `${where}: chat_template has an unexpected form.`);
}

async function readText(dir: string, name: string): Promise<string | undefined> {
  try {
    return await readFile(join(dir, name), "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ENOTDIR" || code === "EISDIR") {
      throw new OllmError("INVALID_TOKENIZER", `Cannot read ${join(dir, name)}: ${code}.`, { cause: error });
    }
    throw new OllmError("IO_ERROR", `Cannot read ${join(dir, name)}.`, { cause: error });
  }
}

function parseJsonObject(text: string, where: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new OllmError("INVALID_TOKENIZER", `${where} is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!isObject(value)) throw new OllmError("INVALID_TOKENIZER", `${where} must hold a JSON object.`);
  return value;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
