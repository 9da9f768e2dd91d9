import { z } from "zod";
import { ErrorBodySchema } from "./openai/schemas.js";

/** What the OpenAPI document says about one route. */
export interface RouteDoc {
  method: "GET" | "POST" | "DELETE";
  /** Fastify form (`/v1/sessions/:id`). */
  url: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** The JSON request body. */
  body?: z.ZodType;
  /** The JSON answer (status `status`, default 200). */
  response?: z.ZodType | Record<string, unknown>;
  status?: number;
  /** Server-sent events: what each event's data is. */
  events?: { description: string; schema: z.ZodType };
  /** Error statuses besides the generic ones. */
  errors?: number[];
  /** False for the routes that need no API key (health). */
  auth?: boolean;
}

/** The routes of a server, as each route group declares them. */
export class RouteCatalog {
  readonly routes: RouteDoc[] = [];

  add(doc: RouteDoc): void {
    this.routes.push(doc);
  }
}

const ERROR_TEXT: Record<number, string> = {
  400: "Invalid request (the error's `param` names the field)",
  401: "Missing or wrong API key",
  404: "Unknown model, session or response",
  409: "The session is busy with another turn",
  413: "Request body too large",
  422: "The model cannot run (unsupported architecture, broken checkpoint, over the memory budget) or its reply is not valid JSON",
  429: "The model's queue is full (Retry-After)",
  503: "Shutting down, timed out waiting, or no backend",
};

function jsonSchema(
  schema: z.ZodType | Record<string, unknown>,
  io: "input" | "output",
): Record<string, unknown> {
  if (!(schema instanceof z.ZodType)) return schema;
  const out = z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" }) as Record<
    string,
    unknown
  >;
  delete out.$schema;
  return out;
}

/** The OpenAPI 3.1 document of a catalog, its schemas generated from the zod schemas. */
export function openApiDocument(
  catalog: RouteCatalog,
  info: { title: string; version: string },
): Record<string, unknown> {
  const schemas: Record<string, unknown> = { Error: jsonSchema(ErrorBodySchema, "output") };
  const paths: Record<string, Record<string, unknown>> = {};
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  for (const route of catalog.routes) {
    const path = route.url.replace(/:(\w+)/g, "{$1}").replace(/\*$/, "{id}");
    const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    const op: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      ...(route.description ? { description: route.description } : {}),
      ...(params.length ? { parameters: params } : {}),
      ...(route.auth === false ? { security: [] } : {}),
    };
    if (route.body) {
      const name = `${capitalize(route.operationId)}Request`;
      schemas[name] = jsonSchema(route.body, "input");
      op.requestBody = { required: true, content: { "application/json": { schema: ref(name) } } };
    }
    const responses: Record<string, unknown> = {};
    const content: Record<string, unknown> = {};
    if (route.response) {
      const name = `${capitalize(route.operationId)}Response`;
      schemas[name] = jsonSchema(route.response, "output");
      content["application/json"] = { schema: ref(name) };
    }
    if (route.events) {
      const name = `${capitalize(route.operationId)}Event`;
      schemas[name] = jsonSchema(route.events.schema, "output");
      content["text/event-stream"] = {
        schema: { type: "string", description: route.events.description },
        itemSchema: ref(name),
      };
    }
    responses[String(route.status ?? 200)] = {
      description: route.events && !route.response ? "Server-sent events" : "Success",
      ...(Object.keys(content).length ? { content } : {}),
    };
    const errors = new Set([
      ...(route.body ? [400, 413] : []),
      ...(route.auth === false ? [] : [401]),
      ...(route.errors ?? []),
    ]);
    for (const status of [...errors].sort())
      responses[String(status)] = {
        description: ERROR_TEXT[status] ?? "Error",
        content: { "application/json": { schema: ref("Error") } },
      };
    responses.default = { description: "Error", content: { "application/json": { schema: ref("Error") } } };
    op.responses = responses;
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = op;
  }
  return {
    openapi: "3.1.0",
    info: {
      ...info,
      description:
        "OpenAI-compatible and native HTTP API of oLLM for TypeScript. Errors use the OpenAI error shape " +
        "`{error: {message, type, param, code}}`. With an API key, every route but /v1/health needs " +
        "`Authorization: Bearer <key>`.",
    },
    components: {
      schemas,
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

function capitalize(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

/** A self-contained HTML page rendering the OpenAPI document (no external scripts: works offline). */
export function docsPage(document: Record<string, unknown>): string {
  const json = JSON.stringify(document).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>oLLM server API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem 2rem;color:#222}
h1{margin-bottom:0}code,pre{font:13px ui-monospace,monospace}pre{background:#f6f8fa;padding:.75rem;overflow:auto;max-height:28rem}
details{border:1px solid #ddd;border-radius:6px;margin:.5rem 0;padding:.25rem .75rem}summary{cursor:pointer}
.m{display:inline-block;min-width:4.5rem;font-weight:600}.GET{color:#0a7}.POST{color:#07c}.DELETE{color:#c33}
</style></head><body>
<h1>oLLM server API</h1><p id="d"></p><p><a href="/openapi.json">openapi.json</a></p><div id="routes"></div>
<script type="application/json" id="spec">${json}</script>
<script>
const spec = JSON.parse(document.getElementById("spec").textContent);
document.getElementById("d").textContent = spec.info.description;
const resolve = (s) => s && s.$ref ? spec.components.schemas[s.$ref.split("/").pop()] : s;
const out = document.getElementById("routes");
let tag = "";
for (const [path, ops] of Object.entries(spec.paths)) for (const [method, op] of Object.entries(ops)) {
  if (op.tags[0] !== tag) { tag = op.tags[0]; const h = document.createElement("h2"); h.textContent = tag; out.append(h); }
  const d = document.createElement("details");
  const s = document.createElement("summary");
  s.innerHTML = '<span class="m ' + method.toUpperCase() + '">' + method.toUpperCase() + "</span> <code></code> — ";
  s.querySelector("code").textContent = path;
  s.append(op.summary);
  d.append(s);
  if (op.description) { const p = document.createElement("p"); p.textContent = op.description; d.append(p); }
  const body = op.requestBody && resolve(op.requestBody.content["application/json"].schema);
  if (body) { const h = document.createElement("h4"); h.textContent = "Request body"; const pre = document.createElement("pre"); pre.textContent = JSON.stringify(body, null, 2); d.append(h, pre); }
  for (const [status, r] of Object.entries(op.responses)) {
    const h = document.createElement("h4"); h.textContent = status + ": " + r.description; d.append(h);
    for (const [type, c] of Object.entries(r.content || {})) {
      if (status !== "200" && status !== "201") continue;
      const pre = document.createElement("pre");
      pre.textContent = type + "\\n" + JSON.stringify(resolve(c.itemSchema || c.schema), null, 2);
      d.append(pre);
    }
  }
  out.append(d);
}
</script></body></html>`;
}
