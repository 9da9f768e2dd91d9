/**
 * The server under load, in its own process (so its memory is measured alone). Started by loadtest.ts:
 *   node --import ./tools/loadtest/register.mjs tools/loadtest/server.ts '<json options>'
 * Prints `{"url": …}` once listening; SIGTERM shuts it down gracefully.
 */
import { RuntimeClient } from "../../src/client.js";
import { startServer } from "../../src/server/index.js";

const options = JSON.parse(process.argv[2] ?? "{}") as {
  model: string;
  concurrency: number;
  maxQueue: number;
  requestTimeoutMs?: number;
};
const client = new RuntimeClient();
const server = await startServer({
  client,
  host: "127.0.0.1",
  port: 0,
  logLevel: "warn",
  env: {},
  runtimeConfig: { modelReference: options.model },
  concurrency: options.concurrency,
  maxQueue: options.maxQueue,
  requestTimeoutMs: options.requestTimeoutMs ?? 120_000,
});
process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
