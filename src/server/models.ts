import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { RuntimeClient } from "../client.js";
import type { RuntimeConfigInput } from "../config/runtime-config.js";
import { isOllmError, OllmError } from "../errors.js";
import type { ResolvedModel } from "../runtime/resolved-model.js";
import { ApiError } from "./errors.js";

/** A model a request can name: its id (what clients send), the reference it resolves through, what it is. */
export interface ListedModel {
  id: string;
  reference: string;
  resolved: ResolvedModel;
  isDefault: boolean;
}

/** The model a request runs on: its runtime config (server defaults + reference) and the queue it waits in. */
export interface ModelTarget {
  /** The id echoed in responses (as the request wrote it, or the default model's). */
  id: string;
  runtimeConfig: RuntimeConfigInput;
  resolved: ResolvedModel;
  /** Queue key: the model's directory (or its reference while not materialized). */
  key: string;
}

const LIST_TTL_MS = 5_000;
const RESOLVE_TTL_MS = 10_000;
const RESOLVE_CACHE_SIZE = 256;

/** Which models requests may name (the server config's `allowModels` and `listedModelsOnly`). */
export interface ModelAccess {
  /** Served besides the default model; when non-empty, the only ones listed and served. */
  allowModels?: readonly string[];
  /** Refuse every model the list does not hold (no downloads or paths a request names). */
  listedModelsOnly?: boolean;
}

/**
 * The models a server offers: the default model (the runtime config's `modelReference`) and either the
 * allowed models or the models discovered under `modelsDir`, each by an id that resolves through the
 * client. Unrestricted, any other reference (alias, repo id, path) is resolved through the client as
 * well; restricted, a request may only name a listed model (by its id, reference, alias, repo id, name
 * or path): anything else is 404 without being resolved, so a caller can neither start a download nor
 * probe the server's files.
 */
export class ModelDirectory {
  readonly #client: RuntimeClient;
  readonly #defaults: Partial<RuntimeConfigInput>;
  readonly #modelsDir: string;
  readonly #allowed: string[];
  readonly #restricted: boolean;
  #list: { at: number; value: Promise<ListedModel[]> } | undefined;
  readonly #resolved = new Map<string, { at: number; value: Promise<ResolvedModel> }>();
  readonly #toolTemplates = new Map<string, Promise<boolean>>();

  constructor(client: RuntimeClient, defaults: Partial<RuntimeConfigInput>, access: ModelAccess = {}) {
    this.#client = client;
    this.#defaults = defaults;
    this.#modelsDir = resolve(defaults.modelsDir ?? "models");
    this.#allowed = [...new Set(access.allowModels ?? [])];
    this.#restricted = this.#allowed.length > 0 || access.listedModelsOnly === true;
  }

  /** Resolves every allowed model once (INVALID_CONFIG naming the first that does not resolve). */
  async checkAllowed(): Promise<void> {
    for (const ref of this.#allowed) {
      try {
        await this.#resolve(ref);
      } catch (error) {
        if (!isOllmError(error)) throw error;
        throw new OllmError(
          "INVALID_CONFIG",
          `server.allowModels: cannot resolve "${ref}": ${error.message}`,
          {
            hint: "List model references that resolve (ollm models list shows them).",
            cause: error,
          },
        );
      }
    }
  }

  /** The default model reference, if the server has one. */
  get defaultReference(): string | undefined {
    const ref = this.#defaults.modelReference?.trim();
    return ref ? ref : undefined;
  }

  /** The default model first, then the local models (cached for a few seconds). */
  list(): Promise<ListedModel[]> {
    const now = Date.now();
    if (!this.#list || now - this.#list.at > LIST_TTL_MS) {
      const value = this.#discover();
      this.#list = { at: now, value };
      value.catch(() => {
        if (this.#list?.value === value) this.#list = undefined;
      });
    }
    return this.#list.value;
  }

  async #discover(): Promise<ListedModel[]> {
    const out: ListedModel[] = [];
    const seen = new Set<string>();
    const ref = this.defaultReference;
    if (ref) {
      try {
        const resolved = await this.#resolve(ref);
        out.push({ id: ref, reference: ref, resolved, isDefault: true });
        if (resolved.path) seen.add(resolved.path);
      } catch {
        // A default that does not resolve is reported when a request uses it.
      }
    }
    if (this.#allowed.length > 0) {
      // Allowed models keep the reference they were listed by as their id.
      for (const ref of this.#allowed) {
        if (out.some((m) => m.id === ref)) continue;
        try {
          const resolved = await this.#resolve(ref);
          if (resolved.path && seen.has(resolved.path)) continue;
          if (resolved.path) seen.add(resolved.path);
          out.push({ id: ref, reference: ref, resolved, isDefault: false });
        } catch {
          // Checked at startup; one that stopped resolving is reported when a request names it.
        }
      }
      return out;
    }
    let found: ResolvedModel[] = [];
    try {
      found = await this.#client.discoverLocalModels(this.#modelsDir);
    } catch {
      found = [];
    }
    const ids = new Set(out.map((m) => m.id));
    for (const model of found) {
      if (model.path && seen.has(model.path)) continue;
      if (model.path) seen.add(model.path);
      let id = model.name;
      for (let n = 2; ids.has(id); n++) id = `${model.name}-${n}`;
      ids.add(id);
      out.push({ id, reference: model.path ?? model.reference, resolved: model, isDefault: false });
    }
    return out;
  }

