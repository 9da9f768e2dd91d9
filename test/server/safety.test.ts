import { EventEmitter } from "node:events";
import { join } from "node:path";
import type { FastifyReply, FastifyRequest } from "fastify";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { RuntimeClient } from "../../src/client.js";
import { startServer } from "../../src/server/index.js";
import { Job } from "../../src/server/jobs.js";
import { RequestQueue } from "../../src/server/queue.js";
import {
  iterateSse,
  type Json,
  jsonOf,
  removeDir,
  startTestServer,
  type TestServer,
  tempDir,
  waitFor,
} from "./helpers.js";
import { buildEndlessModel } from "./steered-model.js";

let dir: string;
let endless: string;

beforeAll(async () => {
  dir = await tempDir("ollm-safety-");
  endless = await buildEndlessModel(join(dir, "endless"));
});
afterAll(() => removeDir(dir));

const health = async (server: TestServer): Promise<Json> => jsonOf(await fetch(`${server.url}/v1/health`));
const chat = (server: TestServer, body: Record<string, unknown>, init: RequestInit = {}) =>
  fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: endless, messages: [{ role: "user", content: "go" }], ...body }),
    ...init,
  });

describe("API key", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ apiKey: "s3cret-key" });
  });
  afterAll(() => server.close());

  test("every route but health needs the bearer key", async () => {
    await expect(server.openai("wrong").models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const ok = await server.openai("s3cret-key").chat.completions.create({
      model: "tiny-qwen2",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    });
    expect(ok.choices[0].message.content).toBeTypeOf("string");
    expect((await fetch(`${server.url}/v1/health`)).status).toBe(200);
    for (const path of ["/openapi.json", "/docs", "/v1/ollm/models", "/v1/sessions/x", "/v1/nothing"]) {
      const r = await fetch(`${server.url}${path}`);
      expect(r.status, path).toBe(401);
      expect(r.headers.get("www-authenticate")).toBe("Bearer");
      expect((await jsonOf(r)).error).toMatchObject({
        type: "authentication_error",
        code: "invalid_api_key",
      });
    }
    const lower = await fetch(`${server.url}/v1/models`, { headers: { authorization: "bearer s3cret-key" } });
    expect(lower.status).toBe(200);
    const prefix = await fetch(`${server.url}/v1/models`, { headers: { authorization: "Bearer s3cret" } });
    expect(prefix.status).toBe(401);
  });

  test("the key can come from OLLM_SERVER__API_KEY", async () => {
    const client = new RuntimeClient();
    const s = await startServer({
      client,
      port: 0,
      logLevel: "silent",
      handleSignals: false,
      env: { OLLM_SERVER__API_KEY: "from-env" },
    });
    try {
      expect((await fetch(`${s.url}/v1/models`)).status).toBe(401);
      expect(
        (await fetch(`${s.url}/v1/models`, { headers: { authorization: "Bearer from-env" } })).status,
      ).toBe(200);
    } finally {
      await s.close();
    }
  });
});

test("a public address without a key is refused before binding", async () => {
  const client = new RuntimeClient();
  await expect(
    startServer({ client, host: "0.0.0.0", port: 0, logLevel: "silent", handleSignals: false, env: {} }),
  ).rejects.toMatchObject({
    code: "INVALID_CONFIG",
  });
});

describe("limits", () => {
  let server: TestServer;
  beforeAll(async () => {
    // No tight time limit here: on a loaded machine a queued request could run out of time and turn the
    // queue test's 200s into 503s.
    server = await startTestServer({ bodyLimitBytes: 4096, concurrency: 1, maxQueue: 1 });
    await chat(server, { max_tokens: 1 }); // load the model
  });
  afterAll(() => server.close());

  test("a body over the limit is 413 in the OpenAI shape", async () => {
    const r = await chat(server, { messages: [{ role: "user", content: "x".repeat(10_000) }] });
    expect(r.status).toBe(413);
    expect((await jsonOf(r)).error).toMatchObject({
      code: "request_too_large",
      type: "invalid_request_error",
    });
  });

  test("a full queue is 429 with Retry-After; every request is answered or refused, none dropped", async () => {
    const responses = await Promise.all([0, 1, 2, 3, 4].map(() => chat(server, { max_tokens: 150 })));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 429, 429, 429]);
    const refused = responses.find((r) => r.status === 429)!;
    expect(refused.headers.get("retry-after")).toBe("1");
    expect((await jsonOf(refused)).error).toMatchObject({ type: "rate_limit_error", code: "queue_full" });
    for (const r of responses.filter((x) => x.status === 200))
      expect((await jsonOf(r)).usage.completion_tokens).toBe(150);
  });
});

