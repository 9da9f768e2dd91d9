/**
 * Configuration layering of the CLI, lowest to highest:
 *
 *   built-in defaults < ./ollm.toml (or $OLLM_CONFIG_FILE, or --config FILE) < OLLM_* environment < flags
 *
 * Three sections, each validated by its zod schema: `runtime` (RuntimeConfig), `generation`
 * (GenerationConfig) and `server` (ServerConfig, the `ollm serve` settings). In the file, keys are snake_case (as in
 * oLLM) or camelCase; in the environment, `OLLM_<SECTION>__<KEY>` with the key in upper snake case
 * (`OLLM_RUNTIME__MODEL_REFERENCE`, `OLLM_GENERATION__TEMPERATURE`, `OLLM_SERVER__PORT`). Every value
 * remembers where it came from, so errors name the flag, variable or file line to fix and
 * `ollm config show` can say where each value came from.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { z } from "zod";
import {
  type GenerationConfig,
  GenerationConfigSchema,
  generationConfigRules,
} from "../config/generation-config.js";
import { type RuntimeConfig, RuntimeConfigSchema, runtimeConfigRules } from "../config/runtime-config.js";
import { ConfigError, type ConfigViolation, parseWithSchema } from "../config/validation.js";
import { OllmError } from "../errors.js";
import { LOG_LEVELS, type ServerConfig, ServerConfigSchema } from "../server/config.js";

/** The model the CLI uses when neither a flag nor the configuration names one: the bundled demo model. */
export const CLI_DEFAULT_MODEL = "demo";
/** The config file looked up in the working directory. */
export const CONFIG_FILE_NAME = "ollm.toml";
/** The environment variable naming another config file. */
export const CONFIG_FILE_ENV = "OLLM_CONFIG_FILE";

/** `ollm serve` settings: the server's own schema (src/server/config.ts). */
export const ServeSettingsSchema = ServerConfigSchema;
/** Validated `ollm serve` settings. */
export type ServeSettings = ServerConfig;
export { LOG_LEVELS };

/** The sections of the configuration. */
export const SECTIONS = ["runtime", "generation", "server"] as const;
export type Section = (typeof SECTIONS)[number];
/** A setting's name: `section.camelCaseKey`. */
export type SettingKey = `${Section}.${string}`;

// biome-ignore lint/suspicious/noExplicitAny: the three schemas have different shapes
const SCHEMAS: Record<Section, z.ZodObject<any>> = {
  runtime: RuntimeConfigSchema,
  generation: GenerationConfigSchema,
  server: ServeSettingsSchema,
};

/** The fields of a section, in schema order. */
export function sectionFields(section: Section): string[] {
  return Object.keys(SCHEMAS[section].shape);
}

type FieldKind = "string" | "integer" | "number" | "boolean" | "array" | "size";

const kindCache = new Map<Section, Map<string, FieldKind>>();

/** How a text value (environment) becomes a field's value, from the field's JSON Schema type. */
function fieldKinds(section: Section): Map<string, FieldKind> {
  let kinds = kindCache.get(section);
  if (kinds) return kinds;
  kinds = new Map();
  const schema = z.toJSONSchema(SCHEMAS[section], { io: "input", unrepresentable: "any" }) as {
    properties: Record<string, { type?: string; anyOf?: unknown[] }>;
  };
  for (const [key, prop] of Object.entries(schema.properties)) {
    const type = prop.type;
    kinds.set(
      key,
      prop.anyOf
        ? "size"
        : type === "integer" || type === "number" || type === "boolean" || type === "array"
          ? type
          : "string",
    );
  }
  kindCache.set(section, kinds);
  return kinds;
}

/** `modelReference` → `model_reference`. */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `model_reference` → `modelReference`. */
function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The environment variable of a setting: `OLLM_RUNTIME__MODEL_REFERENCE`. */
export function envName(section: Section, key: string): string {
  return `OLLM_${section.toUpperCase()}__${snakeCase(key).toUpperCase()}`;
}

/** Where a value came from. */
export interface SettingSource {
  kind: "default" | "file" | "env" | "flag";
  /** `built-in`, the file's path, the variable's name, the flag. */
  name: string;
}

