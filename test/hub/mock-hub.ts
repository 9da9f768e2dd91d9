/**
 * A mock of the Hugging Face Hub on 127.0.0.1 serving exactly the endpoints the hub module uses:
 * - GET /api/models/<repo>/revision/<rev>?expand=…   model info (sha, gated, private, siblings; blobs=true adds sizes/LFS)
 * - GET /api/models/<repo>/tree/<rev>[/<path>]?recursive=&expand=&cursor=   file listing with LFS metadata,
 *   paginated with a `Link: <…>; rel="next"` header like the real hub
 * - GET|HEAD /<repo>/resolve/<rev>/<path>   non-LFS files served in place (ETag = git blob id); LFS files
 *   answered with a 302 to a second server on another port (another origin, like the hub's CDN) with
 *   X-Linked-Etag / X-Linked-Size / X-Repo-Commit headers
 * - GET|HEAD /cdn/<sha256>   the "CDN": bytes with Range support
 * Access rules follow the real hub: unknown or private repos → 401 RepoNotFound without a token, 404 with
 * one; gated repos list metadata publicly but answer file downloads with 401/403 GatedRepo; an unknown
 * token → 401. Faults (drop the connection, corrupt a byte, stall, ignore Range, throttle) are injectable.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Fastify, { type FastifyInstance } from "fastify";

export type FileContent = Uint8Array | string;

export interface MockRepoSpec {
  id: string;
  /** Files of `main`. */
  files: Record<string, FileContent>;
  /** Other branches/tags and their files. */
  revisions?: Record<string, Record<string, FileContent>>;
  gated?: boolean;
  private?: boolean;
  /** Tokens with access to this (gated or private) repo. */
  grantedTokens?: string[];
  /** Which files are stored in LFS (default: weights and other binaries). */
  lfs?: (path: string) => boolean;
  /** Another id that answers with a relative 307 to this one (a renamed repo). */
  renamedFrom?: string;
}

export interface MockHubOptions {
  repos: MockRepoSpec[];
  /** Tokens the hub knows; any other token is rejected with 401. */
  validTokens?: string[];
  /** Entries per page of the tree listing. */
  pageSize?: number;
  /** Per-connection throttle of file bodies (bytes/s); 0 = as fast as possible. */
  bytesPerSecond?: number;
  chunkSize?: number;
}

export interface LoggedRequest {
  server: "hub" | "cdn";
  method: string;
  url: string;
  /** Repository path of the file for resolve/CDN requests. */
  file?: string;
  range?: string;
  authorization?: string;
  status?: number;
}

interface StoredFile {
  path: string;
  content: Buffer;
  sha256: string;
  gitOid: string;
  lfs: boolean;
  pointer: string;
  pointerOid: string;
}

interface Commit {
  sha: string;
  files: Map<string, StoredFile>;
}

interface RepoState {
  spec: MockRepoSpec;
  commits: Map<string, Commit>;
  refs: Map<string, string>;
}

interface Fault {
  kind: "drop" | "corrupt" | "stall" | "status";
  file: string;
  /** Absolute byte offset in the file where the fault hits. */
  at: number;
  times: number;
}

const DEFAULT_LFS = /\.(safetensors|bin|pt|pth|ckpt|gguf|f32|onnx|msgpack|h5)$/;

function gitBlobOid(content: Buffer): string {
  return createHash("sha1").update(`blob ${content.byteLength}\0`).update(content).digest("hex");
}

