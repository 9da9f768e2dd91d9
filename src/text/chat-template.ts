import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { OllmError } from "../errors.js";
import type { ChatTemplates } from "./files.js";

export interface RenderInput {
  messages: unknown[];
  addGenerationPrompt: boolean;
  tools?: unknown[];
  documents?: unknown[];
  /** bos_token, eos_token, … (transformers' special_tokens_map). */
  specialTokens: Record<string, string>;
  /** Extra template variables (enable_thinking, date_string, …); they override special tokens. */
  extra?: Record<string, unknown>;
}

/** The template transformers' get_chat_template picks: "tool_use" when tools are given, else "default". */
export function selectChatTemplate(
  templates: ChatTemplates | undefined,
  where: string,
  tools?: unknown[],
): string {
  if (typeof templates === "string") return templates;
  if (templates !== undefined) {
    if (tools !== undefined && templates.tool_use !== undefined) return templates.tool_use;
    if (templates.default !== undefined) return templates.default;
    throw new OllmError(
      "INVALID_TOKENIZER",
      `${where} has several chat templates (${Object.keys(templates).sort().join(", ")}) and no default one.`,
    );
  }
  throw new OllmError("INVALID_TOKENIZER", `${where} has no chat template.`, {
    hint: "Expected chat_template.jinja, or a chat_template entry in tokenizer_config.json (or chat_template.json).",
  });
}

const compiled = new Map<string, Template>();

/** Renders like transformers' render_jinja_template (same variables; trim_blocks and lstrip_blocks on). */
export function renderChatTemplate(source: string, input: RenderInput): string {
  if (!Array.isArray(input.messages) || input.messages.length === 0) {
    throw new OllmError("INVALID_ARGUMENT", "A chat needs at least one message.");
  }
  let template = compiled.get(source);
  if (template === undefined) {
    try {
      template = new Template(source);
    } catch (error) {
      throw new OllmError(
        "INVALID_TOKENIZER",
        `The chat template does not parse: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    compiled.set(source, template);
  }
  try {
    return render(template, {
      ...input.specialTokens,
      ...input.extra,
      messages: input.messages,
      // transformers passes None when absent: templates test `tools is not none`.
      tools: input.tools ?? null,
      documents: input.documents ?? null,
      add_generation_prompt: input.addGenerationPrompt,
    });
  } catch (error) {
    if (error instanceof OllmError) throw error;
    throw new OllmError(
      "INVALID_ARGUMENT",
      `The chat template rejected the messages: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Template.render() declares the library's globals first and refuses to redeclare them, so its strftime_now
 * (which follows the JS locale) could not be replaced: we set up the same globals ourselves.
 */
function render(template: Template, variables: Record<string, unknown>): string {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    range: pythonRange,
    raise_exception: raiseException,
    strftime_now: strftimeNow,
  };
  for (const [name, value] of Object.entries({ ...globals, ...variables })) env.set(name, value);
  return (new Interpreter(env).run(template.parsed) as { value: string }).value;
}

function pythonRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error("range() arg 3 must not be zero");
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

function raiseException(message: unknown): never {
  throw new OllmError("INVALID_ARGUMENT", `The chat template rejected the messages: ${String(message)}`);
}

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/** Python's datetime.now().strftime in the C locale (the library's version follows the JS locale). */
export function strftimeNow(format: unknown, now: Date = new Date()): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  const hour12 = now.getHours() % 12 === 0 ? 12 : now.getHours() % 12;
  const start = new Date(now.getFullYear(), 0, 1);
  const dayOfYear = Math.floor((now.getTime() - start.getTime()) / 86_400_000) + 1;
  const fields: Record<string, string> = {
    a: DAYS[now.getDay()].slice(0, 3),
    A: DAYS[now.getDay()],
    b: MONTHS[now.getMonth()].slice(0, 3),
    B: MONTHS[now.getMonth()],
    d: pad(now.getDate()),
    e: String(now.getDate()).padStart(2, " "),
    H: pad(now.getHours()),
    I: pad(hour12),
    j: pad(dayOfYear, 3),
    m: pad(now.getMonth() + 1),
    M: pad(now.getMinutes()),
    p: now.getHours() < 12 ? "AM" : "PM",
    S: pad(now.getSeconds()),
    y: pad(now.getFullYear() % 100),
    Y: String(now.getFullYear()),
    "%": "%",
  };
  return String(format).replace(/%([a-zA-Z%])/g, (all, key: string) => fields[key] ?? all);
}
