/**
 * CLI tests spawn the built binary (`node dist/cli/main.js`). `ensureBuilt()` runs `npm run build` once
 * when dist is older than src (test files run in parallel: a lock directory makes one of them build).
 * Every run gets a clean environment: no OLLM_* or HF_* variables from the host, HF_HOME in a temp dir,
 * HF_ENDPOINT pointing at a closed local port (no test can reach the network by accident), NO_COLOR.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const BIN = join(ROOT, "dist", "cli", "main.js");
export const FIXTURES = join(ROOT, "test", "fixtures", "models");
/** A local fixture model directory. */
export const fixture = (name: string): string => join(FIXTURES, name);
export const TINY = fixture("tiny-llama");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function stale(): boolean {
  try {
    return statSync(BIN).mtimeMs < newestMtime(join(ROOT, "src"));
  } catch {
    return true;
  }
}

/** Builds the package when dist is missing or older than src (one test file builds; the others wait). */
export async function ensureBuilt(): Promise<void> {
  if (!stale()) return;
  const lock = join(ROOT, "node_modules", ".cache", "ollm-cli-test-build.lock");
  mkdirSync(join(lock, ".."), { recursive: true });
  const deadline = Date.now() + 5 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) rmSync(lock, { recursive: true, force: true });
      await sleep(250);
    }
  }
  try {
    if (!stale()) return;
    execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "pipe" });
  } catch (error) {
    const out = error as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`npm run build failed:\n${out.stdout?.toString() ?? ""}${out.stderr?.toString() ?? ""}`);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

const scratch = mkdtempSync(join(tmpdir(), "ollm-cli-home-"));

/** The environment of a CLI run: the host's, minus anything that configures ollm or the hub. */
export function cliEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !/^(OLLM_|HF_|HUGGING_FACE_|NO_COLOR|FORCE_COLOR)/.test(k)) env[k] = v;
  Object.assign(env, {
    HF_HOME: join(scratch, "hf-home"),
    HF_ENDPOINT: "http://127.0.0.1:9",
    NO_COLOR: "1",
  });
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  /** Written to stdin, then stdin is closed (default: closed at once). */
  input?: string;
  /** Working directory (default: a fresh temp dir, so no ./ollm.toml or ./models is picked up). */
  cwd?: string;
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let defaultCwd: string | undefined;

/** A directory without ollm.toml or models/ for runs that do not name one. */
export function emptyCwd(): string {
  defaultCwd ??= mkdtempSync(join(tmpdir(), "ollm-cli-cwd-"));
  return defaultCwd;
}

/** Spawns `ollm ARGS` (the built binary). */
export function spawnCli(args: string[], options: RunOptions = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? emptyCwd(),
    env: cliEnv(options.env),
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** Runs `ollm ARGS` to its end. */
export function runCli(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const child = spawnCli(args, options);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  child.stdin?.on("error", () => {});
  child.stdin?.end(options.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Parses stdout as JSON, with the output in the failure message. */
export function json<T = Record<string, unknown>>(result: RunResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${result.code}):\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

/** A temp directory removed by `cleanup`. */
export function tempDir(prefix = "ollm-cli-"): { path: string; cleanup: () => Promise<void> } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Stderr lines that are not Dawn's native chatter (the WebGPU probe writes straight to fd 2). */
export function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => /^(error|hint|warning):/.test(l));
}
