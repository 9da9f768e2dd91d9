import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OllmError } from "../../src/errors.js";
import { lockDir } from "../../src/hub/disk.js";
import {
  type DownloadProgress,
  formatBytes,
  formatProgress,
  hubSettingsFromEnv,
  localDirName,
  ProgressTracker,
  parseRepoReference,
  resolveUrl,
  selectFiles,
  shardsFromIndex,
} from "../../src/hub/index.js";
import { tempDir } from "./helpers.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as OllmError).code;
  }
  return undefined;
}

describe("selectFiles", () => {
  const base = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "README.md",
  ];

  it("sharded: config, tokenizer and the index (shards come from the index); never pickles", () => {
    const s = selectFiles([
      ...base,
      "model.safetensors.index.json",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "pytorch_model.bin",
      "pytorch_model.bin.index.json",
      "consolidated.safetensors",
      "tokenizer.model",
      "chat_template.jinja",
      "original/params.json",
    ]);
    expect(s.index).toBe("model.safetensors.index.json");
    expect(s.weights).toEqual([]);
    expect(s.files).toEqual([
      "config.json",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      "chat_template.jinja",
      "model.safetensors.index.json",
    ]);
  });

  it("single file; accepts model info siblings ({rfilename}) too", () => {
    const s = selectFiles([...base, "model.safetensors", "model.pt"].map((rfilename) => ({ rfilename })));
    expect(s.weights).toEqual(["model.safetensors"]);
    expect(s.files).toContain("model.safetensors");
    expect(s.files).not.toContain("model.pt");
  });

  it("slow-tokenizer sources only without tokenizer.json; processor configs for multimodal repos", () => {
    const s = selectFiles([
      "config.json",
      "tokenizer.model",
      "tokenizer_config.json",
      "special_tokens_map.json",
      "preprocessor_config.json",
      "processor_config.json",
      "model.safetensors",
    ]);
    expect(s.files).toEqual([
      "config.json",
      "tokenizer_config.json",
      "special_tokens_map.json",
      "preprocessor_config.json",
      "processor_config.json",
      "tokenizer.model",
      "model.safetensors",
    ]);
  });

  it("refuses pickle-only, GGUF-only, Mistral-native-only and config-less repos with clear messages", () => {
    expect(() => selectFiles(["config.json", "pytorch_model.bin"], "a/b")).toThrow(
      /a\/b only has PyTorch pickle weights/,
    );
    expect(codeOf(() => selectFiles(["config.json", "model.ckpt"]))).toBe("INVALID_CHECKPOINT");
    expect(() => selectFiles(["model-q4.gguf"], "a/b")).toThrow(/GGUF/);
    expect(() => selectFiles(["params.json", "consolidated.safetensors"], "a/b")).toThrow(/consolidated/);
    expect(() => selectFiles(["model.safetensors"], "a/b")).toThrow(/no config.json/);
    expect(() => selectFiles(["config.json"], "a/b")).toThrow(/no safetensors/);
  });

  it("shardsFromIndex: deduplicated, sorted; unsafe or odd names rejected", () => {
    expect(
      shardsFromIndex({ weight_map: { a: "m-2.safetensors", b: "m-1.safetensors", c: "m-2.safetensors" } }),
    ).toEqual(["m-1.safetensors", "m-2.safetensors"]);
    expect(codeOf(() => shardsFromIndex({ weight_map: { a: "../evil.safetensors" } }))).toBe(
      "INVALID_CHECKPOINT",
    );
    expect(codeOf(() => shardsFromIndex({ weight_map: { a: "/abs.safetensors" } }))).toBe(
      "INVALID_CHECKPOINT",
    );
    expect(codeOf(() => shardsFromIndex({ weight_map: { a: "x.bin" } }))).toBe("INVALID_CHECKPOINT");
    expect(codeOf(() => shardsFromIndex({}))).toBe("INVALID_CHECKPOINT");
  });
});

describe("references and paths", () => {
  it("parses org/name[@rev]; the explicit revision wins", () => {
    expect(parseRepoReference("Qwen/Qwen3-0.6B")).toEqual({ repoId: "Qwen/Qwen3-0.6B", revision: undefined });
    expect(parseRepoReference("a/b@refs/pr/3")).toEqual({ repoId: "a/b", revision: "refs/pr/3" });
    expect(parseRepoReference("a/b@v1", "v2")).toEqual({ repoId: "a/b", revision: "v2" });
    expect(parseRepoReference("gpt2").repoId).toBe("gpt2");
    for (const bad of ["", "a/b/c", "../x", "a/..", "a--b/c", "a/b-", "/abs"])
      expect(
        codeOf(() => parseRepoReference(bad)),
        bad,
      ).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => parseRepoReference("a/b@../../x"))).toBe("INVALID_ARGUMENT");
  });

  it("directory names and resolve URLs", () => {
    expect(localDirName("org/name")).toBe("org--name");
    expect(localDirName("org/name", "main")).toBe("org--name");
    expect(localDirName("org/name", "refs/pr/1")).toBe("org--name@refs--pr--1");
    expect(resolveUrl("https://hf.co", "o/n", "refs/pr/1", "sub dir/a.json")).toBe(
      "https://hf.co/o/n/resolve/refs%2Fpr%2F1/sub%20dir/a.json",
    );
  });
});

