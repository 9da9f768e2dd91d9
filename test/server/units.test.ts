import { describe, expect, test } from "vitest";
import type { z } from "zod";
import { checkBindSafety, isLoopbackHost, validateServerConfig } from "../../src/server/config.js";
import { ApiError, fromZodError, toApiError } from "../../src/server/errors.js";
import { jsonDepth, MAX_JSON_DEPTH, parseJsonBody } from "../../src/server/json-body.js";
import { RequestQueue } from "../../src/server/queue.js";
import { Channel } from "../../src/server/sse.js";
import { OllmError } from "../../src/errors.js";
import { type FinalOutput, toolChoiceViolation, toolDemand } from "../../src/server/openai/output.js";
import { ChatCompletionRequestSchema } from "../../src/server/openai/schemas.js";

const tick = () => new Promise((r) => setImmediate(r));

describe("RequestQueue", () => {
  test("runs up to `concurrency` at once and serves waiters in arrival order", async () => {
    const queue = new RequestQueue(2, 10);
    const order: number[] = [];
    const releases = await Promise.all([queue.acquire(), queue.acquire()]);
    const waiting = [3, 4, 5].map((n) =>
      queue.acquire().then((release) => {
        order.push(n);
        return release;
      }),
    );
    expect(queue.stats).toMatchObject({ running: 2, waiting: 3 });
    releases[0]();
    releases[0](); // twice: no effect
    await tick();
    expect(order).toEqual([3]);
    releases[1]();
    await tick();
    expect(order).toEqual([3, 4]);
    for (const release of await Promise.all(waiting.slice(0, 2))) release();
    (await waiting[2])();
    expect(order).toEqual([3, 4, 5]);
    expect(queue.stats).toMatchObject({ running: 0, waiting: 0 });
  });

  test("a full line is refused with 429 at once", async () => {
    const queue = new RequestQueue(1, 1);
    await queue.acquire();
    void queue.acquire();
    let caught: unknown;
    try {
      queue.enqueue();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ApiError);
    expect((caught as ApiError).status).toBe(429);
    expect((caught as ApiError).headers["retry-after"]).toBe("1");
  });

  test("an aborted waiter leaves the line without taking a slot; close refuses with 503", async () => {
    let idle = 0;
    const queue = new RequestQueue(1, 5, () => idle++);
    const first = await queue.acquire();
    const controller = new AbortController();
    const gone = queue.acquire(controller.signal);
    const next = queue.acquire();
    controller.abort(new Error("client left"));
    await expect(gone).rejects.toThrow("client left");
    first();
    const release = await next;
    release();
    expect(idle).toBe(1);
    const holder = await queue.acquire();
    const waiter = queue.acquire();
    queue.close();
    await expect(waiter).rejects.toMatchObject({ status: 503 });
    expect(() => queue.enqueue()).toThrow(/shutting down/);
    holder();
  });
});

describe("errors", () => {
  test("OllmError codes map to statuses; unknown errors to an opaque 500", () => {
    expect(toApiError(new OllmError("MODEL_NOT_FOUND", "x")).status).toBe(404);
    expect(toApiError(new OllmError("INVALID_ARGUMENT", "x")).status).toBe(400);
    expect(toApiError(new OllmError("UNSUPPORTED_MODALITY", "x")).status).toBe(400);
    expect(toApiError(new OllmError("NOT_IMPLEMENTED", "x")).status).toBe(501);
    const internal = toApiError(new TypeError("secret detail"));
    expect(internal.status).toBe(500);
    expect(internal.message).not.toContain("secret");
    expect(toApiError({ statusCode: 413, code: "FST_ERR_CTP_BODY_TOO_LARGE" }).body().error.code).toBe(
      "request_too_large",
    );
  });

  test("validation errors name the field, also inside unions", () => {
    const cases: [unknown, string, RegExp][] = [
      [
        { messages: [{ role: "user", content: 3 }] },
        "messages[0].content",
        /expected string or array, received number/,
      ],
      [{ messages: [{ role: "robot", content: "x" }] }, "messages[0].role", /must be one of "system"/],
      [
        { messages: [{ role: "user", content: [{ type: "text" }] }] },
        "messages[0].content[0].text",
        /expected string/,
      ],
      [{ messages: [{ role: "user", content: "x" }], temperature: 5 }, "temperature", /\[0, 2\]/],
      [{ messages: [{ role: "user", content: "x" }], top_logprobs: 3 }, "top_logprobs", /needs logprobs/],
      [[1, 2], "", /expected object/],
    ];
    for (const [body, param, message] of cases) {
      const result = ChatCompletionRequestSchema.safeParse(body);
      expect(result.success).toBe(false);
      const error = fromZodError(result.error as z.ZodError);
      expect(error.status).toBe(400);
      expect(error.param ?? "").toBe(param);
      expect(error.message).toMatch(message);
    }
  });
});

