import { beforeAll, describe, expect, test } from "vitest";
import type { ChatTokenizer } from "../../src/runtime/tokenizer.js";
import { parseToolCalls } from "../../src/server/tool-calls.js";
import { toolCallPrefix } from "../../src/server/tool-prefix.js";
import { renderChatTemplate } from "../../src/text/chat-template.js";
import { loadTokenizer } from "../../src/text/index.js";
import { fixture } from "./helpers.js";
import { OPAQUE_CALLS_TEMPLATE, QWEN_TOOLS_TEMPLATE } from "./steered-model.js";

/**
 * Small templates that render the assistant's calls the way each family's template does (the parts that
 * matter here: the generation prompt and the call markup).
 */
const CHATML = (call: string) =>
  `{%- for m in messages %}{%- if m.tool_calls %}{{- '<|im_start|>assistant\\n' }}{%- for tc in m.tool_calls %}${call}{%- endfor %}{{- '<|im_end|>\\n' }}` +
  `{%- else %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}` +
  `{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}`;
const TEMPLATES = {
  llama3: [
    `{{- bos_token }}{%- for m in messages %}{%- if m.tool_calls %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}` +
      `{%- set tc = m.tool_calls[0].function %}{{- '{"name": "' + tc.name + '", "parameters": ' + (tc.arguments | tojson) + '}<|eot_id|>' }}` +
      `{%- else %}{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' }}{%- endif %}{%- endfor %}` +
      `{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}`,
    ["<|eot_id|>"],
  ],
  // Mistral v3: no generation prompt, ids of 9 characters required.
  mistralV3: [
    `{{- bos_token }}{%- for m in messages %}{%- if m.role == 'user' %}{{- '[INST] ' + m.content + '[/INST]' }}` +
      `{%- elif m.tool_calls %}{{- '[TOOL_CALLS] [' }}{%- for tc in m.tool_calls %}{%- set out = tc.function|tojson %}{{- out[:-1] }}` +
      `{%- if tc.id|length != 9 %}{{- raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}{%- endif %}` +
      `{{- ', "id": "' + tc.id + '"}' }}{%- endfor %}{{- ']' + eos_token }}{%- endif %}{%- endfor %}`,
    ["</s>"],
  ],
  mistralV11: [
    `{{- bos_token }}{%- for m in messages %}{%- if m.role == 'user' %}{{- '[INST]' + m.content + '[/INST]' }}` +
      `{%- elif m.tool_calls %}{%- for tc in m.tool_calls %}{{- '[TOOL_CALLS]' + tc.function.name + '[ARGS]' + (tc.function.arguments|tojson) }}{%- endfor %}` +
      `{{- eos_token }}{%- endif %}{%- endfor %}`,
    ["</s>"],
  ],
  harmony: [
    `{%- for m in messages %}{%- if m.tool_calls %}{{- '<|start|>assistant to=functions.' + m.tool_calls[0].function.name + '<|channel|>commentary json<|message|>' + (m.tool_calls[0].function.arguments|tojson) + '<|call|>' }}` +
      `{%- else %}{{- '<|start|>' + m.role + '<|message|>' + m.content + '<|end|>' }}{%- endif %}{%- endfor %}` +
      `{%- if add_generation_prompt %}{{- '<|start|>assistant' }}{%- endif %}`,
    ["<|return|>", "<|call|>"],
  ],
  qwen3Coder: [
    CHATML(
      `{{- '<tool_call>\\n<function=' + tc.function.name + '>\\n' }}{%- for k, v in tc.function.arguments|items %}{{- '<parameter=' + k + '>\\n' + (v|string) + '\\n</parameter>\\n' }}{%- endfor %}{{- '</function>\\n</tool_call>' }}`,
    ),
    ["<|im_end|>"],
  ],
  // Qwen3 renders an empty think block before the call of the last turn: the prefix starts at the call.
  qwen3: [
    CHATML(
      `{%- if loop.first %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{{- '<tool_call>\\n{"name": "' + tc.function.name + '", "arguments": ' + (tc.function.arguments|tojson) + '}\\n</tool_call>' }}`,
    ),
    ["<|im_end|>"],
  ],
  // Hermes 2 Pro writes the arguments first: the prefix stops there, named or not.
  argumentsFirst: [
    CHATML(
      `{{- '<tool_call>\\n{"arguments": ' + (tc.function.arguments|tojson) + ', "name": "' + tc.function.name + '"}\\n</tool_call>' }}`,
    ),
    ["<|im_end|>"],
  ],
  qwenSteered: [QWEN_TOOLS_TEMPLATE, ["<|im_end|>"]],
  opaque: [OPAQUE_CALLS_TEMPLATE, ["<|im_end|>"]],
  refuses: [
    `{%- for m in messages %}{%- if m.tool_calls %}{{- raise_exception('no calls here') }}{%- endif %}{{- m.content }}{%- endfor %}`,
    [],
  ],
} satisfies Record<string, [string, string[]]>;

