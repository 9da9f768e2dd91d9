import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { ResolvedModelSchema } from "../../runtime/resolved-model.js";
import type { ServerContext } from "../generation.js";
import type { ListedModel } from "../models.js";
import type { RouteCatalog } from "../openapi.js";
import { ModelListSchema, ModelObjectSchema } from "./schemas.js";

/** A model in OpenAI's shape. */
function modelObject(ctx: ServerContext, m: ListedModel) {
  return {
    id: m.id,
    object: "model" as const,
    created: ctx.startedAt,
    owned_by: m.resolved.repoId?.split("/")[0] ?? "ollm",
  };
}

/** One entry of /v1/ollm/models. */
export const OllmModelSchema = z.object({
  id: z.string().describe("What requests send as `model`"),
  reference: z.string().describe("The model reference it resolves through"),
  default: z.boolean(),
  loaded: z.boolean().describe("A runtime of it is in memory"),
  installed: z.boolean().describe("A complete local copy exists (materialized)"),
  capabilities: z.object({
    chat: z.boolean().describe("Has a chat template"),
    tools: z.boolean().describe("Its chat template renders tools"),
    image: z.boolean(),
    audio: z.boolean(),
    runnable: z.boolean().describe("No issue keeps it from running here"),
  }),
  sizes: z.object({
    parameters: z.number().int().nullable(),
    weightBytes: z.number().int().nullable(),
    diskBytes: z.number().int().describe("Bytes of its files on disk"),
  }),
  model: ResolvedModelSchema,
});

export const OllmModelListSchema = z.object({
  object: z.literal("list"),
  default: z.string().nullable(),
  data: z.array(OllmModelSchema),
});

export function registerModelRoutes(app: FastifyInstance, ctx: ServerContext, catalog: RouteCatalog): void {
  catalog.add({
    method: "GET",
    url: "/v1/models",
    operationId: "listModels",
    tag: "OpenAI",
    summary: "Models (OpenAI shape): the default model, then the local models",
    response: ModelListSchema,
  });
  app.get("/v1/models", async () => ({
    object: "list",
    data: (await ctx.models.list()).map((m) => modelObject(ctx, m)),
  }));

  catalog.add({
    method: "GET",
    url: "/v1/models/*",
    operationId: "retrieveModel",
    tag: "OpenAI",
    summary: "One model by id (ids may contain slashes)",
    response: ModelObjectSchema,
    errors: [404],
  });
  app.get("/v1/models/*", async (request) => {
    const id = (request.params as { "*": string })["*"];
    return modelObject(ctx, await ctx.models.find(id));
  });

  catalog.add({
    method: "GET",
    url: "/v1/ollm/models",
    operationId: "listOllmModels",
    tag: "Native",
    summary: "Models with what they are: installed/loaded, capabilities, sizes, the resolved description",
    response: OllmModelListSchema,
  });
  app.get("/v1/ollm/models", async () => {
    const [listed, loaded] = await Promise.all([ctx.models.list(), ctx.client.loadedRuntimes()]);
    const loadedPaths = new Set(loaded.map((r) => r.model.path));
    const data = await Promise.all(
      listed.map(async (m) => {
        const r = m.resolved;
        return {
          id: m.id,
          reference: m.reference,
          default: m.isDefault,
          loaded: r.path !== null && loadedPaths.has(r.path),
          installed: r.materialized,
          capabilities: {
            chat: r.hasChatTemplate,
            tools: await ctx.models.templateHasTools(r),
            image: r.modalities.includes("image"),
            audio: r.modalities.includes("audio"),
            runnable: r.issues.length === 0,
          },
          sizes: {
            parameters: r.parameterCount,
            weightBytes: r.weightBytes,
            diskBytes: r.files.reduce((sum, f) => sum + f.bytes, 0),
          },
          model: r,
        };
      }),
    );
    return { object: "list", default: ctx.models.defaultReference ?? null, data };
  });
}
