/**
 * Renders the client's progress events: a download bar, a spinner while weights load, and one while a
 * long prompt is prefilled. Bars and spinners are transient lines on stderr, drawn only on a terminal
 * (and not with --quiet); --verbose adds a permanent line per step, on a terminal or not.
 */
import { type DownloadProgress, formatProgress } from "../hub/progress.js";
import type { RuntimeEvent } from "../runtime/events.js";
import type { Ui } from "./ui.js";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
/** A prefill shorter than this shows no spinner. */
const PREFILL_SPINNER_DELAY_MS = 400;

interface Activity {
  label: string;
  start: number;
  /** Not drawn before this time (short steps do not flash). */
  showAfter: number;
}

export class ProgressRenderer {
  readonly #ui: Ui;
  #activity: Activity | undefined;
  #timer: NodeJS.Timeout | undefined;
  #frame = 0;
  #downloading = false;

  constructor(ui: Ui) {
    this.#ui = ui;
  }

  /** A runtime event of the client. */
  onEvent = (event: RuntimeEvent): void => {
    const ui = this.#ui;
    switch (event.type) {
      case "notice":
        ui.warn(event.message);
        break;
      case "status":
        ui.detail(event.message);
        if (this.#activity) this.#activity.label = event.message.replace(/…$/, "");
        break;
      case "resolve":
        ui.detail(
          `resolved ${event.reference}${event.path ? ` → ${event.path}` : ""}${event.materialized ? "" : " (not downloaded yet)"}`,
        );
        break;
      case "load-start":
        this.#start(`Loading ${event.model}`, 0);
        break;
      case "load-done":
        this.#stop();
        if (!event.cached) ui.detail(`loaded ${event.model} in ${Math.round(event.ms)} ms`);
        break;
      case "prefill":
        ui.detail(
          `prefill: ${event.tokens} prompt tokens${event.cachedTokens > 0 ? ` (${event.cachedTokens} reused from the cache)` : ""}`,
        );
        this.#start(`Reading the prompt (${event.tokens} tokens)`, PREFILL_SPINNER_DELAY_MS);
        break;
      case "first-token":
        this.#stop();
        ui.detail(`first token after ${Math.round(event.ms)} ms`);
        break;
      case "unload":
        ui.detail(`unloaded ${event.model}`);
        break;
      default:
        break;
    }
  };

  /** A download progress event of the hub materializer. */
  onDownload = (event: DownloadProgress): void => {
    const ui = this.#ui;
    if (event.phase === "done") {
      // The finished bar stays on a terminal; elsewhere it is a --verbose detail.
      if (ui.live && this.#downloading) ui.info(formatProgress(event));
      else ui.detail(formatProgress(event));
      this.#downloading = false;
      return;
    }
    if (!this.#downloading && event.phase === "download")
      ui.detail(`downloading ${event.repo}: ${event.filesTotal} files, ${event.bytesTotal} bytes`);
    if (event.phase === "download") this.#downloading = true;
    if (ui.live) ui.transient(formatProgress(event));
    else if (event.phase !== "download") ui.detail(formatProgress(event));
  };

  #start(label: string, delayMs: number): void {
    const now = Date.now();
    this.#activity = { label, start: now, showAfter: now + delayMs };
    if (!this.#ui.live) return;
    this.#timer ??= setInterval(() => this.#draw(), 100);
    this.#timer.unref();
    if (delayMs === 0) this.#draw();
  }

  #draw(): void {
    const a = this.#activity;
    if (!a) return;
    const now = Date.now();
    if (now < a.showAfter) return;
    this.#frame = (this.#frame + 1) % FRAMES.length;
    const seconds = ((now - a.start) / 1000).toFixed(1);
    this.#ui.transient(
      `${this.#ui.style("cyan", FRAMES[this.#frame])} ${a.label}… ${this.#ui.style("dim", `${seconds}s`)}`,
    );
  }

  #stop(): void {
    this.#activity = undefined;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#ui.clearTransient();
  }

  /** Stops any spinner and clears the line. */
  close(): void {
    this.#stop();
  }
}
