// Module hooks for register.mjs: resolve `./x.js` to `./x.ts` when only the TypeScript file exists, and
// strip the types of `.ts` modules (no type checking: tsc does that). The transform is oxc's (through
// rolldown, which vitest's vite brings) when it is there, else typescript's transpileModule (slower).
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

let transform;

async function transformer() {
  if (transform) return transform;
  try {
    const { transformSync } = await import("rolldown/experimental");
    transform = (path, source) => {
      const result = transformSync(path, source, { sourcemap: false });
      if (result.errors?.length) throw new Error(`${path}: ${result.errors.map((e) => e.message).join("; ")}`);
      return result.code;
    };
  } catch {
    const ts = (await import("typescript")).default;
    transform = (path, source) =>
      ts.transpileModule(source, {
        fileName: path,
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, useDefineForClassFields: true },
      }).outputText;
  }
  return transform;
}

export async function resolve(specifier, context, nextResolve) {
  const relative = specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("file:");
  if (relative && specifier.endsWith(".js") && context.parentURL) {
    const url = new URL(specifier, context.parentURL);
    if (url.protocol === "file:" && !existsSync(fileURLToPath(url))) {
      const tsUrl = new URL(url.href.replace(/\.js$/, ".ts"));
      if (existsSync(fileURLToPath(tsUrl))) return { url: tsUrl.href, shortCircuit: true };
    }
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith("file:") || !url.endsWith(".ts")) return nextLoad(url, context);
  const path = fileURLToPath(url);
  const source = (await transformer())(path, await readFile(path, "utf8"));
  return { format: "module", source, shortCircuit: true };
}
