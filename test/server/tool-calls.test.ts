import { describe, expect, test } from "vitest";
import { ContentHoldback, parseToolCalls, scanJsonValue } from "../../src/server/tool-calls.js";

const args = (text: string) => JSON.parse(text);

describe("hermes / Qwen <tool_call> blocks", () => {
  test("Qwen 2.5: two calls after some content", () => {
    const raw =
      'Let me check both.\n<tool_call>\n{"name": "get_current_temperature", "arguments": {"location": "San Francisco, CA, USA"}}\n</tool_call>\n' +
      '<tool_call>\n{"name": "get_temperature_date", "arguments": {"location": "San Francisco, CA, USA", "date": "2024-10-01"}}\n</tool_call>';
    const out = parseToolCalls(raw);
    expect(out.format).toBe("hermes");
    expect(out.content).toBe("Let me check both.");
    expect(out.toolCalls.map((c) => c.name)).toEqual(["get_current_temperature", "get_temperature_date"]);
    expect(args(out.toolCalls[1].arguments)).toEqual({
      location: "San Francisco, CA, USA",
      date: "2024-10-01",
    });
  });

  test("an unclosed last block (generation stopped on eos) still parses; arguments as a JSON string stay", () => {
    const out = parseToolCalls('<tool_call>\n{"name": "f", "arguments": "{\\"a\\": 1}"}');
    expect(out.toolCalls).toEqual([{ name: "f", arguments: '{"a": 1}' }]);
  });

  test("Qwen3-Coder XML body", () => {
    const raw =
      "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>";
    const out = parseToolCalls(raw);
    expect(out.toolCalls).toHaveLength(1);
    expect(out.toolCalls[0].name).toBe("get_weather");
    expect(args(out.toolCalls[0].arguments)).toEqual({ city: "Paris", days: 3 });
  });

  test("a block that is not JSON is left as content", () => {
    const raw = "<tool_call>\nnot json\n</tool_call>";
    expect(parseToolCalls(raw)).toEqual({ content: raw, reasoning: null, toolCalls: [], format: null });
  });
});

describe("Llama 3 JSON", () => {
  test("Llama 3.1: the whole reply is one call with parameters (after <|python_tag|>)", () => {
    const out = parseToolCalls(
      '<|python_tag|>{"name": "get_current_conditions", "parameters": {"location": "San Francisco, CA", "unit": "Fahrenheit"}}',
    );
    expect(out.format).toBe("llama3-json");
    expect(out.content).toBe("");
    expect(out.toolCalls[0].name).toBe("get_current_conditions");
    expect(args(out.toolCalls[0].arguments)).toEqual({ location: "San Francisco, CA", unit: "Fahrenheit" });
  });

  test("Llama 3.2: a JSON array, typed objects, and calls separated by ;", () => {
    const array = parseToolCalls(
      '[{"name": "a", "parameters": {"x": 1}}, {"type": "function", "name": "b", "parameters": {}}]',
    );
    expect(array.toolCalls.map((c) => c.name)).toEqual(["a", "b"]);
    const semi = parseToolCalls('{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"y": "z"}}');
    expect(semi.toolCalls.map((c) => [c.name, args(c.arguments)])).toEqual([
      ["a", {}],
      ["b", { y: "z" }],
    ]);
  });

  test("<function=name>{…}</function> (Llama 3.1 custom tool format)", () => {
    const out = parseToolCalls('<function=spotify_trending_songs>{"n": "5"}</function>');
    expect(out.toolCalls).toEqual([{ name: "spotify_trending_songs", arguments: '{"n": "5"}' }]);
  });

  test("JSON that is not a call, or text around JSON, is content", () => {
    for (const raw of [
      '{"answer": 42}',
      'The call is {"name": "a", "parameters": {}}',
      '{"name": "a", "parameters": {}} and more',
    ]) {
      const out = parseToolCalls(raw);
      expect(out.toolCalls, raw).toEqual([]);
      expect(out.content).toBe(raw);
    }
  });
});

