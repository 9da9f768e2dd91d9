/**
 * Progress of the runtime, as events a surface renders (bars and lines in the CLI, SSE events in the
 * server). Every event has a `type`; new types may be added, so consumers ignore types they don't know.
 */
export type RuntimeEvent =
  /** A line for people ("Loading llama3-8B-chat…"). */
  | { type: "status"; message: string }
  /**
   * A warning for people: the runtime did something else than the config suggests, e.g. `backend: "auto"`
   * runs on the CPU although a GPU is there (its memory size is unknown, or WebGPU failed to open).
   */
  | { type: "notice"; message: string }
  /** A model is being resolved or materialized. */
  | { type: "resolve"; reference: string; materialized: boolean; path: string | null }
  /** Bytes of a download (emitted by materializers). */
  | { type: "download"; file: string; bytes: number; totalBytes: number | null }
  /** Loading a runtime began. */
  | { type: "load-start"; model: string; path: string }
  /** Loading finished (`cached`: an already loaded runtime was reused). */
  | { type: "load-done"; model: string; path: string; ms: number; cached: boolean }
  /** A runtime was unloaded and its memory freed. */
  | { type: "unload"; model: string }
  /** Prefill starts: `tokens` to compute, `cachedTokens` reused from the session's KV cache. */
  | { type: "prefill"; tokens: number; cachedTokens: number }
  /** The first token was generated. */
  | { type: "first-token"; ms: number };

/** A callback receiving runtime events. */
export type RuntimeEventListener = (event: RuntimeEvent) => void;