/** A setting given on the command line. */
export interface FlagSetting {
  key: SettingKey;
  value: unknown;
  /** The flag as the user writes it (`--temperature`). */
  flag: string;
}

export interface LoadSettingsOptions {
  cwd: string;
  env: Record<string, string | undefined>;
  /** `--config FILE`: wins over $OLLM_CONFIG_FILE and ./ollm.toml. */
  configFile?: string;
  flags?: readonly FlagSetting[];
}

interface Entry {
  value: unknown;
  source: SettingSource;
}

/** Path-valued runtime fields: relative paths in a config file are relative to the file's directory. */
const PATH_FIELDS = new Set(["runtime.modelsDir", "runtime.cacheDir"]);

/** The effective configuration with the source of every value. */
export class Settings {
  /** The config file in effect (absolute), if any. */
  readonly configFile: string | undefined;
  /** The OLLM_* variables that set values. */
  readonly envVariables: string[];
  readonly #cwd: string;
  readonly #entries = new Map<SettingKey, Entry>();

  private constructor(cwd: string, configFile: string | undefined, envVariables: string[]) {
    this.#cwd = cwd;
    this.configFile = configFile;
    this.envVariables = envVariables;
  }

  /** Loads every layer. Throws INVALID_CONFIG for an unreadable file or unknown keys, naming each. */
  static load(options: LoadSettingsOptions): Settings {
    const violations: ConfigViolation[] = [];
    const file = findConfigFile(options);
    const envLayer = readEnv(options.env, violations);
    const settings = new Settings(
      options.cwd,
      file,
      envLayer.map((e) => e.source.name),
    );
    for (const [key, value] of defaults()) settings.#set(key, value, { kind: "default", name: "built-in" });
    if (file)
      for (const e of readFile(file, options.cwd, violations)) settings.#set(e.key, e.value, e.source);
    for (const e of envLayer) settings.#set(e.key, e.value, e.source);
    for (const f of options.flags ?? []) settings.#set(f.key, f.value, { kind: "flag", name: f.flag });
    if (violations.length > 0) throw new ConfigError("configuration", violations);
    return settings;
  }

  #set(key: SettingKey, value: unknown, source: SettingSource): void {
    if (value === undefined) return;
    this.#entries.set(key, { value, source });
  }

  /** A value and its source, if set. */
  get(key: SettingKey): Entry | undefined {
    return this.#entries.get(key);
  }

  /** The values of a section as given (not validated). */
  section(section: Section): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const field of sectionFields(section)) {
      const entry = this.#entries.get(`${section}.${field}`);
      if (entry !== undefined) out[field] = entry.value;
    }
    return out;
  }

  /** The validated runtime config; an invalid value is INVALID_CONFIG naming its flag, variable or file. */
  runtimeConfig(): RuntimeConfig {
    return this.#validate("runtime", RuntimeConfigSchema, runtimeConfigRules);
  }

  /** The validated generation config. */
  generationConfig(): GenerationConfig {
    return this.#validate("generation", GenerationConfigSchema, generationConfigRules);
  }

  /** The validated server settings. */
  serveSettings(): ServeSettings {
    return this.#validate("server", ServeSettingsSchema);
  }

  /** Every problem of every section (empty when the configuration is valid). */
  problems(): ConfigViolation[] {
    const out: ConfigViolation[] = [];
    for (const check of [
      () => this.runtimeConfig(),
      () => this.generationConfig(),
      () => this.serveSettings(),
    ]) {
      try {
        check();
      } catch (error) {
        if (error instanceof ConfigError) out.push(...error.violations);
        else throw error;
      }
    }
    return out;
  }

  /** Throws one INVALID_CONFIG error naming every problem of every section. */
  check(): void {
    const problems = this.problems();
    if (problems.length > 0) throw new ConfigError("configuration", problems);
  }

  #validate<S extends z.ZodType>(
    section: Section,
    schema: S,
    rules?: (value: unknown) => ConfigViolation[],
  ): z.output<S> {
    try {
      return parseWithSchema(schema, this.section(section), `${section} config`, rules);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw new ConfigError(
        "configuration",
        error.violations.map((v) => ({ field: this.describe(section, v.field), message: v.message })),
      );
    }
  }

  /** Names a field by where its value came from: `--temperature -1`, `OLLM_GENERATION__TEMPERATURE=-1`, … */
  describe(section: Section, field: string): string {
    const top = field.split(".")[0];
    const entry = this.#entries.get(`${section}.${top}`);
    if (!entry) return `${section}.${field}`;
    const shown = formatValue(entry.value);
    switch (entry.source.kind) {
      case "flag":
        return typeof entry.value === "boolean"
          ? entry.source.name
          : `${entry.source.name} ${typeof entry.value === "string" && /^[^\s"']+$/.test(entry.value) ? entry.value : shown}`;
      case "env":
        return `${entry.source.name}=${typeof entry.value === "string" ? entry.value : shown}`;
      case "file":
        return `${this.#shortPath(entry.source.name)}: [${section}] ${snakeCase(top)} = ${shown}`;
      default:
        return `${section}.${field} (built-in default ${shown})`;
    }
  }

  #shortPath(path: string): string {
    const rel = relative(this.#cwd, path);
    return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
  }

  /** The source of a setting as one word for tables: `default`, `file`, `env OLLM_…`, `flag --…`. */
  sourceLabel(key: SettingKey): string {
    const entry = this.#entries.get(key);
    if (!entry) return "unset";
    switch (entry.source.kind) {
      case "default":
        return "default";
      case "file":
        return `file ${this.#shortPath(entry.source.name)}`;
      default:
        return `${entry.source.kind} ${entry.source.name}`;
    }
  }
}

