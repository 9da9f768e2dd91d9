/**
 * Tool (function) calls parsed from a model's raw output (special tokens included), in the formats the
 * chat templates of the supported families teach their models:
 *
 * - `hermes` (Qwen 2.5/3, Hermes, many fine-tunes): `<tool_call>{"name": …, "arguments": {…}}</tool_call>`,
 *   also with the XML body of Qwen3-Coder (`<function=name><parameter=p>value</parameter></function>`);
 * - `llama3-json` (Llama 3.1–3.3): the whole reply is `{"name": …, "parameters": {…}}` (optionally after
 *   `<|python_tag|>`, several separated by `;`, or a JSON array), or `<function=name>{…}</function>`;
 * - `mistral`: `[TOOL_CALLS][{"name": …, "arguments": {…}}]` (v3) or `[TOOL_CALLS]name[ARGS]{…}` (v11+);
 * - `harmony` (gpt-oss): `<|channel|>commentary to=functions.name <|constrain|>json<|message|>{…}<|call|>`,
 *   with the `analysis` channel as reasoning and `final` as the content.
 *
 * The format is recognised from the output itself, so fine-tunes with another family's template work.
 */

/** A parsed call: the function's name and its arguments as JSON text. */
export interface ParsedToolCall {
  name: string;
  arguments: string;
}

/** The formats {@link parseToolCalls} recognises. */
export type ToolCallFormat = "hermes" | "llama3-json" | "mistral" | "harmony";

/** A reply split into its content, its reasoning (harmony analysis) and its tool calls. */
export interface ParsedOutput {
  /** Text meant for the user (tool-call markup removed). */
  content: string;
  /** Reasoning the model wrote apart from the content (gpt-oss analysis channel), if any. */
  reasoning: string | null;
  toolCalls: ParsedToolCall[];
  /** The format the calls were written in (null when there are none). */
  format: ToolCallFormat | null;
}

const HERMES_OPEN = "<tool_call>";
const HERMES_CLOSE = "</tool_call>";
const MISTRAL_MARKER = "[TOOL_CALLS]";
const PYTHON_TAG = "<|python_tag|>";
const HARMONY_CHANNEL = "<|channel|>";

/** Markers that start tool-call markup in the visible text of a reply (what streaming holds back). */
export const TOOL_CALL_MARKERS = [HERMES_OPEN, MISTRAL_MARKER, PYTHON_TAG, "<function="] as const;

/** Splits a raw reply into content, reasoning and tool calls (none found: the text is all content). */
export function parseToolCalls(raw: string): ParsedOutput {
  if (raw.includes(HARMONY_CHANNEL)) return parseHarmony(raw);
  if (raw.includes(MISTRAL_MARKER)) {
    const parsed = parseMistral(raw);
    if (parsed) return parsed;
  }
  if (raw.includes(HERMES_OPEN)) {
    const parsed = parseHermes(raw);
    if (parsed) return parsed;
  }
  const llama = parseLlamaJson(raw);
  if (llama) return llama;
  return { content: raw, reasoning: null, toolCalls: [], format: null };
}

/** A call from a JSON object `{name, arguments | parameters}`; null when it is not one. */
function callFromObject(value: unknown): ParsedToolCall | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const o = value as Record<string, unknown>;
  // {"type": "function", "function": {...}} (OpenAI shape some models echo).
  if (typeof o.function === "object" && o.function !== null && o.name === undefined)
    return callFromObject(o.function);
  if (typeof o.name !== "string" || o.name.length === 0) return null;
  const args = o.arguments !== undefined ? o.arguments : o.parameters;
  return { name: o.name, arguments: argumentsText(args) };
}

/** Arguments as JSON text: objects serialized; strings kept when they are JSON, else serialized. */
function argumentsText(args: unknown): string {
  if (args === undefined || args === null) return "{}";
  if (typeof args === "string") {
    try {
      JSON.parse(args);
      return args;
    } catch {
      return JSON.stringify(args);
    }
  }
  return JSON.stringify(args);
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Index just past the JSON object or array starting at `start` (strings honoured), or -1. */
export function scanJsonValue(text: string, start: number): number {
  const open = text[start];
  if (open !== "{" && open !== "[") return -1;
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && /\s/.test(text[i])) i++;
  return i;
}

function clean(content: string): string {
  return content.replace(/\n{3,}/g, "\n\n").trim();
}

// ---- hermes -------------------------------------------------------------------------------------------

