import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { BIN, cliEnv, ensureBuilt, json, ROOT, runCli, TINY, tempDir } from "./helpers.js";

beforeAll(ensureBuilt, 300_000);
const dir = tempDir("ollm-help-");
afterAll(dir.cleanup);

const RUNTIME = [
  "--model",
  "--backend",
  "--device",
  "--no-specialization",
  "--multimodal",
  "--strategy-selector-profile",
  "--kv-cache-strategy",
  "--kv-cache-window-tokens",
  "--cache-dir",
  "--offload-cpu-layers",
  "--offload-cpu-policy",
  "--offload-gpu-layers",
  "--gpu-memory-budget",
  "--host-memory-budget",
  "--context-tokens",
  "--prefill-chunk-tokens",
];
const GENERATION = [
  "--max-new-tokens",
  "--temperature",
  "--top-p",
  "--top-k",
  "--min-p",
  "--repetition-penalty",
  "--seed",
  "--stop",
  "--no-stream",
];
const SERVER = [
  "--host",
  "--port",
  "--api-key",
  "--allow-insecure-public",
  "--concurrency",
  "--max-queue",
  "--body-limit",
  "--request-timeout",
  "--log-level",
];
const GLOBAL = ["--config", "--models-dir", "--offline", "--quiet", "--verbose", "--no-color", "--help"];

const HELP: [string[], string[]][] = [
  [
    [],
    [
      "prompt",
      "chat",
      "plan",
      "doctor",
      "models",
      "serve",
      "config",
      "completion",
      "schema",
      "--version",
      ...GLOBAL,
    ],
  ],
  [
    ["prompt"],
    [
      "--stdin",
      "--system",
      "--image",
      "--audio",
      "--history-file",
      "--json",
      "--plan-json",
      "--logprobs",
      "--stats",
      ...RUNTIME,
      ...GENERATION,
      ...GLOBAL,
    ],
  ],
  [
    ["chat"],
    [
      "--session-name",
      "--autosave",
      "--system",
      "--history-file",
      "--plan-json",
      "--stats",
      "/image PATH",
      "/send",
      "/system",
      "/reset",
      "/save PATH",
      "/load PATH",
      "/history",
      "/help",
      "/exit",
      ...RUNTIME,
      ...GENERATION,
      ...GLOBAL,
    ],
  ],
  [["plan"], [...RUNTIME, ...GLOBAL]],
  [["doctor"], ["--json", "--no-gpu", ...RUNTIME, ...GLOBAL]],
  [["models"], ["list", "info", "download", "path", ...GLOBAL]],
  [
    ["models", "list"],
    ["--installed", "--json", ...GLOBAL],
  ],
  [
    ["models", "info"],
    ["<ref>", "--json", ...GLOBAL],
  ],
  [
    ["models", "download"],
    ["<ref>", "HF_TOKEN", ...GLOBAL],
  ],
  [
    ["models", "path"],
    ["<ref>", ...GLOBAL],
  ],
  [["serve"], [...SERVER, ...RUNTIME, ...GENERATION, ...GLOBAL]],
  [["config"], ["show"]],
  [
    ["config", "show"],
    ["--json", "OLLM_<SECTION>__<KEY>", ...RUNTIME, ...GENERATION, ...SERVER, ...GLOBAL],
  ],
  [["completion"], ["bash", "zsh", "fish"]],
  [["schema"], ["prompt", "plan", "doctor"]],
];

