/** `ollm models list|info|download|path`: built-in aliases and local models, through RuntimeClient. */
import { OllmError } from "../../errors.js";
import { Catalog } from "../../runtime/catalog.js";
import type { ResolvedModel } from "../../runtime/resolved-model.js";
import type { CliContext } from "../context.js";
import { EXIT } from "../errors.js";

/** One row of `ollm models list --json`. */
export interface ModelListing {
  name: string;
  reference: string;
  /** `alias`: a built-in alias; `local`: found under the models dir. */
  kind: "alias" | "local";
  summary: string | null;
  repoId: string | null;
  installed: boolean;
  source: ResolvedModel["source"];
  path: string | null;
  downloadPath: string | null;
  architecture: string | null;
  family: string | null;
  parameterCount: number | null;
  weightBytes: number | null;
  modalities: string[];
  /** The engine can run it (no issues). */
  runnable: boolean;
  issues: ResolvedModel["issues"];
}

function listing(model: ResolvedModel, kind: ModelListing["kind"], summary: string | null): ModelListing {
  return {
    name: model.name,
    reference: model.reference,
    kind,
    summary,
    repoId: model.repoId,
    installed: model.materialized,
    source: model.source,
    path: model.path,
    downloadPath: model.downloadPath,
    architecture: model.architecture,
    family: model.family,
    parameterCount: model.parameterCount,
    weightBytes: model.weightBytes,
    modalities: model.modalities,
    runnable: model.materialized && model.issues.length === 0,
    issues: model.issues,
  };
}

function modelsDir(ctx: CliContext): string {
  return ctx.settings.runtimeConfig().modelsDir;
}

/** Built-in aliases (installed or not) and every model found under the models dir. */
async function collect(ctx: CliContext): Promise<ModelListing[]> {
  const client = await ctx.client();
  const dir = modelsDir(ctx);
  const out: ModelListing[] = [];
  const seen = new Set<string>();
  for (const entry of Catalog.builtin().list()) {
    const model = await client.resolve(entry.alias, { modelsDir: dir });
    out.push(listing(model, "alias", entry.summary));
    if (model.path) seen.add(model.path);
  }
  for (const model of await client.discoverLocalModels(dir)) {
    if (model.path && seen.has(model.path)) continue;
    out.push(listing(model, "local", null));
  }
  return out;
}

