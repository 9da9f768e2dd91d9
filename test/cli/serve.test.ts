import { beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, runCli, spawnCli, TINY } from "./helpers.js";

beforeAll(ensureBuilt, 300_000);

/** Starts `ollm serve ARGS` and resolves with its URL once it listens. */
function serve(args: string[], env: Record<string, string> = {}) {
  const child = spawnCli(["serve", "--port", "0", "-m", TINY, ...args], { env });
  child.stdin?.end();
  let stderr = "";
  let stdout = "";
  child.stdout?.on("data", (d) => {
    stdout += d;
  });
  const url = new Promise<string>((resolve, reject) => {
    child.stderr?.on("data", (d) => {
      stderr += d;
      const match = /listening on (http:\/\/\S+)/.exec(stderr);
      if (match) resolve(match[1]);
    });
    child.on("close", (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  return { child, url, exited, output: () => ({ stdout, stderr }) };
}

describe.concurrent("ollm serve", () => {
  it("serves /v1/health and the configured model, and exits 0 on SIGTERM", async () => {
    const s = serve(["--max-new-tokens", "3", "--log-level", "warn"]);
    const url = await s.url;
    const health = await fetch(`${url}/v1/health`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe("ok");
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data[0].id).toBe(TINY);
    // The runtime and generation flags are the defaults of every request.
    const reply = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: TINY, messages: [{ role: "user", content: "Hi" }] }),
    });
    expect(reply.status).toBe(200);
    const body = (await reply.json()) as { usage: { completion_tokens: number } };
    expect(body.usage.completion_tokens).toBe(3);
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    expect(s.output().stderr).toMatch(/SIGTERM: stopping the server/);
    expect(s.output().stdout).toBe(""); // --log-level warn: no request logs
  });

  it("takes its settings from OLLM_SERVER__* (API key) and stops on SIGINT too", async () => {
    const s = serve(["--quiet"], { OLLM_SERVER__API_KEY: "s3cret", OLLM_SERVER__LOG_LEVEL: "silent" });
    const url = await s.url;
    expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    const ok = await fetch(`${url}/v1/models`, { headers: { authorization: "Bearer s3cret" } });
    expect(ok.status).toBe(200);
    s.child.kill("SIGINT");
    expect(await s.exited).toBe(0);
  });

  it("refuses a public address without an API key, and bad settings, before listening", async () => {
    const open = await runCli(["serve", "--host", "0.0.0.0", "--port", "0", "-m", TINY]);
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/Refusing to listen on 0\.0\.0\.0 without an API key/);
    expect(open.stderr).toMatch(/hint: Set --api-key/);
    const timeout = await runCli(["serve", "--request-timeout", "0"]);
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toMatch(/--request-timeout 0: must be an integer ≥ 1/);
  });
});