describe("hubSettingsFromEnv", () => {
  let home: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    home = await tempDir();
  });
  afterEach(async () => {
    await home.cleanup();
  });

  it("defaults", () => {
    const s = hubSettingsFromEnv({ HOME: home.path });
    expect(s).toEqual({
      endpoint: "https://huggingface.co",
      token: undefined,
      offline: false,
      hfCacheDir: join(home.path, ".cache", "huggingface", "hub"),
    });
  });

  it("HF_ENDPOINT, HF_HUB_OFFLINE, HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME", () => {
    const s = hubSettingsFromEnv({
      HF_ENDPOINT: "http://127.0.0.1:8080/ ",
      HF_HUB_OFFLINE: "1",
      HF_HUB_CACHE: "/c",
    });
    expect(s.endpoint).toBe("http://127.0.0.1:8080");
    expect(s.offline).toBe(true);
    expect(s.hfCacheDir).toBe("/c");
    expect(hubSettingsFromEnv({ HF_HUB_OFFLINE: "true" }).offline).toBe(true);
    expect(hubSettingsFromEnv({ HF_HUB_OFFLINE: "0" }).offline).toBe(false);
    expect(hubSettingsFromEnv({ HF_HOME: "/h" }).hfCacheDir).toBe(join("/h", "hub"));
    expect(hubSettingsFromEnv({ XDG_CACHE_HOME: "/x" }).hfCacheDir).toBe(join("/x", "huggingface", "hub"));
  });

  it("token: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the huggingface-cli token file", async () => {
    const hfHome = join(home.path, "hf");
    await mkdir(hfHome, { recursive: true });
    await writeFile(join(hfHome, "token"), "hf_from_file\n");
    expect(hubSettingsFromEnv({ HF_HOME: hfHome }).token).toBe("hf_from_file");
    expect(hubSettingsFromEnv({ HF_HOME: hfHome, HUGGING_FACE_HUB_TOKEN: "hf_legacy" }).token).toBe(
      "hf_legacy",
    );
    expect(
      hubSettingsFromEnv({ HF_HOME: hfHome, HUGGING_FACE_HUB_TOKEN: "hf_legacy", HF_TOKEN: "hf_env" }).token,
    ).toBe("hf_env");
    await writeFile(join(home.path, "elsewhere"), "hf_path");
    expect(hubSettingsFromEnv({ HF_TOKEN_PATH: join(home.path, "elsewhere") }).token).toBe("hf_path");
    expect(hubSettingsFromEnv({ HOME: home.path }).token).toBeUndefined();
    expect(
      hubSettingsFromEnv({ HF_TOKEN: "hf_env", HF_HUB_DISABLE_IMPLICIT_TOKEN: "1" }).token,
    ).toBeUndefined();
  });
});

describe("progress", () => {
  it("aggregates files, measures speed and ETA", () => {
    let t = 0;
    const events: DownloadProgress[] = [];
    const p = new ProgressTracker(
      "o/n",
      (e) => events.push(e),
      () => t,
    );
    p.setTotals(1000, 2);
    p.update("a", 0, 0);
    t = 1000;
    p.update("a", 200, 200);
    t = 2000;
    p.update("b", 200, 200);
    const last = events[events.length - 1];
    expect(last.bytesDone).toBe(400);
    expect(last.bytesPerSecond).toBeCloseTo(200);
    expect(last.etaSeconds).toBeCloseTo(3);
    p.fileFinished("a", 500);
    p.fileFinished("b", 500);
    const done = events[events.length - 1];
    expect(done.filesDone).toBe(2);
    expect(done.bytesDone).toBe(1000);
    expect(done.etaSeconds).toBe(0);
  });

  it("throttles intermediate events but never file completions", () => {
    const t = 0;
    const events: DownloadProgress[] = [];
    const p = new ProgressTracker(
      "o/n",
      (e) => events.push(e),
      () => t,
    );
    p.setTotals(100, 1);
    for (let i = 1; i <= 50; i++) p.update("a", i, 1); // same instant
    p.fileFinished("a", 100);
    expect(events.length).toBe(2);
  });

  it("formats one line with bytes, speed and ETA", () => {
    const line = formatProgress({
      phase: "download",
      repo: "o/n",
      file: "x",
      bytesDone: 1_500_000_000,
      bytesTotal: 3_000_000_000,
      bytesPerSecond: 25_000_000,
      etaSeconds: 60,
      filesDone: 3,
      filesTotal: 7,
    });
    expect(line).toBe(
      "o/n: [############............]  50% 1.5 GB / 3.0 GB  25.0 MB/s  ETA 1m00s  (3/7 files)",
    );
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1_234_567)).toBe("1.2 MB");
  });
});

describe("download lock", () => {
  it("one holder at a time; a dead holder's lock is taken over", async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, ".ollm-download.lock"), "999999999"); // no such pid
      const release = await lockDir(dir.path);
      await writeFile(join(dir.path, "keep"), "x");
      await release();
      await writeFile(join(dir.path, ".ollm-download.lock"), String(process.ppid)); // alive, not us
      const error = await lockDir(dir.path).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OllmError);
      expect((error as OllmError).message).toMatch(/another process/);
    } finally {
      await dir.cleanup();
    }
  });
});
