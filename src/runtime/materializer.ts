import { OllmError } from "../errors.js";
import type { RuntimeEvent } from "./events.js";
import type { ResolvedModel } from "./resolved-model.js";

/** What a materializer is given besides the model. */
export interface MaterializeOptions {
  /** The models directory the download belongs in. */
  modelsDir: string;
  /** Progress events (download progress, verification…). */
  onEvent?: (event: RuntimeEvent) => void;
  signal?: AbortSignal;
}

/**
 * Makes a model that is not on disk available locally (the Hugging Face download issue implements it:
 * safetensors-only file selection, resume, verification). Returns the materialized directory; the
 * client resolves the reference again afterwards, so the directory must be one the resolver finds
 * (`model.downloadPath`, or a Hugging Face cache snapshot under the models dir).
 */
export interface Materializer {
  materialize(model: ResolvedModel, options: MaterializeOptions): Promise<string>;
}

/** The reference as the download command needs it. */
function downloadCommand(model: ResolvedModel): string {
  return `ollm models download ${model.reference}`;
}

/**
 * The default: never downloads. Any model that is not on disk fails with MODEL_NOT_FOUND and the command
 * that downloads it.
 */
export class LocalOnlyMaterializer implements Materializer {
  async materialize(model: ResolvedModel): Promise<string> {
    throw notMaterializedError(model);
  }
}

/** The MODEL_NOT_FOUND error for a model that is not on disk, with the command that fixes it. */
export function notMaterializedError(model: ResolvedModel): OllmError {
  if (model.repoId === null)
    return new OllmError(
      "MODEL_NOT_FOUND",
      `Model "${model.reference}" is not available: ${model.issues.map((i) => i.message).join("; ")}`,
      {
        hint: "Reinstall the package, or use another model.",
      },
    );
  return new OllmError(
    "MODEL_NOT_FOUND",
    `Model "${model.reference}" (${model.repoId}) is not downloaded${model.downloadPath ? `: expected it in ${model.downloadPath}` : ""}`,
    { hint: `Download it with: ${downloadCommand(model)}` },
  );
}