describe("Mistral [TOOL_CALLS]", () => {
  test("v3: a JSON array after the marker, content before it kept", () => {
    const out = parseToolCalls(
      'Sure.[TOOL_CALLS] [{"name": "get_current_weather", "arguments": {"location": "Paris, France", "format": "celsius"}}]',
    );
    expect(out.format).toBe("mistral");
    expect(out.content).toBe("Sure.");
    expect(args(out.toolCalls[0].arguments)).toEqual({ location: "Paris, France", format: "celsius" });
  });

  test("v11+: name[ARGS]{…}, repeated, and with [CALL_ID]", () => {
    const out = parseToolCalls(
      '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[CALL_ID]a1b2c3d4e[ARGS]{"tz": "CET"}',
    );
    expect(out.toolCalls).toEqual([
      { name: "get_weather", arguments: '{"city": "Paris"}' },
      { name: "get_time", arguments: '{"tz": "CET"}' },
    ]);
  });
});

describe("gpt-oss harmony", () => {
  test("analysis, then a commentary call to functions.x", () => {
    const raw =
      "<|channel|>analysis<|message|>Need the weather tool.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>" +
      '{"location":"San Francisco"}';
    const out = parseToolCalls(raw);
    expect(out.format).toBe("harmony");
    expect(out.reasoning).toBe("Need the weather tool.");
    expect(out.toolCalls).toEqual([{ name: "get_weather", arguments: '{"location":"San Francisco"}' }]);
    expect(out.content).toBe("");
  });

  test("the recipient in the header before the channel", () => {
    const out = parseToolCalls(
      '<|start|>assistant to=functions.lookup<|channel|>commentary json<|message|>{"q": 1}<|call|>',
    );
    expect(out.toolCalls).toEqual([{ name: "lookup", arguments: '{"q": 1}' }]);
  });

  test("no call: the final channel is the content, analysis the reasoning", () => {
    const out = parseToolCalls(
      "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>Hello!",
    );
    expect(out).toEqual({ content: "Hello!", reasoning: "think", toolCalls: [], format: null });
  });
});

test("plain text has no calls", () => {
  expect(parseToolCalls("Paris is sunny.")).toEqual({
    content: "Paris is sunny.",
    reasoning: null,
    toolCalls: [],
    format: null,
  });
});

test("scanJsonValue honours strings and nesting", () => {
  const text = '{"a": "}]", "b": [1, {"c": 2}]} tail';
  expect(text.slice(0, scanJsonValue(text, 0))).toBe('{"a": "}]", "b": [1, {"c": 2}]}');
  expect(scanJsonValue('{"open": [', 0)).toBe(-1);
  expect(scanJsonValue("x", 0)).toBe(-1);
});

describe("ContentHoldback (streaming with tools)", () => {
  const feed = (h: ContentHoldback, pieces: string[]) => pieces.map((p) => h.push(p)).join("");

  test("plain text streams through, except a possible marker prefix at the end", () => {
    const h = new ContentHoldback();
    expect(h.push("Hello wor")).toBe("Hello wor");
    expect(h.push("ld <tool")).toBe("ld ");
    expect(h.push("box>")).toBe("<toolbox>");
    expect(h.holding).toBe(false);
  });

  test("text before a tool call is sent, the call is held", () => {
    const h = new ContentHoldback();
    const sent = feed(h, ["Checking.", "\n<tool_", 'call>\n{"name": "f"', "}\n</tool_call>"]);
    expect(sent).toBe("Checking.\n");
    expect(h.holding).toBe(true);
    expect(h.held).toBe('<tool_call>\n{"name": "f"}\n</tool_call>');
  });

  test("a reply opening with { or [ is held whole (JSON calls); leading whitespace waits", () => {
    const h = new ContentHoldback();
    expect(h.push("  \n")).toBe("");
    expect(h.push('{"name"')).toBe("");
    expect(h.held).toBe('  \n{"name"');
  });

  test("holdAll (gpt-oss) holds everything", () => {
    const h = new ContentHoldback(true);
    expect(feed(h, ["a", "b"])).toBe("");
    expect(h.held).toBe("ab");
  });
});