/** A value as TOML writes it (strings quoted, arrays in brackets). */
export function formatValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(formatValue).join(", ")}]`;
  return String(value);
}

/** The built-in defaults: the CLI's default model plus every schema default. */
function defaults(): [SettingKey, unknown][] {
  const out: [SettingKey, unknown][] = [];
  const sections: [Section, Record<string, unknown>][] = [
    ["runtime", RuntimeConfigSchema.parse({ modelReference: CLI_DEFAULT_MODEL })],
    ["generation", GenerationConfigSchema.parse({})],
    ["server", ServeSettingsSchema.parse({})],
  ];
  for (const [section, values] of sections)
    for (const [key, value] of Object.entries(values)) out.push([`${section}.${key}`, value]);
  return out;
}

function findConfigFile(options: LoadSettingsOptions): string | undefined {
  const named = options.configFile ?? nonEmpty(options.env[CONFIG_FILE_ENV]);
  if (named !== undefined) {
    const path = resolve(options.cwd, named);
    if (!existsSync(path))
      throw new OllmError("INVALID_ARGUMENT", `Config file ${path} does not exist`, {
        hint:
          options.configFile !== undefined
            ? "Check the path given to --config."
            : `Check ${CONFIG_FILE_ENV}, or unset it to use ./${CONFIG_FILE_NAME}.`,
      });
    return path;
  }
  const local = resolve(options.cwd, CONFIG_FILE_NAME);
  return existsSync(local) ? local : undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

interface LayerEntry {
  key: SettingKey;
  value: unknown;
  source: SettingSource;
}

function readFile(path: string, cwd: string, violations: ConfigViolation[]): LayerEntry[] {
  const shown = relative(cwd, path).startsWith("..") ? path : relative(cwd, path) || path;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new OllmError("IO_ERROR", `Cannot read config file ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (cause) {
    const message = (cause as Error).message.split("\n")[0];
    throw new OllmError("INVALID_CONFIG", `${shown} is not valid TOML: ${message}`, {
      cause,
      hint: "See https://toml.io; the file has [runtime], [generation] and [server] tables.",
    });
  }
  const out: LayerEntry[] = [];
  const source: SettingSource = { kind: "file", name: path };
  for (const [sectionName, table] of Object.entries(doc)) {
    if (!(SECTIONS as readonly string[]).includes(sectionName)) {
      violations.push({
        field: `${shown}: [${sectionName}]`,
        message: `unknown section (known: ${SECTIONS.map((s) => `[${s}]`).join(", ")})`,
      });
      continue;
    }
    const section = sectionName as Section;
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      violations.push({ field: `${shown}: ${section}`, message: `must be a table ([${section}])` });
      continue;
    }
    const fields = sectionFields(section);
    for (const [rawKey, rawValue] of Object.entries(table)) {
      const key = camelCase(rawKey);
      if (!fields.includes(key)) {
        violations.push({
          field: `${shown}: [${section}] ${rawKey}`,
          message: unknownOption(snakeCase(key), fields.map(snakeCase)),
        });
        continue;
      }
      let value: unknown = rawValue;
      const full: SettingKey = `${section}.${key}`;
      if (typeof value === "string" && PATH_FIELDS.has(full) && !isAbsolute(value))
        value = resolve(dirname(path), value);
      if (full === "runtime.modelReference" && typeof value === "string" && /^\.\.?\//.test(value))
        value = resolve(dirname(path), value);
      out.push({ key: full, value, source });
    }
  }
  return out;
}

