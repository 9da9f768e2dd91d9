import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { renderChatTemplate, strftimeNow } from "../../src/text/chat-template.js";
import { Tokenizer } from "../../src/text/index.js";
import { ORACLE_DIR, readJson, tokenizerDir } from "./helpers.js";

interface Case {
  name: string;
  messages: unknown[];
  add_generation_prompt: boolean;
  tools?: unknown[];
  documents?: unknown[];
  extra?: Record<string, unknown>;
}

// feature_template.jinja uses what published templates rely on (namespace, slicing, tojson with indent,
// .items(), string methods, filters, loop variables, `is string`, `is none`); oracle.json holds
// transformers' render_jinja_template output for each case.
describe("chat template rendering matches transformers", () => {
  const spec = readJson<{ template: string; special_tokens: Record<string, string>; cases: Case[] }>(
    join(ORACLE_DIR, "template_cases.json"),
  );
  const template = readFileSync(join(ORACLE_DIR, spec.template), "utf8");
  const expected = readJson<{ templates: Record<string, { text?: string; error?: string }> }>(
    join(ORACLE_DIR, "oracle.json"),
  ).templates;

  it.each(spec.cases.map((c) => [c.name, c] as const))("%s", (name, c) => {
    const text = renderChatTemplate(template, {
      messages: c.messages,
      addGenerationPrompt: c.add_generation_prompt,
      tools: c.tools,
      documents: c.documents,
      specialTokens: spec.special_tokens,
      extra: c.extra,
    });
    expect(text).toBe(expected[name].text);
  });
});

function tokenizerWith(files: Record<string, string>): Promise<Tokenizer> {
  const dir = mkdtempSync(join(tmpdir(), "tok-tpl-"));
  const base = tokenizerDir("bytelevel-chatml");
  writeFileSync(join(dir, "tokenizer.json"), readFileSync(join(base, "tokenizer.json")));
  const config = {
    ...readJson<Record<string, unknown>>(join(base, "tokenizer_config.json")),
    chat_template: undefined,
  };
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return Tokenizer.fromDir(dir);
}

describe("where chat templates come from (transformers' precedence)", () => {
  const hi = [{ role: "user", content: "hi" }];

  it("chat_template.jinja wins over tokenizer_config.json", async () => {
    const tok = await tokenizerWith({
      "chat_template.jinja": "jinja:{{ messages[0].content }}",
      "tokenizer_config.json": JSON.stringify({ chat_template: "config" }),
    });
    expect(tok.chatTemplate).toBe("jinja:{{ messages[0].content }}");
    expect(tok.applyChatTemplate(hi)).toBe("jinja:hi");
  });

  it("reads named templates and picks tool_use when tools are given", async () => {
    const tok = await tokenizerWith({
      "tokenizer_config.json": JSON.stringify({
        chat_template: [
          { name: "default", template: "plain" },
          { name: "tool_use", template: "tools:{{ tools | length }}" },
        ],
      }),
    });
    expect(tok.applyChatTemplate(hi)).toBe("plain");
    expect(tok.applyChatTemplate(hi, { tools: [{ type: "function" }] })).toBe("tools:1");
  });

  it("adds additional_chat_templates/*.jinja as named templates", async () => {
    const tok = await tokenizerWith({
      "chat_template.jinja": "main",
      "additional_chat_templates/tool_use.jinja": "extra",
    });
    expect(tok.applyChatTemplate(hi)).toBe("main");
    expect(tok.applyChatTemplate(hi, { tools: [] })).toBe("extra");
  });

  it("falls back to chat_template.json", async () => {
    const tok = await tokenizerWith({ "chat_template.json": JSON.stringify({ chat_template: "from json" }) });
    expect(tok.applyChatTemplate(hi)).toBe("from json");
  });

  it("passes special tokens, tools=None, add_generation_prompt (default true) and extra variables", async () => {
    const tok = await tokenizerWith({
      "chat_template.jinja":
        "{{ eos_token }}|{{ pad_token }}|{{ bos_token is defined }}|{{ tools is none }}|{{ add_generation_prompt }}|{{ flag }}",
    });
    expect(tok.applyChatTemplate(hi, { extra: { flag: 7 } })).toBe(
      "<|im_end|>|<|endoftext|>|false|true|true|7",
    );
    expect(tok.applyChatTemplate(hi, { addGenerationPrompt: false, extra: { flag: 1 } })).toContain(
      "|false|1",
    );
  });

  it("turns raise_exception into an INVALID_ARGUMENT error", async () => {
    const tok = await Tokenizer.fromDir(tokenizerDir("sentencepiece-mistral"));
    const bad = [
      { role: "user", content: "a" },
      { role: "user", content: "b" },
    ];
    expect(() => tok.applyChatTemplate(bad)).toThrow(
      expect.objectContaining({
        code: "INVALID_ARGUMENT",
        message: expect.stringContaining("must alternate"),
      }),
    );
  });
});

describe("strftime_now", () => {
  it("formats like Python's strftime in the C locale (the jinja library follows the JS locale)", () => {
    const date = new Date(2024, 6, 26, 9, 5, 3);
    expect(strftimeNow("%d %b %Y", date)).toBe("26 Jul 2024");
    expect(strftimeNow("%A %B %-d %H:%M:%S %p %j %%", date)).toBe("Friday July %-d 09:05:03 AM 208 %");
  });
});
