import { randomBytes } from "node:crypto";

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** `length` random alphanumeric characters. */
export function randomAlphanumeric(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  // 62 symbols: the bias of `byte % 62` is irrelevant for identifiers.
  for (const b of bytes) out += ALPHANUMERIC[b % ALPHANUMERIC.length];
  return out;
}

/** An id with an OpenAI-style prefix: `chatcmpl-…`, `resp_…`, `msg_…`. */
export function newId(prefix: string, length = 24): string {
  return `${prefix}${randomAlphanumeric(length)}`;
}

/**
 * A tool call id. Mistral chat templates insist on exactly 9 alphanumeric characters; other families
 * get OpenAI's `call_` form.
 */
export function newToolCallId(family: string | null | undefined): string {
  return family === "mistral" ? randomAlphanumeric(9) : newId("call_");
}

/** Unix time in seconds. */
export function unixSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
