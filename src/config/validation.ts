import type { z } from "zod";
import { OllmError } from "../errors.js";

/** One violation of a schema, named by its field path (dotted; "(root)" for the object itself). */
export interface ConfigViolation {
  field: string;
  message: string;
}

/**
 * An `INVALID_CONFIG` OllmError that also carries the violations as data, so a surface can show them
 * per field (the CLI per flag, the server as a JSON error body).
 */
export class ConfigError extends OllmError {
  readonly violations: readonly ConfigViolation[];

  constructor(what: string, violations: readonly ConfigViolation[]) {
    super(
      "INVALID_CONFIG",
      `Invalid ${what}: ${violations.map((v) => `${v.field}: ${v.message}`).join("; ")}`,
      {
        hint: `Fix the ${violations.length === 1 ? "field" : `${violations.length} fields`} named above.`,
      },
    );
    this.violations = violations;
  }
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_value":
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "unrecognized_keys":
      return `unknown option${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    default:
      return issue.message;
  }
}

/** Every violation zod found, each named by field, in the order they were found. */
export function violations(error: z.ZodError): ConfigViolation[] {
  return error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.map(String).join(".") : "(root)",
    message: describeIssue(issue),
  }));
}

/**
 * Parses `value` with `schema`, or throws one {@link ConfigError} (code `INVALID_CONFIG`) that lists
 * every violation at once, each named by field and with the allowed values where there is a set of them.
 */
export function parseWithSchema<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
  rules?: (value: unknown) => ConfigViolation[],
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const found = violations(result.error);
  // zod skips refinements once a field failed; the cross-field rules are applied to the input regardless.
  for (const v of rules?.(value) ?? [])
    if (!found.some((f) => f.field === v.field && f.message === v.message)) found.push(v);
  throw new ConfigError(what, found);
}
