import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXTRAS, GRANTED, llamaFiles, mockRepos } from "../hub/helpers.js";
import { MockHub } from "../hub/mock-hub.js";
import { ensureBuilt, FIXTURES, json, ROOT, runCli, TINY, tempDir } from "./helpers.js";

let hub: MockHub;
const dir = tempDir("ollm-models-");

beforeAll(async () => {
  await ensureBuilt();
  hub = await MockHub.start({ repos: mockRepos(), validTokens: [GRANTED] });
}, 300_000);
afterAll(async () => {
  await hub?.close();
  await dir.cleanup();
});

const hasDemo = existsSync(join(ROOT, "models", "demo", "config.json"));

interface Listing {
  name: string;
  kind: string;
  installed: boolean;
  family: string | null;
  path: string | null;
  repoId: string | null;
  runnable: boolean;
}

describe("ollm models", () => {
  it("list shows the built-in aliases and the models under --models-dir", async () => {
    const r = await runCli(["models", "list", "--models-dir", FIXTURES]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+STATUS\s+FAMILY\s+PARAMS\s+SIZE\s+INPUT\s+SOURCE$/m);
    expect(r.stdout).toMatch(
      /^llama3-8B-chat\s+not downloaded\s+llama\s.*meta-llama\/Llama-3\.1-8B-Instruct$/m,
    );
    expect(r.stdout).toMatch(/^tiny-llama\s+installed\s+llama\s+261K\s/m);
    const rows = json<Listing[]>(await runCli(["models", "list", "--json", "--models-dir", FIXTURES]));
    expect(rows.find((m) => m.name === "gemma3-12B")).toMatchObject({
      kind: "alias",
      installed: false,
      repoId: "google/gemma-3-12b-it",
    });
    expect(rows.find((m) => m.name === "tiny-qwen3")).toMatchObject({
      kind: "local",
      installed: true,
      family: "qwen3",
      runnable: true,
    });
    if (hasDemo)
      expect(rows.find((m) => m.name === "demo")).toMatchObject({ kind: "alias", installed: true });

    const installed = json<Listing[]>(
      await runCli(["models", "list", "--installed", "--json", "--models-dir", FIXTURES]),
    );
    expect(installed.every((m) => m.installed)).toBe(true);
    expect(installed.map((m) => m.name)).toContain("tiny-gpt_oss");
    expect(installed.map((m) => m.name)).not.toContain("llama3-1B-chat");
    const none = await runCli(["models", "list", "--installed", "--models-dir", join(dir.path, "empty")]);
    expect(none.code).toBe(0);
    if (!hasDemo) expect(none.stdout).toMatch(/No installed models/);
  });

  it("info describes a model without loading it (text and --json)", async () => {
    const r = await runCli(["models", "info", TINY]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^architecture\s+LlamaForCausalLM$/m);
    expect(r.stdout).toMatch(/^parameters\s+261K \(261184\)$/m);
    expect(r.stdout).toMatch(/^status\s+installed \(path\)$/m);
    const alias = await runCli(["models", "info", "llama3-1B-chat", "--models-dir", dir.path]);
    expect(alias.stdout).toMatch(/^repository\s+meta-llama\/Llama-3\.2-1B-Instruct$/m);
    expect(alias.stdout).toMatch(/^status\s+not downloaded$/m);
    const j = json<{ architecture: string; family: string; modalities: string[] }>(
      await runCli(["models", "info", join(FIXTURES, "tiny-gemma3-mm"), "--json"]),
    );
    expect(j).toMatchObject({ family: "gemma3", modalities: ["text", "image"] });
    const missing = await runCli(["models", "info", "./nowhere"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/MODEL_NOT_FOUND/);
    const bad = await runCli(["models", "info"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/missing required argument 'ref'/);
  });

  it("path prints the directory of a model on disk, and fails with the download command otherwise", async () => {
    const r = await runCli(["models", "path", "tiny-llama", "--models-dir", FIXTURES]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${TINY}\n`);
    const missing = await runCli(["models", "path", "llama3-1B-chat", "--models-dir", dir.path]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toMatch(/llama3-1B-chat is not downloaded; it would be in .*llama3-1B-chat/);
    expect(missing.stderr).toMatch(/hint: Download it with: ollm models download llama3-1B-chat/);
  });

  it("download fetches only what a model needs from the hub, then path finds it; a rerun reuses it", async () => {
    const models = join(dir.path, "downloads");
    const env = { HF_ENDPOINT: hub.endpoint };
    hub.requests.length = 0;
    const r = await runCli(["models", "download", "tiny/llama", "--models-dir", models, "--verbose"], {
      env,
    });
    expect(r.code, r.stderr).toBe(0);
    const target = join(models, "tiny--llama");
    expect(r.stdout).toBe(`${target}\n`);
    expect(r.stderr).toMatch(/tiny\/llama: \[#+\] 100% .* done \(\d+\/\d+ files\)/);
    expect(r.stderr).toMatch(/tiny\/llama is ready in/);
    const files = readdirSync(target);
    for (const name of Object.keys(llamaFiles).filter((f) => f.endsWith(".safetensors")))
      expect(files).toContain(name);
    for (const extra of Object.keys(EXTRAS)) expect(hub.requestedFiles()).not.toContain(extra);

    expect((await runCli(["models", "path", "tiny/llama", "--models-dir", models], { env })).stdout).toBe(
      `${target}\n`,
    );
    const listed = json<Listing[]>(
      await runCli(["models", "list", "--installed", "--json", "--models-dir", models], { env }),
    );
    expect(listed.map((m) => m.name)).toContain("tiny--llama"); // discovery names directories

    hub.requests.length = 0;
    const again = await runCli(["models", "download", "tiny/llama", "--models-dir", models], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(hub.requests.filter((q) => q.server === "cdn")).toHaveLength(0);

    // A prompt runs on the downloaded model; offline, no request is made.
    hub.requests.length = 0;
    const offline = await runCli(
      ["prompt", "--offline", "-m", "tiny/llama", "--models-dir", models, "--max-new-tokens", "2", "Hi"],
      { env },
    );
    expect(offline.code, offline.stderr).toBe(0);
    expect(hub.requests).toHaveLength(0);
  });

  it("prompt on a hub model that is not on disk downloads it first", async () => {
    const models = join(dir.path, "on-demand");
    const r = await runCli(
      ["prompt", "-m", "tiny/qwen3", "--models-dir", models, "--max-new-tokens", "2", "--json", "Hi"],
      {
        env: { HF_ENDPOINT: hub.endpoint },
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(json<{ model: string }>(r).model).toBe("tiny/qwen3");
    expect(existsSync(join(models, "tiny--qwen3", "model.safetensors"))).toBe(true);
  });

  it("download errors: offline without a copy, unknown and gated repos, local references", async () => {
    const models = join(dir.path, "errors");
    const env = { HF_ENDPOINT: hub.endpoint };
    const offline = await runCli(["models", "download", "tiny/llama", "--models-dir", models, "--offline"], {
      env,
    });
    expect(offline.code).toBe(1);
    expect(offline.stderr).toMatch(/OFFLINE/);
    expect(offline.stderr).toMatch(/hint: download it while online/);
    const viaEnv = await runCli(["prompt", "-m", "tiny/llama", "--models-dir", models, "Hi"], {
      env: { ...env, HF_HUB_OFFLINE: "1" },
    });
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toMatch(/OFFLINE/);
    const unknown = await runCli(["models", "download", "tiny/nothing", "--models-dir", models], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/MODEL_NOT_FOUND/);
    const gated = await runCli(["models", "download", "tiny/gated", "--models-dir", models], { env });
    expect(gated.code).toBe(1);
    expect(gated.stderr).toMatch(/AUTH_REQUIRED/);
    const withToken = await runCli(["models", "download", "tiny/gated", "--models-dir", models], {
      env: { ...env, HF_TOKEN: GRANTED },
    });
    expect(withToken.code, withToken.stderr).toBe(0);
    const local = await runCli(["models", "download", TINY]);
    expect(local.code).toBe(0);
    expect(local.stdout).toBe(`${TINY}\n`);
    expect(local.stderr).toMatch(/local model; nothing to download/);
    const malformed = await runCli(["models", "download", "a/b/c"]);
    expect(malformed.code).toBe(2);
    const unreachable = await runCli(["models", "download", "tiny/llama", "--models-dir", models]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/IO_ERROR|cannot reach/);
  });
});
