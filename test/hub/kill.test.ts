/**
 * kill -9 in the middle of a download: a child process downloads from a throttled mock hub and is
 * killed with SIGKILL while shards are half written. Nothing it leaves may pass as complete; a rerun
 * resumes the partial files with Range requests and verifies everything.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { OllmError } from "../../src/errors.js";
import { findLocalCopy, MANIFEST_NAME, materialize } from "../../src/hub/index.js";
import { INCOMPLETE_MARKER } from "../../src/hub/materialize.js";
import { LLAMA_NEEDED, llamaFiles, mockRepos, tempDir } from "./helpers.js";
import { MockHub } from "./mock-hub.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

let hub: MockHub;
let work: { path: string; cleanup: () => Promise<void> };
let child: ChildProcess | undefined;

/** Transpiles src/hub + src/errors.ts to plain ESM in `out` so a bare `node` child can run them. */
async function buildChildModules(out: string): Promise<void> {
  const sources = [
    join(ROOT, "src/errors.ts"),
    ...(await readdir(join(ROOT, "src/hub")))
      .filter((n) => n.endsWith(".ts"))
      .map((n) => join(ROOT, "src/hub", n)),
  ];
  for (const source of sources) {
    const { outputText } = ts.transpileModule(await readFile(source, "utf8"), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    const dest = join(out, relative(ROOT, source)).replace(/\.ts$/, ".js");
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, outputText);
  }
  await writeFile(join(out, "package.json"), '{"type":"module"}\n');
  await symlink(join(ROOT, "node_modules"), join(out, "node_modules"), "dir");
  await writeFile(
    join(out, "child.mjs"),
    `import { materialize } from "./src/hub/index.js";
const [endpoint, modelsDir] = process.argv.slice(2);
await materialize("tiny/llama", { modelsDir, endpoint, concurrency: 4, retryDelayMs: 1 });
process.stdout.write("DONE\\n");
`,
  );
}

beforeAll(async () => {
  work = await tempDir("ollm-hub-kill-");
  await buildChildModules(join(work.path, "child"));
  hub = await MockHub.start({ repos: mockRepos(), bytesPerSecond: 150_000 });
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await hub.close();
  await work.cleanup();
});

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

it("SIGKILL mid-download leaves nothing that passes as complete; a rerun resumes and verifies", async () => {
  const modelsDir = join(work.path, "models");
  const dir = join(modelsDir, "tiny--llama");
  const proc = spawn(process.execPath, [join(work.path, "child", "child.mjs"), hub.endpoint, modelsDir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child = proc;
  let output = "";
  proc.stdout?.on("data", (d) => {
    output += d;
  });
  proc.stderr?.on("data", (d) => {
    output += d;
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    proc.on("exit", (_code, signal) => resolve(signal)),
  );

  // Wait (bounded) until shards are being written, then kill -9.
  let partialShards: string[] = [];
  for (let i = 0; i < 500 && partialShards.length === 0; i++) {
    await sleep(20);
    if (proc.exitCode !== null) break;
    const names = existsSync(dir) ? await readdir(dir) : [];
    for (const n of names.filter((n) => n.endsWith(".safetensors.partial"))) {
      const size = (await stat(join(dir, n)).catch(() => undefined))?.size ?? 0;
      if (size > 20_000) partialShards.push(n);
    }
  }
  expect(partialShards.length, `child output: ${output}`).toBeGreaterThan(0);
  proc.kill("SIGKILL");
  expect(await exited).toBe("SIGKILL");
  expect(output).not.toContain("DONE");

  // What the killed process left: no manifest, the incomplete marker, partial files under temp names.
  const names = await readdir(dir);
  expect(names).not.toContain(MANIFEST_NAME);
  expect(names).toContain(INCOMPLETE_MARKER);
  partialShards = names.filter((n) => n.endsWith(".safetensors.partial"));
  expect(partialShards.length).toBeGreaterThan(0);
  for (const partial of partialShards) {
    const final = partial.slice(0, -".partial".length);
    expect(names, `${final} must not exist while its download is partial`).not.toContain(final);
    expect((await stat(join(dir, partial))).size).toBeLessThan(llamaFiles[final].byteLength);
  }
  // Any file that does carry its final name was verified before the rename.
  for (const n of names.filter((n) => LLAMA_NEEDED.includes(n)))
    expect(sha256(await readFile(join(dir, n))), n).toBe(sha256(llamaFiles[n]));
  // Nobody takes it for a usable copy.
  expect(await findLocalCopy("tiny/llama", { modelsDir })).toBeUndefined();
  const offline = await materialize("tiny/llama", { modelsDir, offline: true }).catch((e: unknown) => e);
  expect((offline as OllmError).code).toBe("OFFLINE");

  // A rerun (stale lock of the dead pid taken over) resumes the partial shards and verifies all files.
  hub.bytesPerSecond = 0;
  hub.requests.length = 0;
  const result = await materialize("tiny/llama", { modelsDir, endpoint: hub.endpoint, retryDelayMs: 1 });
  for (const partial of partialShards) {
    const file = partial.slice(0, -".partial".length);
    const ranges = hub.fileRequests(file, "cdn").map((r) => r.range);
    expect(ranges.length, file).toBe(1);
    expect(ranges[0], file).toMatch(/^bytes=[1-9]\d*-$/);
  }
  for (const p of LLAMA_NEEDED)
    expect(sha256(await readFile(join(result.dir, p))), p).toBe(sha256(llamaFiles[p]));
  const after = await readdir(dir);
  expect(after).toContain(MANIFEST_NAME);
  expect(
    after.filter((n) => n.endsWith(".partial") || n.endsWith(".partial.json") || n.endsWith(".lock")),
  ).toEqual([]);
  expect(await findLocalCopy("tiny/llama", { modelsDir })).toBe(dir);
});
