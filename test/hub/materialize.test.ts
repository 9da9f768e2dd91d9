import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { OllmError } from "../../src/errors.js";
import {
  type DownloadProgress,
  findLocalCopy,
  MANIFEST_NAME,
  type MaterializeOptions,
  materialize,
  readManifest,
} from "../../src/hub/index.js";
import { INCOMPLETE_MARKER } from "../../src/hub/materialize.js";
import { HubModelMaterializer } from "../../src/hub/runtime-adapter.js";
import type { Materializer } from "../../src/runtime/materializer.js";
import type { ResolvedModel } from "../../src/runtime/resolved-model.js";
import {
  EXTRAS,
  GRANTED,
  LLAMA_NEEDED,
  llamaFiles,
  mockRepos,
  NOBODY,
  qwen3Files,
  tempDir,
} from "./helpers.js";
import { MockHub } from "./mock-hub.js";

let hub: MockHub;
let models: { path: string; cleanup: () => Promise<void> };

beforeAll(async () => {
  hub = await MockHub.start({ repos: mockRepos(), validTokens: [GRANTED, NOBODY], pageSize: 4 });
});
afterAll(async () => {
  await hub.close();
});
beforeEach(async () => {
  hub.requests.length = 0;
  hub.clearFaults();
  hub.ignoreRange = false;
  hub.failApi = [];
  hub.bytesPerSecond = 0;
  hub.maxConcurrentTransfers = 0;
  models = await tempDir();
});
afterEach(async () => {
  await models.cleanup();
});

function opts(extra: Partial<MaterializeOptions> = {}): MaterializeOptions {
  return { modelsDir: models.path, endpoint: hub.endpoint, retryDelayMs: 1, stallTimeoutMs: 5_000, ...extra };
}

function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

async function expectError(promise: Promise<unknown>, code: string, message?: RegExp): Promise<OllmError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OllmError);
  const e = error as OllmError;
  expect(e.code).toBe(code);
  if (message) expect(`${e.message} ${e.hint ?? ""}`).toMatch(message);
  return e;
}

async function expectSameBytes(dir: string, files: Record<string, Uint8Array | string>, paths: string[]) {
  for (const p of paths) expect(sha256(await readFile(join(dir, p))), p).toBe(sha256(files[p]));
}

