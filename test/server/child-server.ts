/**
 * A server in a child process, for the shutdown tests (run with tools/loadtest/register.mjs):
 *   node --import ./tools/loadtest/register.mjs test/server/child-server.ts MODEL_DIR SHUTDOWN_TIMEOUT_MS
 * Prints `{"url": …}` on stdout once listening; SIGTERM shuts it down (handleSignals).
 */
import { RuntimeClient } from "../../src/client.js";
import { startServer } from "../../src/server/index.js";

const [model, shutdownTimeoutMs] = process.argv.slice(2);
const client = new RuntimeClient();
const server = await startServer({
  client,
  port: 0,
  logLevel: "warn",
  env: {},
  runtimeConfig: { modelReference: model },
  shutdownTimeoutMs: Number(shutdownTimeoutMs),
});
process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
