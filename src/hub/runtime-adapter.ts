import { basename, dirname, resolve } from "node:path";
import { OllmError } from "../errors.js";
import { type MaterializeOptions, materialize } from "./materialize.js";
import type { DownloadProgress } from "./progress.js";
import type { HubSettings } from "./settings.js";

/** The part of the runtime's ResolvedModel a download needs (structural: no import from the runtime). */
export interface ModelToMaterialize {
  reference: string;
  repoId: string | null;
  revision: string | null;
  /** Where the runtime expects the download (`<modelsDir>/<alias or org--name[@rev]>`). */
  downloadPath: string | null;
}

/** The runtime's download event (RuntimeEvent `download`); speed and ETA come through `onProgress`. */
export interface HubDownloadEvent {
  type: "download";
  file: string;
  bytes: number;
  totalBytes: number | null;
}

export interface RuntimeMaterializeOptions {
  modelsDir: string;
  onEvent?: (event: HubDownloadEvent) => void;
  signal?: AbortSignal;
}

export interface HubModelMaterializerOptions
  extends Partial<HubSettings>,
    Pick<MaterializeOptions, "concurrency" | "retries" | "retryDelayMs" | "stallTimeoutMs" | "verify"> {
  /** Every aggregated progress event (bytes, speed, ETA), for a progress bar. */
  onProgress?: (event: DownloadProgress) => void;
}

/**
 * The hub materializer in the shape the runtime's `Materializer` interface expects:
 * `materialize(model, { modelsDir, onEvent, signal }) → directory`. Downloads into `model.downloadPath`
 * (so the runtime's resolver finds it again), or returns an HF cache snapshot that already has it.
 */
export class HubModelMaterializer {
  constructor(private readonly settings: HubModelMaterializerOptions = {}) {}

  async materialize(model: ModelToMaterialize, options: RuntimeMaterializeOptions): Promise<string> {
    if (model.repoId === null)
      throw new OllmError(
        "MODEL_NOT_FOUND",
        `"${model.reference}" is not a Hugging Face model, so it cannot be downloaded`,
      );
    const target = model.downloadPath ? resolve(model.downloadPath) : undefined;
    const s = this.settings;
    const opts: MaterializeOptions = {
      modelsDir: target ? dirname(target) : options.modelsDir,
      localName: target ? basename(target) : undefined,
      revision: model.revision ?? undefined,
      endpoint: s.endpoint,
      token: s.token,
      offline: s.offline,
      hfCacheDir: s.hfCacheDir,
      concurrency: s.concurrency,
      retries: s.retries,
      retryDelayMs: s.retryDelayMs,
      stallTimeoutMs: s.stallTimeoutMs,
      verify: s.verify,
      signal: options.signal,
      onProgress: (e) => {
        s.onProgress?.(e);
        if (e.phase === "download" || e.phase === "done")
          options.onEvent?.({
            type: "download",
            file: e.file ?? "",
            bytes: e.bytesDone,
            totalBytes: e.bytesTotal,
          });
      },
    };
    return (await materialize(model.repoId, opts)).dir;
  }
}
