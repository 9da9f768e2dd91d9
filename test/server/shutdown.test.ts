import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { iterateSse, postJson, removeDir, tempDir } from "./helpers.js";
import { buildEndlessModel } from "./steered-model.js";

const ROOT = join(import.meta.dirname, "..", "..");
let dir: string;
let model: string;

beforeAll(async () => {
  dir = await tempDir("ollm-shutdown-");
  model = await buildEndlessModel(join(dir, "endless"));
});
afterAll(() => removeDir(dir));

/** Starts the child server; resolves with it and its URL. */
async function startChild(
  shutdownTimeoutMs: number,
): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "./tools/loadtest/register.mjs",
      "test/server/child-server.ts",
      model,
      String(shutdownTimeoutMs),
    ],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let err = "";
  child.stderr?.on("data", (d) => {
    err += d;
  });
  let out = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on("data", (d) => {
      out += d;
      const line = out.split("\n").find((l) => l.startsWith('{"url"'));
      if (line) resolve(JSON.parse(line).url);
    });
    child.once("exit", (code) => reject(new Error(`child exited early (${code}): ${err}`)));
  });
  return { child, url, stderr: () => err };
}

const stream = (url: string, maxTokens: number) =>
  postJson(`${url}/v1/chat/completions`, {
    messages: [{ role: "user", content: "go" }],
    max_tokens: maxTokens,
    stream: true,
  });

test("SIGTERM mid-generation: running work finishes within the deadline, new work is refused, exit 0", async () => {
  const { child, url, stderr } = await startChild(20_000);
  const response = await stream(url, 800);
  const events = iterateSse(response);
  await events.next();
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 50));
  const refused = await fetch(`${url}/v1/health`).then(
    (r) => r.status,
    () => "refused",
  );
  expect([503, "refused"]).toContain(refused);
  const rest: string[] = [];
  for await (const event of events) rest.push(event.data);
  expect(rest.at(-1)).toBe("[DONE]");
  const finish = rest
    .map((d) => (d === "[DONE]" ? null : JSON.parse(d)))
    .find((c) => c?.choices?.[0]?.finish_reason);
  expect(finish.choices[0].finish_reason).toBe("length");
  const text = rest
    .flatMap((d) => (d === "[DONE]" ? [] : [JSON.parse(d).choices[0]?.delta?.content ?? ""]))
    .join("");
  expect(text.length).toBe(" tick".length * 800); // every token: the work was finished, not cut
  const [code, signal] = await exited;
  expect({ code, signal, stderr: stderr() }).toMatchObject({ code: 0, signal: null });
});

test("SIGTERM past the deadline: running work is cancelled and the process still exits 0, in time", async () => {
  const { child, url } = await startChild(300);
  const response = await stream(url, 6000);
  const events = iterateSse(response);
  await events.next();
  const t0 = performance.now();
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const rest: string[] = [];
  for await (const event of events) rest.push(event.data);
  expect(rest.at(-1)).toBe("[DONE]");
  const [code] = await exited;
  expect(code).toBe(0);
  expect(performance.now() - t0).toBeLessThan(2_500);
  const text = rest
    .flatMap((d) => (d === "[DONE]" ? [] : [JSON.parse(d).choices[0]?.delta?.content ?? ""]))
    .join("");
  expect(text.length).toBeLessThan(" tick".length * 6000);
});
