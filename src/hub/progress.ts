/** Where a materialization is: asking the hub, checking local files, downloading, finished. */
export type DownloadPhase = "resolve" | "check" | "download" | "done";

/** One progress event, aggregated over all files of the model (the CLI draws one bar from it). */
export interface DownloadProgress {
  phase: DownloadPhase;
  repo: string;
  /** The file that just moved (started, advanced, finished), when there is one. */
  file?: string;
  /** Bytes already in place among the files being fetched (resumed prefixes count). */
  bytesDone: number;
  /** Bytes of all files being fetched (files reused as they are do not count). */
  bytesTotal: number;
  /** Network speed over the last few seconds. */
  bytesPerSecond: number;
  /** Seconds left at the current speed; undefined while the speed is unknown. */
  etaSeconds: number | undefined;
  filesDone: number;
  filesTotal: number;
}

const WINDOW_MS = 5_000;
const MIN_INTERVAL_MS = 100;

/** Aggregates per-file byte counts into throttled progress events with speed and ETA. */
export class ProgressTracker {
  private readonly fileBytes = new Map<string, number>();
  private readonly samples: Array<{ t: number; bytes: number }> = [];
  private networkBytes = 0;
  private lastEmit = Number.NEGATIVE_INFINITY;
  private bytesTotal = 0;
  private filesTotal = 0;
  private filesDone = 0;

  constructor(
    private readonly repo: string,
    private readonly emit: ((event: DownloadProgress) => void) | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  setTotals(bytesTotal: number, filesTotal: number): void {
    this.bytesTotal = bytesTotal;
    this.filesTotal = filesTotal;
  }

  get done(): number {
    let sum = 0;
    for (const v of this.fileBytes.values()) sum += v;
    return sum;
  }

  /** Sets how many bytes of `file` are in place; `networkDelta` are the bytes that just came over the wire. */
  update(file: string, bytes: number, networkDelta: number): void {
    this.fileBytes.set(file, bytes);
    if (networkDelta > 0) {
      this.networkBytes += networkDelta;
      this.samples.push({ t: this.now(), bytes: this.networkBytes });
    }
    this.event("download", file, false);
  }

  fileFinished(file: string, size: number): void {
    this.fileBytes.set(file, size);
    this.filesDone++;
    this.event("download", file, true);
  }

  speed(): number {
    const t = this.now();
    while (this.samples.length > 2 && t - this.samples[0].t > WINDOW_MS) this.samples.shift();
    if (this.samples.length < 2) return 0;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const dt = Math.max(t, last.t) - first.t;
    return dt > 0 ? ((last.bytes - first.bytes) * 1000) / dt : 0;
  }

  /** Emits an event now (`force`) or when the last one is old enough. */
  event(phase: DownloadPhase, file?: string, force = true): void {
    if (!this.emit) return;
    const t = this.now();
    if (!force && t - this.lastEmit < MIN_INTERVAL_MS) return;
    this.lastEmit = t;
    const bytesDone = this.done;
    const bytesPerSecond = this.speed();
    const left = Math.max(0, this.bytesTotal - bytesDone);
    const etaSeconds = left === 0 ? 0 : bytesPerSecond > 0 ? left / bytesPerSecond : undefined;
    const event: DownloadProgress = {
      phase,
      repo: this.repo,
      bytesDone,
      bytesTotal: this.bytesTotal,
      bytesPerSecond,
      etaSeconds,
      filesDone: this.filesDone,
      filesTotal: this.filesTotal,
    };
    if (file !== undefined) event.file = file;
    try {
      this.emit(event);
    } catch {
      // a failing renderer must not break the download
    }
  }
}

export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** One line for a terminal: `[#####.....]  45% 1.2 GB / 2.7 GB  34.5 MB/s  ETA 44s  (3/7 files)`. */
export function formatProgress(e: DownloadProgress, width = 24): string {
  if (e.phase === "resolve") return `${e.repo}: resolving on the hub…`;
  if (e.phase === "check") return `${e.repo}: checking local files${e.file ? ` (${e.file})` : ""}…`;
  const ratio = e.bytesTotal > 0 ? Math.min(1, e.bytesDone / e.bytesTotal) : 1;
  const filled = Math.round(ratio * width);
  const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
  const pct = `${Math.floor(ratio * 100)}%`.padStart(4);
  const eta = e.etaSeconds === undefined ? "ETA --" : `ETA ${formatDuration(e.etaSeconds)}`;
  const speed = `${formatBytes(e.bytesPerSecond)}/s`;
  const files = `(${e.filesDone}/${e.filesTotal} files)`;
  if (e.phase === "done") return `${e.repo}: ${bar} ${pct} ${formatBytes(e.bytesTotal)} done ${files}`;
  return `${e.repo}: ${bar} ${pct} ${formatBytes(e.bytesDone)} / ${formatBytes(e.bytesTotal)}  ${speed}  ${eta}  ${files}`;
}
