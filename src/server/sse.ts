import { Readable } from "node:stream";
import type { FastifyReply } from "fastify";

/** One server-sent event: `event:` (optional) and one `data:` line of JSON (or a raw string such as [DONE]). */
export function sseEvent(data: unknown, event?: string): string {
  const payload = typeof data === "string" ? data : JSON.stringify(data);
  return `${event ? `event: ${event}\n` : ""}data: ${payload}\n\n`;
}

/**
 * Streams server-sent events: headers go out with the first event; the source is pulled as the socket
 * drains (backpressure), and destroyed — its `finally` blocks run — when the client disconnects.
 */
export function sendSse(reply: FastifyReply, events: AsyncIterable<string>): FastifyReply {
  reply
    .header("content-type", "text/event-stream; charset=utf-8")
    .header("cache-control", "no-cache, no-transform")
    .header("x-accel-buffering", "no");
  return reply.send(Readable.from(events, { objectMode: false }));
}

/**
 * A one-consumer async queue: producers `push` (and `close` or `fail`), the consumer iterates. `push`
 * resolves once the buffer is below `highWaterMark`, so a fast producer waits for a slow reader.
 */
export class Channel<T> implements AsyncIterable<T> {
  readonly #buffer: T[] = [];
  #closed = false;
  #error: { error: unknown } | undefined;
  #wake: (() => void) | undefined;
  #drained: (() => void) | undefined;

  constructor(private readonly highWaterMark = 64) {}

  async push(item: T): Promise<void> {
    if (this.#closed) return;
    this.#buffer.push(item);
    this.#wake?.();
    if (this.#buffer.length >= this.highWaterMark)
      await new Promise<void>((resolve) => {
        this.#drained = resolve;
      });
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  fail(error: unknown): void {
    this.#error = { error };
    this.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    try {
      for (;;) {
        if (this.#buffer.length > 0) {
          const item = this.#buffer.shift()!;
          if (this.#buffer.length < this.highWaterMark) {
            this.#drained?.();
            this.#drained = undefined;
          }
          yield item;
          continue;
        }
        if (this.#error) throw this.#error.error;
        if (this.#closed) return;
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = undefined;
      }
    } finally {
      // The consumer left: let a waiting producer go on (its pushes are dropped).
      this.#closed = true;
      this.#drained?.();
    }
  }
}
