import type { z } from "zod";
import { isOllmError, type OllmError, type OllmErrorCode } from "../errors.js";

/** The OpenAI error body: `{ error: { message, type, param, code } }` (plus our `hint`). */
export interface ErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
    hint?: string;
  };
}

/** An error a route answers with: an HTTP status and an OpenAI-shaped body. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  readonly hint: string | undefined;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    message: string,
    options: {
      code?: string;
      param?: string | null;
      type?: string;
      hint?: string;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = options.type ?? errorType(status);
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.hint = options.hint;
    this.headers = options.headers ?? {};
  }

  body(): ErrorBody {
    const error: ErrorBody["error"] = {
      message: this.message,
      type: this.type,
      param: this.param,
      code: this.code,
    };
    if (this.hint) error.hint = this.hint;
    return { error };
  }
}

/** OpenAI's `type` for a status. */
export function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 409) return "conflict_error";
  if (status === 429) return "rate_limit_error";
  if (status === 503) return "service_unavailable_error";
  if (status < 500) return "invalid_request_error";
  return "server_error";
}

/** The HTTP status of each OllmError code: bad input is 4xx, never 500. */
export const STATUS_OF_CODE: Record<OllmErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  INVALID_CONFIG: 400,
  UNSUPPORTED_MODALITY: 400,
  MODEL_NOT_FOUND: 404,
  UNSUPPORTED_ARCHITECTURE: 422,
  INVALID_CHECKPOINT: 422,
  INVALID_TOKENIZER: 422,
  OUT_OF_MEMORY_BUDGET: 422,
  NOT_IMPLEMENTED: 501,
  BACKEND_UNAVAILABLE: 503,
  CANCELLED: 499,
  OFFLINE: 503,
  AUTH_REQUIRED: 502,
  INTEGRITY_ERROR: 502,
  INSUFFICIENT_DISK: 507,
  IO_ERROR: 500,
  INTERNAL: 500,
};

/** An OllmError as an ApiError (status from its code, the code in snake case, the first violated field as `param`). */
export function fromOllmError(error: OllmError, fieldNames?: Record<string, string>): ApiError {
  const violations = (error as { violations?: readonly { field: string }[] }).violations;
  const field = violations?.[0]?.field;
  return new ApiError(STATUS_OF_CODE[error.code] ?? 500, error.message, {
    code: error.code.toLowerCase(),
    param: field === undefined ? null : (fieldNames?.[field] ?? field),
    hint: error.hint,
  });
}

/** A request path as OpenAI names params: `messages[0].content`. */
export function paramPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

interface FlatIssue {
  path: PropertyKey[];
  text: string;
}

/**
 * One readable problem per zod issue. A union failure is reported from the branch that got furthest
 * (the deepest path), or as "expected A or B" when every branch failed on the value's type.
 */
function flatten(issue: z.core.$ZodIssue, base: PropertyKey[]): FlatIssue {
  const path = [...base, ...issue.path];
  switch (issue.code) {
    case "invalid_value":
      return { path, text: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}` };
    case "unrecognized_keys":
      return {
        path,
        text: `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`,
      };
    case "invalid_union": {
      const branches = issue.errors.filter((b) => b.length > 0);
      if (branches.length === 0) {
        const options = (issue as { options?: unknown[] }).options;
        return {
          path,
          text: options
            ? `must be one of ${options.map((o) => JSON.stringify(o)).join(", ")}`
            : issue.message,
        };
      }
      const atRoot = branches.every((b) => b[0].code === "invalid_type" && b[0].path.length === 0);
      if (atRoot) {
        const expected = [...new Set(branches.map((b) => (b[0] as z.core.$ZodIssueInvalidType).expected))];
        const received = /received (\w+)/.exec(branches[0][0].message)?.[1];
        return { path, text: `expected ${expected.join(" or ")}${received ? `, received ${received}` : ""}` };
      }
      const best = branches.reduce((a, b) => (b[0].path.length > a[0].path.length ? b : a));
      return flatten(best[0], path);
    }
    default:
      return { path, text: issue.message.replace(/^Invalid input: /, "") };
  }
}

/** A 400 naming the first invalid field (and listing every problem). */
export function fromZodError(error: z.ZodError, prefix = ""): ApiError {
  const issues = error.issues.slice(0, 10).map((issue) => {
    const flat = flatten(issue, prefix ? [prefix] : []);
    const path = paramPath(flat.path);
    return { path, text: `${path || "body"}: ${flat.text}` };
  });
  const more = error.issues.length > 10 ? ` (and ${error.issues.length - 10} more)` : "";
  return new ApiError(400, `Invalid request: ${issues.map((i) => i.text).join("; ")}${more}`, {
    code: "invalid_request",
    param: issues[0]?.path || null,
  });
}

/** Parses a body with a schema, or throws a 400 naming the field. */
export function parseBody<S extends z.ZodType>(schema: S, value: unknown, prefix = ""): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw fromZodError(result.error, prefix);
  return result.data;
}

/** Any thrown value as an ApiError; unexpected ones become a 500 that hides internals. */
export function toApiError(error: unknown, fieldNames?: Record<string, string>): ApiError {
  if (error instanceof ApiError) return error;
  if (isOllmError(error)) return fromOllmError(error, fieldNames);
  const e = error as { statusCode?: unknown; code?: unknown; message?: unknown; name?: unknown };
  if (typeof e?.statusCode === "number" && e.statusCode >= 400 && e.statusCode < 500) {
    // fastify's own errors: bad JSON, body too large, unsupported media type…
    const status = e.statusCode;
    const message =
      status === 413
        ? "Request body is too large"
        : typeof e.message === "string"
          ? e.message
          : "Bad request";
    return new ApiError(status, message, {
      code:
        status === 413
          ? "request_too_large"
          : status === 415
            ? "unsupported_media_type"
            : typeof e.code === "string"
              ? e.code.toLowerCase()
              : "invalid_request",
    });
  }
  return new ApiError(500, "Internal server error", { code: "internal" });
}
