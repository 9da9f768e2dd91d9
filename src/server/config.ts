import { z } from "zod";
import type { RuntimeClient } from "../client.js";
import type { GenerationConfigInput } from "../config/generation-config.js";
import type { RuntimeConfigInput } from "../config/runtime-config.js";
import { parseWithSchema } from "../config/validation.js";
import { OllmError } from "../errors.js";

/** Log levels of the server's structured (pino) request logs. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** A log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

const positiveInt = z.number().int("must be an integer").min(1, "must be an integer ≥ 1");

/**
 * `server.*` settings of `ollm serve` (flags `--host`, `--port`, `--api-key`, … and the config file's
 * `[server]` table). Unknown options are rejected.
 */
export const ServerConfigSchema = z.strictObject({
  host: z
    .string()
    .min(1, "cannot be empty")
    .default("127.0.0.1")
    .describe("Address to bind; a non-loopback address needs apiKey or allowInsecurePublic"),
  port: z
    .number()
    .int("must be an integer")
    .min(0, "must be in [0, 65535]")
    .max(65535, "must be in [0, 65535]")
    .default(8000)
    .describe("TCP port (0 = any free port)"),
  apiKey: z
    .string()
    .min(1, "cannot be empty")
    .optional()
    .describe("Bearer token every route but /v1/health requires (env OLLM_SERVER__API_KEY)"),
  allowInsecurePublic: z
    .boolean()
    .default(false)
    .describe("Allow binding a non-loopback address without an API key"),
  allowModels: z
    .array(z.string().trim().min(1, "cannot be empty"))
    .default([])
    .describe(
      "Models requests may name besides the default model (references: aliases, repo ids, paths); when set, no other is served",
    ),
  listedModelsOnly: z
    .boolean()
    .default(false)
    .describe(
      "Serve only the models /v1/models lists (no downloads or paths named by a request); on when allowModels is set",
    ),
  concurrency: positiveInt.default(1).describe("Generations running at once per model"),
  maxQueue: z
    .number()
    .int("must be an integer")
    .min(0, "must be an integer ≥ 0")
    .default(64)
    .describe("Requests waiting per model beyond `concurrency`; more are refused with 429"),
  bodyLimitBytes: positiveInt.default(8 * 1024 * 1024).describe("Largest request body (413 beyond)"),
  requestTimeoutMs: positiveInt
    .default(300_000)
    .describe("Time limit of one request (queue wait + generation); the reply is cut at it"),
  shutdownTimeoutMs: positiveInt
    .default(10_000)
    .describe("On SIGTERM/SIGINT: how long in-flight work may finish before it is cancelled"),
  maxSessions: positiveInt.default(64).describe("Native chat sessions kept at once (the idlest is closed)"),
  maxStoredResponses: positiveInt.default(1000).describe("Responses API objects kept for retrieval/chaining"),
  logLevel: z.enum(LOG_LEVELS).default("info").describe("Level of the structured request logs"),
});

/** Server settings as written (every field optional). */
export type ServerConfigInput = z.input<typeof ServerConfigSchema>;
/** Validated server settings, defaults applied. */
export type ServerConfig = z.output<typeof ServerConfigSchema>;

/** Validates server settings (one INVALID_CONFIG error naming every violation). */
export function validateServerConfig(input: unknown = {}): ServerConfig {
  return parseWithSchema(ServerConfigSchema, input ?? {}, "server config");
}

/** Everything `startServer` / `buildServer` take: the server settings plus the client and request defaults. */
export interface ServerOptions extends ServerConfigInput {
  /** The client every route calls. The server never closes it. */
  client: RuntimeClient;
  /**
   * Defaults of every request's runtime config; `modelReference` is the default model (used when a
   * request names none, and listed first by /v1/models).
   */
  runtimeConfig?: Partial<RuntimeConfigInput>;
  /** Defaults of every request's generation config (a request's own fields win). */
  generationConfig?: GenerationConfigInput;
  /**
   * Install SIGTERM/SIGINT handlers that shut down gracefully and exit 0 (startServer only; default true).
   * A second signal exits at once.
   */
  handleSignals?: boolean;
  /** Environment for `OLLM_SERVER__API_KEY` (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** True for loopback addresses (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost") || h === "::1") return true;
  if (h.startsWith("::ffff:")) return isLoopbackHost(h.slice(7));
  return /^127(\.\d{1,3}){3}$/.test(h);
}

/** Refuses a public bind without an API key unless explicitly allowed (INVALID_CONFIG). */
export function checkBindSafety(config: ServerConfig): void {
  if (isLoopbackHost(config.host) || config.apiKey || config.allowInsecurePublic) return;
  throw new OllmError(
    "INVALID_CONFIG",
    `Refusing to listen on ${config.host} without an API key: anyone who can reach it could use the server`,
    {
      hint: "Set --api-key (or OLLM_SERVER__API_KEY), bind 127.0.0.1, or pass --allow-insecure-public.",
    },
  );
}
