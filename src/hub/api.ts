import { listFiles, modelInfo } from "@huggingface/hub";
import { OllmError, type OllmErrorCode } from "../errors.js";

/** A file of a repository at one commit, with what the hub says about its content. */
export interface RemoteFile {
  path: string;
  size: number;
  /** git blob id (for LFS files, the id of the pointer file). */
  oid: string | undefined;
  /** sha256 of the content, from the LFS metadata; only for LFS (and Xet) files. */
  sha256: string | undefined;
}

export interface RepoMetadata {
  repoId: string;
  /** The revision asked for ("main" when none was). */
  revision: string;
  /** The commit the revision resolved to. */
  commit: string;
  gated: false | "auto" | "manual";
  private: boolean;
  files: RemoteFile[];
}

export interface HubContext {
  endpoint: string;
  token: string | undefined;
  signal?: AbortSignal;
}

/** An OllmError from a hub exchange: whether retrying can help, whether the hub was reachable at all. */
export class HubError extends OllmError {
  readonly status: number | undefined;
  readonly retryable: boolean;
  readonly unreachable: boolean;

  constructor(
    code: OllmErrorCode,
    message: string,
    options: {
      hint?: string;
      cause?: unknown;
      status?: number;
      retryable?: boolean;
      unreachable?: boolean;
    } = {},
  ) {
    super(code, message, options);
    this.status = options.status;
    this.retryable = options.retryable ?? false;
    this.unreachable = options.unreachable ?? false;
  }
}

export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "";
  }
}

/** The URL the hub serves a file's bytes from (same form as @huggingface/hub's fileDownloadInfo). */
export function resolveUrl(endpoint: string, repoId: string, revision: string, path: string): string {
  const encodedPath = path.split("/").map(encodeURIComponent).join("/");
  return `${endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${encodedPath}`;
}

interface ErrorContext {
  endpoint: string;
  repoId: string;
  revision: string;
  hasToken: boolean;
  file?: string;
}

