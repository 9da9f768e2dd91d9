import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config/validation.js";
import { OllmError } from "../../src/errors.js";
import { coerce, envName, Settings } from "../../src/cli/settings.js";
import { ensureBuilt, json, runCli, TINY, tempDir } from "./helpers.js";

beforeAll(ensureBuilt, 300_000);

const dir = tempDir("ollm-config-");
afterAll(dir.cleanup);

/** A project directory with an ollm.toml. */
function project(name: string, toml: string): string {
  const path = join(dir.path, name);
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, "ollm.toml"), toml);
  return path;
}

interface Shown {
  configFile: string | null;
  environment: string[];
  values: Record<string, Record<string, unknown>>;
  sources: Record<string, { kind: string; name: string }>;
  problems: { field: string; message: string }[];
}

const TOML = `
[runtime]
model_reference = "${TINY}"
context_tokens = 512
prefill_chunk_tokens = 32
kv_cache_strategy = "auto"

[generation]
max_new_tokens = 5
temperature = 0.5
top_k = 10

[server]
port = 9100
api_key = "file-secret"
`;

describe.concurrent("configuration layering: defaults < ollm.toml < OLLM_* < flags", () => {
  it("config show --json names the source of every value", async () => {
    const cwd = project("layers", TOML);
    const r = await runCli(["config", "show", "--json", "--top-k", "3", "--context-tokens", "128"], {
      cwd,
      env: {
        OLLM_GENERATION__TEMPERATURE: "0.7",
        OLLM_RUNTIME__CONTEXT_TOKENS: "256",
        OLLM_SERVER__PORT: "9200",
      },
    });
    expect(r.code, r.stderr).toBe(0);
    const shown = json<Shown>(r);
    expect(shown.configFile).toBe(join(cwd, "ollm.toml"));
    expect(shown.environment.sort()).toEqual([
      "OLLM_GENERATION__TEMPERATURE",
      "OLLM_RUNTIME__CONTEXT_TOKENS",
      "OLLM_SERVER__PORT",
    ]);
    expect(shown.values.runtime).toMatchObject({
      modelReference: TINY,
      contextTokens: 128,
      prefillChunkTokens: 32,
      backend: "auto",
    });
    expect(shown.values.generation).toMatchObject({ maxNewTokens: 5, temperature: 0.7, topK: 3 });
    expect(shown.values.server).toMatchObject({ port: 9200, host: "127.0.0.1", apiKey: "********" });
    expect(shown.sources["runtime.contextTokens"]).toEqual({ kind: "flag", name: "--context-tokens" });
    expect(shown.sources["runtime.prefillChunkTokens"]).toEqual({
      kind: "file",
      name: join(cwd, "ollm.toml"),
    });
    expect(shown.sources["runtime.backend"]).toEqual({ kind: "default", name: "built-in" });
    expect(shown.sources["generation.temperature"]).toEqual({
      kind: "env",
      name: "OLLM_GENERATION__TEMPERATURE",
    });
    expect(shown.sources["generation.topK"].kind).toBe("flag");
    expect(shown.sources["generation.maxNewTokens"].kind).toBe("file");
    expect(shown.sources["server.port"].kind).toBe("env");
    expect(shown.problems).toEqual([]);
  });

  it("the text form is a valid ollm.toml with each source as a comment", async () => {
    const cwd = project("text", TOML);
    const r = await runCli(["config", "show", "--seed", "4"], {
      cwd,
      env: { OLLM_GENERATION__TEMPERATURE: "0.7" },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\[runtime\]$/m);
    expect(r.stdout).toMatch(/^context_tokens = 512\s+# file ollm\.toml$/m);
    expect(r.stdout).toMatch(/^temperature = 0\.7\s+# env OLLM_GENERATION__TEMPERATURE$/m);
    expect(r.stdout).toMatch(/^seed = 4\s+# flag --seed$/m);
    expect(r.stdout).toMatch(/^backend = "auto"\s+# default$/m);
    expect(r.stdout).toMatch(/^# top_p\s+# unset \(OLLM_GENERATION__TOP_P\)$/m);
    expect(r.stdout).not.toContain("file-secret");
    const { parse } = await import("smol-toml");
    const reparsed = parse(r.stdout) as Record<string, Record<string, unknown>>;
    expect(reparsed.generation.temperature).toBe(0.7);
    expect(reparsed.runtime.model_reference).toBe(TINY);
  });

  it("the layers reach the runtime: plan and prompt use file < env < flag", async () => {
    const cwd = project("runtime", TOML);
    const plan = async (args: string[], env: Record<string, string> = {}) =>
      json<{ plan: { kvCache: { contextTokens: number }; prefillChunkTokens: number } }>(
        await runCli(["plan", ...args], { cwd, env }),
      ).plan;
    expect((await plan([])).kvCache.contextTokens).toBe(512);
    expect((await plan([], { OLLM_RUNTIME__CONTEXT_TOKENS: "256" })).kvCache.contextTokens).toBe(256);
    expect(
      (await plan(["--context-tokens", "128"], { OLLM_RUNTIME__CONTEXT_TOKENS: "256" })).kvCache
        .contextTokens,
    ).toBe(128);
    expect((await plan([])).prefillChunkTokens).toBe(32);

    const tokens = async (args: string[], env: Record<string, string> = {}) => {
      const r = await runCli(["prompt", "--json", "--temperature", "0", ...args, "Hi"], { cwd, env });
      expect(r.code, r.stderr).toBe(0);
      return json<{ usage: { completionTokens: number } }>(r).usage.completionTokens;
    };
    expect(await tokens([])).toBe(5);
    expect(await tokens([], { OLLM_GENERATION__MAX_NEW_TOKENS: "3" })).toBe(3);
    expect(await tokens(["--max-new-tokens", "2"], { OLLM_GENERATION__MAX_NEW_TOKENS: "3" })).toBe(2);
  });

  it("OLLM_CONFIG_FILE and --config pick another file; relative paths in a file are relative to it", async () => {
    const other = join(dir.path, "elsewhere");
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, "custom.toml"), '[runtime]\nmodels_dir = "my-models"\ncontext_tokens = 300\n');
    writeFileSync(join(other, "flag.toml"), "[runtime]\ncontext_tokens = 400\n");
    const cwd = project("ignored", "[runtime]\ncontext_tokens = 200\n");
    const viaEnv = json<Shown>(
      await runCli(["config", "show", "--json"], {
        cwd,
        env: { OLLM_CONFIG_FILE: join(other, "custom.toml") },
      }),
    );
    expect(viaEnv.configFile).toBe(join(other, "custom.toml"));
    expect(viaEnv.values.runtime.contextTokens).toBe(300);
    expect(viaEnv.values.runtime.modelsDir).toBe(join(other, "my-models"));
    const viaFlag = json<Shown>(
      await runCli(["--config", join(other, "flag.toml"), "config", "show", "--json"], {
        cwd,
        env: { OLLM_CONFIG_FILE: join(other, "custom.toml") },
      }),
    );
    expect(viaFlag.values.runtime.contextTokens).toBe(400);
    const local = json<Shown>(await runCli(["config", "show", "--json"], { cwd }));
    expect(local.values.runtime.contextTokens).toBe(200);
    expect(local.values.runtime.modelReference).toBe("demo");
  });

  it("expert_cache_size comes from the file, OLLM_RUNTIME__EXPERT_CACHE_SIZE or --expert-cache", async () => {
    const cwd = project("experts", '[runtime]\nexpert_cache_size = "64MiB"\n');
    const size = async (args: string[], env: Record<string, string> = {}) =>
      json<{ runtimeConfig: { expertCacheSize: unknown } }>(
        await runCli(["plan", "-m", TINY, ...args], { cwd, env }),
      ).runtimeConfig.expertCacheSize;
    expect(await size([])).toBe("64MiB");
    expect(await size([], { OLLM_RUNTIME__EXPERT_CACHE_SIZE: "1048576" })).toBe(1048576);
    expect(await size(["--expert-cache", "2GiB"], { OLLM_RUNTIME__EXPERT_CACHE_SIZE: "1048576" })).toBe(
      "2GiB",
    );
    const bad = await runCli(["plan", "-m", TINY], { cwd, env: { OLLM_RUNTIME__EXPERT_CACHE_SIZE: "big" } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/OLLM_RUNTIME__EXPERT_CACHE_SIZE=big: must be a byte count/);
    const file = await runCli(["plan", "-m", TINY], {
      cwd: project("experts-bad", "[runtime]\nexpert_cache_size = -3\n"),
    });
    expect(file.code).toBe(2);
    expect(file.stderr).toMatch(/ollm\.toml: \[runtime\] expert_cache_size = -3: must be a byte count/);
  });

  it("bad files, variables and values exit 2 naming the file line, the variable or the flag", async () => {
    const cases: [string, Record<string, string>, string[], RegExp][] = [
      ["[runtime\nx = 1\n", {}, [], /ollm\.toml is not valid TOML/],
      [
        '[runtime]\ndevise = "cpu"\n',
        {},
        [],
        /ollm\.toml: \[runtime\] devise: unknown option; did you mean device\?/,
      ],
      ["[models]\nx = 1\n", {}, [], /ollm\.toml: \[models\]: unknown section/],
      [
        "[runtime]\nxyz = 1\n",
        {},
        [],
        /\[runtime\] xyz: unknown option \(known: model_reference, models_dir/,
      ],
      [
        "[generation]\ntemperature = -2\n",
        {},
        [],
        /ollm\.toml: \[generation\] temperature = -2: must be ≥ 0/,
      ],
      [
        '[runtime]\nbackend = "cuda"\n',
        {},
        [],
        /\[runtime\] backend = "cuda": must be one of "auto", "cpu", "webgpu"/,
      ],
      [
        "",
        { OLLM_RUNTIME__DEVISE: "cpu" },
        [],
        /OLLM_RUNTIME__DEVISE: unknown option; did you mean OLLM_RUNTIME__DEVICE\?/,
      ],
      ["", { OLLM_GENERATION__TOP_K: "many" }, [], /OLLM_GENERATION__TOP_K=many: must be a number/],
      [
        "",
        { OLLM_RUNTIME__MULTIMODAL: "maybe" },
        [],
        /OLLM_RUNTIME__MULTIMODAL=maybe: must be true or false/,
      ],
      ["", { OLLM_SERVER__PORT: "70000" }, [], /OLLM_SERVER__PORT=70000: must be in \[0, 65535\]/],
      [
        "",
        { OLLM_CONFIG_FILE: "/nonexistent/ollm.toml" },
        [],
        /Config file \/nonexistent\/ollm\.toml does not exist/,
      ],
      ["", {}, ["--config", "/nonexistent/x.toml"], /Check the path given to --config/],
    ];
    for (const [toml, env, extra, pattern] of cases) {
      const cwd = project(`bad-${Math.random().toString(36).slice(2)}`, toml);
      const r = await runCli([...extra, "plan", "-m", TINY], { cwd, env });
      expect(r.code, `${toml} ${JSON.stringify(env)}\n${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr.trim().split("\n")).toHaveLength(2); // one error line and its hint
    }
  });

  it("config show reports an invalid configuration (exit 2) after printing it", async () => {
    const cwd = project("invalid", "[generation]\ntop_p = 3\n");
    const r = await runCli(["config", "show"], { cwd });
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^top_p = 3\s+# file ollm\.toml$/m);
    expect(r.stderr).toMatch(/\[generation\] top_p = 3: must be in \(0, 1\]/);
    const j = json<Shown>(await runCli(["config", "show", "--json"], { cwd }));
    expect(j.problems[0].field).toMatch(/top_p/);
  });
});

describe.concurrent("Settings (unit)", () => {
  const env = {
    OLLM_RUNTIME__DEVICE: "cpu",
    OLLM_GENERATION__STOP: '["\\n", "END"]',
    OTHER: "x",
    OLLM_FOO__BAR: "ignored",
  };

  it("layers values and keeps their sources", () => {
    const s = Settings.load({
      cwd: dir.path,
      env,
      flags: [{ key: "runtime.device", value: "auto", flag: "--device" }],
    });
    expect(s.get("runtime.device")).toEqual({ value: "auto", source: { kind: "flag", name: "--device" } });
    expect(s.get("generation.stop")?.value).toEqual(["\n", "END"]);
    expect(s.get("runtime.modelReference")?.value).toBe("demo");
    expect(s.runtimeConfig().device).toBe("auto");
    expect(s.envVariables).toEqual(["OLLM_GENERATION__STOP", "OLLM_RUNTIME__DEVICE"]);
  });

  it("coerces environment text by the field's type", () => {
    expect(coerce("12", "integer")).toEqual({ value: 12 });
    expect(coerce("0.5", "number")).toEqual({ value: 0.5 });
    expect(coerce("x", "number")).toEqual({ error: "must be a number" });
    expect(coerce("YES", "boolean")).toEqual({ value: true });
    expect(coerce("off", "boolean")).toEqual({ value: false });
    expect(coerce("a, b,,c", "array")).toEqual({ value: ["a", "b", "c"] });
    expect(coerce("[1]", "array")).toHaveProperty("error");
    expect(coerce("8GiB", "size")).toEqual({ value: "8GiB" });
    expect(coerce("1024", "size")).toEqual({ value: 1024 });
    expect(envName("generation", "repetitionPenalty")).toBe("OLLM_GENERATION__REPETITION_PENALTY");
  });

  it("throws one ConfigError naming every bad variable", () => {
    try {
      Settings.load({ cwd: dir.path, env: { OLLM_RUNTIME__NOPE: "1", OLLM_GENERATION__SEED: "x" } });
      throw new Error("expected a ConfigError");
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).violations.map((v) => v.field)).toEqual([
        "OLLM_GENERATION__SEED=x",
        "OLLM_RUNTIME__NOPE",
      ]);
    }
    expect(() => Settings.load({ cwd: dir.path, env: {}, configFile: "missing.toml" })).toThrow(OllmError);
  });
});
