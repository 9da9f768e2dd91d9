/** Stable error codes: the CLI maps them to exit codes, the server to HTTP statuses. */
export const ERROR_CODES = [
  "INVALID_ARGUMENT",
  "INVALID_CONFIG",
  "INVALID_CHECKPOINT",
  "INVALID_TOKENIZER",
  "MODEL_NOT_FOUND",
  "UNSUPPORTED_ARCHITECTURE",
  "UNSUPPORTED_MODALITY",
  "OUT_OF_MEMORY_BUDGET",
  "BACKEND_UNAVAILABLE",
  "NOT_IMPLEMENTED",
  "CANCELLED",
  "IO_ERROR",
  "AUTH_REQUIRED",
  "INTEGRITY_ERROR",
  "OFFLINE",
  "INSUFFICIENT_DISK",
  "INTERNAL",
] as const;

export type OllmErrorCode = (typeof ERROR_CODES)[number];

/** The one error type of the project: a stable `code`, a message a user can act on, an optional hint. */
export class OllmError extends Error {
  readonly code: OllmErrorCode;
  readonly hint: string | undefined;

  constructor(code: OllmErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OllmError";
    this.code = code;
    this.hint = options.hint;
  }
}

export function isOllmError(value: unknown): value is OllmError {
  return value instanceof OllmError;
}
