import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type DoctorReport, DoctorReportSchema, jsonSchema } from "../../src/cli/schemas.js";
import { MockHub } from "../hub/mock-hub.js";
import { ensureBuilt, runCli, TINY, tempDir } from "./helpers.js";

let hub: MockHub;
const dir = tempDir("ollm-doctor-");

beforeAll(async () => {
  await ensureBuilt();
  hub = await MockHub.start({ repos: [] });
}, 300_000);
afterAll(async () => {
  await hub?.close();
  await dir.cleanup();
});

const documented = z.fromJSONSchema(jsonSchema("doctor"));

function report(stdout: string): DoctorReport {
  const value = JSON.parse(stdout) as unknown;
  expect(documented.safeParse(value).success).toBe(true);
  return DoctorReportSchema.parse(value);
}

const byId = (r: DoctorReport, id: string) => {
  const found = r.checks.find((c) => c.id === id);
  if (!found) throw new Error(`no check ${id}`);
  return found;
};

describe.concurrent("ollm doctor", () => {
  it("--json reports every check (GPU probe included) and matches its schema", async () => {
    const r = await runCli(["doctor", "--json", "-m", TINY], { env: { HF_ENDPOINT: hub.endpoint } });
    expect(r.code, r.stderr).toBe(0);
    const d = report(r.stdout);
    expect(d.checks.map((c) => c.id)).toEqual([
      "node",
      "cpu",
      "memory",
      "disk",
      "dirs",
      "gpu",
      "hub",
      "config",
      "model",
    ]);
    expect(d.ok).toBe(true);
    expect(byId(d, "node")).toMatchObject({ status: "ok", details: { version: process.versions.node } });
    expect(byId(d, "cpu").details).toHaveProperty("wasmSimd");
    expect(byId(d, "memory").details?.totalBytes).toBeGreaterThan(0);
    expect(byId(d, "disk").details?.freeBytes).toBeGreaterThan(0);
    // The GPU check never fails: without a usable adapter (or without the webgpu package) it warns.
    expect(["ok", "warn"]).toContain(byId(d, "gpu").status);
    expect(Array.isArray(byId(d, "gpu").details?.adapters)).toBe(true);
    expect(byId(d, "hub")).toMatchObject({
      status: "ok",
      details: { endpoint: hub.endpoint, offline: false },
    });
    // What --backend auto picks (CI: no hardware adapter, so the CPU), and the model's plan agrees.
    const auto = byId(d, "gpu").details?.auto as { backend: string; device: string; reason: string };
    expect(auto.reason).toMatch(/^auto: /);
    expect(byId(d, "model").status).toBe("ok");
    expect(byId(d, "model").message).toMatch(
      new RegExp(`tiny-llama: LlamaForCausalLM.*installed; plan: ${auto.backend}/${auto.device}`),
    );
    expect(d.summary.ok + d.summary.warn + d.summary.fail).toBe(9);
  });

  it("prints one line per check with ok/warn/FAIL and hints", async () => {
    const r = await runCli(["doctor", "--no-gpu", "-m", TINY], { env: { HF_ENDPOINT: hub.endpoint } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\[ ok \] Node\.js\s+Node\.js /m);
    expect(r.stdout).toMatch(/^\[ ok \] GPU \(WebGPU\)\s+not probed \(--no-gpu\)$/m);
    expect(r.stdout).toMatch(/^\[ ok \] Hugging Face Hub\s+http:\/\/127\.0\.0\.1:\d+ is reachable/m);
    expect(r.stdout).toMatch(/\d+ ok, \d+ warnings, 0 failed\n$/);
  });

  it("offline mode, an unreachable hub, config files and OLLM_* variables", async () => {
    const offline = report((await runCli(["--offline", "doctor", "--json", "--no-gpu", "-m", TINY])).stdout);
    expect(byId(offline, "hub")).toMatchObject({ status: "ok", details: { offline: true } });
    expect(byId(offline, "hub").message).toMatch(/offline mode \(--offline\)/);

    const unreachable = report((await runCli(["doctor", "--json", "--no-gpu", "-m", TINY])).stdout);
    expect(byId(unreachable, "hub").status).toBe("warn");
    expect(byId(unreachable, "hub").hint).toMatch(/HF_HUB_OFFLINE/);

    const cwd = join(dir.path, "project");
    mkdirSync(cwd, { recursive: true });
    writeFileSync(join(cwd, "ollm.toml"), `[runtime]\nmodel_reference = "${TINY}"\n`);
    const configured = report(
      (
        await runCli(["doctor", "--json", "--no-gpu", "--offline"], {
          cwd,
          env: { OLLM_GENERATION__SEED: "3" },
        })
      ).stdout,
    );
    expect(byId(configured, "config")).toMatchObject({
      status: "ok",
      details: { configFile: join(cwd, "ollm.toml"), environment: ["OLLM_GENERATION__SEED"] },
    });
    expect(byId(configured, "model").message).toMatch(/^tiny-llama/);
  });

  it("fails (exit 1) when the model or the configuration is broken, with a hint", async () => {
    const missing = await runCli([
      "doctor",
      "--json",
      "--no-gpu",
      "--offline",
      "-m",
      join(dir.path, "nothing"),
    ]);
    expect(missing.code).toBe(1);
    const d = report(missing.stdout);
    expect(d.ok).toBe(false);
    expect(byId(d, "model")).toMatchObject({ status: "fail" });
    expect(byId(d, "model").message).toMatch(/MODEL_NOT_FOUND/);

    const notDownloaded = report(
      (
        await runCli([
          "doctor",
          "--json",
          "--no-gpu",
          "--offline",
          "-m",
          "llama3-1B-chat",
          "--models-dir",
          dir.path,
        ])
      ).stdout,
    );
    expect(byId(notDownloaded, "model")).toMatchObject({
      status: "warn",
      hint: "Download it with: ollm models download llama3-1B-chat",
    });

    const badConfig = await runCli(["doctor", "--no-gpu", "--offline"], {
      env: { OLLM_GENERATION__TOP_P: "5" },
    });
    expect(badConfig.code).toBe(1);
    expect(badConfig.stdout).toMatch(
      /^\[FAIL\] Configuration .*OLLM_GENERATION__TOP_P=5: must be in \(0, 1\]/m,
    );
    expect(badConfig.stdout).toMatch(/hint: Fix the values named above/);

    const unreadable = await runCli(["doctor", "--json", "--no-gpu", "--offline"], {
      env: { OLLM_RUNTIME__DEVISE: "cpu" },
    });
    expect(unreadable.code).toBe(1);
    const u = report(unreadable.stdout);
    expect(byId(u, "config")).toMatchObject({ status: "fail" });
    expect(byId(u, "config").message).toMatch(/did you mean OLLM_RUNTIME__DEVICE/);
    expect(byId(u, "model").status).toBe("fail");

    const plan = report(
      (
        await runCli([
          "doctor",
          "--json",
          "--no-gpu",
          "--offline",
          "-m",
          TINY,
          "--host-memory-budget",
          "64KiB",
        ])
      ).stdout,
    );
    expect(byId(plan, "model").message).toMatch(/OUT_OF_MEMORY_BUDGET/);
  });
});
