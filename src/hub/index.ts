/**
 * Model materialization from the Hugging Face Hub: which files a model needs, where they live, how
 * they are fetched (resumable, verified, parallel) and how local copies are found offline.
 */
export {
  fetchRepoMetadata,
  HubError,
  type RemoteFile,
  type RepoMetadata,
  resolveUrl,
} from "./api.js";
export { ensureFreeSpace, freeBytes } from "./disk.js";
export { type DownloadTarget, downloadVerified, hashFile } from "./download.js";
export { hfCacheRepoDir, hfCacheSnapshot } from "./hf-cache.js";
export { findLocalCopy, findLocalModel, type LocalLookupOptions, type LocalModel } from "./local.js";
export { MANIFEST_NAME, type Manifest, type ManifestFile, readManifest } from "./manifest.js";
export {
  createMaterializer,
  type HubMaterializer,
  INCOMPLETE_MARKER,
  type MaterializeOptions,
  type MaterializeResult,
  materialize,
} from "./materialize.js";
export {
  type DownloadPhase,
  type DownloadProgress,
  formatBytes,
  formatProgress,
  ProgressTracker,
} from "./progress.js";
export { localDirName, parseRepoReference, type RepoReference } from "./reference.js";
export { type HubDownloadEvent, HubModelMaterializer, type ModelToMaterialize } from "./runtime-adapter.js";
export { type FileSelection, type RepoFileEntry, selectFiles, shardsFromIndex } from "./select.js";
export { DEFAULT_ENDPOINT, type HubSettings, hubSettingsFromEnv } from "./settings.js";
