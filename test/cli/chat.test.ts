import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, runCli, TINY, tempDir } from "./helpers.js";

beforeAll(ensureBuilt, 300_000);

const dir = tempDir("ollm-chat-");
afterAll(dir.cleanup);

const chat = ["chat", "-m", TINY, "--max-new-tokens", "4"];

interface Transcript {
  sessionName: string;
  systemPrompt: string;
  modelReference: string;
  messages: { role: string; content: { type: string; text?: string; image?: string }[] }[];
}

const read = (path: string) => JSON.parse(readFileSync(path, "utf8")) as Transcript;

describe.concurrent("ollm chat (piped stdin)", () => {
  it("answers each line, prints no prompts, and runs the slash commands", async () => {
    const saved = join(dir.path, "saved.json");
    const image = join(dir.path, "pic.png");
    writeFileSync(image, "png");
    const input = [
      "Hello",
      "/system Be brief.",
      "/system",
      "/history",
      "Tell me \\",
      "more",
      `/save ${saved}`,
      "/undo",
      "/history",
      "/clear",
      "/history",
      "/reset",
      "/system",
      "/help",
      "/bogus",
      `/image ${join(dir.path, "missing.png")}`,
      `/image ${image}`,
      `/audio ${image}`,
      "/send What are these?",
      "/send",
      "//slash",
      "/exit",
      "never sent",
    ].join("\n");
    const r = await runCli(chat, { input: `${input}\n` });
    const out = r.stdout.split("\n");
    // Replies: "Hello", "Tell me\nmore", "/slash" (the attachment turn fails) — each on its own line.
    const first = out[0];
    expect(first.length).toBeGreaterThan(0);
    expect(r.stdout).not.toMatch(/^> /m);
    expect(r.stdout).toContain("Be brief.\nsystem: Be brief.\nuser: Hello\nassistant: ");
    // After /undo only the first exchange is left; /clear keeps the system prompt; /reset restores the default.
    expect(r.stdout).toMatch(
      /system: Be brief\.\nuser: Hello\nassistant: [^\n]*\nsystem: Be brief\.\nYou are a helpful assistant\./,
    );
    expect(r.stdout).toContain("/image PATH");
    expect(r.stdout).toContain("/exit");
    expect(r.stderr).toMatch(/error: unknown command \/bogus/);
    expect(r.stderr).toMatch(/error: \/image .*missing\.png: no such file/);
    expect(r.stderr).toMatch(/attached image/);
    expect(r.stderr).toMatch(/UNSUPPORTED_MODALITY/);
    expect(r.stderr).toMatch(/error: \/send: nothing to send/);
    expect(r.stdout).not.toContain("never sent");
    // Errors while piped make the exit status non-zero (usage mistakes: 2).
    expect(r.code).toBe(2);

    // /save made the file the autosave path: it follows /undo, /reset and the "//slash" turn after it.
    const transcript = read(saved);
    expect(transcript.systemPrompt).toBe("You are a helpful assistant.");
    expect(transcript.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(transcript.messages[0].content[0].text).toBe("/slash");
  });

  it("a clean piped session exits 0; replies match ollm prompt's for the same conversation", async () => {
    const r = await runCli(chat, { input: "Hello there\n" });
    expect(r.code, r.stderr).toBe(0);
    const single = await runCli(["prompt", "-m", TINY, "--max-new-tokens", "4", "Hello there"]);
    expect(r.stdout).toBe(single.stdout);
    expect(r.stderr).toBe("");
  });

  it("--autosave writes after every turn and resumes from the file; --session-name names it", async () => {
    const path = join(dir.path, "auto.json");
    const first = await runCli(
      [...chat, "--autosave", path, "--session-name", "notes", "--system", "Short answers."],
      {
        input: "One\nTwo\n",
      },
    );
    expect(first.code, first.stderr).toBe(0);
    const t1 = read(path);
    expect(t1.sessionName).toBe("notes");
    expect(t1.systemPrompt).toBe("Short answers.");
    expect(t1.messages).toHaveLength(4);
    expect(t1.modelReference).toBe(TINY);

    const second = await runCli([...chat, "--autosave", path], { input: "/history\nThree\n" });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/Resumed "notes" \(4 messages\)/);
    expect(second.stdout).toMatch(/^system: Short answers\.\nuser: One\n/);
    expect(read(path).messages).toHaveLength(6);
  });

  it("/load restores a transcript; /retry regenerates the last reply; --history-file seeds the chat", async () => {
    const saved = join(dir.path, "retry.json");
    const r = await runCli(chat, { input: `Hi\n/retry\n/save ${saved}\n/load ${saved}\n/history\n` });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[1]).toBe(lines[0]); // greedy: the retried reply is the same
    expect(read(saved).messages).toHaveLength(2);
    expect(r.stderr).toMatch(/loaded "default" \(2 messages\)/);

    const history = join(dir.path, "history.json");
    writeFileSync(
      history,
      JSON.stringify([
        { role: "user", content: "Earlier" },
        { role: "assistant", content: "Yes." },
      ]),
    );
    const seeded = await runCli([...chat, "--history-file", history], {
      input: "Line one \\\nline two\n/history\n",
    });
    expect(seeded.code, seeded.stderr).toBe(0);
    expect(seeded.stdout).toMatch(
      /\nsystem: You are a helpful assistant\.\nuser: Earlier\nassistant: Yes\.\nuser: Line one \nline two\nassistant: /,
    );
  });

  it("--plan-json prints the plan and exits; bad flags exit 2", async () => {
    const plan = await runCli([...chat, "--plan-json"]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(JSON.parse(plan.stdout).plan.backend).toBe("cpu");
    const bad = await runCli([...chat, "--temperature", "x"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/argument 'x' is invalid/);
    const load = await runCli(chat, { input: `/load ${join(dir.path, "none.json")}\n` });
    expect(load.code).toBe(2);
    expect(load.stderr).toMatch(/No transcript at/);
  });

  it("a runtime failure is reported per turn and the chat goes on (exit 1 at the end)", async () => {
    const r = await runCli(["chat", "-m", join(dir.path, "no-model"), "--max-new-tokens", "2"], {
      input: "Hi\n/history\n",
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/MODEL_NOT_FOUND/);
    expect(r.stdout).toBe("system: You are a helpful assistant.\n");
  });
});