function storeFile(path: string, value: FileContent, lfs: boolean): StoredFile {
  const content = typeof value === "string" ? Buffer.from(value) : Buffer.from(value);
  const sha256 = createHash("sha256").update(content).digest("hex");
  const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${content.byteLength}\n`;
  return {
    path,
    content,
    sha256,
    gitOid: gitBlobOid(content),
    lfs,
    pointer,
    pointerOid: gitBlobOid(Buffer.from(pointer)),
  };
}

/** Reads a fixture model directory (test/fixtures/models/tiny-*) into a file map. */
export function fixtureFiles(dir: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isFile()) out[name] = readFileSync(p);
  }
  return out;
}

export class MockHub {
  readonly requests: LoggedRequest[] = [];
  /** Most file bodies being sent at the same time. */
  maxConcurrentTransfers = 0;
  bytesPerSecond: number;
  ignoreRange = false;
  /** Statuses the next API requests answer with (one per request), e.g. [503]. */
  failApi: number[] = [];
  private activeTransfers = 0;
  private faults: Fault[] = [];
  private readonly repos = new Map<string, RepoState>();
  private readonly renamed = new Map<string, string>();
  private readonly bySha = new Map<string, StoredFile>();
  private hub!: FastifyInstance;
  private cdn!: FastifyInstance;
  endpoint = "";
  cdnEndpoint = "";

  private constructor(private readonly options: MockHubOptions) {
    this.bytesPerSecond = options.bytesPerSecond ?? 0;
    for (const spec of options.repos) this.addRepo(spec);
  }

  static async start(options: MockHubOptions): Promise<MockHub> {
    const hub = new MockHub(options);
    await hub.listen();
    return hub;
  }

  addRepo(spec: MockRepoSpec): void {
    const isLfs = spec.lfs ?? ((p: string) => DEFAULT_LFS.test(p));
    const state: RepoState = { spec, commits: new Map(), refs: new Map() };
    const revisions = { main: spec.files, ...(spec.revisions ?? {}) };
    for (const [name, files] of Object.entries(revisions)) {
      const stored = new Map<string, StoredFile>();
      for (const [path, value] of Object.entries(files)) {
        const f = storeFile(path, value, isLfs(path));
        stored.set(path, f);
        this.bySha.set(f.sha256, f);
      }
      const h = createHash("sha1").update(`${spec.id}\n${name}\n`);
      for (const f of [...stored.values()].sort((a, b) => a.path.localeCompare(b.path)))
        h.update(`${f.path}:${f.sha256}\n`);
      const sha = h.digest("hex");
      state.commits.set(sha, { sha, files: stored });
      state.refs.set(name, sha);
    }
    this.repos.set(spec.id, state);
    if (spec.renamedFrom) this.renamed.set(spec.renamedFrom, spec.id);
  }

  /** The commit a revision of a repo points to. */
  commitOf(repoId: string, revision = "main"): string {
    const sha = this.repos.get(repoId)?.refs.get(revision);
    if (!sha) throw new Error(`mock: no revision ${revision} of ${repoId}`);
    return sha;
  }

  /** Drops the connection once `file` has been sent up to byte `at` (absolute offset). */
  dropOnce(file: string, at: number, times = 1): void {
    this.faults.push({ kind: "drop", file, at, times });
  }

  /** Flips the byte at `at` in the next `times` responses for `file`. */
  corrupt(file: string, at: number, times = 1): void {
    this.faults.push({ kind: "corrupt", file, at, times });
  }

  /** Answers the next `times` requests for the bytes of `file` with `status`. */
  failFile(file: string, status: number, times = 1): void {
    this.faults.push({ kind: "status", file, at: status, times });
  }

  /** Stops sending (without closing) at byte `at` of `file`, once. */
  stallOnce(file: string, at: number): void {
    this.faults.push({ kind: "stall", file, at, times: 1 });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** Requests for the bytes of a file (resolve and CDN). */
  fileRequests(file: string, server?: "hub" | "cdn"): LoggedRequest[] {
    return this.requests.filter((r) => r.file === file && (server === undefined || r.server === server));
  }

  /** Paths of every file whose bytes were requested. */
  requestedFiles(): string[] {
    return [
      ...new Set(this.requests.filter((r) => r.file !== undefined).map((r) => r.file as string)),
    ].sort();
  }

  async close(): Promise<void> {
    await Promise.all([this.hub.close(), this.cdn.close()]);
  }

  private async listen(): Promise<void> {
    this.hub = Fastify({ forceCloseConnections: true });
    this.cdn = Fastify({ forceCloseConnections: true });
    this.hub.route({
      method: ["GET", "HEAD"],
      url: "/*",
      handler: async (req, reply) => {
        reply.hijack();
        await this.handleHub(req.raw, reply.raw);
      },
    });
    this.cdn.route({
      method: ["GET", "HEAD"],
      url: "/*",
      handler: async (req, reply) => {
        reply.hijack();
        await this.handleCdn(req.raw, reply.raw);
      },
    });
    this.endpoint = await this.hub.listen({ host: "127.0.0.1", port: 0 });
    this.cdnEndpoint = await this.cdn.listen({ host: "127.0.0.1", port: 0 });
  }

  private log(server: "hub" | "cdn", req: IncomingMessage, file?: string): LoggedRequest {
    const entry: LoggedRequest = { server, method: req.method ?? "GET", url: req.url ?? "" };
    if (file !== undefined) entry.file = file;
    if (req.headers.range) entry.range = req.headers.range;
    if (req.headers.authorization) entry.authorization = req.headers.authorization;
    this.requests.push(entry);
    return entry;
  }

  private sendJson(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  private sendError(res: ServerResponse, status: number, code: string | undefined, message: string): void {
    const headers: Record<string, string> = { "x-error-message": message };
    if (code) headers["x-error-code"] = code;
    this.sendJson(res, status, { error: message }, headers);
  }

  /** The access rule of the real hub for `repoId`; undefined when allowed. */
  private denied(
    repoId: string,
    req: IncomingMessage,
    forFiles: boolean,
  ): { status: number; code?: string; message: string } | undefined {
    const auth = req.headers.authorization;
    const token = auth?.startsWith("Bearer ") ? auth.slice(7) : undefined;
    if (token !== undefined && !(this.options.validTokens ?? []).includes(token))
      return { status: 401, message: "Invalid credentials in Authorization header" };
    const repo = this.repos.get(repoId);
    const granted = token !== undefined && (repo?.spec.grantedTokens ?? []).includes(token);
    if (!repo || (repo.spec.private && !granted))
      return {
        status: token ? 404 : 401,
        code: "RepoNotFound",
        message: "Repository not found",
      };
    if (repo.spec.gated && forFiles && !granted) {
      return token
        ? {
            status: 403,
            code: "GatedRepo",
            message: `Access to model ${repoId} is restricted and you are not in the authorized list. Visit https://huggingface.co/${repoId} to ask for access.`,
          }
        : {
            status: 401,
            code: "GatedRepo",
            message: `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
          };
    }
    return undefined;
  }

  private commitFor(repo: RepoState, revision: string): Commit | undefined {
    const rev = revision === "HEAD" ? "main" : revision;
    const sha = repo.refs.get(rev) ?? (repo.commits.has(rev) ? rev : undefined);
    return sha ? repo.commits.get(sha) : undefined;
  }

  /** Splits `<repo>/<keyword>/<rest>` where the repo id has one or two segments. */
  private splitRepo(segments: string[], keyword: string): { repoId: string; rest: string[] } | undefined {
    for (const n of [2, 1]) {
      if (segments[n] === keyword && segments.length > n + 1)
        return { repoId: segments.slice(0, n).join("/"), rest: segments.slice(n + 1) };
    }
    return undefined;
  }

  private async handleHub(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.endpoint);
    const segments = url.pathname
      .split("/")
      .slice(1)
      .map((s) => decodeURIComponent(s));
    if (segments[0] === "api" && segments[1] === "models") {
      this.log("hub", req);
      const failure = this.failApi.shift();
      if (failure !== undefined) return this.sendError(res, failure, undefined, "Service unavailable");
      const parts = segments.slice(2);
      const from = parts.slice(0, 2).join("/");
      const to = this.renamed.get(from);
      if (to) {
        res.writeHead(307, {
          location: `/api/models/${to}${url.pathname.slice(`/api/models/${from}`.length)}${url.search}`,
        });
        res.end();
        return;
      }
      const info = this.splitRepo(parts, "revision");
      if (info) return this.modelInfo(req, res, info.repoId, info.rest.join("/"), url);
      const tree = this.splitRepo(parts, "tree");
      if (tree) return this.tree(req, res, tree.repoId, tree.rest[0], tree.rest.slice(1).join("/"), url);
      if (parts.length >= 1 && parts.length <= 2)
        return this.modelInfo(req, res, parts.join("/"), "main", url);
      return this.sendError(res, 404, undefined, "Not found");
    }
    const resolve = this.splitRepo(segments, "resolve");
    if (resolve && resolve.rest.length >= 2) {
      const [revision, ...pathParts] = resolve.rest;
      const path = pathParts.join("/");
      const entry = this.log("hub", req, path);
      const target = this.renamed.get(resolve.repoId);
      if (target) {
        // Renamed repos answer with a relative redirect to the new name (same origin: the token stays).
        entry.status = 307;
        res.writeHead(307, {
          location: `/${target}/resolve/${encodeURIComponent(revision)}/${pathParts.map(encodeURIComponent).join("/")}`,
        });
        res.end();
        return;
      }
      return this.resolveFile(req, res, resolve.repoId, revision, path, entry);
    }
    this.log("hub", req);
    this.sendError(res, 404, undefined, "Not found");
  }

  private modelInfo(req: IncomingMessage, res: ServerResponse, repoId: string, revision: string, url: URL) {
    const denial = this.denied(repoId, req, false);
    if (denial) return this.sendError(res, denial.status, denial.code, denial.message);
    const repo = this.repos.get(repoId)!;
    const commit = this.commitFor(repo, revision);
    if (!commit) return this.sendError(res, 404, "RevisionNotFound", `Invalid rev id: ${revision}`);
    const expand = url.searchParams.getAll("expand");
    const blobs = url.searchParams.get("blobs") === "true";
    const all = expand.length === 0;
    const body: Record<string, unknown> = { _id: createHash("md5").update(repoId).digest("hex"), id: repoId };
    const wants = (k: string) => all || expand.includes(k);
    if (wants("sha")) body.sha = commit.sha;
    if (wants("private")) body.private = repo.spec.private === true;
    if (wants("gated")) body.gated = repo.spec.gated ? "manual" : false;
    if (wants("downloads")) body.downloads = 0;
    if (wants("likes")) body.likes = 0;
    if (wants("lastModified")) body.lastModified = "2025-01-01T00:00:00.000Z";
    if (wants("pipeline_tag")) body.pipeline_tag = "text-generation";
    if (wants("siblings"))
      body.siblings = [...commit.files.values()].map((f) =>
        blobs
          ? {
              rfilename: f.path,
              size: f.content.byteLength,
              blobId: f.lfs ? f.pointerOid : f.gitOid,
              ...(f.lfs
                ? { lfs: { sha256: f.sha256, size: f.content.byteLength, pointerSize: f.pointer.length } }
                : {}),
            }
          : { rfilename: f.path },
      );
    this.sendJson(res, 200, body);
  }

  private tree(
    req: IncomingMessage,
    res: ServerResponse,
    repoId: string,
    revision: string,
    under: string,
    url: URL,
  ) {
    const denial = this.denied(repoId, req, false);
    if (denial) return this.sendError(res, denial.status, denial.code, denial.message);
    const commit = this.commitFor(this.repos.get(repoId)!, revision);
    if (!commit) return this.sendError(res, 404, "RevisionNotFound", `Invalid rev id: ${revision}`);
    const recursive = url.searchParams.get("recursive") === "true";
    const prefix = under ? `${under}/` : "";
    const entries: Array<Record<string, unknown>> = [];
    const dirs = new Set<string>();
    for (const f of [...commit.files.values()].sort((a, b) => a.path.localeCompare(b.path))) {
      if (!f.path.startsWith(prefix)) continue;
      const rel = f.path.slice(prefix.length).split("/");
      for (let i = 1; i < rel.length; i++) {
        const d = prefix + rel.slice(0, i).join("/");
        if (!dirs.has(d) && (recursive || i === 1)) {
          dirs.add(d);
          entries.push({ type: "directory", oid: gitBlobOid(Buffer.from(d)), size: 0, path: d });
        }
      }
      if (!recursive && rel.length > 1) continue;
      entries.push({
        type: "file",
        oid: f.lfs ? f.pointerOid : f.gitOid,
        size: f.content.byteLength,
        path: f.path,
        ...(f.lfs
          ? { lfs: { oid: f.sha256, size: f.content.byteLength, pointerSize: f.pointer.length } }
          : {}),
      });
    }
    const pageSize = this.options.pageSize ?? 1000;
    const cursor = Number(url.searchParams.get("cursor") ?? "0");
    const page = entries.slice(cursor, cursor + pageSize);
    const headers: Record<string, string> = {};
    if (cursor + pageSize < entries.length) {
      const next = new URL(url.href);
      next.searchParams.set("cursor", String(cursor + pageSize));
      headers.link = `<${next.href}>; rel="next"`;
    }
    this.sendJson(res, 200, page, headers);
  }

  private async resolveFile(
    req: IncomingMessage,
    res: ServerResponse,
    repoId: string,
    revision: string,
    path: string,
    entry: LoggedRequest,
  ): Promise<void> {
    const denial = this.denied(repoId, req, true);
    if (denial) {
      entry.status = denial.status;
      return this.sendError(res, denial.status, denial.code, denial.message);
    }
    const commit = this.commitFor(this.repos.get(repoId)!, revision);
    if (!commit) {
      entry.status = 404;
      return this.sendError(res, 404, "RevisionNotFound", `Invalid rev id: ${revision}`);
    }
    const file = commit.files.get(path);
    if (!file) {
      entry.status = 404;
      return this.sendError(res, 404, "EntryNotFound", `${path} does not exist on "${revision}"`);
    }
    const common = {
      "x-repo-commit": commit.sha,
      "accept-ranges": "bytes",
      "access-control-expose-headers": "X-Repo-Commit,X-Linked-Size,X-Linked-ETag,ETag,Content-Range",
    };
    if (file.lfs) {
      entry.status = 302;
      res.writeHead(302, {
        ...common,
        location: `${this.cdnEndpoint}/cdn/${file.sha256}?file=${encodeURIComponent(path)}&X-Amz-Signature=mock`,
        etag: `"${file.pointerOid}"`,
        "x-linked-etag": `"${file.sha256}"`,
        "x-linked-size": String(file.content.byteLength),
        "content-length": "0",
      });
      res.end();
      return;
    }
    entry.status = await this.sendBytes(req, res, file, { ...common, etag: `"${file.gitOid}"` });
  }

  private async handleCdn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.cdnEndpoint);
    const sha = url.pathname.startsWith("/cdn/") ? url.pathname.slice(5) : "";
    const file = this.bySha.get(sha);
    const entry = this.log("cdn", req, url.searchParams.get("file") ?? file?.path);
    if (!file) {
      entry.status = 404;
      res.writeHead(404).end();
      return;
    }
    entry.status = await this.sendBytes(req, res, file, {
      etag: `"${file.sha256}"`,
      "accept-ranges": "bytes",
    });
  }

  private takeFault(kind: Fault["kind"], path: string, start: number, end: number): Fault | undefined {
    const fault = this.faults.find(
      (f) => f.kind === kind && f.file === path && f.times > 0 && f.at >= start && f.at < end,
    );
    if (fault) fault.times--;
    return fault;
  }

  /** Sends a file (or the asked range of it) with the configured throttle and faults; returns the status. */
  private async sendBytes(
    req: IncomingMessage,
    res: ServerResponse,
    file: StoredFile,
    headers: Record<string, string>,
  ): Promise<number> {
    const failure = this.faults.find((f) => f.kind === "status" && f.file === file.path && f.times > 0);
    if (failure) {
      failure.times--;
      this.sendError(res, failure.at, undefined, "Internal error");
      return failure.at;
    }
    const size = file.content.byteLength;
    let start = 0;
    let end = size; // exclusive
    let status = 200;
    const range = this.ignoreRange ? null : /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(size, Number(range[2]) + 1) : size;
      if (start >= size) {
        res.writeHead(416, { "content-range": `bytes */${size}` });
        res.end();
        return 416;
      }
      status = 206;
    }
    let body = file.content.subarray(start, end);
    const corrupt = this.takeFault("corrupt", file.path, start, end);
    if (corrupt) {
      body = Buffer.from(body);
      body[corrupt.at - start] ^= 0xff;
    }
    const out: Record<string, string> = {
      ...headers,
      "content-type": "application/octet-stream",
      "content-length": String(end - start),
    };
    if (status === 206) out["content-range"] = `bytes ${start}-${end - 1}/${size}`;
    res.writeHead(status, out);
    if (req.method === "HEAD") {
      res.end();
      return status;
    }
    const drop = this.takeFault("drop", file.path, start, end);
    const stall = drop ? undefined : this.takeFault("stall", file.path, start, end);
    const cut = drop ? drop.at - start : stall ? stall.at - start : body.byteLength;
    this.activeTransfers++;
    this.maxConcurrentTransfers = Math.max(this.maxConcurrentTransfers, this.activeTransfers);
    try {
      const chunk = this.options.chunkSize ?? 16 * 1024;
      let sent = 0;
      while (sent < cut && !res.destroyed) {
        const n = Math.min(chunk, cut - sent);
        await new Promise<void>((resolve) => res.write(body.subarray(sent, sent + n), () => resolve()));
        sent += n;
        if (this.bytesPerSecond > 0) await sleep((n / this.bytesPerSecond) * 1000);
      }
      if (drop) {
        res.socket?.destroy();
      } else if (stall) {
        // Keep the connection open and silent until the client gives up.
        await new Promise<void>((resolve) => res.once("close", () => resolve()));
      } else res.end();
    } finally {
      this.activeTransfers--;
    }
    return status;
  }
}