describe("JSON bodies", () => {
  test("depth is measured outside strings and capped", () => {
    expect(jsonDepth('{"a": "[[[[", "b": [[1]]}')).toBe(3);
    expect(() => parseJsonBody("[".repeat(MAX_JSON_DEPTH + 1) + "]".repeat(MAX_JSON_DEPTH + 1))).toThrow(
      /deeper/,
    );
    expect(parseJsonBody("[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH))).toBeInstanceOf(Array);
  });

  test("prototype-poisoning keys are refused; bad JSON is a 400", () => {
    expect(() => parseJsonBody('{"a": {"__proto__": {"x": 1}}}')).toThrow(/forbidden key/);
    expect(() => parseJsonBody('{"constructor": {"prototype": {}}}')).toThrow(/forbidden key/);
    expect(parseJsonBody('{"constructor": "fine"}')).toEqual({ constructor: "fine" });
    for (const text of ["", "{", "nul", '{"a":}'])
      expect(() => parseJsonBody(text)).toThrow(expect.objectContaining({ status: 400 }));
  });
});

describe("server config", () => {
  test("defaults and violations", () => {
    expect(validateServerConfig({})).toMatchObject({
      host: "127.0.0.1",
      port: 8000,
      concurrency: 1,
      maxQueue: 64,
    });
    expect(() => validateServerConfig({ port: 70000, concurrency: 0, typo: 1 })).toThrow(
      /port.*concurrency.*typo/s,
    );
  });

  test("loopback hosts, and the refusal to bind a public address without a key", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ["0.0.0.0", "::", "192.168.1.2", "example.com"])
      expect(isLoopbackHost(host), host).toBe(false);
    expect(() => checkBindSafety(validateServerConfig({ host: "0.0.0.0" }))).toThrow(
      expect.objectContaining({
        code: "INVALID_CONFIG",
        hint: expect.stringMatching(/--api-key.*--allow-insecure-public/),
      }),
    );
    checkBindSafety(validateServerConfig({ host: "0.0.0.0", apiKey: "k" }));
    checkBindSafety(validateServerConfig({ host: "0.0.0.0", allowInsecurePublic: true }));
  });
});

test("Channel: a producer waits for a slow consumer; a consumer that leaves releases it", async () => {
  const channel = new Channel<number>(2);
  let pushed = 0;
  const producer = (async () => {
    for (let i = 0; i < 5; i++) {
      await channel.push(i);
      pushed++;
    }
    channel.close();
  })();
  await tick();
  expect(pushed).toBeLessThan(5);
  const seen: number[] = [];
  for await (const n of channel) {
    seen.push(n);
    if (n === 3) break;
  }
  await producer;
  expect(seen).toEqual([0, 1, 2, 3]);
});

describe("tool_choice checks", () => {
  const reply = (calls: [string, string][], finishReason: FinalOutput["finishReason"] = "tool_calls") => ({
    content: "",
    reasoning: null,
    toolCalls: calls.map(([name, args], i) => ({ id: `call_${i}`, name, arguments: args })),
    finishReason,
  });

  test("auto and none demand nothing; required and named demand calls of the offered functions", () => {
    expect(toolDemand("auto", ["f"])).toBeUndefined();
    expect(toolDemand("none", ["f"])).toBeUndefined();
    expect(toolDemand("required", [])).toBeUndefined();
    expect(toolDemand("required", ["f", "g"])).toEqual({ names: ["f", "g"], named: false });
    expect(toolDemand({ type: "function", name: "g" }, ["g"])).toEqual({ names: ["g"], named: true });
  });

  test("a reply honours the demand, or the 422 says how it did not", () => {
    const required = toolDemand("required", ["f", "g"]);
    const named = toolDemand({ type: "function", function: { name: "g" } }, ["g"]);
    expect(toolChoiceViolation(reply([["f", "{}"]]), undefined)).toBeUndefined();
    expect(
      toolChoiceViolation(
        reply([
          ["f", '{"a": 1}'],
          ["g", "{}"],
        ]),
        required,
      ),
    ).toBeUndefined();
    expect(toolChoiceViolation(reply([["g", "{}"]]), named)).toBeUndefined();
    const cases: [FinalOutput, typeof required, string][] = [
      [
        reply([], "stop"),
        required,
        'tool_choice is "required", but the model answered with text instead of a tool call',
      ],
      [
        reply([], "length"),
        named,
        'tool_choice names the function "g", but the model answered with text instead of a tool call (its reply was cut at the token limit)',
      ],
      [
        reply([["h", "{}"]]),
        required,
        'tool_choice is "required", but the model called "h", which is not among tools',
      ],
      [
        reply([
          ["g", "{}"],
          ["f", "{}"],
        ]),
        named,
        'tool_choice names the function "g", but the model called "f" instead',
      ],
      [
        reply([["f", '"Paris"']]),
        required,
        'tool_choice is "required", but the arguments of the model\'s call of "f" are not a JSON object',
      ],
    ];
    for (const [out, demand, message] of cases) {
      const error = toolChoiceViolation(out, demand);
      expect(error).toBeInstanceOf(ApiError);
      expect(error?.body().error).toMatchObject({
        message,
        type: "invalid_request_error",
        param: "tool_choice",
        code: "tool_choice_unsatisfied",
      });
      expect(error?.status).toBe(422);
    }
  });
});