describe("time limit", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ concurrency: 1, maxQueue: 1, requestTimeoutMs: 1000 });
    await chat(server, { max_tokens: 1 }); // load the model: the time limit counts from the request's arrival
  });
  afterAll(() => server.close());

  // No wall-clock bound (a loaded CI machine made one flaky): fewer than the 8000 tokens asked for, with
  // finish_reason length, is what only the time limit produces. The next request arrives half a limit
  // later, so its own limit does not run out in the same instant as the long one's (a race under load).
  test("the time limit cuts a long generation: finish_reason length, the slot freed for the next request", async () => {
    const longReply = chat(server, { max_tokens: 8000 });
    await new Promise((r) => setTimeout(r, 500));
    const [long, next] = await Promise.all([longReply, chat(server, { max_tokens: 5 })]);
    const body = await jsonOf(long);
    expect(body.choices[0].finish_reason).toBe("length");
    expect(body.usage.completion_tokens).toBeLessThan(8000);
    expect(next.status).toBe(200);
    expect((await jsonOf(next)).choices[0].finish_reason).toBe("length");
  });
});

test("a request whose time runs out while it waits leaves the line with 503 timeout", async () => {
  const raw = Object.assign(new EventEmitter(), { writableFinished: false, destroyed: false, destroy() {} });
  const job = new Job(
    {} as FastifyRequest,
    { raw } as unknown as FastifyReply,
    50,
    new AbortController().signal,
  );
  const queue = new RequestQueue(1, 5);
  const holder = await queue.acquire();
  await expect(job.acquire(queue)).rejects.toMatchObject({ status: 503, code: "timeout" });
  expect(job.reason).toBe("timeout");
  expect(queue.stats).toMatchObject({ running: 1, waiting: 0 });
  job.finish();
  holder();
});

describe("queue order and cancellation", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ concurrency: 1, maxQueue: 16 });
  });
  afterAll(async () => {
    const t = performance.now();
    await server.close();
    console.log("CLOSE", performance.now() - t);
  });

  test("requests are served in arrival order", async () => {
    const finished: number[] = [];
    const all: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      all.push(
        chat(server, { max_tokens: 40 }).then(async (r) => {
          expect(r.status).toBe(200);
          await r.json();
          finished.push(i);
        }),
      );
      await waitFor(async () => {
        const h = await health(server);
        return h.running + h.waiting === i + 1 || finished.length > 0;
      });
    }
    await Promise.all(all);
    expect(finished).toEqual([0, 1, 2, 3, 4]);
  });

  test("a client that disconnects mid-stream cancels its generation", async () => {
    const before = server.streams.length;
    const controller = new AbortController();
    const response = await chat(server, { max_tokens: 6000, stream: true }, { signal: controller.signal });
    let chunks = 0;
    for await (const _ of iterateSse(response)) if (++chunks === 3) break;
    controller.abort();
    const stream = server.streams[before];
    const result = await stream.response;
    expect(result.finishReason).toBe("cancelled");
    expect(result.usage.completionTokens).toBeLessThan(6000);
    await waitFor(async () => (await health(server)).running === 0);
  });

  test("a client that disconnects while waiting leaves the queue without running", async () => {
    const before = server.streams.length;
    const blocker = new AbortController();
    const running = chat(server, { max_tokens: 6000, stream: true }, { signal: blocker.signal });
    await waitFor(() => server.streams.length === before + 1);
    const waiting = new AbortController();
    const queued = chat(server, { max_tokens: 5 }, { signal: waiting.signal }).catch(() => "aborted");
    await waitFor(async () => (await health(server)).waiting === 1);
    waiting.abort();
    expect(await queued).toBe("aborted");
    await waitFor(async () => (await health(server)).waiting === 0);
    blocker.abort();
    await running.catch(() => undefined);
    await waitFor(async () => (await health(server)).running === 0);
    expect(server.streams.length).toBe(before + 1); // the queued request never started a generation
    // Non-streaming: the disconnect cancels too.
    const gone = chat(server, { max_tokens: 6000 }, { signal: AbortSignal.timeout(150) }).catch(
      () => "aborted",
    );
    expect(await gone).toBe("aborted");
    const result = await server.streams.at(-1)!.response;
    expect(result.finishReason).toBe("cancelled");
    await waitFor(async () => (await health(server)).running === 0);
  });
});

