/**
 * `ollm serve`: an OpenAI-compatible and native HTTP API over a {@link RuntimeClient}, built with fastify.
 *
 * ```ts
 * const server = await startServer({ client, runtimeConfig: { modelReference: "llama3-1B-chat" } });
 * console.log(server.url); // http://127.0.0.1:8000
 * await server.close();
 * ```
 */
import type { FastifyInstance } from "fastify";
import { buildServer, serverConfigOf } from "./app.js";
import { checkBindSafety, type ServerOptions } from "./config.js";

export { buildServer, SERVER_VERSION, serverConfigOf } from "./app.js";
export {
  checkBindSafety,
  isLoopbackHost,
  LOG_LEVELS,
  type LogLevel,
  type ServerConfig,
  type ServerConfigInput,
  ServerConfigSchema,
  type ServerOptions,
  validateServerConfig,
} from "./config.js";
export { ApiError, type ErrorBody, STATUS_OF_CODE } from "./errors.js";
export { type ParsedOutput, type ParsedToolCall, parseToolCalls } from "./tool-calls.js";

/** A running server. */
export interface RunningServer {
  /** `http://host:port` (the port actually bound when 0 was asked for). */
  url: string;
  /** The fastify instance. */
  app: FastifyInstance;
  /**
   * Graceful shutdown: stop accepting, refuse waiting requests (503), let running ones finish until
   * `shutdownTimeoutMs`, cancel the rest, close connections. Idempotent.
   */
  close(): Promise<void>;
}

/**
 * Builds the server and listens. Refuses (INVALID_CONFIG) to bind a non-loopback address without an API
 * key unless `allowInsecurePublic`. With `handleSignals` (default true), SIGTERM/SIGINT close it
 * gracefully and exit with 0 (a second signal exits at once).
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const config = serverConfigOf(options);
  checkBindSafety(config);
  const app = await buildServer(options);
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= app.close().then(() => undefined);
    return closed;
  };
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  let signalled = false;
  if (options.handleSignals !== false) {
    onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        app.log.warn({ signal }, "second signal: exiting now");
        process.exit(signal === "SIGINT" ? 130 : 143);
      }
      signalled = true;
      app.log.info({ signal, deadlineMs: config.shutdownTimeoutMs }, "shutting down");
      close().then(
        () => process.exit(0),
        (error: unknown) => {
          app.log.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    const handler = onSignal;
    app.addHook("onClose", async () => {
      // While a signal's shutdown runs, a second signal must still exit at once.
      if (signalled) return;
      process.off("SIGTERM", handler);
      process.off("SIGINT", handler);
    });
  }
  const address = await app.listen({ host: config.host, port: config.port });
  const bound = app.server.address();
  const url =
    typeof bound === "object" && bound !== null
      ? `http://${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`
      : address;
  if (onSignal) {
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  }
  return { url, app, close };
}
