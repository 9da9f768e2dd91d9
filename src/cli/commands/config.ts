/**
 * `ollm config show`: the effective configuration and where each value came from. The text form is a
 * valid ollm.toml (sources as comments); --json gives values (camelCase, as the library takes them) and
 * sources.
 */
import type { CliContext } from "../context.js";
import { EXIT } from "../errors.js";
import {
  CONFIG_FILE_ENV,
  CONFIG_FILE_NAME,
  envName,
  formatValue,
  SECTIONS,
  type SettingKey,
  type SettingSource,
  sectionFields,
  snakeCase,
} from "../settings.js";

/** Values that are never printed. */
const SECRETS = new Set<SettingKey>(["server.apiKey"]);

function shown(key: SettingKey, value: unknown): unknown {
  return SECRETS.has(key) && typeof value === "string" ? "********" : value;
}

export async function runConfigShow(ctx: CliContext, options: { json?: boolean }): Promise<number> {
  const { settings, ui } = ctx;
  const problems = settings.problems();
  if (options.json) {
    const values: Record<string, Record<string, unknown>> = {};
    const sources: Record<string, SettingSource> = {};
    for (const section of SECTIONS) {
      values[section] = {};
      for (const field of sectionFields(section)) {
        const key: SettingKey = `${section}.${field}`;
        const entry = settings.get(key);
        if (!entry) continue;
        values[section][field] = shown(key, entry.value);
        sources[key] = entry.source;
      }
    }
    ui.out(
      `${JSON.stringify(
        {
          configFile: settings.configFile ?? null,
          environment: settings.envVariables,
          values,
          sources,
          problems,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    const lines = [
      "# Effective ollm configuration. Lowest to highest precedence:",
      `#   built-in defaults < ${settings.configFile ?? `./${CONFIG_FILE_NAME} (not found)`} < OLLM_* environment < flags`,
    ];
    if (!settings.configFile && !ctx.env[CONFIG_FILE_ENV])
      lines.push(`#   (set ${CONFIG_FILE_ENV} or --config to use another file)`);
    for (const section of SECTIONS) {
      lines.push("", `[${section}]`);
      const rows: [string, string][] = [];
      for (const field of sectionFields(section)) {
        const key: SettingKey = `${section}.${field}`;
        const entry = settings.get(key);
        rows.push(
          entry
            ? [`${snakeCase(field)} = ${formatValue(shown(key, entry.value))}`, settings.sourceLabel(key)]
            : [`# ${snakeCase(field)}`, `unset (${envName(section, field)})`],
        );
      }
      const width = Math.max(...rows.map(([l]) => l.length));
      for (const [left, source] of rows)
        lines.push(`${left.padEnd(width)}  ${ui.styleOut("dim", `# ${source}`)}`);
    }
    ui.out(`${lines.join("\n")}\n`);
  }
  if (problems.length > 0) {
    ui.line(`${ui.style("red", ui.style("bold", "error:"))} the configuration is invalid:`);
    for (const p of problems) ui.line(`  ${p.field}: ${p.message}`);
    return EXIT.USAGE;
  }
  return EXIT.OK;
}