/** A small seeded PRNG (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("fuzzed bodies", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      bodyLimitBytes: 256 * 1024,
      maxQueue: 256,
      generationConfig: { maxNewTokens: 2 },
    });
  });
  afterAll(() => server.close());

  test("random, malformed, huge and deeply nested JSON never gives a 500 nor kills the server", async () => {
    const random = rng(1234);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
    const keys = [
      "model",
      "messages",
      "role",
      "content",
      "input",
      "prompt",
      "tools",
      "stream",
      "generation",
      "max_tokens",
      "temperature",
      "type",
      "text",
      "function",
      "name",
      "arguments",
      "tool_calls",
      "runtimeConfig",
      "__proto__",
      "constructor",
      "n",
    ];
    const value = (depth: number): unknown => {
      const r = random();
      if (depth > 4 || r < 0.35)
        return pick([
          null,
          true,
          false,
          0,
          -1,
          1e308,
          3.5,
          "",
          "user",
          "x".repeat(Math.floor(random() * 50)),
          "assistant",
          "text",
          "\u0000\ud800",
        ]);
      if (r < 0.65) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
      return Object.fromEntries(
        Array.from({ length: Math.floor(random() * 5) }, () => [pick(keys), value(depth + 1)]),
      );
    };
    const messagesLike = () => ({
      messages: [{ role: pick(["user", "system", "tool", "assistant", "x"]), content: value(2) }],
      ...(value(3) as object),
    });
    const bodies: (string | Uint8Array)[] = [
      "",
      "{",
      "nul",
      "[]",
      '"just a string"',
      "{'single': 'quotes'}",
      '{"messages": [{"role": "user", "content": "hi"}]',
      `${"[".repeat(100_000)}${"]".repeat(100_000)}`,
      `{"a":${"[".repeat(5000)}1${"]".repeat(5000)}}`,
      JSON.stringify({ messages: [{ role: "user", content: "x".repeat(200_000) }], max_tokens: 1 }),
      JSON.stringify({ messages: [{ role: "user", content: "x".repeat(300_000) }] }),
      '{"__proto__": {"admin": true}, "messages": []}',
      new Uint8Array(Array.from({ length: 512 }, () => Math.floor(random() * 256))),
    ];
    for (let i = 0; i < 160; i++) bodies.push(JSON.stringify(random() < 0.5 ? value(0) : messagesLike()));
    const routes = [
      "/v1/chat/completions",
      "/v1/responses",
      "/v1/prompt",
      "/v1/prompt/stream",
      "/v1/sessions",
      "/v1/plan",
      "/v1/sessions/x/prompt",
    ];
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < bodies.length * 2) {
        const i = next++;
        const body = bodies[i % bodies.length];
        const route = routes[i % routes.length];
        const type = i % 11 === 0 ? "text/plain" : "application/json";
        const r = await fetch(`${server.url}${route}`, {
          method: "POST",
          headers: { "content-type": type },
          body,
        });
        const text = await r.text();
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        expect(
          r.status,
          `${route} ${typeof body === "string" ? body.slice(0, 200) : "<bytes>"} → ${text.slice(0, 300)}`,
        ).toBeLessThan(500);
        if (r.status >= 400 && !r.headers.get("content-type")?.includes("event-stream"))
          expect(JSON.parse(text).error.message).toBeTypeOf("string");
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true);
    expect(statuses.get(400)).toBeGreaterThan(100);
    expect((await health(server)).status).toBe("ok");
  });
});
