export interface StreamDecoder {
  /** Adds one generated id; returns the text it makes final ("" while it is held back). */
  push(id: number): string;
  /** Returns whatever is still held back; the concatenation of all deltas then equals decode(all ids). */
  flush(): string;
}

/** What the stream decoder needs from the tokenizer. */
export interface StreamSource {
  /** decode() of a list of ids, as if they were the whole sequence. */
  decode(ids: number[]): string;
  /** The token string of an id when decode() keeps it (known id, not a skipped special token). */
  visibleToken(id: number): string | undefined;
  isByteToken(token: string): boolean;
  byteFallback: boolean;
  cleanUp: boolean;
}

const REPLACEMENT = "\uFFFD";
// Every pattern of the clean-up starts with a space; a text ending in a prefix of one may still change.
// " n ' t" is a cascade: " ' " becomes "'", which then makes " n't".
const CLEANUP_PATTERNS = [" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're", " n ' t"];

/**
 * Incremental detokenization in the manner of text-generation-inference: decode a window of recent ids and
 * emit what grew since the last call. The window starts at an "anchor" token whose text was already emitted;
 * everything decoded before it is final. Text is held back while it may still change: an incomplete UTF-8
 * sequence (trailing U+FFFD), an open byte-fallback run (decoded all-or-nothing), or the start of a
 * clean-up pattern.
 */
export class WindowStreamDecoder implements StreamDecoder {
  private readonly ids: number[] = [];
  private anchor = 0;
  /** Text of ids[anchor..] already emitted, as decoded in this window. */
  private emitted = "";
  /** All text returned so far. */
  private sent = "";

  constructor(private readonly source: StreamSource) {}

  push(id: number): string {
    this.source.visibleToken(id); // rejects a bad id before it enters the state
    this.ids.push(id);
    return this.step(false);
  }

  /** Ends the stream: held-back text is released even if more ids could have changed it. */
  flush(): string {
    // One full decode settles the end exactly; the window is only a shortcut for the steps before.
    const full = this.source.decode(this.ids);
    if (!full.startsWith(this.sent)) return this.step(true);
    const delta = full.slice(this.sent.length);
    this.sent = full;
    this.emitted = this.source.decode(this.ids.slice(this.anchor));
    return delta;
  }

  private step(final: boolean): string {
    const window = this.ids.slice(this.anchor);
    const text = this.source.decode(window);
    const stable = final ? text.length : this.stableLength(text, window);
    if (stable <= this.emitted.length || !text.startsWith(this.emitted)) return "";
    const delta = text.slice(this.emitted.length, stable);
    this.emitted = text.slice(0, stable);
    this.sent += delta;
    if (!final && stable === text.length) this.moveAnchor();
    return delta;
  }

  /** Length of the prefix of `text` that no later id can change. */
  private stableLength(text: string, window: number[]): number {
    let stable = text.length;
    if (this.source.byteFallback) {
      const runStart = this.openByteRun(window);
      if (runStart < window.length) {
        const before = this.source.decode(window.slice(0, runStart));
        stable = text.startsWith(before) ? before.length : 0;
      }
    }
    while (stable > 0 && text[stable - 1] === REPLACEMENT) stable--;
    if (this.source.cleanUp) stable -= heldCleanUpTail(text.slice(0, stable));
    return stable;
  }

  /** Index where the trailing run of byte tokens starts (skipped tokens do not end a run). */
  private openByteRun(window: number[]): number {
    let start = window.length;
    for (let i = window.length - 1; i >= 0; i--) {
      const token = this.source.visibleToken(window[i]);
      if (token === undefined) continue;
      if (!this.source.isByteToken(token)) break;
      start = i;
    }
    return start;
  }

  /**
   * Everything is emitted: restart the window at the last token if it can serve as an anchor, i.e. its
   * text alone is whole (not empty, not only spaces that a Strip decoder would eat, no broken UTF-8, not a
   * byte token) so the tokens after it decode the same with or without what came before.
   */
  private moveAnchor(): void {
    const last = this.ids.length - 1;
    if (last <= this.anchor) return;
    const token = this.source.visibleToken(this.ids[last]);
    if (token === undefined || (this.source.byteFallback && this.source.isByteToken(token))) return;
    const alone = this.source.decode([this.ids[last]]);
    if (alone.trim() === "" || alone.includes(REPLACEMENT)) return;
    this.anchor = last;
    this.emitted = alone;
  }
}

function heldCleanUpTail(text: string): number {
  for (let k = 6; k >= 1; k--) {
    const tail = text.slice(-k);
    if (tail.length === k && CLEANUP_PATTERNS.some((p) => p.startsWith(tail))) return k;
  }
  return 0;
}
