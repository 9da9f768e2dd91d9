/** docs/cli.md and the README's Commands section stay true to the command tree and the schemas. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/program.js";
import { jsonSchema } from "../../src/cli/schemas.js";
import { Settings } from "../../src/cli/settings.js";
import { ROOT } from "./helpers.js";

const doc = readFileSync(join(ROOT, "docs", "cli.md"), "utf8");
const readme = readFileSync(join(ROOT, "README.md"), "utf8");

function commands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(commands)];
}

describe("docs/cli.md", () => {
  it("embeds the current JSON Schema of prompt --json", () => {
    const block = /```json prompt-result-schema\n([\s\S]*?)\n```/.exec(doc);
    expect(block, "the schema block").not.toBeNull();
    expect(JSON.parse(block?.[1] ?? "")).toEqual(jsonSchema("prompt"));
  });

  it("documents every command and every flag", () => {
    for (const command of commands(buildProgram())) {
      if (command.name() !== "ollm" && command.name() !== "help")
        expect(doc, command.name()).toContain(command.name());
      for (const option of command.options)
        if (option.long) expect(doc, `${command.name()} ${option.long}`).toContain(`\`${option.long}`);
    }
  });

  it("its ollm.toml example is a valid configuration", () => {
    const toml = /```toml\n([\s\S]*?)\n```/.exec(doc)?.[1];
    expect(toml).toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), "ollm-doc-"));
    writeFileSync(join(dir, "ollm.toml"), toml ?? "");
    const settings = Settings.load({ cwd: dir, env: {} });
    expect(settings.problems()).toEqual([]);
    expect(settings.runtimeConfig().modelReference).toBe("llama3-8B-chat");
    expect(settings.serveSettings().port).toBe(8000);
  });
});

describe("README", () => {
  it("shows the common commands and links docs/cli.md", () => {
    const section = readme.slice(readme.indexOf("## Commands"), readme.indexOf("## Library"));
    for (const word of [
      "ollm prompt",
      "ollm chat",
      "ollm plan",
      "ollm models",
      "ollm doctor",
      "ollm serve",
      "ollm config show",
      "completion",
      "docs/cli.md",
    ])
      expect(section).toContain(word);
    expect(readme).toContain('npx ollm prompt "What does os.path.join do?"');
  });
});
