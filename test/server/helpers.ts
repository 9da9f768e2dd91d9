import OpenAI from "openai";
import { RuntimeClient, type RuntimeClientOptions } from "../../src/client.js";
import type { RunningServer, ServerOptions } from "../../src/server/index.js";
import { startServer } from "../../src/server/index.js";
import type { PromptStream } from "../../src/session.js";
import { FIXTURES, fixture } from "../runtime/helpers.js";

export { fixture, removeDir, tempDir } from "../runtime/helpers.js";

/** The default model of the test servers. */
export const DEFAULT_MODEL = fixture("tiny-qwen2");

export interface TestServer extends RunningServer {
  client: RuntimeClient;
  /** Every prompt stream the server started through `client.chat` (to check cancellation). */
  streams: PromptStream[];
  openai(apiKey?: string): OpenAI;
}

/**
 * A server on a free loopback port over a fresh client: default model tiny-qwen2, local models from
 * test/fixtures/models, silent logs, no signal handlers.
 */
export async function startTestServer(
  options: Partial<ServerOptions> = {},
  clientOptions: RuntimeClientOptions = {},
): Promise<TestServer> {
  const client = options.client ?? new RuntimeClient(clientOptions);
  const streams: PromptStream[] = [];
  const chat = client.chat.bind(client);
  client.chat = (messages, opts) => {
    const stream = chat(messages, opts);
    streams.push(stream);
    return stream;
  };
  const server = await startServer({
    host: "127.0.0.1",
    port: 0,
    logLevel: "silent",
    handleSignals: false,
    env: {},
    ...options,
    client,
    runtimeConfig: { modelReference: DEFAULT_MODEL, modelsDir: FIXTURES, ...options.runtimeConfig },
    generationConfig: { maxNewTokens: 8, ...options.generationConfig },
  });
  return {
    ...server,
    client,
    streams,
    openai: (apiKey = "unused") =>
      new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0, timeout: 20_000 }),
    close: async () => {
      await server.close();
      await client.close();
    },
  };
}

/** One server-sent event. */
export interface SseEvent {
  event: string | undefined;
  data: string;
}

/** Reads a whole SSE response body into events. */
export async function readSse(response: Response): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of iterateSse(response)) events.push(event);
  return events;
}

/** Server-sent events of a response body, as they arrive. */
export async function* iterateSse(response: Response): AsyncGenerator<SseEvent> {
  if (!response.body) return;
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event: string | undefined;
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies of the API under test
export type Json = any;

/** A response's JSON body, untyped (the tests check its shape). */
export async function jsonOf(response: Response): Promise<Json> {
  return response.json();
}

/** POSTs JSON. */
export function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Polls until `check` holds (or throws after `timeoutMs`). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("timed out waiting for a condition");
    await new Promise((r) => setTimeout(r, 10));
  }
}
