import { createHash, timingSafeEqual } from "node:crypto";
import { setMaxListeners } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import Fastify, { type FastifyInstance } from "fastify";
import { z } from "zod";
import { type ServerConfig, type ServerOptions, validateServerConfig } from "./config.js";
import { ApiError, toApiError } from "./errors.js";
import type { ServerContext } from "./generation.js";
import { unixSeconds } from "./ids.js";
import { parseJsonBody } from "./json-body.js";
import { ModelDirectory } from "./models.js";
import { registerNativePromptRoutes } from "./native/prompt.js";
import { registerSessionRoutes, SessionStore } from "./native/sessions.js";
import { registerChatRoutes } from "./openai/chat.js";
import { registerModelRoutes } from "./openai/models.js";
import { ResponseStore, registerResponseRoutes } from "./openai/responses.js";
import { docsPage, openApiDocument, RouteCatalog } from "./openapi.js";
import { QueueSet } from "./queue.js";

/** Version reported by /v1/health and the OpenAPI document. */
export const SERVER_VERSION = "0.1.0";

/** How long after the shutdown deadline open connections are cut. */
const FORCE_CLOSE_GRACE_MS = 2_000;

const HealthSchema = z.object({
  status: z.enum(["ok", "shutting_down"]),
  version: z.string(),
  uptimeSeconds: z.number(),
  running: z.number().int().describe("Generations running"),
  waiting: z.number().int().describe("Requests waiting in the model queues"),
});

/** Validated server settings from options (the API key may come from OLLM_SERVER__API_KEY). */
export function serverConfigOf(options: ServerOptions): ServerConfig {
  const {
    client: _c,
    runtimeConfig: _r,
    generationConfig: _g,
    handleSignals: _h,
    env,
    ...settings
  } = options;
  const fromEnv = (env ?? process.env).OLLM_SERVER__API_KEY;
  return validateServerConfig({
    ...Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)),
    ...(settings.apiKey === undefined && fromEnv ? { apiKey: fromEnv } : {}),
  });
}

function sameSecret(given: string, expected: string): boolean {
  // Digests first: equal lengths for timingSafeEqual, and no early exit on the length.
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The fastify instance of the server, routes registered, not listening (use `app.inject` in tests, or
 * `app.listen`). `app.close()` shuts down gracefully: new requests get 503, waiting ones 503, running
 * ones may finish until `shutdownTimeoutMs`, then they are cancelled and connections closed.
 */
export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const config = serverConfigOf(options);
  const app = Fastify({
    logger: { level: config.logLevel },
    bodyLimit: config.bodyLimitBytes,
    return503OnClosing: true,
    forceCloseConnections: "idle",
    routerOptions: { maxParamLength: 2048 },
  });
  const shutdown = new AbortController();
  // Every running request listens to it.
  setMaxListeners(0, shutdown.signal);
  const ctx: ServerContext = {
    client: options.client,
    config,
    models: new ModelDirectory(options.client, options.runtimeConfig ?? {}, config),
    queues: new QueueSet(config.concurrency, config.maxQueue),
    generationDefaults: options.generationConfig ?? {},
    shutdown: shutdown.signal,
    startedAt: unixSeconds(),
  };
  // A mistyped allowed model fails the start, not the first request naming it.
  await ctx.models.checkAllowed();
  const sessions = new SessionStore(config.maxSessions);
  const responses = new ResponseStore(config.maxStoredResponses);
  const catalog = new RouteCatalog();
  let closing = false;

  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  app.setErrorHandler((error, request, reply) => {
    const e = toApiError(error);
    if (e.status >= 500) request.log.error({ err: error }, "request failed");
    return reply.code(e.status).headers(e.headers).send(e.body());
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(
      new ApiError(404, `No route ${request.method} ${request.url.split("?")[0]}`, {
        code: "not_found",
      }).body(),
    ),
  );

  if (config.apiKey) {
    const key = config.apiKey;
    app.addHook("onRequest", async (request) => {
      if (request.routeOptions.url === "/v1/health") return;
      const token = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "")?.[1];
      if (!token || !sameSecret(token, key))
        throw new ApiError(
          401,
          token ? "Incorrect API key provided" : "Missing API key: send Authorization: Bearer <key>",
          {
            code: "invalid_api_key",
            headers: { "www-authenticate": "Bearer" },
          },
        );
    });
  }

  catalog.add({
    method: "GET",
    url: "/v1/health",
    operationId: "health",
    tag: "Server",
    summary: "Liveness and load (no API key needed)",
    response: HealthSchema,
    auth: false,
  });
  app.get("/v1/health", async () => {
    const stats = Object.values(ctx.queues.stats());
    return {
      status: closing ? "shutting_down" : "ok",
      version: SERVER_VERSION,
      uptimeSeconds: Math.round(process.uptime()),
      running: stats.reduce((n, s) => n + s.running, 0),
      waiting: stats.reduce((n, s) => n + s.waiting, 0),
    };
  });

  registerModelRoutes(app, ctx, catalog);
  registerChatRoutes(app, ctx, catalog);
  registerResponseRoutes(app, ctx, catalog, responses);
  registerNativePromptRoutes(app, ctx, catalog);
  registerSessionRoutes(app, ctx, catalog, sessions);

  let document: Record<string, unknown> | undefined;
  const openApi = () => {
    document ??= openApiDocument(catalog, { title: "oLLM server", version: SERVER_VERSION });
    return document;
  };
  catalog.add({
    method: "GET",
    url: "/openapi.json",
    operationId: "openapi",
    tag: "Server",
    summary: "This OpenAPI 3.1 document (generated from the zod schemas)",
    response: { type: "object" },
  });
  app.get("/openapi.json", async () => openApi());
  catalog.add({
    method: "GET",
    url: "/docs",
    operationId: "docs",
    tag: "Server",
    summary: "API documentation page (HTML)",
  });
  app.get("/docs", async (_request, reply) =>
    reply.type("text/html; charset=utf-8").send(docsPage(openApi())),
  );

  // Connections and their requests in flight: at shutdown, a connection with none is closed at once
  // (keep-alive, or opened and never used), the others as soon as their last response ends.
  const inFlight = new Map<Socket, number>();
  app.server.on("connection", (socket: Socket) => {
    inFlight.set(socket, 0);
    socket.once("close", () => inFlight.delete(socket));
  });
  app.server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    response.once("close", () => {
      const n = (inFlight.get(socket) ?? 1) - 1;
      inFlight.set(socket, n);
      if (closing && n === 0) socket.destroy();
    });
  });
  const closeUnused = () => {
    for (const [socket, n] of inFlight) if (n === 0) socket.destroy();
  };

  // Graceful shutdown: refuse new work, let running work finish until the deadline, then cancel it.
  const timers: NodeJS.Timeout[] = [];
  app.addHook("preClose", async () => {
    closing = true;
    ctx.queues.close();
    timers.push(setTimeout(() => shutdown.abort(), config.shutdownTimeoutMs));
    timers.push(
      setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeoutMs + FORCE_CLOSE_GRACE_MS),
    );
    closeUnused();
    for (const t of timers) t.unref();
  });
  app.addHook("onClose", async () => {
    for (const t of timers) clearTimeout(t);
    shutdown.abort();
    sessions.closeAll();
  });
  return app;
}