describe.concurrent("help, version, usage errors", () => {
  it("ollm --help and every subcommand's --help list all of its flags (exit 0, stdout)", async () => {
    for (const [path, expected] of HELP) {
      const r = await runCli([...path, "--help"]);
      expect(r.code, path.join(" ")).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^Usage: ollm${path.length ? ` ${path.join(" ")}` : ""} `));
      for (const word of expected) expect(r.stdout, `${path.join(" ")} --help lacks ${word}`).toContain(word);
    }
    const viaHelp = await runCli(["help", "prompt"]);
    expect(viaHelp.stdout).toContain("--plan-json");
  });

  it("--version prints the package version", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const r = await runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it("a missing or unknown command, a missing argument or an unknown option exits 2 with a pointer to --help", async () => {
    const cases: [string[], RegExp][] = [
      [[], /Usage: ollm/],
      [["promt", "Hi"], /unknown command 'promt'[\s\S]*Did you mean prompt\?/],
      [["models"], /Usage: ollm models/],
      [["models", "nope"], /unknown command 'nope'/],
      [["models", "info"], /missing required argument 'ref'/],
      [
        ["completion", "tcsh"],
        /value 'tcsh' is invalid for argument 'shell'. Allowed choices are bash, zsh, fish/,
      ],
      [["schema", "everything"], /Allowed choices are prompt, plan, doctor/],
      [["plan", "--backend", "cuda"], /Allowed choices are auto, cpu, webgpu/],
      [["serve", "--port", "70000"], /--port 70000: must be in \[0, 65535\]/],
      [["serve", "--port", "http"], /--port <port>.* argument 'http' is invalid/],
      [
        ["serve", "--log-level", "loud"],
        /Allowed choices are fatal, error, warn, info, debug, trace, silent/,
      ],
      [["serve", "--concurrency", "0"], /--concurrency 0: must be an integer ≥ 1/],
      [["doctor", "--json", "extra"], /too many arguments/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCli(args);
      expect(r.code, `ollm ${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr + r.stdout, args.join(" ")).toMatch(pattern);
    }
    const r = await runCli(["prompt", "--bogus"]);
    expect(r.stderr).toMatch(/\(run "ollm prompt --help" for usage\)/);
  });

  it("colours only on a terminal, never with NO_COLOR or --no-color; FORCE_COLOR forces them", async () => {
    const plain = await runCli(["prompt", "-m", "./nowhere", "Hi"]);
    expect(plain.stderr).not.toContain("\x1b[");
    const forced = await runCli(["prompt", "-m", "./nowhere", "Hi"], {
      env: { NO_COLOR: undefined, FORCE_COLOR: "1" },
    });
    expect(forced.stderr).toContain("\x1b[31m");
    const flag = await runCli(["--no-color", "prompt", "-m", "./nowhere", "Hi"], {
      env: { NO_COLOR: undefined, FORCE_COLOR: "1" },
    });
    expect(flag.stderr).not.toContain("\x1b[");
  });
});

