import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { jsonSchema, type PromptResult, PromptResultSchema } from "../../src/cli/schemas.js";
import type { PlanDescription } from "../../src/runtime/plan.js";
import { ensureBuilt, fixture, json, ROOT, runCli, spawnCli, TINY, tempDir } from "./helpers.js";

beforeAll(ensureBuilt, 300_000);

/** The documented JSON Schema, as an independent validator of --json output. */
const documented = z.fromJSONSchema(jsonSchema("prompt"));

function promptJson(stdout: string): PromptResult {
  const value = JSON.parse(stdout) as unknown;
  const check = documented.safeParse(value);
  expect(check.success, JSON.stringify(check.error?.issues)).toBe(true);
  // The published schema allows fields to be added later; today's documents have exactly these.
  const known = Object.keys(PromptResultSchema.shape);
  for (const key of Object.keys(value as object)) expect(known).toContain(key);
  return PromptResultSchema.parse(value);
}

const base = ["prompt", "-m", TINY, "--max-new-tokens", "6"];

describe.concurrent("ollm prompt", () => {
  it("streams the reply to stdout and nothing else there; status stays off a non-terminal stderr", async () => {
    const r = await runCli([...base, "Hello there"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(1);
    expect(r.stdout.endsWith("\n")).toBe(true);
    expect(r.stderr).toBe("");
    // Greedy by default: the same prompt gives the same text.
    const again = await runCli([...base, "Hello", "there"]);
    expect(again.stdout).toBe(r.stdout);
  });

  it("--json prints one result that matches the documented schema; --logprobs N adds tokens", async () => {
    const plain = await runCli([...base, "--json", "Hi"]);
    expect(plain.code, plain.stderr).toBe(0);
    const result = promptJson(plain.stdout);
    expect(result.model).toBe("tiny-llama");
    expect(result.tokens).toBeUndefined();
    expect(result.usage.completionTokens).toBeGreaterThan(0);
    expect(result.usage.completionTokens).toBeLessThanOrEqual(6);
    expect(result.usage.totalTokens).toBe(result.usage.promptTokens + result.usage.completionTokens);
    expect(result.timings.ttftMs).toBeGreaterThan(0);
    expect(["stop", "length"]).toContain(result.finishReason);

    const withTokens = promptJson((await runCli([...base, "--json", "--logprobs", "3", "Hi"])).stdout);
    expect(withTokens.text).toBe(result.text);
    expect(withTokens.tokens?.length).toBeGreaterThan(0);
    for (const token of withTokens.tokens ?? []) {
      expect(token.topLogprobs).toHaveLength(3);
      expect(token.logprob).toBeLessThanOrEqual(0);
      expect(token.topLogprobs[0].logprob).toBeGreaterThanOrEqual(token.topLogprobs[2].logprob);
    }
    expect(withTokens.tokens?.map((t) => t.text).join("")).toContain(withTokens.text.slice(0, 3));
    const zero = promptJson((await runCli([...base, "--json", "--logprobs", "0", "Hi"])).stdout);
    expect(zero.tokens?.[0].topLogprobs).toEqual([]);
  });

  it("--logprobs without --json and --stats print to stderr; --json --stats adds stats", async () => {
    const r = await runCli([...base, "--logprobs", "2", "--stats", "Hi"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/stats: \d+ prompt tokens/);
    expect(r.stderr).toMatch(/time to first token/);
    expect(r.stderr).toMatch(/tiny-llama on cpu\/cpu, KV resident/);
    expect(r.stderr.split("\n").filter((l) => /^\s+\d+ "/.test(l)).length).toBeGreaterThan(0);
    const j = promptJson((await runCli([...base, "--json", "--stats", "Hi"])).stdout);
    expect(j.stats?.backend).toBe("cpu");
    expect(j.stats?.kvCacheStrategy).toBe("resident");
    // The cpu plans no GPU memory: the host peak alone.
    expect(j.stats?.predictedPeakHostBytes).toBeGreaterThan(0);
    expect(j.stats?.predictedPeakGpuBytes).toBeUndefined();
    expect(r.stderr).toMatch(/predicted peak [\d.]+ MiB\n/);
  });

  it("--stats reports what streaming layers and a disk KV cache did during the reply", async () => {
    const dir = tempDir();
    try {
      const streamed = [...base, "--offload-cpu-layers", "1", "--kv-cache-strategy", "resident", "--stats"];
      const text = await runCli([...streamed, "Hi"]);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stderr).toMatch(
        /streaming: \d+ layer loads, [\d.]+ [KM]iB read in [\d.]+ m?s, blocked [\d.]+ m?s \(≤\d+% hidden\), upload/,
      );
      expect(text.stderr).not.toMatch(/KV on disk/);
      const j = promptJson((await runCli([...streamed, "--json", "Hi"])).stdout);
      const s = j.stats?.streaming;
      // Two of tiny-llama's three layers stream: each forward pass loads both.
      expect(s?.layerLoads).toBeGreaterThanOrEqual(2 * j.usage.completionTokens - 1);
      expect(s?.bytesRead).toBeGreaterThan(0);
      expect(j.stats?.kv).toBeUndefined();

      const disk = [...base, "--kv-cache-strategy", "streamed-segmented", "--cache-dir", dir.path, "--stats"];
      const long = "Tell me about the sea, the waves and the wind over the water, please.";
      const kvText = await runCli([...disk, long]);
      expect(kvText.code, kvText.stderr).toBe(0);
      expect(kvText.stderr).toMatch(
        /KV on disk: [\d.]+ [KM]?i?B written, [\d.]+ [KM]?i?B read .*\d+ blocks evicted/,
      );
      expect(kvText.stderr).not.toMatch(/streaming:/);
      const kv = promptJson((await runCli([...disk, "--json", long])).stdout).stats?.kv;
      expect(kv?.blocksEvicted).toBeGreaterThan(0);
      expect(kv?.bytesWritten).toBeGreaterThan(0);
      expect(kv?.diskBytes).toBeGreaterThan(0);
      // Plain runs have neither section.
      const plain = promptJson((await runCli([...base, "--json", "--stats", "Hi"])).stdout);
      expect(plain.stats?.streaming).toBeUndefined();
      expect(plain.stats?.kv).toBeUndefined();
    } finally {
      await dir.cleanup();
    }
  });

  it("--expert-cache sizes the LRU of streamed MoE experts: in the plan, and hit on the next reply", async () => {
    const moe = ["-m", fixture("tiny-gpt_oss"), "--offload-cpu-layers", "1"];
    const r = await runCli(["plan", ...moe, "--expert-cache", "1MiB"]);
    expect(r.code, r.stderr).toBe(0);
    const d = json<{ runtimeConfig: Record<string, unknown>; plan: PlanDescription["plan"] }>(r);
    expect(d.runtimeConfig.expertCacheSize).toBe("1MiB");
    expect(d.plan.memory.expertCacheBytes).toBe(2 ** 20);
    expect(d.plan.memory.predictedPeak.host.expertCache).toBe(2 ** 20);
    expect(d.plan.reasons).toContainEqual(expect.objectContaining({ subject: "expertCache" }));
    const bytes = json<{ runtimeConfig: Record<string, unknown> }>(
      await runCli(["plan", ...moe, "--expert-cache", "4096"]),
    );
    expect(bytes.runtimeConfig.expertCacheSize).toBe(4096);
    // In a chat, the second reply finds the first one's experts in the cache.
    const chat = await runCli(
      ["chat", ...moe, "--expert-cache", "1MiB", "--stats", "--max-new-tokens", "4"],
      {
        input: "Hello there\nHello there\n",
      },
    );
    expect(chat.code, chat.stderr).toBe(0);
    const hits = [...chat.stderr.matchAll(/expert cache (\d+) hits, (\d+) misses/g)].map((m) => Number(m[1]));
    expect(hits).toHaveLength(2);
    expect(hits[1]).toBeGreaterThan(0);
  });

  it("--stdin reads the prompt from stdin, after the argument text when both are given", async () => {
    const fromArg = promptJson((await runCli([...base, "--json", "Summarise:\n\nthe sea is big"])).stdout);
    const piped = await runCli([...base, "--json", "--stdin", "Summarise:"], { input: "the sea is big\n" });
    expect(piped.code, piped.stderr).toBe(0);
    expect(promptJson(piped.stdout)).toMatchObject({ text: fromArg.text, usage: fromArg.usage });
    const only = await runCli([...base, "--stdin"], { input: "Hello there" });
    expect(only.stdout).toBe((await runCli([...base, "Hello there"])).stdout);
    const empty = await runCli([...base, "--stdin"], { input: "  \n" });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/--stdin read an empty prompt/);
  });

  it("--system and --history-file change the prompt", async () => {
    const plain = promptJson((await runCli([...base, "--json", "Hi"])).stdout);
    const system = promptJson(
      (await runCli([...base, "--json", "--system", "You are a pirate who talks a lot.", "Hi"])).stdout,
    );
    expect(system.usage.promptTokens).toBeGreaterThan(plain.usage.promptTokens);
    const dir = tempDir();
    try {
      const history = join(dir.path, "history.json");
      writeFileSync(
        history,
        JSON.stringify([
          { role: "user", content: "What is the sea?" },
          { role: "assistant", content: [{ type: "text", text: "Water, a lot of it." }] },
        ]),
      );
      const withHistory = promptJson(
        (await runCli([...base, "--json", "--history-file", history, "Hi"])).stdout,
      );
      expect(withHistory.usage.promptTokens).toBeGreaterThan(plain.usage.promptTokens + 10);
      writeFileSync(join(dir.path, "bad.json"), "{not json");
      const bad = await runCli([...base, "--history-file", join(dir.path, "bad.json"), "Hi"]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/--history-file .*bad\.json: not valid JSON/);
      writeFileSync(join(dir.path, "roles.json"), JSON.stringify([{ role: "robot", content: "x" }]));
      const roles = await runCli([...base, "--history-file", join(dir.path, "roles.json"), "Hi"]);
      expect(roles.code).toBe(2);
      const missing = await runCli([...base, "--history-file", join(dir.path, "nope.json"), "Hi"]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/no such file/);
    } finally {
      await dir.cleanup();
    }
  });

  it("generation flags reach the sampler: seed reproduces, stop cuts, max-new-tokens bounds", async () => {
    const sample = [
      ...base,
      "--json",
      "--max-new-tokens",
      "8",
      "--temperature",
      "1.5",
      "--top-k",
      "50",
      "--top-p",
      "0.95",
      "--min-p",
      "0.01",
      "--repetition-penalty",
      "1.1",
    ];
    const a = promptJson((await runCli([...sample, "--seed", "7", "Tell me"])).stdout);
    const b = promptJson((await runCli([...sample, "--seed", "7", "Tell me"])).stdout);
    expect(b.text).toBe(a.text);
    const greedy = promptJson((await runCli([...base, "--json", "--max-new-tokens", "8", "Tell me"])).stdout);
    const three = promptJson((await runCli([...base, "--json", "--max-new-tokens", "3", "Tell me"])).stdout);
    expect(three.usage.completionTokens).toBe(3);
    expect(three.finishReason).toBe("length");
    const stopAt = greedy.text.trim().slice(2, 4);
    const stopped = promptJson(
      (
        await runCli([
          ...base,
          "--json",
          "--max-new-tokens",
          "8",
          "--stop",
          "zzz",
          "--stop",
          stopAt,
          "Tell me",
        ])
      ).stdout,
    );
    expect(stopped.finishReason).toBe("stop");
    expect(stopped.text).toBe(greedy.text.slice(0, greedy.text.indexOf(stopAt)));
    const nostream = await runCli([...base, "--max-new-tokens", "8", "--no-stream", "Tell me"]);
    expect(nostream.stdout).toBe(`${greedy.text}\n`);
  });

  it("--plan-json prints the plan with the runtime flags applied, without loading", async () => {
    const r = await runCli([
      "prompt",
      "-m",
      TINY,
      "--plan-json",
      "--context-tokens",
      "256",
      "--prefill-chunk-tokens",
      "64",
      "--strategy-selector-profile",
      "capacity",
      "--kv-cache-strategy",
      "auto",
      "--no-specialization",
      "--device",
      "cpu",
      "--backend",
      "cpu",
      "--host-memory-budget",
      "2GiB",
      "--offload-cpu-policy",
      "suffix",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const d = json<{ runtimeConfig: Record<string, unknown>; plan: PlanDescription["plan"] }>(r);
    expect(d.runtimeConfig).toMatchObject({
      contextTokens: 256,
      prefillChunkTokens: 64,
      strategySelectorProfile: "capacity",
      useSpecialization: false,
      device: "cpu",
      backend: "cpu",
      hostMemoryBudget: "2GiB",
      offloadCpuPolicy: "suffix",
    });
    expect(d.plan.kvCache.contextTokens).toBe(256);
    expect(d.plan.kvCache.profile).toBe("capacity");
    expect(d.plan.prefillChunkTokens).toBe(64);
    expect(d.plan.specialization).toEqual({ enabled: false, state: "disabled", passes: [] });
    expect(d.plan.backend).toBe("cpu");
  });

  it("runtime flags the engine cannot honour fail with one clear line: exit 1 (runtime) or 2 (usage)", async () => {
    const cases: [string[], number, RegExp][] = [
      [
        ["--kv-cache-strategy", "resident", "--kv-cache-window-tokens", "64"],
        2,
        /--kv-cache-window-tokens 64: only applies/,
      ],
      [["--offload-gpu-layers", "2", "--device", "cpu"], 2, /--offload-gpu-layers 2: needs a GPU/],
      [["--multimodal"], 1, /UNSUPPORTED_MODALITY/],
      [["--host-memory-budget", "1KiB"], 1, /OUT_OF_MEMORY_BUDGET/],
      [["--host-memory-budget", "lots"], 2, /--host-memory-budget lots: must be a byte count or a size/],
      [
        ["--expert-cache", "lots"],
        2,
        /--expert-cache lots: must be a byte count \(an integer ≥ 0\) or a size/,
      ],
      [["--expert-cache", "-1"], 2, /--expert-cache -1: must be a byte count/],
      [["--expert-cache", "200%"], 2, /--expert-cache 200%: must be at most 100%/],
      [["--cache-dir", ""], 2, /--cache-dir/],
      [["--device", "tpu"], 2, /--device tpu: must be one of/],
    ];
    for (const [flags, code, pattern] of cases) {
      const r = await runCli(["prompt", "-m", TINY, "--max-new-tokens", "2", ...flags, "Hi"]);
      expect(r.code, `${flags.join(" ")}\n${r.stderr}`).toBe(code);
      expect(r.stderr, flags.join(" ")).toMatch(pattern);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace without --verbose
      expect(r.stdout).toBe("");
    }
    const verbose = await runCli(["prompt", "-m", TINY, "--host-memory-budget", "1KiB", "--verbose", "Hi"]);
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });

  it("--image / --audio attach files (implying multimodal); a text-only model refuses them", async () => {
    const dir = tempDir();
    try {
      const image = join(dir.path, "cat.png");
      writeFileSync(image, Buffer.from([0x89, 0x50, 0x4e, 0x47]));
      const r = await runCli([...base, "--image", image, "What is this?"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/UNSUPPORTED_MODALITY/);
      const mm = await runCli([
        "prompt",
        "-m",
        fixture("tiny-gemma3-mm"),
        "--image",
        image,
        "--image",
        image,
        "What?",
      ]);
      expect(mm.code).toBe(1);
      expect(mm.stderr).toMatch(/UNSUPPORTED_MODALITY/);
      const audio = await runCli([...base, "--audio", image, "Hi"]);
      expect(audio.stderr).toMatch(/UNSUPPORTED_MODALITY/);
      const missing = await runCli([...base, "--image", join(dir.path, "nope.png"), "Hi"]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/--image .*nope\.png: no such file/);
    } finally {
      await dir.cleanup();
    }
  });

  it("usage errors exit 2 with one line and a pointer to --help", async () => {
    const cases: [string[], RegExp][] = [
      [["prompt", "-m", TINY], /ollm prompt needs a prompt/],
      [["prompt", "--temperature", "warm", "Hi"], /--temperature <t>.* argument 'warm' is invalid/],
      [["prompt", "--temperature", "-1", "Hi"], /--temperature -1: must be ≥ 0/],
      [["prompt", "--max-new-tokens", "0", "Hi"], /--max-new-tokens 0: must be an integer ≥ 1/],
      [["prompt", "--top-p", "2", "Hi"], /--top-p 2: must be in \(0, 1\]/],
      [["prompt", "--logprobs", "50", "Hi"], /--logprobs 50: must be an integer in \[0, 20\]/],
      [["prompt", "--seed", "1.5", "Hi"], /--seed <n>.* argument '1.5' is invalid/],
      [
        ["prompt", "--strategy-selector-profile", "fast", "Hi"],
        /Allowed choices are balanced, latency, capacity, bounded-window/,
      ],
      [
        ["prompt", "--offload-cpu-policy", "middle", "Hi"],
        /Allowed choices are auto, prefix, suffix, middle-band/,
      ],
      [["prompt", "--bogus", "Hi"], /unknown option '--bogus'/],
      [["prompt", "-m", "a//b", "Hi"], /Invalid model reference/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCli(args);
      expect(r.code, `${args.join(" ")}\n${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stdout).toBe("");
    }
  });

  it("uses the bundled demo model when no model is configured", async () => {
    if (!existsSync(join(ROOT, "models", "demo", "config.json"))) return;
    const r = await runCli(["prompt", "--plan-json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(json<{ resolvedModel: { alias: string; source: string } }>(r).resolvedModel).toMatchObject({
      alias: "demo",
      source: "bundled",
    });
  });

  it("Ctrl-C stops the generation, keeps what was printed, and exits 130", async () => {
    const child = spawnCli(["prompt", "-m", TINY, "--max-new-tokens", "900", "Count"]);
    child.stdin?.end();
    let stdout = "";
    let stderr = "";
    child.stderr?.on("data", (d) => {
      stderr += d;
    });
    const first = new Promise<void>((resolve) =>
      child.stdout?.on("data", (d) => {
        stdout += d;
        resolve();
      }),
    );
    await first;
    child.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code, stderr).toBe(130);
    expect(stdout.length).toBeGreaterThan(0);
    expect(stderr).toMatch(/\(stopped\)/);
  });
});
