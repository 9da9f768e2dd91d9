import { ApiError } from "./errors.js";

/** Frees a slot of a {@link RequestQueue}; calling it more than once does nothing. */
export type Release = () => void;

interface Waiter {
  grant: (release: Release) => void;
  fail: (error: unknown) => void;
}

/** What a queue is doing. */
export interface QueueStats {
  running: number;
  waiting: number;
  concurrency: number;
  maxQueue: number;
}

/**
 * A FIFO of requests for one model: up to `concurrency` run at once, up to `maxQueue` wait, more are
 * refused at once with 429. Waiters are served strictly in arrival order; a waiter whose signal aborts
 * (its client went away, or its time ran out) leaves the line without taking a slot.
 */
export class RequestQueue {
  readonly #waiting: Waiter[] = [];
  #running = 0;
  #closed = false;

  constructor(
    readonly concurrency: number,
    readonly maxQueue: number,
    /** Called when the queue becomes idle (nothing running or waiting). */
    private readonly onIdle?: () => void,
  ) {}

  get stats(): QueueStats {
    return {
      running: this.#running,
      waiting: this.#waiting.length,
      concurrency: this.concurrency,
      maxQueue: this.maxQueue,
    };
  }

  /**
   * Joins the line. Decided at once: throws 429 when the line is full and 503 once the server is
   * shutting down; otherwise returns the position (0 = runs now, 1 = next…) and the slot to come, which
   * rejects with the signal's reason if the signal aborts while waiting.
   */
  enqueue(signal?: AbortSignal): { position: number; granted: Promise<Release> } {
    if (this.#closed) throw shuttingDown();
    if (signal?.aborted) throw signal.reason;
    if (this.#running < this.concurrency && this.#waiting.length === 0) {
      this.#running++;
      return { position: 0, granted: Promise.resolve(this.#release()) };
    }
    if (this.#waiting.length >= this.maxQueue)
      throw new ApiError(
        429,
        `The server is busy: ${this.#waiting.length} requests are already waiting for this model`,
        {
          code: "queue_full",
          hint: "Retry later, or raise --max-queue / --concurrency.",
          headers: { "retry-after": "1" },
        },
      );
    const granted = new Promise<Release>((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal?.reason);
        this.#maybeIdle();
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(release);
        },
        fail: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      this.#waiting.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    return { position: this.#waiting.length, granted };
  }

  /** {@link enqueue}, as one promise (a full line rejects it). */
  async acquire(signal?: AbortSignal): Promise<Release> {
    return this.enqueue(signal).granted;
  }

  /** Refuses new requests and fails the waiting ones with 503; running ones keep their slots. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiting.splice(0)) waiter.fail(shuttingDown());
  }

  #release(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next.grant(this.#release());
      else {
        this.#running--;
        this.#maybeIdle();
      }
    };
  }

  #maybeIdle(): void {
    if (this.#running === 0 && this.#waiting.length === 0) this.onIdle?.();
  }
}

function shuttingDown(): ApiError {
  return new ApiError(503, "The server is shutting down", { code: "server_shutting_down" });
}

/** One {@link RequestQueue} per model (keyed by the model's resolved path); idle queues are dropped. */
export class QueueSet {
  readonly #queues = new Map<string, RequestQueue>();
  #closed = false;

  constructor(
    readonly concurrency: number,
    readonly maxQueue: number,
  ) {}

  get(key: string): RequestQueue {
    let queue = this.#queues.get(key);
    if (!queue) {
      queue = new RequestQueue(this.concurrency, this.maxQueue, () => {
        if (this.#queues.get(key) === queue) this.#queues.delete(key);
      });
      if (this.#closed) queue.close();
      this.#queues.set(key, queue);
    }
    return queue;
  }

  /** Stats of the queues that are busy now. */
  stats(): Record<string, QueueStats> {
    return Object.fromEntries([...this.#queues].map(([key, q]) => [key, q.stats]));
  }

  close(): void {
    this.#closed = true;
    for (const queue of this.#queues.values()) queue.close();
  }
}
