/**
 * `ollm doctor`: checks the machine and the configuration, each check ok / warn / fail with a hint.
 * Exit status 1 when a check fails.
 */
import { constants, existsSync, readFileSync } from "node:fs";
import { access, statfs } from "node:fs/promises";
import { arch, cpus, freemem, platform, tmpdir, totalmem } from "node:os";
import { dirname, resolve } from "node:path";
import type { RuntimeConfig } from "../../config/runtime-config.js";
import { isOllmError, type OllmError } from "../../errors.js";
import type { CliContext } from "../context.js";
import { EXIT } from "../errors.js";
import { CONFIG_FILE_ENV, CONFIG_FILE_NAME, type Settings } from "../settings.js";
import { type DoctorCheck, type DoctorReport, DoctorReportSchema } from "../schemas.js";
import { formatCount, formatSize } from "./models.js";

const MIN_NODE_MAJOR = 20;
const GIB = 1024 ** 3;

type Check = DoctorCheck;

function check(
  id: string,
  title: string,
  status: Check["status"],
  message: string,
  extra: Partial<Check> = {},
): Check {
  return { id, title, status, message, ...extra };
}

function nodeCheck(): Check {
  const version = process.versions.node;
  const major = Number(version.split(".")[0]);
  return major >= MIN_NODE_MAJOR
    ? check("node", "Node.js", "ok", `Node.js ${version}`, { details: { version } })
    : check(
        "node",
        "Node.js",
        "fail",
        `Node.js ${version} is too old (${MIN_NODE_MAJOR} or newer is needed)`,
        {
          hint: `Install Node.js ${MIN_NODE_MAJOR} LTS or newer (https://nodejs.org).`,
          details: { version },
        },
      );
}

/** A module using one WASM SIMD instruction (i8x16.popcnt), as wasm-feature-detect checks it. */
const WASM_SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98,
  11,
]);

const INTERESTING_FLAGS = [
  "sse4_2",
  "avx",
  "avx2",
  "fma",
  "f16c",
  "avx512f",
  "avx512_bf16",
  "avx512_fp16",
  "avx_vnni",
  "amx_bf16",
];
const INTERESTING_ARM = ["asimd", "asimdhp", "fphp", "asimddp", "sve", "sve2", "bf16", "i8mm"];

function cpuFeatures(): string[] {
  if (platform() !== "linux") return [];
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const line = /^(flags|Features)\s*:\s*(.*)$/m.exec(info);
    if (!line) return [];
    const have = new Set(line[2].trim().split(/\s+/));
    return [...INTERESTING_FLAGS, ...INTERESTING_ARM].filter((f) => have.has(f));
  } catch {
    return [];
  }
}

function cpuCheck(): Check {
  const list = cpus();
  const model = list[0]?.model?.trim() || "unknown CPU";
  const features = cpuFeatures();
  const simd = (
    globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }
  ).WebAssembly.validate(WASM_SIMD_PROBE);
  const details = { model, threads: list.length, arch: arch(), features, wasmSimd: simd };
  const message = `${model}, ${list.length} threads, ${arch()}${features.length ? `; ${features.join(" ")}` : ""}; WASM SIMD ${simd ? "yes" : "no"}`;
  return simd
    ? check("cpu", "CPU", "ok", message, { details })
    : check("cpu", "CPU", "warn", message, {
        hint: "This Node.js has no WebAssembly SIMD: the CPU backend falls back to slower kernels. Use Node.js 20+ on x64 or arm64.",
        details,
      });
}

function memoryCheck(): Check {
  const total = totalmem();
  const free = freemem();
  const details = { totalBytes: total, freeBytes: free };
  const message = `${(total / GIB).toFixed(1)} GiB total, ${(free / GIB).toFixed(1)} GiB free`;
  if (free < 1 * GIB)
    return check("memory", "Memory", "warn", message, {
      hint: "Less than 1 GiB is free: close other programs, or use a smaller model / --host-memory-budget.",
      details,
    });
  return check("memory", "Memory", "ok", message, { details });
}

