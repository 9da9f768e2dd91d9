import { ApiError } from "./errors.js";

/** Deepest nesting of objects/arrays a request body may have. */
export const MAX_JSON_DEPTH = 64;

/**
 * Parses a JSON request body defensively: nesting deeper than {@link MAX_JSON_DEPTH} and keys that
 * could poison prototypes (`__proto__`, `constructor.prototype`) are refused with 400 before anything
 * walks the value recursively.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === "")
    throw new ApiError(400, "The request body is empty; expected JSON", { code: "invalid_json" });
  const depth = jsonDepth(text);
  if (depth > MAX_JSON_DEPTH)
    throw new ApiError(400, `The request body nests deeper than ${MAX_JSON_DEPTH} levels`, {
      code: "invalid_json",
    });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ApiError(400, `The request body is not valid JSON: ${(error as Error).message}`, {
      code: "invalid_json",
    });
  }
  if (/"(?:__proto__|constructor)"\s*:/.test(text)) checkKeys(value, 0);
  return value;
}

/** Deepest nesting of `[`/`{` outside strings (a linear scan; no recursion). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) max = depth;
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
  return max;
}

function checkKeys(value: unknown, depth: number): void {
  if (typeof value !== "object" || value === null || depth > MAX_JSON_DEPTH) return;
  if (Array.isArray(value)) {
    for (const item of value) checkKeys(item, depth + 1);
    return;
  }
  for (const key of Object.keys(value)) {
    const child = (value as Record<string, unknown>)[key];
    if (
      key === "__proto__" ||
      (key === "constructor" && typeof child === "object" && child !== null && "prototype" in child)
    )
      throw new ApiError(400, `The request body has a forbidden key "${key}"`, { code: "invalid_json" });
    checkKeys(child, depth + 1);
  }
}