/** "1.2B", "261K". */
export function formatCount(n: number | null): string {
  if (n === null) return "-";
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)}K`;
  return String(n);
}

/** "1.5 GB". */
export function formatSize(bytes: number | null): string {
  if (bytes === null) return "-";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c])))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export async function runModelsList(
  ctx: CliContext,
  options: { installed?: boolean; json?: boolean },
): Promise<number> {
  const all = await collect(ctx);
  const rows = options.installed ? all.filter((m) => m.installed) : all;
  if (options.json) {
    ctx.ui.out(`${JSON.stringify(rows, null, 2)}\n`);
    return EXIT.OK;
  }
  if (rows.length === 0) {
    ctx.ui.out(`No ${options.installed ? "installed " : ""}models under ${modelsDir(ctx)}.\n`);
    if (options.installed) ctx.ui.info("hint: ollm models download REF, or --models-dir DIR");
    return EXIT.OK;
  }
  const header = ["NAME", "STATUS", "FAMILY", "PARAMS", "SIZE", "INPUT", "SOURCE"];
  const body = rows.map((m) => [
    m.name,
    m.installed ? (m.runnable ? "installed" : "unsupported") : "not downloaded",
    m.family ?? m.architecture ?? "-",
    formatCount(m.parameterCount),
    formatSize(m.weightBytes),
    m.modalities.join("+") || "-",
    m.installed ? (m.path ?? "") : (m.repoId ?? ""),
  ]);
  ctx.ui.out(`${table([header, ...body])}\n`);
  return EXIT.OK;
}

export async function runModelsInfo(
  ctx: CliContext,
  reference: string,
  options: { json?: boolean },
): Promise<number> {
  const model = await (await ctx.client()).resolve(reference, { modelsDir: modelsDir(ctx) });
  if (options.json) {
    ctx.ui.out(`${JSON.stringify(model, null, 2)}\n`);
    return EXIT.OK;
  }
  const entry = model.alias ? Catalog.builtin().find(model.alias) : undefined;
  const lines: [string, string][] = [
    ["name", model.name],
    ["reference", `${model.reference} (${model.referenceKind})`],
  ];
  if (entry) lines.push(["summary", entry.summary]);
  if (model.repoId)
    lines.push(["repository", `${model.repoId}${model.revision ? `@${model.revision}` : ""}`]);
  lines.push(
    ["status", model.materialized ? `installed (${model.source})` : "not downloaded"],
    ["path", model.path ?? (model.downloadPath ? `${model.downloadPath} (after download)` : "-")],
    ["architecture", model.architecture ?? "-"],
    ["family", model.family ?? "(no engine family)"],
    ["dtype", model.dtype ?? "-"],
    [
      "parameters",
      model.parameterCount === null ? "-" : `${formatCount(model.parameterCount)} (${model.parameterCount})`,
    ],
    ["weights", formatSize(model.weightBytes)],
    ["input", model.modalities.join(", ") || "-"],
    ["backends", model.supportedBackends.join(", ") || "-"],
    [
      "tokenizer",
      model.hasTokenizer
        ? model.hasChatTemplate
          ? "yes, with a chat template"
          : "yes, no chat template"
        : "no",
    ],
  );
  const g = model.geometry;
  if (g)
    lines.push([
      "geometry",
      `${g.numLayers} layers, hidden ${g.hiddenSize ?? "?"}, ${g.numAttentionHeads ?? "?"} heads, vocab ${g.vocabSize ?? "?"}, context ${g.maxPositions ?? "?"}`,
    ]);
  for (const issue of model.issues) lines.push(["issue", `${issue.message} [${issue.code}]`]);
  const width = Math.max(...lines.map(([k]) => k.length));
  ctx.ui.out(`${lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")}\n`);
  return EXIT.OK;
}

export async function runModelsPath(ctx: CliContext, reference: string): Promise<number> {
  const model = await (await ctx.client()).resolve(reference, { modelsDir: modelsDir(ctx) });
  if (!model.materialized || !model.path)
    throw new OllmError(
      "MODEL_NOT_FOUND",
      `${model.name} is not downloaded${model.downloadPath ? `; it would be in ${model.downloadPath}` : ""}`,
      { hint: model.repoId ? `Download it with: ollm models download ${reference}` : undefined },
    );
  ctx.ui.out(`${model.path}\n`);
  return EXIT.OK;
}

export async function runModelsDownload(ctx: CliContext, reference: string): Promise<number> {
  const dir = modelsDir(ctx);
  const client = await ctx.client();
  const model = await client.resolve(reference, { modelsDir: dir });
  if (model.repoId === null || model.source === "bundled" || model.source === "path") {
    if (!model.materialized)
      throw new OllmError(
        "MODEL_NOT_FOUND",
        `${reference} is not a Hugging Face model, so it cannot be downloaded`,
        {
          hint: "Give a repo id (org/name) or a built-in alias (ollm models list).",
        },
      );
    ctx.ui.info(`${model.name} is a local model; nothing to download.`);
    ctx.ui.out(`${model.path}\n`);
    return EXIT.OK;
  }
  const controller = new AbortController();
  const onInt = () => controller.abort();
  process.once("SIGINT", onInt);
  try {
    const path = await ctx.materializer().materialize(model, {
      modelsDir: dir,
      onEvent: ctx.progress.onEvent,
      signal: controller.signal,
    });
    ctx.progress.close();
    const done = await client.resolve(reference, { modelsDir: dir });
    for (const issue of done.issues)
      if (issue.code !== "MODEL_NOT_FOUND") ctx.ui.warn(`${done.name} cannot run here: ${issue.message}`);
    ctx.ui.info(`${model.name} is ready in ${path}`);
    ctx.ui.out(`${path}\n`);
    return EXIT.OK;
  } finally {
    process.off("SIGINT", onInt);
  }
}
