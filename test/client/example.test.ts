import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

// The example runs against the build (dist/), as a user runs it; CI builds before testing.
describe.skipIf(!existsSync(join(ROOT, "dist", "client.js")))("examples/chat.mjs", () => {
  it("resolves, describes the plan and chats for two turns", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["examples/chat.mjs"], { cwd: ROOT });
    expect(stdout).toMatch(/^tiny-llama: LlamaForCausalLM, [\d,]+ parameters \(BF16\)/);
    expect(stdout).toMatch(/plan: cpu\/cpu, KV resident/);
    expect(stdout).toMatch(/\[24 tokens, \d+ prompt tokens reused, finish: length\]/);
    expect(stdout).toContain("history: 4 messages");
  });
});
