import { readFile } from "node:fs/promises";
import { OllmError, type OllmErrorCode } from "../errors.js";

/** Reads a JSON object file; missing → undefined when optional, malformed → a clear error with `code`. */
export async function readJsonObject(
  path: string,
  code: OllmErrorCode,
  optional = false,
): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      if (optional) return undefined;
      throw new OllmError("MODEL_NOT_FOUND", `${path} does not exist`);
    }
    throw new OllmError("IO_ERROR", `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new OllmError(code, `${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new OllmError(code, `${path} must contain a JSON object`);
  return value as Record<string, unknown>;
}
