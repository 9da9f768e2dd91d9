import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { GenerationConfigInput } from "../../config/generation-config.js";
import { DEFAULT_SYSTEM_PROMPT } from "../../messages.js";
import type { ChatSession } from "../../session.js";
import { ApiError, parseBody, toApiError } from "../errors.js";
import type { ServerContext } from "../generation.js";
import { newId } from "../ids.js";
import type { ModelTarget } from "../models.js";
import type { RouteCatalog } from "../openapi.js";
import { mergeGeneration } from "./prompt.js";
import { nativeMessages, nativeParts, runNative } from "./run.js";
import {
  NativeStreamEventSchema,
  SessionCreateRequestSchema,
  SessionDeletedSchema,
  SessionPromptRequestSchema,
  SessionPromptResponseSchema,
  SessionSchema,
} from "./schemas.js";

interface SessionEntry {
  id: string;
  session: ChatSession;
  target: ModelTarget;
  createdAt: string;
  lastUsed: number;
  busy: boolean;
  /** Aborts the running turn (DELETE of a busy session). */
  turn: AbortController | undefined;
  /** Deleted while busy: close once the turn is over. */
  closing: boolean;
}

/**
 * Chat sessions of the native API, in memory. Each keeps its KV cache between turns; at `capacity` the
 * least recently used idle session is closed to make room (429 when every one is busy).
 */
export class SessionStore {
  readonly #entries = new Map<string, SessionEntry>();

  constructor(private readonly capacity: number) {}

  add(session: ChatSession, target: ModelTarget): SessionEntry {
    if (this.#entries.size >= this.capacity) {
      const idle = [...this.#entries.values()]
        .filter((e) => !e.busy)
        .sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!idle)
        throw new ApiError(429, `All ${this.capacity} sessions are busy`, {
          code: "too_many_sessions",
          headers: { "retry-after": "1" },
        });
      this.delete(idle.id);
    }
    const entry: SessionEntry = {
      id: newId("sess_"),
      session,
      target,
      createdAt: new Date().toISOString(),
      lastUsed: Date.now(),
      busy: false,
      turn: undefined,
      closing: false,
    };
    this.#entries.set(entry.id, entry);
    return entry;
  }

  get(id: string): SessionEntry {
    const entry = this.#entries.get(id);
    if (!entry)
      throw new ApiError(404, `No session with id '${id}'`, { code: "session_not_found", param: "id" });
    return entry;
  }

  delete(id: string): boolean {
    const entry = this.#entries.get(id);
    if (!entry) return false;
    this.#entries.delete(id);
    if (entry.busy) {
      entry.closing = true;
      entry.turn?.abort();
    } else entry.session.close();
    return true;
  }

  /** Frees every session's KV cache. */
  closeAll(): void {
    for (const id of [...this.#entries.keys()]) this.delete(id);
  }
}

function describe(entry: SessionEntry) {
  const s = entry.session;
  return {
    id: entry.id,
    object: "session" as const,
    name: s.name,
    model: entry.target.id,
    systemPrompt: s.systemPrompt,
    messages: s.messages,
    busy: entry.busy,
    createdAt: entry.createdAt,
  };
}

export function registerSessionRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  catalog: RouteCatalog,
  store: SessionStore,
): void {
  catalog.add({
    method: "POST",
    url: "/v1/sessions",
    operationId: "createSession",
    tag: "Sessions",
    summary: "Create a chat session (it keeps its KV cache between turns)",
    body: SessionCreateRequestSchema,
    response: SessionSchema,
    status: 201,
    errors: [404, 429],
  });
  app.post("/v1/sessions", async (request, reply) => {
    const body = parseBody(SessionCreateRequestSchema, request.body);
    const target = await ctx.models.target(body.model);
    let session: ChatSession;
    try {
      session = ctx.client.session({
        runtimeConfig: target.runtimeConfig,
        generationConfig: mergeGeneration(ctx, request.body),
        name: body.name,
        systemPrompt: body.system ?? DEFAULT_SYSTEM_PROMPT,
        messages: nativeMessages(body.messages ?? [], "messages"),
      });
    } catch (error) {
      throw toApiError(error);
    }
    const entry = store.add(session, target);
    return reply.code(201).send(describe(entry));
  });

  catalog.add({
    method: "GET",
    url: "/v1/sessions/:id",
    operationId: "getSession",
    tag: "Sessions",
    summary: "A session: its name, model, system prompt and messages",
    response: SessionSchema,
    errors: [404],
  });
  app.get("/v1/sessions/:id", async (request) => describe(store.get((request.params as { id: string }).id)));

  catalog.add({
    method: "DELETE",
    url: "/v1/sessions/:id",
    operationId: "deleteSession",
    tag: "Sessions",
    summary: "Close a session (a running turn is cancelled) and free its KV cache",
    response: SessionDeletedSchema,
    errors: [404],
  });
  app.delete("/v1/sessions/:id", async (request) => {
    const { id } = request.params as { id: string };
    store.get(id);
    store.delete(id);
    return { id, object: "session", deleted: true };
  });

  const turnDoc = { tag: "Sessions", body: SessionPromptRequestSchema, errors: [404, 409, 422, 429, 503] };
  catalog.add({
    ...turnDoc,
    method: "POST",
    url: "/v1/sessions/:id/prompt",
    operationId: "sessionPrompt",
    summary: "Send a message to a session; whole reply (the exchange joins the session)",
    response: SessionPromptResponseSchema,
  });
  catalog.add({
    ...turnDoc,
    method: "POST",
    url: "/v1/sessions/:id/prompt/stream",
    operationId: "sessionPromptStream",
    summary: "Send a message to a session, streamed (progress, delta, done, error events)",
    events: { description: "progress / delta / done / error", schema: NativeStreamEventSchema },
  });

  const turn = (stream: boolean) => async (request: FastifyRequest, reply: FastifyReply) => {
    const entry = store.get((request.params as { id: string }).id);
    const body = parseBody(SessionPromptRequestSchema, request.body);
    const parts = nativeParts(body.prompt, "prompt");
    if (entry.busy)
      throw new ApiError(409, `Session '${entry.id}' is still answering the previous message`, {
        code: "session_busy",
        hint: "Wait for the previous reply (or cancel it by closing its connection).",
      });
    const own = (request.body as { generation?: GenerationConfigInput }).generation;
    const effective = mergeGeneration(ctx, request.body, entry.session.generationConfig);
    entry.busy = true;
    entry.lastUsed = Date.now();
    const turnController = new AbortController();
    entry.turn = turnController;
    return runNative(ctx, request, reply, {
      target: entry.target,
      stream,
      tokens: effective.logprobs === true,
      start: (signal, sink) =>
        entry.session.stream(parts, {
          signal: AbortSignal.any([signal, turnController.signal]),
          sink,
          generationConfig: own,
        }),
      extra: () => ({ session: { ...describe(entry), busy: false } }),
      onEnd: () => {
        entry.busy = false;
        entry.turn = undefined;
        entry.lastUsed = Date.now();
        if (entry.closing) entry.session.close();
      },
    });
  };
  app.post("/v1/sessions/:id/prompt", turn(false));
  app.post("/v1/sessions/:id/prompt/stream", turn(true));
}