async function readErrorMessage(res: Response): Promise<string> {
  const header = res.headers.get("x-error-message");
  let text = "";
  try {
    text = await res.text();
  } catch {
    // body unreadable: the status says enough
  }
  if (header) return header;
  try {
    const json = JSON.parse(text) as { error?: unknown; message?: unknown };
    const message = json.error ?? json.message;
    if (typeof message === "string") return message;
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}

/** Turns a failed hub response into an OllmError a user can act on (401/403/404 each say what to do). */
export async function hubHttpError(res: Response, ctx: ErrorContext): Promise<HubError> {
  const status = res.status;
  const errorCode = res.headers.get("x-error-code") ?? "";
  const message = await readErrorMessage(res);
  const repoUrl = `${ctx.endpoint}/${ctx.repoId}`;
  const what = ctx.file ? `${ctx.file} of ${ctx.repoId}` : ctx.repoId;
  const tokenHint = "set HF_TOKEN (or run `huggingface-cli login`) with a token that can read it";
  const detail = message ? ` (hub says: ${message})` : "";

  if (errorCode === "RevisionNotFound")
    return new HubError(
      "MODEL_NOT_FOUND",
      `revision "${ctx.revision}" of ${ctx.repoId} does not exist${detail}`,
      {
        status,
        hint: `check the branch, tag or commit at ${repoUrl}`,
      },
    );
  if (errorCode === "EntryNotFound")
    return new HubError("MODEL_NOT_FOUND", `${what} does not exist at revision ${ctx.revision}${detail}`, {
      status,
    });
  const gated = errorCode === "GatedRepo" || /restricted|gated/i.test(message);
  if (gated && (status === 401 || status === 403)) {
    return ctx.hasToken
      ? new HubError(
          "AUTH_REQUIRED",
          `${ctx.repoId} is a gated model and your token has no access to it yet (HTTP ${status})${detail}`,
          {
            status,
            hint: `accept the licence at ${repoUrl} while logged in as the token's owner, then retry`,
          },
        )
      : new HubError(
          "AUTH_REQUIRED",
          `${ctx.repoId} is a gated model: it needs an access token (HTTP ${status})`,
          {
            status,
            hint: `accept the licence at ${repoUrl}, then ${tokenHint}`,
          },
        );
  }
  if (status === 401) {
    if (ctx.hasToken)
      return new HubError(
        "AUTH_REQUIRED",
        `the hub rejected your access token for ${what} (HTTP 401)${detail}`,
        {
          status,
          hint: "check HF_TOKEN (or the token file written by `huggingface-cli login`); create one at https://huggingface.co/settings/tokens",
        },
      );
    if (errorCode === "RepoNotFound")
      // The hub answers 401 both for repos that do not exist and for private ones seen without a token.
      return new HubError("MODEL_NOT_FOUND", `${ctx.repoId} was not found on ${ctx.endpoint}${detail}`, {
        status,
        hint: `check the name; if it is a private or gated repository, ${tokenHint}`,
      });
    return new HubError("AUTH_REQUIRED", `${what} needs authentication (HTTP 401)${detail}`, {
      status,
      hint: tokenHint,
    });
  }
  if (status === 403)
    return new HubError("AUTH_REQUIRED", `your token may not read ${what} (HTTP 403)${detail}`, {
      status,
      hint: `if it is gated, accept the licence at ${repoUrl}; a fine-grained token needs read access to this repository`,
    });
  if (status === 404)
    return new HubError(
      "MODEL_NOT_FOUND",
      `${ctx.file ? what : ctx.repoId} was not found on ${ctx.endpoint}${detail}`,
      {
        status,
        hint: ctx.hasToken
          ? "check the name (and that your token can see the repository)"
          : `check the name; ${tokenHint}`,
      },
    );
  const retryable = status === 408 || status === 429 || status >= 500;
  return new HubError("IO_ERROR", `the hub answered HTTP ${status} for ${what}${detail}`, {
    status,
    retryable,
  });
}

export function isAbort(error: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true || (error as Error)?.name === "AbortError";
}

export function cancelledError(cause?: unknown): OllmError {
  return new OllmError("CANCELLED", "download cancelled", { cause });
}

export function unreachableError(endpoint: string, url: string, error: unknown): HubError {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const reason = cause?.code ?? cause?.message ?? (error as Error).message;
  return new HubError("IO_ERROR", `cannot reach ${originOf(url) || endpoint}: ${reason}`, {
    cause: error,
    retryable: true,
    unreachable: true,
    hint: "check the network (and HF_ENDPOINT); use --offline / HF_HUB_OFFLINE=1 to run from local copies",
  });
}

/**
 * The `fetch` handed to @huggingface/hub: adds the token (only towards the hub's own origin), wires the
 * abort signal, and turns failures into OllmErrors before the library sees them.
 */
export function hubFetch(ctx: HubContext, errorContext: ErrorContext): typeof fetch {
  const endpointOrigin = originOf(ctx.endpoint);
  return async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const headers = new Headers(init?.headers);
    headers.delete("authorization");
    if (ctx.token && originOf(url) === endpointOrigin) headers.set("authorization", `Bearer ${ctx.token}`);
    let res: Response;
    try {
      res = await fetch(url, { ...init, headers, signal: ctx.signal });
    } catch (error) {
      if (isAbort(error, ctx.signal)) throw cancelledError(error);
      throw unreachableError(ctx.endpoint, url, error);
    }
    if (!res.ok) throw await hubHttpError(res, errorContext);
    return res;
  };
}

/** Resolves the revision to a commit and lists the repository's files with sizes and hashes. */
export async function fetchRepoMetadata(
  repoId: string,
  revision: string | undefined,
  ctx: HubContext,
): Promise<RepoMetadata> {
  const rev = revision ?? "main";
  const errorContext: ErrorContext = { endpoint: ctx.endpoint, repoId, revision: rev, hasToken: !!ctx.token };
  const fetchImpl = hubFetch(ctx, errorContext);
  const info = await modelInfo({
    name: repoId,
    revision: rev,
    hubUrl: ctx.endpoint,
    additionalFields: ["sha"],
    fetch: fetchImpl,
  });
  const commit = (info as { sha?: unknown }).sha;
  if (typeof commit !== "string" || commit === "")
    throw new HubError("IO_ERROR", `the hub did not say which commit ${repoId}@${rev} is`, {
      retryable: true,
    });
  const files: RemoteFile[] = [];
  for await (const entry of listFiles({
    repo: { type: "model", name: repoId },
    revision: commit,
    recursive: true,
    hubUrl: ctx.endpoint,
    fetch: fetchImpl,
  })) {
    if (entry.type !== "file") continue;
    files.push({ path: entry.path, size: entry.size, oid: entry.oid, sha256: entry.lfs?.oid });
  }
  return {
    repoId,
    revision: rev,
    commit,
    gated: (info.gated ?? false) as RepoMetadata["gated"],
    private: info.private === true,
    files,
  };
}
