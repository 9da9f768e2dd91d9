import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, json, runCli, TINY, tempDir } from "./helpers.js";

const dir = tempDir("ollm-bench-");
beforeAll(() => ensureBuilt());
afterAll(() => dir.cleanup());

interface Result {
  schema: string;
  bandwidth: { threads: number; gbPerSecond?: number }[];
  engines: {
    engine: string;
    threads: number;
    runs: { promptTokens: number; outputTokens: number; decodeTokensPerSecond: number }[];
  }[];
}

describe("ollm bench", () => {
  it("measures the model and appends the JSON result to the history file", async () => {
    const history = join(dir.path, "history.jsonl");
    const args = ["bench", "--model", TINY, "--threads", "1", "--prompt", "8", "--output", "4"];
    const flags = ["--repeats", "1", "--session", "none", "--gemv", "none", "--json", "--history", history];
    const result = await runCli([...args, ...flags]);
    expect(result.code, result.stderr).toBe(0);
    const out = json<Result>(result);
    expect(out.schema).toBe("ollm-bench/1");
    expect(out.engines).toHaveLength(1);
    const run = out.engines[0].runs[0];
    expect(run).toMatchObject({ promptTokens: 8, outputTokens: 4 });
    expect(run.decodeTokensPerSecond).toBeGreaterThan(0);
    const lines = readFileSync(history, "utf8").trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]).schema).toBe("ollm-bench/1");
  });

  it("rejects malformed lists with exit 2", async () => {
    const bad = await runCli(["bench", "--model", TINY, "--threads", "two"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--threads");
    const session = await runCli(["bench", "--model", TINY, "--session", "4x"]);
    expect(session.code).toBe(2);
    expect(session.stderr).toContain("--session");
  });
});
