/** Everything docs/api.md imports from "ollm-ts", for the docs test (the package index re-exports these). */
export * from "../../src/client.js";
export * from "../../src/config/index.js";
export * from "../../src/errors.js";
export * from "../../src/messages.js";
export * from "../../src/runtime/index.js";
export * from "../../src/session.js";