describe("materialize: full download", () => {
  it("fetches exactly the files running needs, verified, with a manifest", async () => {
    const events: DownloadProgress[] = [];
    const result = await materialize("tiny/llama", opts({ onProgress: (e) => events.push(e) }));

    expect(result.dir).toBe(join(models.path, "tiny--llama"));
    expect(result.source).toBe("hub");
    expect([...result.downloaded].sort()).toEqual(LLAMA_NEEDED);
    expect(result.reused).toEqual([]);
    expect(result.commit).toBe(hub.commitOf("tiny/llama"));
    // Nothing else was even requested: no golden files, README, pickle, onnx, consolidated weights.
    expect(hub.requestedFiles()).toEqual(LLAMA_NEEDED);
    await expectSameBytes(result.dir, llamaFiles, LLAMA_NEEDED);
    const onDisk = (await readdir(result.dir)).sort();
    expect(onDisk).toEqual([...LLAMA_NEEDED, MANIFEST_NAME].sort());

    const manifest = await readManifest(result.dir);
    expect(manifest).toBeDefined();
    expect(manifest?.repo).toBe("tiny/llama");
    expect(manifest?.revision).toBe("main");
    expect(manifest?.commit).toBe(hub.commitOf("tiny/llama"));
    expect(manifest?.files.map((f) => f.path).sort()).toEqual(LLAMA_NEEDED);
    for (const f of manifest?.files ?? []) {
      expect(f.size).toBe(llamaFiles[f.path].byteLength);
      expect(f.sha256).toBe(sha256(llamaFiles[f.path]));
      expect(f.lfs).toBe(f.path.endsWith(".safetensors"));
    }

    // Progress: resolve first, done last, bytes only grow and end at the total.
    expect(events[0].phase).toBe("resolve");
    const last = events[events.length - 1];
    expect(last.phase).toBe("done");
    const total = LLAMA_NEEDED.reduce((s, p) => s + llamaFiles[p].byteLength, 0);
    expect(last.bytesTotal).toBe(total);
    expect(last.bytesDone).toBe(total);
    expect(last.filesDone).toBe(LLAMA_NEEDED.length);
    expect(last.etaSeconds).toBe(0);
    const downloads = events.filter((e) => e.phase === "download" && e.bytesTotal === total);
    for (let i = 1; i < downloads.length; i++)
      expect(downloads[i].bytesDone).toBeGreaterThanOrEqual(downloads[i - 1].bytesDone);
  });

  it("follows the hub's redirect to the CDN without sending the token there", async () => {
    await materialize("tiny/llama", opts({ token: GRANTED }));
    const cdn = hub.requests.filter((r) => r.server === "cdn");
    expect(cdn.map((r) => r.file).sort()).toEqual(LLAMA_NEEDED.filter((p) => p.endsWith(".safetensors")));
    expect(cdn.every((r) => r.authorization === undefined)).toBe(true);
    const hubSide = hub.requests.filter((r) => r.server === "hub");
    expect(hubSide.length).toBeGreaterThan(0);
    expect(hubSide.every((r) => r.authorization === `Bearer ${GRANTED}`)).toBe(true);
  });

  it("reuses a complete copy without downloading anything", async () => {
    await materialize("tiny/llama", opts());
    hub.requests.length = 0;
    const again = await materialize("tiny/llama", opts());
    expect(again.downloaded).toEqual([]);
    expect(again.reused.sort()).toEqual(LLAMA_NEEDED);
    expect(again.source).toBe("models-dir");
    expect(hub.requestedFiles()).toEqual([]);
  });

  it("selects a single-file checkpoint, chat templates and processor configs", async () => {
    const qwen = await materialize("tiny/qwen3", opts());
    expect(qwen.downloaded.sort()).toEqual(
      [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
      ].sort(),
    );
    const mm = await materialize("tiny/gemma3-mm", opts());
    expect(mm.downloaded.sort()).toEqual(
      [
        "additional_chat_templates/tool_use.jinja",
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
      ].sort(),
    );
    expect(existsSync(join(mm.dir, "additional_chat_templates", "tool_use.jinja"))).toBe(true);
  });

  it("downloads a revision into its own directory", async () => {
    const v1 = await materialize("tiny/llama@v1", opts());
    expect(v1.dir).toBe(join(models.path, "tiny--llama@v1"));
    expect(v1.revision).toBe("v1");
    expect(v1.commit).toBe(hub.commitOf("tiny/llama", "v1"));
    expect(JSON.parse(await readFile(join(v1.dir, "config.json"), "utf8"))._v).toBe(1);
    // A commit hash works too, and the alias name is honoured.
    const byCommit = await materialize("tiny/llama", opts({ revision: v1.commit, localName: "my-llama" }));
    expect(byCommit.dir).toBe(join(models.path, "my-llama"));
    expect(byCommit.commit).toBe(v1.commit);
  });

  it("an alias directory switched to another model drops the files the new one does not need", async () => {
    await materialize("tiny/llama", opts({ localName: "mine" }));
    const qwen = await materialize("tiny/qwen3", opts({ localName: "mine" }));
    expect(qwen.dir).toBe(join(models.path, "mine"));
    const names = (await readdir(qwen.dir)).sort();
    expect(names).not.toContain("model.safetensors.index.json");
    expect(names.filter((n) => n.endsWith(".safetensors"))).toEqual(["model.safetensors"]);
    expect(qwen.reused).toEqual([]); // same names, different bytes: nothing reused by accident
    await expectSameBytes(
      qwen.dir,
      qwen3Files,
      qwen.manifest.files.map((f) => f.path),
    );
  });

  it("runs as the runtime's Materializer: downloads into model.downloadPath and reports download events", async () => {
    const events: Array<{ type: string; bytes: number; totalBytes: number | null }> = [];
    const materializer: Materializer = new HubModelMaterializer({ endpoint: hub.endpoint, retryDelayMs: 1 });
    const downloadPath = join(models.path, "tiny-qwen");
    const dir = await materializer.materialize(
      {
        reference: "tiny/qwen3",
        repoId: "tiny/qwen3",
        revision: null,
        downloadPath,
      } as unknown as ResolvedModel,
      { modelsDir: models.path, onEvent: (e) => events.push(e as (typeof events)[number]) },
    );
    expect(dir).toBe(downloadPath);
    expect(existsSync(join(dir, MANIFEST_NAME))).toBe(true);
    const last = events[events.length - 1];
    expect(last.type).toBe("download");
    expect(last.bytes).toBe(last.totalBytes);
  });

  it("follows a relative redirect of a renamed repository, keeping the token on the same origin", async () => {
    const result = await materialize("tiny/old-name", opts({ token: GRANTED }));
    expect(result.downloaded).toContain("model.safetensors");
    const moved = hub.requests.filter((r) => r.url.startsWith("/tiny/new-name/resolve/"));
    expect(moved.length).toBeGreaterThan(0);
    expect(moved.every((r) => r.authorization === `Bearer ${GRANTED}`)).toBe(true);
  });

  it("bounds the number of parallel transfers", async () => {
    hub.bytesPerSecond = 2_000_000;
    await materialize("tiny/llama", opts({ concurrency: 2 }));
    expect(hub.maxConcurrentTransfers).toBeLessThanOrEqual(2);
    expect(hub.maxConcurrentTransfers).toBeGreaterThanOrEqual(1);
  });
});