/** Edit distance of two short strings. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    previous = current;
  }
  return previous[b.length];
}

/** "unknown option; did you mean X?", or the list of known options. */
function unknownOption(name: string, known: readonly string[]): string {
  const scored = known
    .map((k) => ({ k, d: distance(name.toLowerCase(), k.toLowerCase()) }))
    .sort((x, y) => x.d - y.d);
  if (scored.length > 0 && scored[0].d <= Math.max(2, Math.floor(name.length / 4)))
    return `unknown option; did you mean ${scored[0].k}?`;
  return `unknown option (known: ${known.join(", ")})`;
}

const ENV_PATTERN = /^OLLM_([A-Z0-9]+)__([A-Z0-9_]+)$/;
const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off"]);

function readEnv(env: LoadSettingsOptions["env"], violations: ConfigViolation[]): LayerEntry[] {
  const out: LayerEntry[] = [];
  for (const name of Object.keys(env).sort()) {
    const match = ENV_PATTERN.exec(name);
    const raw = env[name];
    if (!match || raw === undefined || raw.trim() === "") continue;
    const section = match[1].toLowerCase() as Section;
    if (!(SECTIONS as readonly string[]).includes(section)) continue;
    const key = sectionFields(section).find((f) => envName(section, f) === name);
    if (key === undefined) {
      violations.push({
        field: name,
        message: unknownOption(
          name,
          sectionFields(section).map((f) => envName(section, f)),
        ),
      });
      continue;
    }
    const kind = fieldKinds(section).get(key) ?? "string";
    const parsed = coerce(raw, kind);
    if ("error" in parsed) {
      violations.push({ field: `${name}=${raw}`, message: parsed.error });
      continue;
    }
    out.push({ key: `${section}.${key}`, value: parsed.value, source: { kind: "env", name } });
  }
  return out;
}

/** A text value (environment) as a field of `kind` wants it. */
export function coerce(raw: string, kind: FieldKind): { value: unknown } | { error: string } {
  const text = raw.trim();
  switch (kind) {
    case "integer":
    case "number": {
      const n = Number(text);
      return text !== "" && Number.isFinite(n) ? { value: n } : { error: "must be a number" };
    }
    case "boolean": {
      const lower = text.toLowerCase();
      if (TRUE.has(lower)) return { value: true };
      if (FALSE.has(lower)) return { value: false };
      return { error: "must be true or false (1/0, yes/no, on/off)" };
    }
    case "array": {
      if (text.startsWith("[")) {
        try {
          const parsed = JSON.parse(text) as unknown;
          if (Array.isArray(parsed) && parsed.every((s) => typeof s === "string")) return { value: parsed };
        } catch {
          // reported below
        }
        return { error: 'must be a JSON array of strings (["a","b"]) or a comma-separated list' };
      }
      return {
        value: raw
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== ""),
      };
    }
    case "size":
      return { value: /^\d+$/.test(text) ? Number(text) : text };
    default:
      return { value: raw };
  }
}