const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
let base: ChatTokenizer;

beforeAll(async () => {
  base = await loadTokenizer(fixture("tiny-qwen2"));
});

/** The tiny byte-level tokenizer with another chat template. */
function withTemplate(source: string): ChatTokenizer {
  const tokenizer: ChatTokenizer = Object.create(base);
  tokenizer.applyChatTemplate = (messages, options) =>
    renderChatTemplate(source, {
      messages,
      addGenerationPrompt: options.addGenerationPrompt,
      tools: options.tools,
      specialTokens: { bos_token: "<s>", eos_token: "</s>" },
    });
  return tokenizer;
}

function prefixes(name: keyof typeof TEMPLATES) {
  const [source, stops] = TEMPLATES[name];
  const tokenizer = withTemplate(source);
  return {
    required: toolCallPrefix(tokenizer, tools, stops),
    named: toolCallPrefix(tokenizer, tools, stops, "get_weather"),
  };
}

describe("toolCallPrefix", () => {
  // This tokenizer has no ` {"` token, so the named prefixes keep the arguments' brace; a real one cuts
  // before the space (at the last token boundary before the arguments).
  test.each([
    ["qwenSteered", '<tool_call>\n{"name": "', '<tool_call>\n{"name": "get_weather", "arguments": {'],
    ["qwen3", '<tool_call>\n{"name": "', '<tool_call>\n{"name": "get_weather", "arguments": {'],
    ["llama3", '{"name": "', '{"name": "get_weather", "parameters": {'],
    ["mistralV3", '[TOOL_CALLS] [{"name": "', '[TOOL_CALLS] [{"name": "get_weather", "arguments": {'],
    ["mistralV11", "[TOOL_CALLS]", "[TOOL_CALLS]get_weather[ARGS]{"],
    ["harmony", " to=functions.", " to=functions.get_weather<|channel|>commentary json<|message|>{"],
    ["qwen3Coder", "<tool_call>\n<function=", "<tool_call>\n<function=get_weather>\n<"],
    ["argumentsFirst", '<tool_call>\n{"arguments": {', '<tool_call>\n{"arguments": {'],
  ] as const)("%s: the call opening the template renders", (name, required, named) => {
    expect(prefixes(name)).toEqual({ required, named });
  });

  test("a syntax the parser does not read, or a template that refuses calls: no prefix", () => {
    expect(prefixes("opaque")).toEqual({ required: undefined, named: undefined });
    expect(prefixes("refuses")).toEqual({ required: undefined, named: undefined });
  });

  test("the model's continuation of a prefix parses back as the call", () => {
    const cases: [keyof typeof TEMPLATES, string][] = [
      ["llama3", '"city": "Paris"}}'],
      ["mistralV3", '"city": "Paris"}, "id": "abcdefghi"}]'],
      ["mistralV11", '"city": "Paris"}'],
      ["harmony", '"city": "Paris"}'],
      ["qwen3Coder", "parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"],
      ["qwen3", '"city": "Paris"}}\n</tool_call>'],
    ];
    for (const [name, rest] of cases) {
      const out = parseToolCalls(prefixes(name).named + rest);
      expect(out.toolCalls, name).toEqual([{ name: "get_weather", arguments: expect.any(String) }]);
      expect(JSON.parse(out.toolCalls[0].arguments), name).toEqual({ city: "Paris" });
    }
  });

  test("prefixes end on a token boundary of the rendered call (no trailing space split from its token)", () => {
    // `"arguments": {"p"` tokenizes as … `":` ` ` `{` here: the prefix may keep the brace, never end on the space.
    for (const name of Object.keys(TEMPLATES) as (keyof typeof TEMPLATES)[]) {
      const { named, required } = prefixes(name);
      for (const prefix of [named, required]) if (prefix) expect(prefix, name).not.toMatch(/ $/);
    }
  });
});