  /**
   * The listed model a request's name means: by id first, then by any other name of it (reference,
   * alias, repo id, display name, directory).
   */
  async #match(name: string): Promise<ListedModel | undefined> {
    const list = await this.list();
    return (
      list.find((m) => m.id === name) ??
      list.find((m) =>
        [
          m.reference,
          m.resolved.reference,
          m.resolved.alias,
          m.resolved.repoId,
          m.resolved.name,
          m.resolved.path,
        ].includes(name),
      )
    );
  }

  /** Whether a name that matched no listed model may still be resolved (404 `not served` otherwise). */
  #mayResolve(name: string): boolean {
    return !this.#restricted || name === this.defaultReference || this.#allowed.includes(name);
  }

  /**
   * The model a request names (or the default): 400 when neither is given, 404 when the reference
   * resolves to nothing.
   */
  async target(model: string | null | undefined): Promise<ModelTarget> {
    const requested = model?.trim();
    const id = requested || this.defaultReference;
    if (!id)
      throw new ApiError(400, "model: required (the server has no default model)", {
        code: "invalid_request",
        param: "model",
      });
    const listed = await this.#match(id);
    if (!listed && !this.#mayResolve(id)) throw notServed(id);
    const reference = listed?.reference ?? id;
    let resolved: ResolvedModel;
    try {
      resolved = listed?.resolved ?? (await this.#resolve(reference));
    } catch (error) {
      throw notFound(id, error);
    }
    return {
      id,
      runtimeConfig: { ...this.#defaults, modelReference: reference },
      resolved,
      key: resolved.path ?? `${resolved.referenceKind}:${resolved.reference}`,
    };
  }

  /** A listed or resolvable model by id (404 otherwise). */
  async find(id: string): Promise<ListedModel> {
    const listed = await this.#match(id);
    if (listed) return { ...listed, id };
    if (!this.#mayResolve(id)) throw notServed(id);
    try {
      const resolved = await this.#resolve(id);
      if (!resolved.materialized && resolved.issues.length > 0) throw notFound(id);
      return { id, reference: id, resolved, isDefault: false };
    } catch (error) {
      throw notFound(id, error);
    }
  }

  /** Whether a model's chat template renders tools (reads its template files once). */
  templateHasTools(model: ResolvedModel): Promise<boolean> {
    if (!model.path || !model.hasChatTemplate) return Promise.resolve(false);
    let known = this.#toolTemplates.get(model.path);
    if (!known) {
      known = templateMentionsTools(model.path);
      this.#toolTemplates.set(model.path, known);
    }
    return known;
  }

  #resolve(reference: string): Promise<ResolvedModel> {
    const now = Date.now();
    const hit = this.#resolved.get(reference);
    if (hit && now - hit.at < RESOLVE_TTL_MS) return hit.value;
    const value = this.#client.resolve(reference, { modelsDir: this.#modelsDir });
    if (this.#resolved.size >= RESOLVE_CACHE_SIZE) this.#resolved.delete(this.#resolved.keys().next().value!);
    this.#resolved.set(reference, { at: now, value });
    value.catch(() => {
      if (this.#resolved.get(reference)?.value === value) this.#resolved.delete(reference);
    });
    return value;
  }
}

function notFound(id: string, cause?: unknown): ApiError {
  if (cause instanceof ApiError) return cause;
  if (cause !== undefined && !isOllmError(cause)) throw cause;
  const detail = isOllmError(cause) && cause.code !== "MODEL_NOT_FOUND" ? ` (${cause.message})` : "";
  return new ApiError(404, `The model \`${id}\` does not exist or cannot be found${detail}`, {
    code: "model_not_found",
    param: "model",
    hint: "GET /v1/models lists the models this server offers.",
  });
}

function notServed(id: string): ApiError {
  return new ApiError(404, `The model \`${id}\` is not served here`, {
    code: "model_not_found",
    param: "model",
    hint: "This server serves only the models GET /v1/models lists.",
  });
}

/** Whether a model directory's chat template mentions `tools` (so tool definitions reach the model). */
async function templateMentionsTools(dir: string): Promise<boolean> {
  const texts: string[] = [];
  for (const name of ["chat_template.jinja", "chat_template.json", "tokenizer_config.json"]) {
    try {
      texts.push(await readFile(join(dir, name), "utf8"));
    } catch {
      // absent
    }
  }
  return texts.some((t) => /\btools\b/.test(t));
}
