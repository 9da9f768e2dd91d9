import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const BARREL = join(import.meta.dirname, "api.ts");

/** The ```ts blocks of docs/api.md, with the heading each belongs to. */
async function snippets(): Promise<{ heading: string; code: string }[]> {
  const text = await readFile(join(ROOT, "docs", "api.md"), "utf8");
  const out: { heading: string; code: string }[] = [];
  let heading = "";
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].startsWith("## ")) heading = lines[i].slice(3);
    if (lines[i] === "```ts") {
      const body: string[] = [];
      while (lines[++i] !== "```") body.push(lines[i]);
      out.push({ heading, code: body.join("\n") });
    }
  }
  return out;
}

describe("docs/api.md", () => {
  const dir = join(import.meta.dirname, `.docs-snippets-${process.pid}`);
  let files: { heading: string; path: string }[] = [];

  beforeAll(async () => {
    await mkdir(dir, { recursive: true });
    const barrel = relative(dir, BARREL).replace(/\.ts$/, ".js");
    files = await Promise.all(
      (await snippets()).map(async ({ heading, code }, i) => {
        const path = join(dir, `snippet-${i}.ts`);
        await writeFile(path, `${code.replaceAll('from "ollm-ts"', `from "${barrel}"`)}\nexport {};\n`);
        return { heading, path };
      }),
    );
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("has an example for every client method", async () => {
    const headings = (await snippets()).map((s) => s.heading).join("\n");
    for (const method of [
      "resolve",
      "discoverLocalModels",
      "plan",
      "describePlan",
      "load",
      "prompt(",
      "promptParts",
      "stream",
      "session",
      "loadSession",
    ])
      expect(headings).toContain(method);
  });

  it("examples run", async () => {
    const cwd = process.cwd();
    process.chdir(ROOT);
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const write = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      for (const f of files) {
        try {
          await import(f.path);
        } catch (error) {
          throw new Error(`the example under "${f.heading}" failed: ${(error as Error).stack}`);
        }
      }
    } finally {
      log.mockRestore();
      write.mockRestore();
      process.chdir(cwd);
    }
  });
});