describe.concurrent("ollm completion", () => {
  it("bash: valid syntax, completes commands, options, choices and aliases", async () => {
    const r = await runCli(["completion", "bash"]);
    expect(r.code).toBe(0);
    const script = join(dir.path, "ollm.bash");
    writeFileSync(script, r.stdout);
    execFileSync("bash", ["-n", script]);
    const complete = (...words: string[]) =>
      spawnSync(
        "bash",
        [
          "-c",
          `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _ollm; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: "utf8" },
      ).stdout.trim();
    expect(complete("ollm", "")).toContain(
      "prompt chat plan doctor models serve config bench completion schema",
    );
    expect(complete("ollm", "mo")).toBe("models");
    expect(complete("ollm", "models", "")).toMatch(/^list info download path/);
    expect(complete("ollm", "prompt", "--kv-cache-s")).toBe("--kv-cache-strategy");
    expect(complete("ollm", "prompt", "--offload-cpu-policy", "")).toBe("auto prefix suffix middle-band");
    expect(complete("ollm", "models", "info", "gemma")).toBe("gemma3-12B");
    expect(complete("ollm", "completion", "")).toContain("bash zsh fish");
    expect(complete("ollm", "serve", "--log-level", "de")).toBe("debug");
    expect(complete("ollm", "prompt", "--temperature", "")).toBe("");
  });

  it("works whatever the configuration holds", async () => {
    const r = await runCli(["completion", "fish"], {
      env: { OLLM_RUNTIME__NOPE: "1", OLLM_CONFIG_FILE: "/nonexistent.toml" },
    });
    expect(r.code, r.stderr).toBe(0);
  });

  it("zsh and fish scripts name every command and option", async () => {
    const zsh = await runCli(["completion", "zsh"]);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout.startsWith("#compdef ollm")).toBe(true);
    const fish = await runCli(["completion", "fish"]);
    expect(fish.code).toBe(0);
    for (const out of [zsh.stdout, fish.stdout]) {
      for (const word of [
        "prompt",
        "chat",
        "models",
        "download",
        "kv-cache-strategy",
        "offload-cpu-policy",
        "session-name",
        "api-key",
      ])
        expect(out).toContain(word);
    }
    expect(fish.stdout).toContain(
      "complete -c ollm -n '__fish_seen_subcommand_from models; and not __fish_seen_subcommand_from list info download path' -a list",
    );
    expect(fish.stdout).toMatch(/-l kv-cache-strategy -x -a 'auto resident chunked/);
    for (const [shell, out] of [
      ["zsh", zsh.stdout],
      ["fish", fish.stdout],
    ] as const) {
      const check = spawnSync(shell, ["-n"], { input: out, encoding: "utf8" });
      if (check.error) continue; // the shell is not installed here
      expect(check.status, check.stderr).toBe(0);
    }
  });
});

describe.concurrent("ollm schema and ollm plan", () => {
  it("prints the JSON Schemas of the --json documents", async () => {
    for (const name of ["prompt", "plan", "doctor"]) {
      const r = await runCli(["schema", name]);
      expect(r.code).toBe(0);
      const schema = json(r);
      expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
      expect(() => z.fromJSONSchema(schema as never)).not.toThrow();
    }
    expect(json<{ required: string[] }>(await runCli(["schema", "prompt"])).required).toEqual(
      expect.arrayContaining(["model", "text", "finishReason", "usage", "timings"]),
    );
  });

  it("ollm plan is prompt --plan-json without a prompt", async () => {
    // A fixed budget: the default one follows the free memory measured by each process.
    const flags = ["-m", TINY, "--context-tokens", "200", "--host-memory-budget", "1GiB"];
    const plan = await runCli(["plan", ...flags]);
    const fromPrompt = await runCli(["prompt", "--plan-json", ...flags]);
    expect(plan.code, plan.stderr).toBe(0);
    const a = json<{ schemaVersion: number; plan: unknown; resolvedModel: { name: string } }>(plan);
    expect(a.schemaVersion).toBe(1);
    expect(a.resolvedModel.name).toBe("tiny-llama");
    expect(a.plan).toEqual(json<{ plan: unknown }>(fromPrompt).plan);
  });
});

describe.concurrent("progress on a terminal", () => {
  const hasScript = spawnSync("script", ["--version"]).status === 0;

  it.skipIf(!hasScript)("draws status lines on a TTY stderr, none with --quiet or off a TTY", async () => {
    const run = (extra: string) =>
      spawnSync(
        "script",
        ["-qfec", `${process.execPath} ${BIN} prompt -m ${TINY} --max-new-tokens 2 ${extra} Hi`, "/dev/null"],
        {
          encoding: "utf8",
          env: cliEnv(),
          cwd: dir.path,
        },
      ).stdout;
    const tty = run("");
    expect(tty).toMatch(/Loading tiny-llama/);
    expect(tty).toContain("\r\x1b[2K");
    const quiet = run("--quiet");
    expect(quiet).not.toMatch(/Loading/);
    const piped = await runCli(["prompt", "-m", TINY, "--max-new-tokens", "2", "Hi"]);
    expect(piped.stderr).toBe("");
    const verbose = await runCli(["prompt", "-m", TINY, "--max-new-tokens", "2", "--verbose", "Hi"]);
    expect(verbose.stderr).toMatch(/loaded tiny-llama in \d+ ms/);
    expect(verbose.stderr).toMatch(/plan: backend = cpu/);
    expect(verbose.stderr).toMatch(/first token after \d+ ms/);
  });
});