describe("materialize: resume and integrity", () => {
  const shard = "model-00002-of-00004.safetensors";

  it("resumes with a Range request after the server drops the connection mid-file", async () => {
    hub.bytesPerSecond = 4_000_000; // paced like a real network, so the client consumes what arrives
    hub.dropOnce(shard, 50_000);
    const result = await materialize("tiny/llama", opts());
    const requests = hub.fileRequests(shard, "cdn");
    expect(requests.length).toBe(2);
    expect(requests[0].range).toBeUndefined();
    const resumed = /^bytes=(\d+)-$/.exec(requests[1].range ?? "");
    expect(resumed).not.toBeNull();
    expect(Number(resumed?.[1])).toBeGreaterThan(0);
    expect(Number(resumed?.[1])).toBeLessThanOrEqual(50_000);
    await expectSameBytes(result.dir, llamaFiles, LLAMA_NEEDED);
  });

  it("drops and resumes a transfer that stalls", async () => {
    hub.stallOnce(shard, 40_000);
    const result = await materialize("tiny/llama", opts({ stallTimeoutMs: 300 }));
    const requests = hub.fileRequests(shard, "cdn");
    expect(requests.length).toBe(2);
    expect(requests[1].range).toMatch(/^bytes=[1-9]\d*-$/);
    await expectSameBytes(result.dir, llamaFiles, [shard]);
  });

  it("retries the hub's transient errors (503 on metadata, 500 on a file)", async () => {
    hub.failApi = [503, 502];
    hub.failFile(shard, 500, 2);
    const result = await materialize("tiny/llama", opts());
    expect(hub.fileRequests(shard, "cdn").length).toBe(3);
    await expectSameBytes(result.dir, llamaFiles, LLAMA_NEEDED);
    hub.failApi = [500, 500, 500, 500];
    await expectError(materialize("tiny/llama", opts()), "IO_ERROR", /HTTP 500/);
  });

  it("starts over when the server ignores Range", async () => {
    hub.dropOnce(shard, 30_000);
    hub.ignoreRange = true;
    const result = await materialize("tiny/llama", opts());
    expect(hub.fileRequests(shard, "cdn").length).toBe(2);
    await expectSameBytes(result.dir, llamaFiles, [shard]);
  });

  it("detects a corrupt byte from the server and refetches the file", async () => {
    hub.corrupt(shard, 1234);
    hub.corrupt("tokenizer.json", 10); // a non-LFS file: checked against its git blob id
    const result = await materialize("tiny/llama", opts());
    expect(hub.fileRequests(shard, "cdn").length).toBe(2);
    expect(hub.fileRequests(shard, "cdn").every((r) => r.range === undefined)).toBe(true);
    expect(hub.fileRequests("tokenizer.json").length).toBe(2);
    await expectSameBytes(result.dir, llamaFiles, LLAMA_NEEDED);
  });

  it("gives up with INTEGRITY_ERROR when the bytes stay wrong, leaving nothing that passes as complete", async () => {
    hub.corrupt(shard, 99, 100);
    await expectError(
      materialize("tiny/llama", opts({ retries: 2 })),
      "INTEGRITY_ERROR",
      /failed verification/,
    );
    const dir = join(models.path, "tiny--llama");
    expect(existsSync(join(dir, shard))).toBe(false);
    expect(existsSync(join(dir, MANIFEST_NAME))).toBe(false);
    expect(existsSync(join(dir, INCOMPLETE_MARKER))).toBe(true);
    expect(await findLocalCopy("tiny/llama", { modelsDir: models.path })).toBeUndefined();
    expect(hub.fileRequests(shard, "cdn").length).toBe(3);
  });

  it("detects a file corrupted on disk and refetches only that file", async () => {
    const first = await materialize("tiny/llama", opts());
    const path = join(first.dir, shard);
    const bytes = await readFile(path);
    bytes[500] ^= 0x01;
    await writeFile(path, bytes); // mtime changes: the manifest no longer vouches for it
    hub.requests.length = 0;
    const again = await materialize("tiny/llama", opts());
    expect(again.downloaded).toEqual([shard]);
    expect(hub.requestedFiles()).toEqual([shard]);
    await expectSameBytes(again.dir, llamaFiles, [shard]);
  });

  it("verify: full finds corruption even when size and mtime were preserved", async () => {
    const first = await materialize("tiny/llama", opts());
    const path = join(first.dir, shard);
    const bytes = await readFile(path);
    bytes[700] ^= 0x01;
    await writeFile(path, bytes);
    // Silent corruption (bit rot): the manifest still vouches for the file's size and mtime.
    const manifest = JSON.parse(await readFile(join(first.dir, MANIFEST_NAME), "utf8"));
    manifest.files.find((f: { path: string }) => f.path === shard).mtimeMs = (await stat(path)).mtimeMs;
    await writeFile(join(first.dir, MANIFEST_NAME), JSON.stringify(manifest));
    const fast = await materialize("tiny/llama", opts());
    expect(fast.downloaded).toEqual([]); // trusts size + mtime
    const full = await materialize("tiny/llama", opts({ verify: "full" }));
    expect(full.downloaded).toEqual([shard]);
    await expectSameBytes(full.dir, llamaFiles, [shard]);
  });

  it("a partial file with a corrupt prefix is resumed, caught by the hash, and fetched again whole", async () => {
    const dir = join(models.path, "tiny--llama");
    await mkdir(dir, { recursive: true });
    const prefix = Buffer.from(llamaFiles[shard].subarray(0, 10_000));
    prefix[42] ^= 0xff;
    await writeFile(join(dir, `${shard}.partial`), prefix);
    await writeFile(
      join(dir, `${shard}.partial.json`),
      `${sha256(llamaFiles[shard])}::${llamaFiles[shard].byteLength}`,
    );
    const result = await materialize("tiny/llama", opts());
    expect(hub.fileRequests(shard, "cdn").map((r) => r.range)).toEqual(["bytes=10000-", undefined]);
    await expectSameBytes(result.dir, llamaFiles, [shard]);
  });

  it("a partial file meant for other content (another revision) is not resumed", async () => {
    const dir = join(models.path, "tiny--llama");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${shard}.partial`), llamaFiles[shard].subarray(0, 5000));
    await writeFile(join(dir, `${shard}.partial.json`), `${"0".repeat(64)}::${llamaFiles[shard].byteLength}`);
    const result = await materialize("tiny/llama", opts());
    expect(hub.fileRequests(shard, "cdn").map((r) => r.range)).toEqual([undefined]);
    await expectSameBytes(result.dir, llamaFiles, [shard]);
  });

  it("refuses to start without the disk space, with the numbers", async () => {
    const e = await expectError(
      materialize("tiny/llama", opts({ freeBytes: async () => 1000 })),
      "INSUFFICIENT_DISK",
      /needs .* \(\d+ bytes\), only 1\.0 kB \(1000 bytes\) are free/,
    );
    expect(e.message).toContain(models.path);
    expect(hub.requestedFiles()).toEqual(["model.safetensors.index.json"]); // only the index, to learn the shards
  });

  it("cancels on abort, keeping the partial file for a later resume", async () => {
    hub.bytesPerSecond = 200_000;
    const controller = new AbortController();
    const promise = materialize(
      "tiny/llama",
      opts({
        signal: controller.signal,
        onProgress: (e) => {
          if (e.phase === "download" && e.file?.endsWith(".safetensors") && e.bytesDone > 100_000)
            controller.abort();
        },
      }),
    );
    await expectError(promise, "CANCELLED");
    const dir = join(models.path, "tiny--llama");
    expect(existsSync(join(dir, MANIFEST_NAME))).toBe(false);
    const partials = (await readdir(dir)).filter((n) => n.endsWith(".safetensors.partial"));
    expect(partials.length).toBeGreaterThan(0);
    hub.bytesPerSecond = 0;
    const result = await materialize("tiny/llama", opts());
    expect(hub.requests.some((r) => r.server === "cdn" && r.range !== undefined)).toBe(true);
    await expectSameBytes(result.dir, llamaFiles, LLAMA_NEEDED);
    expect((await readdir(dir)).some((n) => n.endsWith(".partial"))).toBe(false);
  });
});

describe("materialize: access errors", () => {
  it("gated repo without a token → 401 → AUTH_REQUIRED telling to accept the licence and set a token", async () => {
    const e = await expectError(materialize("tiny/gated", opts()), "AUTH_REQUIRED", /gated/);
    expect(e.hint).toContain(`${hub.endpoint}/tiny/gated`);
    expect(e.hint).toMatch(/accept the licence/);
    expect(e.hint).toMatch(/HF_TOKEN/);
  });

  it("gated repo with a token that has no access → 403 → AUTH_REQUIRED telling to accept the licence", async () => {
    const e = await expectError(
      materialize("tiny/gated", opts({ token: NOBODY })),
      "AUTH_REQUIRED",
      /HTTP 403/,
    );
    expect(e.hint).toMatch(/accept the licence at .*tiny\/gated/);
    expect(existsSync(join(models.path, "tiny--gated", MANIFEST_NAME))).toBe(false);
  });

  it("gated repo with access downloads", async () => {
    const result = await materialize("tiny/gated", opts({ token: GRANTED }));
    await expectSameBytes(result.dir, qwen3Files, ["model.safetensors", "config.json"]);
  });

  it("private repo: not found without a token (hint: set a token), downloads with one", async () => {
    const e = await expectError(materialize("tiny/private", opts()), "MODEL_NOT_FOUND", /HF_TOKEN/);
    expect(e.message).toContain("tiny/private");
    const result = await materialize("tiny/private", opts({ token: GRANTED }));
    expect(result.downloaded).toContain("model.safetensors");
  });

  it("a rejected token → AUTH_REQUIRED", async () => {
    await expectError(
      materialize("tiny/llama", opts({ token: "hf_unknown" })),
      "AUTH_REQUIRED",
      /rejected your access token/,
    );
  });

  it("unknown repo → 404 → MODEL_NOT_FOUND; unknown revision → MODEL_NOT_FOUND naming it", async () => {
    await expectError(
      materialize("tiny/nope", opts({ token: GRANTED })),
      "MODEL_NOT_FOUND",
      /tiny\/nope was not found/,
    );
    await expectError(materialize("tiny/nope", opts()), "MODEL_NOT_FOUND", /tiny\/nope/);
    await expectError(materialize("tiny/llama@v9", opts()), "MODEL_NOT_FOUND", /revision "v9"/);
  });

  it("pickle-only repo → INVALID_CHECKPOINT saying so, and no file is fetched", async () => {
    await expectError(materialize("tiny/pickle-only", opts()), "INVALID_CHECKPOINT", /pickle/);
    expect(hub.requestedFiles()).toEqual([]);
  });

  it("malformed reference → INVALID_ARGUMENT", async () => {
    await expectError(materialize("../etc/passwd", opts()), "INVALID_ARGUMENT");
  });
});

describe("materialize: offline and local copies", () => {
  it("offline without a local copy → OFFLINE, no network", async () => {
    const e = await expectError(materialize("tiny/llama", opts({ offline: true })), "OFFLINE", /offline/);
    expect(e.hint).toContain("ollm models download tiny/llama");
    expect(hub.requests).toEqual([]);
  });

  it("offline with a local copy → that copy, no network", async () => {
    const online = await materialize("tiny/llama", opts());
    hub.requests.length = 0;
    const offline = await materialize("tiny/llama", opts({ offline: true }));
    expect(offline.dir).toBe(online.dir);
    expect(offline.commit).toBe(online.commit);
    expect(offline.downloaded).toEqual([]);
    expect(hub.requests).toEqual([]);
    // Revisions are told apart offline too.
    await expectError(materialize("tiny/llama@v1", opts({ offline: true })), "OFFLINE");
    const byCommit = await materialize(
      "tiny/llama",
      opts({ offline: true, revision: online.commit.slice(0, 12) }),
    );
    expect(byCommit.dir).toBe(online.dir);
  });

  it("an unreachable hub falls back to a local copy, with a warning", async () => {
    await materialize("tiny/qwen3", opts());
    const dead = "http://127.0.0.1:9"; // discard port: nothing listens
    const result = await materialize("tiny/qwen3", opts({ endpoint: dead }));
    expect(result.warning).toMatch(/cannot reach/);
    expect(result.source).toBe("models-dir");
    await expectError(materialize("tiny/llama", opts({ endpoint: dead })), "IO_ERROR", /no local copy/);
  });

  it("reads the standard HF cache in place (offline, and online when it is complete)", async () => {
    const cache = join(models.path, "hf-cache");
    const commit = hub.commitOf("tiny/qwen3");
    const repoDir = join(cache, "models--tiny--qwen3");
    await mkdir(join(repoDir, "blobs"), { recursive: true });
    await mkdir(join(repoDir, "snapshots", commit), { recursive: true });
    await mkdir(join(repoDir, "refs"), { recursive: true });
    await writeFile(join(repoDir, "refs", "main"), commit);
    for (const [name, data] of Object.entries(qwen3Files)) {
      const lfs = name.endsWith(".safetensors") || name.endsWith(".f32");
      const etag = lfs
        ? sha256(data)
        : createHash("sha1").update(`blob ${data.byteLength}\0`).update(data).digest("hex");
      await writeFile(join(repoDir, "blobs", etag), data);
      await symlink(`../../blobs/${etag}`, join(repoDir, "snapshots", commit, name));
    }
    const snapshot = join(repoDir, "snapshots", commit);

    const offline = await materialize("tiny/qwen3", opts({ offline: true, hfCacheDir: cache }));
    expect(offline.dir).toBe(snapshot);
    expect(offline.source).toBe("hf-cache");
    expect(offline.manifest.files.find((f) => f.path === "model.safetensors")?.sha256).toBe(
      sha256(qwen3Files["model.safetensors"]),
    );
    expect(hub.requests).toEqual([]);

    const online = await materialize("tiny/qwen3", opts({ hfCacheDir: cache }));
    expect(online.dir).toBe(snapshot);
    expect(online.source).toBe("hf-cache");
    expect(hub.requestedFiles()).toEqual([]); // metadata only, no bytes
    expect(existsSync(join(models.path, "tiny--qwen3"))).toBe(false); // nothing copied

    expect(await findLocalCopy("tiny/qwen3", { modelsDir: models.path, hfCacheDir: cache })).toBe(snapshot);
    expect(await findLocalCopy("tiny/llama", { modelsDir: models.path, hfCacheDir: cache })).toBeUndefined();
  });
});

describe("selection against the mock listing", () => {
  it("the mock serves the extras (so the selection test above is meaningful)", async () => {
    const res = await fetch(`${hub.endpoint}/api/models/tiny/llama/tree/main?recursive=true&expand=false`);
    const page = (await res.json()) as Array<{ path: string }>;
    expect(page.length).toBe(4); // pageSize 4: paginated
    expect(res.headers.get("link")).toMatch(/rel="next"/);
    expect(Object.keys(EXTRAS)).toContain("pytorch_model.bin");
  });
});
