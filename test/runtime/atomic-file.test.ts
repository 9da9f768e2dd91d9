import { spawn } from "node:child_process";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OllmError } from "../../src/errors.js";
import { writeFileAtomic } from "../../src/runtime/atomic-file.js";
import { removeDir, tempDir } from "./helpers.js";

const SRC = join(import.meta.dirname, "..", "..", "src");

/** Transpiles the writer and its one dependency to plain JS, so a bare `node` child can run the real code. */
async function buildWriter(out: string): Promise<string> {
  for (const file of ["errors.ts", "runtime/atomic-file.ts"]) {
    const source = await readFile(join(SRC, file), "utf8");
    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    await mkdir(join(out, "runtime"), { recursive: true });
    await writeFile(join(out, file.replace(/\.ts$/, ".js")), js);
  }
  await writeFile(join(out, "package.json"), '{"type":"module"}');
  const child = join(out, "child.js");
  // Rewrites the target as fast as it can with documents of ~1 MiB, each self-checking.
  await writeFile(
    child,
    `import { writeFileAtomic } from "./runtime/atomic-file.js";
const target = process.argv[2];
const filler = "x".repeat(1 << 20);
for (let i = 0; ; i++) {
  await writeFileAtomic(target, JSON.stringify({ turn: i, filler, check: i * 7 + filler.length }));
  if (i === 0) process.stdout.write("ready\\n");
}
`,
  );
  return child;
}

describe("writeFileAtomic", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir();
  });
  afterAll(() => removeDir(dir));

  it("replaces the file, creates directories and keeps it private", async () => {
    const path = join(dir, "a", "b", "file.json");
    await writeFileAtomic(path, "one");
    await writeFileAtomic(path, "two");
    expect(await readFile(path, "utf8")).toBe("two");
    if (process.platform !== "win32") expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(join(dir, "a", "b"))).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  it("fails with IO_ERROR when it cannot write", async () => {
    await writeFile(join(dir, "blocker"), "file");
    const error = await writeFileAtomic(join(dir, "blocker", "x.json"), "x").catch((e) => e);
    expect(error).toBeInstanceOf(OllmError);
    expect(error.code).toBe("IO_ERROR");
  });

  it("never leaves a corrupt or empty file when the writer is killed -9 mid-write", async () => {
    const build = join(dir, "build");
    const child = await buildWriter(build);
    const target = join(dir, "transcript.json");
    await writeFile(target, JSON.stringify({ turn: -1, filler: "", check: -7 }));
    const seen = new Set<number>();
    for (let round = 0; round < 12; round++) {
      const proc = spawn(process.execPath, [child, target], { stdio: ["ignore", "pipe", "inherit"] });
      await new Promise<void>((ready, fail) => {
        proc.stdout.once("data", () => ready());
        proc.once("exit", (code) => fail(new Error(`writer exited early (${code})`)));
      });
      await new Promise((r) => setTimeout(r, 5 + ((round * 17) % 40)));
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
      const text = await readFile(target, "utf8");
      expect(text.length).toBeGreaterThan(0);
      const doc = JSON.parse(text) as { turn: number; filler: string; check: number };
      expect(doc.check).toBe(doc.turn * 7 + doc.filler.length);
      seen.add(doc.turn);
    }
    // The killed writers got past their first write: the file moved on.
    expect([...seen].some((t) => t >= 0)).toBe(true);
  });
});
