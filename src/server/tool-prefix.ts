/**
 * Generation prefixes for `tool_choice` "required" / named: the reply is started with the opening of a
 * tool call in the syntax the model's chat template teaches, so the model continues a call instead of
 * answering in text (the engine has no constrained decoding).
 *
 * The syntax is taken from the template itself: it renders a probe call as the assistant's turn after
 * the generation prompt, and the prefix is that turn's call markup up to where the probes differ — the
 * function's name for "required", the arguments for a named function. E.g. for Qwen 2.5 / Hermes
 * `<tool_call>\n{"name": "` and `<tool_call>\n{"name": "get_weather", "arguments":`; Llama 3.1
 * `{"name": "get_weather", "parameters":`; Mistral `[TOOL_CALLS] [{"name": "get_weather", "arguments":`;
 * gpt-oss ` to=functions.get_weather<|channel|>commentary json<|message|>`.
 */
import type { ChatTokenizer, TemplateMessage } from "../runtime/tokenizer.js";
import { parseToolCalls, TOOL_CALL_MARKERS, type ToolCallFormat } from "./tool-calls.js";

const PROBE_ARGS = { p: 0 };

/**
 * The prefix for a demanded call (of `name`, or of any tool), or undefined where the template renders no
 * call after its generation prompt, or renders it in a syntax {@link parseToolCalls} does not read back
 * (then nothing is steered). `stops`: the texts of the stop tokens (a rendered turn ends with one).
 */
export function toolCallPrefix(
  tokenizer: ChatTokenizer,
  tools: unknown[],
  stops: readonly string[],
  name?: string,
): string | undefined {
  const user: TemplateMessage = { role: "user", content: "Hello" };
  const render = (call?: { name: string; arguments: object }) =>
    tokenizer.applyChatTemplate(
      call
        ? [
            user,
            {
              role: "assistant",
              content: "",
              // 9 characters: Mistral's templates refuse other call ids.
              tool_calls: [{ id: "ollmprobe", type: "function", function: call }],
            },
          ]
        : [user],
      { addGenerationPrompt: !call, tools },
    );
  try {
    const head = render();
    const plain = render({ name: name ?? "x_probe", arguments: {} });
    const full = render({ name: name ?? "y_probe", arguments: PROBE_ARGS });
    if (!plain.startsWith(head) || !full.startsWith(head)) return undefined;
    const turn = full.slice(head.length);
    // Known syntax only: the rendered turn (up to its stop token) must parse back to the probe call.
    const cut = Math.min(turn.length, ...stops.filter(Boolean).map((s) => indexOrEnd(turn, s)));
    const parsed = parseToolCalls(turn.slice(0, cut));
    const call = parsed.toolCalls[0];
    if (
      parsed.toolCalls.length !== 1 ||
      call.name !== (name ?? "y_probe") ||
      JSON.stringify(tryParse(call.arguments)) !== JSON.stringify(PROBE_ARGS)
    )
      return undefined;
    let diverge = head.length;
    while (diverge < plain.length && plain[diverge] === full[diverge]) diverge++;
    const start = head.length + markupStart(turn, parsed.format);
    const end = tokenBoundary(tokenizer, full, diverge);
    return end > start ? full.slice(start, end) : undefined;
  } catch {
    // A template that refuses the probe: no prefix (the reply is still checked).
    return undefined;
  }
}

function indexOrEnd(text: string, part: string): number {
  const at = text.indexOf(part);
  return at < 0 ? text.length : at;
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Where the call markup starts in a rendered turn (Qwen3 renders an empty think block before it). */
function markupStart(turn: string, format: ToolCallFormat | null): number {
  if (format === "harmony") return 0; // the header continues `<|start|>assistant`
  const at = [...TOOL_CALL_MARKERS, "{", "["].map((m) => indexOrEnd(turn, m));
  return Math.min(...at);
}

/**
 * The last token boundary of `text`'s tokenization at or before `limit`. Cutting there gives the model
 * the tokens it would have seen (tokenizers join a space or a quote to what follows: `": ` + `{"` is
 * `":` + ` {"`). Where decoding does not give the text back, the limit less trailing spaces.
 */
function tokenBoundary(tokenizer: ChatTokenizer, text: string, limit: number): number {
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  const decode = (n: number) => tokenizer.decode(ids.slice(0, n), { skipSpecialTokens: false });
  if (decode(ids.length) !== text) return text.slice(0, limit).trimEnd().length;
  for (let n = ids.length - 1; n > 0; n--) {
    const head = decode(n);
    if (head.length <= limit && text.startsWith(head)) return head.length;
  }
  return 0;
}
