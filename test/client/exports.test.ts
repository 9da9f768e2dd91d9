import { describe, expect, it } from "vitest";
import * as index from "../../src/index.js";
import * as client from "../../src/client.js";
import * as config from "../../src/config/index.js";
import * as messages from "../../src/messages.js";
import * as runtime from "../../src/runtime/index.js";
import * as session from "../../src/session.js";

describe("public modules", () => {
  it("can all be re-exported from the package index without name clashes", () => {
    const seen = new Map<string, string>();
    const modules = { index, client, config, messages, runtime, session };
    for (const [name, mod] of Object.entries(modules)) {
      for (const key of Object.keys(mod)) {
        const other = seen.get(key);
        if (
          other &&
          (modules as Record<string, Record<string, unknown>>)[other][key] !==
            (mod as Record<string, unknown>)[key]
        )
          throw new Error(`${key} is exported by both ${other} and ${name}`);
        seen.set(key, name);
      }
    }
    expect(seen.get("RuntimeClient")).toBe("client");
  });
});