function parseHermes(raw: string): ParsedOutput | null {
  const calls: ParsedToolCall[] = [];
  let content = "";
  let i = 0;
  for (;;) {
    const open = raw.indexOf(HERMES_OPEN, i);
    if (open < 0) {
      content += raw.slice(i);
      break;
    }
    content += raw.slice(i, open);
    const bodyStart = open + HERMES_OPEN.length;
    const close = raw.indexOf(HERMES_CLOSE, bodyStart);
    // An unclosed block at the end (generation stopped on the eos token) still counts.
    const body = raw.slice(bodyStart, close < 0 ? undefined : close);
    const call = hermesBody(body);
    if (!call) return null;
    calls.push(...call);
    if (close < 0) break;
    i = close + HERMES_CLOSE.length;
  }
  if (calls.length === 0) return null;
  return { content: clean(content), reasoning: null, toolCalls: calls, format: "hermes" };
}

function hermesBody(body: string): ParsedToolCall[] | null {
  const text = body.trim();
  if (text.startsWith("<function=")) {
    const xml = parseFunctionTags(text);
    return xml && xml.rest.trim() === "" ? xml.calls : null;
  }
  const value = tryJson(text);
  if (Array.isArray(value)) {
    const calls = value.map(callFromObject);
    return calls.every((c) => c !== null) && calls.length > 0 ? (calls as ParsedToolCall[]) : null;
  }
  const call = callFromObject(value);
  return call ? [call] : null;
}

/**
 * `<function=name>…</function>` blocks: a JSON body (Llama 3.1 custom tools) or `<parameter=p>value</parameter>`
 * tags (Qwen3-Coder). Returns the calls and the text around them.
 */
function parseFunctionTags(text: string): { calls: ParsedToolCall[]; rest: string } | null {
  const calls: ParsedToolCall[] = [];
  let rest = "";
  let i = 0;
  const pattern = /<function=([^>\s]+)>/g;
  for (;;) {
    pattern.lastIndex = i;
    const m = pattern.exec(text);
    if (!m) {
      rest += text.slice(i);
      break;
    }
    rest += text.slice(i, m.index);
    const bodyStart = m.index + m[0].length;
    const close = text.indexOf("</function>", bodyStart);
    const body = text.slice(bodyStart, close < 0 ? undefined : close).trim();
    let args: string;
    if (body.startsWith("{")) {
      if (tryJson(body) === undefined) return null;
      args = body;
    } else {
      const params: Record<string, unknown> = {};
      const param = /<parameter=([^>\s]+)>([\s\S]*?)(?:<\/parameter>|(?=<parameter=)|$)/g;
      let leftover = body;
      for (const p of body.matchAll(param)) {
        const value = p[2].replace(/^\n/, "").replace(/\n$/, "");
        const json = tryJson(value);
        params[p[1]] = json === undefined ? value : json;
        leftover = leftover.replace(p[0], "");
      }
      if (leftover.trim() !== "") return null;
      args = JSON.stringify(params);
    }
    calls.push({ name: m[1], arguments: args });
    if (close < 0) {
      i = text.length;
      break;
    }
    i = close + "</function>".length;
  }
  return calls.length > 0 ? { calls, rest } : null;
}

// ---- llama 3 json -------------------------------------------------------------------------------------

function parseLlamaJson(raw: string): ParsedOutput | null {
  let text = raw.trim();
  if (text.includes("<function=")) {
    const xml = parseFunctionTags(text);
    if (xml)
      return { content: clean(xml.rest), reasoning: null, toolCalls: xml.calls, format: "llama3-json" };
  }
  if (text.startsWith(PYTHON_TAG)) text = text.slice(PYTHON_TAG.length).trim();
  if (!text.startsWith("{") && !text.startsWith("[")) return null;
  const calls: ParsedToolCall[] = [];
  let i = 0;
  while (i < text.length) {
    i = skipSpace(text, i);
    if (i >= text.length) break;
    if (text[i] === ";") {
      i++;
      continue;
    }
    const end = scanJsonValue(text, i);
    if (end < 0) return null;
    const value = tryJson(text.slice(i, end));
    const items = Array.isArray(value) ? value : [value];
    for (const item of items) {
      const call = callFromObject(item);
      if (!call) return null;
      calls.push(call);
    }
    i = end;
  }
  if (calls.length === 0) return null;
  return { content: "", reasoning: null, toolCalls: calls, format: "llama3-json" };
}

// ---- mistral ------------------------------------------------------------------------------------------

