import type { FastifyReply, FastifyRequest } from "fastify";
import { ApiError } from "./errors.js";
import type { RequestQueue } from "./queue.js";

/** Why a job was stopped early. */
export type StopReason = "disconnect" | "timeout" | "shutdown";

/** How long after the time limit a response that still has not ended is cut off (stalled readers). */
const KILL_GRACE_MS = 5_000;

/**
 * One generating request: a signal that aborts when the client goes away, the time limit passes or the
 * server shuts down (the engine stops at the next token), the queue slot it holds, and timings.
 */
export class Job {
  readonly #controller = new AbortController();
  readonly signal: AbortSignal = this.#controller.signal;
  /** Why the job was stopped, if it was. */
  reason: StopReason | null = null;
  readonly startedAt = performance.now();
  /** Milliseconds spent waiting for a slot. */
  queueMs = 0;
  #release: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  readonly #cleanup: (() => void)[] = [];
  #finished = false;

  constructor(
    readonly request: FastifyRequest,
    readonly reply: FastifyReply,
    timeoutMs: number,
    shutdown: AbortSignal,
  ) {
    const res = reply.raw;
    const onClose = () => {
      if (!res.writableFinished) this.stop("disconnect");
    };
    res.on("close", onClose);
    this.#cleanup.push(() => res.off("close", onClose));
    const onShutdown = () => this.stop("shutdown");
    if (shutdown.aborted) onShutdown();
    else {
      shutdown.addEventListener("abort", onShutdown, { once: true });
      this.#cleanup.push(() => shutdown.removeEventListener("abort", onShutdown));
    }
    this.#timer = setTimeout(() => {
      this.stop("timeout");
      // A client that stopped reading keeps a streamed reply from ending: cut it off.
      this.#killTimer = setTimeout(() => {
        if (!res.writableFinished) res.destroy();
      }, KILL_GRACE_MS);
      this.#killTimer.unref();
    }, timeoutMs);
    this.#timer.unref();
  }

  /** True when the client is gone (nothing can be sent any more). */
  get disconnected(): boolean {
    return this.reason === "disconnect" || this.reply.raw.destroyed;
  }

  /** Aborts the work; the first reason wins. */
  stop(reason: StopReason): void {
    if (this.signal.aborted) return;
    this.reason = reason;
    this.#controller.abort(stopError(reason));
  }

  /**
   * Joins `queue`'s line (429 / 503 thrown at once) and returns the position (0 = runs now) and a
   * promise of the slot; the stop reason rejects it if the job is stopped while waiting.
   */
  enqueue(queue: RequestQueue): { position: number; granted: Promise<void> } {
    const t0 = performance.now();
    const ticket = queue.enqueue(this.signal);
    const granted = ticket.granted.then((release) => {
      this.queueMs = performance.now() - t0;
      this.#release = release;
      if (this.#finished) release();
    });
    // Whoever waits sees a rejection; a job that finished without waiting must not leave it unhandled.
    granted.catch(() => {});
    return { position: ticket.position, granted };
  }

  /** Waits for a slot of `queue` (429 when its line is full; the stop reason if stopped while waiting). */
  acquire(queue: RequestQueue): Promise<void> {
    return this.enqueue(queue).granted;
  }

  /** Frees the slot and the timers (idempotent). */
  finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#release?.();
    // A ticket still in line leaves it.
    if (!this.signal.aborted) this.#controller.abort(new Error("finished"));
    clearTimeout(this.#timer);
    for (const f of this.#cleanup) f();
    // The kill timer stays armed: it only fires for a response that never ends.
    if (this.reply.raw.writableFinished) clearTimeout(this.#killTimer);
    else this.reply.raw.once("finish", () => clearTimeout(this.#killTimer));
  }
}

function stopError(reason: StopReason): ApiError {
  switch (reason) {
    case "disconnect":
      return new ApiError(499, "The client closed the request", { code: "client_closed_request" });
    case "timeout":
      return new ApiError(503, "The request ran out of time waiting for the model", {
        code: "timeout",
        hint: "The server is busy; retry later or raise --request-timeout-ms.",
      });
    case "shutdown":
      return new ApiError(503, "The server is shutting down", { code: "server_shutting_down" });
  }
}