/** The directory itself when it exists, else its nearest existing ancestor. */
function existingAncestor(dir: string): string {
  let current = resolve(dir);
  while (!existsSync(current)) {
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  return current;
}

async function diskCheck(modelsDir: string): Promise<Check> {
  const where = existingAncestor(modelsDir);
  try {
    const s = await statfs(where);
    const free = Number(s.bavail) * Number(s.bsize);
    const details = { modelsDir: resolve(modelsDir), measuredAt: where, freeBytes: free };
    const message = `${formatSize(free)} free for models in ${resolve(modelsDir)}`;
    if (free < 2 * GIB)
      return check("disk", "Disk", "warn", message, {
        hint: "Models take gigabytes: free some space, or point --models-dir (OLLM_RUNTIME__MODELS_DIR) at a larger disk.",
        details,
      });
    return check("disk", "Disk", "ok", message, { details });
  } catch (error) {
    return check(
      "disk",
      "Disk",
      "warn",
      `cannot measure free space in ${where}: ${(error as Error).message}`,
    );
  }
}

async function writable(dir: string): Promise<{ ok: boolean; exists: boolean; at: string }> {
  const exists = existsSync(dir);
  const at = existingAncestor(dir);
  try {
    await access(at, constants.W_OK);
    return { ok: true, exists, at };
  } catch {
    return { ok: false, exists, at };
  }
}

async function dirsCheck(runtime: RuntimeConfig): Promise<Check> {
  const dirs: [string, string, string][] = [
    ["models", "models dir", resolve(runtime.modelsDir)],
    ["temp", "temp dir", tmpdir()],
  ];
  if (runtime.cacheDir) dirs.push(["cache", "KV cache dir", resolve(runtime.cacheDir)]);
  const results = await Promise.all(
    dirs.map(async ([id, name, dir]) => ({ id, name, dir, ...(await writable(dir)) })),
  );
  const bad = results.filter((r) => !r.ok);
  const message = results
    .map((r) => `${r.name} ${r.dir}${r.ok ? (r.exists ? "" : " (will be created)") : " (not writable)"}`)
    .join("; ");
  const details = Object.fromEntries(
    results.map((r) => [r.id, { path: r.dir, writable: r.ok, exists: r.exists }]),
  );
  return bad.length === 0
    ? check("dirs", "Writable directories", "ok", message, { details })
    : check("dirs", "Writable directories", "fail", message, {
        hint: `Make ${bad.map((b) => b.at).join(", ")} writable, or choose other directories (--models-dir, --cache-dir, TMPDIR).`,
        details,
      });
}

/**
 * The WebGPU adapters (the runtime's quiet probe: Dawn runs in a child process, so its warnings stay off
 * the terminal) and what `--backend auto` picks among them, with the config's gpuMemoryBudget and
 * offloadGpuLayers. The probe is handed to the client, so the model check's plan sees the same adapters.
 */
async function gpuCheck(ctx: CliContext, skip: boolean, runtime: RuntimeConfig | undefined): Promise<Check> {
  const { notProbed, probeWebGpu } = await import("../../runtime/gpu-probe.js");
  if (skip) {
    const probe = notProbed("not probed (--no-gpu)");
    ctx.gpuProbe = async () => probe;
    return check("gpu", "GPU (WebGPU)", "ok", "not probed (--no-gpu)");
  }
  // Every adapter, software ones included (the runtime's own probe skips Dawn where Linux has no GPU device).
  const probe = await probeWebGpu(undefined, { all: true });
  ctx.gpuProbe = async () => probe;
  const { chooseBackend } = await import("../../runtime/backend-choice.js");
  const { probeMachine } = await import("../../runtime/machine.js");
  const auto = chooseBackend(
    {
      backend: "auto",
      device: "auto",
      gpuMemoryBudget: runtime?.gpuMemoryBudget,
      offloadGpuLayers: runtime?.offloadGpuLayers ?? 0,
    },
    { ...(await probeMachine()), webgpu: probe },
  );
  const adapters = probe.adapters.map((a) => ({
    name: a.name,
    backend: a.backend,
    software: a.software,
    features: a.features,
    limits: a.limits,
    memoryBytes: a.memory?.bytes ?? null,
    memorySource: a.memory?.source ?? null,
  }));
  const details = {
    adapters,
    auto: { backend: auto.backend, device: auto.device, reason: auto.reason },
  };
  if (adapters.length === 0)
    return check(
      "gpu",
      "GPU (WebGPU)",
      "warn",
      `no WebGPU adapter: ${probe.error ?? "none found"}; --backend auto uses the CPU`,
      {
        hint: probe.error?.includes("`webgpu` package")
          ? "npm install webgpu (the optional Dawn package), or use --backend cpu."
          : "Install a GPU driver with Vulkan (Metal on macOS, D3D12 on Windows) and the optional `webgpu` package.",
        details,
      },
    );
  const text = probe.adapters
    .map(
      (a) =>
        `${a.name} (${a.backend}${a.software ? ", software" : ""}${a.memory ? `; ${formatSize(a.memory.bytes)} of memory (${a.memory.source})` : ""}; max buffer ${formatSize(a.limits.maxBufferSize ?? null)}, storage binding ${formatSize(a.limits.maxStorageBufferBindingSize ?? null)}${a.features.includes("shader-f16") ? ", f16" : ""}${a.features.includes("subgroups") ? ", subgroups" : ""})`,
    )
    .join("; ");
  if (probe.adapters.every((a) => a.software))
    return check(
      "gpu",
      "GPU (WebGPU)",
      "warn",
      `only a software adapter: ${text}; the CPU backend is faster, so --backend auto uses it`,
      {
        hint: "Install the GPU's Vulkan driver (Metal on macOS, D3D12 on Windows) to use the GPU.",
        details,
      },
    );
  // A hardware adapter: what auto picks, and why.
  const message = `${text}; --backend ${auto.reason}`;
  return auto.backend === "webgpu"
    ? check("gpu", "GPU (WebGPU)", "ok", message, { details })
    : check("gpu", "GPU (WebGPU)", "warn", message, {
        hint: "Give the GPU's memory with --gpu-memory-budget SIZE (gpu_memory_budget in ollm.toml) for --backend auto to use it, or pass --backend webgpu.",
        details,
      });
}

async function hubCheck(ctx: CliContext): Promise<Check> {
  const { hubSettingsFromEnv } = await import("../../hub/settings.js");
  const hub = hubSettingsFromEnv(ctx.env);
  const tokenSource = ctx.env.HF_TOKEN
    ? "HF_TOKEN"
    : ctx.env.HUGGING_FACE_HUB_TOKEN
      ? "HUGGING_FACE_HUB_TOKEN"
      : hub.token
        ? "token file"
        : undefined;
  const details: Record<string, unknown> = {
    endpoint: hub.endpoint,
    offline: ctx.offline,
    token: tokenSource ?? null,
    hfCacheDir: hub.hfCacheDir,
  };
  if (ctx.offline)
    return check(
      "hub",
      "Hugging Face Hub",
      "ok",
      `offline mode (${ctx.globals.offline ? "--offline" : "HF_HUB_OFFLINE"}): only models on disk are used`,
      {
        details,
      },
    );
  try {
    const response = await fetch(`${hub.endpoint}/api/whoami-v2`, {
      headers: hub.token ? { authorization: `Bearer ${hub.token}` } : {},
      signal: AbortSignal.timeout(5000),
    });
    details.status = response.status;
    if (response.status === 401 && hub.token)
      return check(
        "hub",
        "Hugging Face Hub",
        "warn",
        `${hub.endpoint} is reachable, but it rejected the token (${tokenSource})`,
        {
          hint: "Check HF_TOKEN, or log in again with `hf auth login`.",
          details,
        },
      );
    let user = "";
    if (response.ok) {
      const body = (await response.json().catch(() => ({}))) as { name?: unknown };
      if (typeof body.name === "string") user = `; logged in as ${body.name}`;
    }
    return check(
      "hub",
      "Hugging Face Hub",
      "ok",
      `${hub.endpoint} is reachable${user || (tokenSource ? ` (token from ${tokenSource})` : "; no token (gated models need HF_TOKEN)")}`,
      { details },
    );
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    return check(
      "hub",
      "Hugging Face Hub",
      "warn",
      `${hub.endpoint} is not reachable (${cause}); downloads will fail`,
      {
        hint: "Check the network or proxy (HTTPS_PROXY), or set HF_HUB_OFFLINE=1 / --offline to use only downloaded models.",
        details,
      },
    );
  }
}

/** The settings, or the error that reading them failed with (bad file, unknown variable). */
function loadSettings(ctx: CliContext): { settings?: Settings; error?: OllmError } {
  try {
    return { settings: ctx.settings };
  } catch (error) {
    if (isOllmError(error)) return { error };
    throw error;
  }
}

function configCheck(ctx: CliContext): Check {
  const { settings, error } = loadSettings(ctx);
  if (!settings)
    return check("config", "Configuration", "fail", `cannot read the configuration: ${error?.message}`, {
      hint: error?.hint ?? "Fix the configuration file or the OLLM_* variables named above.",
    });
  const file = settings.configFile;
  const envNames = settings.envVariables;
  const parts = [
    file
      ? `config file ${file}`
      : `no config file (./${CONFIG_FILE_NAME} not found${ctx.env[CONFIG_FILE_ENV] ? "" : `, ${CONFIG_FILE_ENV} not set`})`,
    envNames.length ? `environment: ${envNames.join(", ")}` : "no OLLM_* variables",
  ];
  const problems = settings.problems();
  const details = { configFile: file ?? null, environment: envNames };
  if (problems.length > 0)
    return check(
      "config",
      "Configuration",
      "fail",
      `${parts.join("; ")}; invalid: ${problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`,
      {
        hint: "Fix the values named above (ollm config show lists every value and its source).",
        details,
      },
    );
  return check("config", "Configuration", "ok", parts.join("; "), { details });
}

async function modelCheck(ctx: CliContext): Promise<Check> {
  let runtime: RuntimeConfig;
  try {
    runtime = ctx.settings.runtimeConfig();
  } catch (error) {
    if (!isOllmError(error)) throw error;
    return check("model", "Model", "fail", "not checked: the runtime configuration is invalid", {
      hint: "Fix the configuration first (see the config check).",
    });
  }
  const reference = runtime.modelReference;
  const client = await ctx.client();
  try {
    const model = await client.resolve(reference, { modelsDir: runtime.modelsDir });
    const about = `${model.name}: ${model.architecture ?? "unknown architecture"}${model.parameterCount !== null ? `, ${formatCount(model.parameterCount)} parameters` : ""}`;
    const details: Record<string, unknown> = {
      reference,
      materialized: model.materialized,
      path: model.path,
      family: model.family,
    };
    if (!model.materialized)
      return check("model", "Model", "warn", `${about} is not downloaded`, {
        hint: model.repoId ? `Download it with: ollm models download ${reference}` : undefined,
        details,
      });
    if (model.issues.length > 0)
      return check(
        "model",
        "Model",
        "fail",
        `${about} cannot run here: ${model.issues.map((i) => i.message).join("; ")}`,
        {
          hint: "Choose a supported model (ollm models list).",
          details,
        },
      );
    const plan = await client.plan(runtime);
    details.backend = plan.backend;
    details.backendReason = plan.reasons.find((r) => r.subject === "backend")?.reason ?? null;
    details.kvCache = plan.kvCache.applied;
    details.predictedPeakHostBytes = plan.memory.predictedPeak.host.total;
    const gpu = plan.backend === "webgpu" ? plan.memory.predictedPeak.gpu.total : undefined;
    if (gpu !== undefined) details.predictedPeakGpuBytes = gpu;
    return check(
      "model",
      "Model",
      "ok",
      `${about}, installed; plan: ${plan.backend}/${plan.device}, KV ${plan.kvCache.applied}, predicted peak ${formatSize(plan.memory.predictedPeak.host.total)}${gpu !== undefined ? ` host, ${formatSize(gpu)} GPU` : ""}`,
      { details },
    );
  } catch (error) {
    if (!isOllmError(error)) throw error;
    return check("model", "Model", "fail", `${reference}: ${error.message} [${error.code}]`, {
      hint: error.hint,
      details: { reference },
    });
  }
}

export async function runDoctor(
  ctx: CliContext,
  options: { json?: boolean; gpu?: boolean },
): Promise<number> {
  const { ui } = ctx;
  const { settings } = loadSettings(ctx);
  let runtime: RuntimeConfig | undefined;
  try {
    runtime = settings?.runtimeConfig();
  } catch {
    runtime = undefined;
  }
  const modelsDir = resolve(
    runtime?.modelsDir ?? String(settings?.get("runtime.modelsDir")?.value ?? "models"),
  );
  if (ui.live) ui.transient("Checking…");
  const checks: Check[] = [
    nodeCheck(),
    cpuCheck(),
    memoryCheck(),
    await diskCheck(modelsDir),
    await dirsCheck(runtime ?? ({ modelsDir } as RuntimeConfig)),
    await gpuCheck(ctx, options.gpu === false, runtime),
    await hubCheck(ctx),
    configCheck(ctx),
    await modelCheck(ctx),
  ];
  ui.clearTransient();
  const summary = { ok: 0, warn: 0, fail: 0 };
  for (const c of checks) summary[c.status]++;
  const report: DoctorReport = DoctorReportSchema.parse({
    schemaVersion: 1,
    ok: summary.fail === 0,
    summary,
    checks,
  });
  if (options.json) {
    ui.out(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const color = { ok: "green", warn: "yellow", fail: "red" } as const;
    const label = { ok: " ok ", warn: "warn", fail: "FAIL" } as const;
    const width = Math.max(...checks.map((c) => c.title.length));
    const lines = checks.flatMap((c) => {
      const head = `[${ui.styleOut(color[c.status], label[c.status])}] ${c.title.padEnd(width)}  ${c.message}`;
      return c.hint && c.status !== "ok"
        ? [head, `       ${" ".repeat(width)}  ${ui.styleOut("dim", `hint: ${c.hint}`)}`]
        : [head];
    });
    ui.out(`${lines.join("\n")}\n\n${summary.ok} ok, ${summary.warn} warnings, ${summary.fail} failed\n`);
  }
  return summary.fail > 0 ? EXIT.FAILURE : EXIT.OK;
}