function parseMistral(raw: string): ParsedOutput | null {
  const first = raw.indexOf(MISTRAL_MARKER);
  const content = raw.slice(0, first);
  const calls: ParsedToolCall[] = [];
  let i = first;
  while (i < raw.length) {
    i = skipSpace(raw, i);
    if (i >= raw.length) break;
    if (!raw.startsWith(MISTRAL_MARKER, i)) return null;
    i = skipSpace(raw, i + MISTRAL_MARKER.length);
    if (raw[i] === "[" || raw[i] === "{") {
      // v3: a JSON array (or object) of calls.
      const end = scanJsonValue(raw, i);
      if (end < 0) return null;
      const value = tryJson(raw.slice(i, end));
      for (const item of Array.isArray(value) ? value : [value]) {
        const call = callFromObject(item);
        if (!call) return null;
        calls.push(call);
      }
      i = end;
      continue;
    }
    // v11+: name[ARGS]{json}, or name[CALL_ID]id[ARGS]{json}.
    const args = raw.indexOf("[ARGS]", i);
    if (args < 0) return null;
    const name = raw
      .slice(i, args)
      .replace(/\[CALL_ID\][\s\S]*$/, "")
      .trim();
    if (!name) return null;
    const jsonStart = skipSpace(raw, args + "[ARGS]".length);
    const end = scanJsonValue(raw, jsonStart);
    if (end < 0) return null;
    const text = raw.slice(jsonStart, end);
    if (tryJson(text) === undefined) return null;
    calls.push({ name, arguments: text });
    i = end;
  }
  if (calls.length === 0) return null;
  return { content: clean(content), reasoning: null, toolCalls: calls, format: "mistral" };
}

// ---- harmony ------------------------------------------------------------------------------------------

const HARMONY_ENDS = ["<|end|>", "<|call|>", "<|return|>"];

function parseHarmony(raw: string): ParsedOutput {
  const calls: ParsedToolCall[] = [];
  const reasoning: string[] = [];
  const content: string[] = [];
  // Messages after the first begin with <|start|>; the first continues the prompt's `<|start|>assistant`.
  for (const segment of raw.split("<|start|>")) {
    const bodyAt = segment.indexOf("<|message|>");
    if (bodyAt < 0) {
      const text = stripSpecial(segment).trim();
      if (text) content.push(text);
      continue;
    }
    const header = segment.slice(0, bodyAt);
    let body = segment.slice(bodyAt + "<|message|>".length);
    for (const end of HARMONY_ENDS) {
      const at = body.indexOf(end);
      if (at >= 0) body = body.slice(0, at);
    }
    const channel = /<\|channel\|>\s*([A-Za-z_]+)/.exec(header)?.[1] ?? "final";
    const recipient = /\bto=([^\s<]+)/.exec(header)?.[1];
    if (recipient?.startsWith("functions.")) {
      const text = body.trim();
      calls.push({
        name: recipient.slice("functions.".length),
        arguments: tryJson(text) === undefined ? JSON.stringify(text) : text,
      });
    } else if (channel === "analysis") reasoning.push(body.trim());
    else content.push(body.trim());
  }
  return {
    content: content.filter(Boolean).join("\n\n"),
    reasoning: reasoning.length ? reasoning.join("\n\n") : null,
    toolCalls: calls,
    format: calls.length ? "harmony" : null,
  };
}

function stripSpecial(text: string): string {
  return text.replace(/<\|[a-z_]+\|>/g, "");
}

// ---- streaming ----------------------------------------------------------------------------------------

/**
 * Decides, while a reply streams, which text can go out as content now and which must wait because it
 * may be tool-call markup: from the first marker on (or all of it, when the reply opens with `{`/`[` —
 * a Llama/Mistral JSON call — or when `holdAll` is set, as for gpt-oss) text is held back. After the
 * reply, {@link held} is the text still unsent.
 */
export class ContentHoldback {
  #text = "";
  #sent = 0;
  #holding: boolean;

  constructor(holdAll = false) {
    this.#holding = holdAll;
  }

  /** Adds generated text; returns what may be sent as content now (maybe ""). */
  push(text: string): string {
    this.#text += text;
    if (this.#holding) return "";
    const start = this.#text.trimStart();
    if (start === "") return "";
    if (start.startsWith("{") || start.startsWith("[")) {
      this.#holding = true;
      return "";
    }
    let safe = this.#text.length;
    for (const marker of TOOL_CALL_MARKERS) {
      const at = this.#text.indexOf(marker, this.#sent);
      if (at >= 0) {
        safe = Math.min(safe, at);
        this.#holding = true;
      }
    }
    if (!this.#holding) safe = this.#text.length - partialMarkerSuffix(this.#text);
    if (safe <= this.#sent) return "";
    const out = this.#text.slice(this.#sent, safe);
    this.#sent = safe;
    return out;
  }

  /** True once markup (possibly a tool call) was seen. */
  get holding(): boolean {
    return this.#holding;
  }

  /** The text not sent yet. */
  get held(): string {
    return this.#text.slice(this.#sent);
  }

  /** The text sent so far. */
  get sent(): string {
    return this.#text.slice(0, this.#sent);
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of a marker. */
function partialMarkerSuffix(text: string): number {
  let best = 0;
  for (const marker of TOOL_CALL_MARKERS)
    for (let n = Math.min(marker.length - 1, text.length); n > best; n--)
      if (text.endsWith(marker.slice(0, n))) {
        best = n;
        break;
      }
  return best;
}
