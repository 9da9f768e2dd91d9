/**
 * `ollm serve`: the OpenAI-compatible server (src/server) over this command's RuntimeClient, with the
 * layered [server], [runtime] and [generation] settings as its configuration and request defaults.
 * SIGINT/SIGTERM stop it gracefully (exit 0); a second signal exits at once.
 */
import { isLoopbackHost } from "../../server/config.js";
import type { CliContext } from "../context.js";
import { EXIT } from "../errors.js";

export async function runServe(ctx: CliContext): Promise<number> {
  const server = ctx.settings.serveSettings();
  const runtimeConfig = ctx.settings.runtimeConfig();
  const generationConfig = ctx.settings.generationConfig();
  // Loaded here, not at startup: fastify is only needed by this command.
  const { startServer } = await import("../../server/index.js");
  const explicitLevel = ctx.settings.get("server.logLevel")?.source.kind !== "default";
  const handle = await startServer({
    ...server,
    logLevel: explicitLevel
      ? server.logLevel
      : ctx.globals.verbose
        ? "debug"
        : ctx.globals.quiet
          ? "warn"
          : server.logLevel,
    client: await ctx.client(),
    runtimeConfig,
    generationConfig,
    handleSignals: false,
    env: ctx.env,
  });
  const only = server.allowModels.length
    ? `; serving only ${[runtimeConfig.modelReference, ...server.allowModels].join(", ")}`
    : server.listedModelsOnly
      ? "; serving only the listed models"
      : "";
  ctx.ui.line(
    `ollm server listening on ${handle.url} (default model ${runtimeConfig.modelReference}${only}); Ctrl-C stops it`,
  );
  // Reachable from elsewhere and unrestricted: say so, since a caller may then start downloads.
  if (!only && !isLoopbackHost(server.host))
    ctx.ui.warn(
      "requests may name any model reference (a hub id is downloaded, a path on this machine is loaded)",
      "Limit them with --allow-model REF (repeatable) or --listed-models-only.",
    );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  const force = () => process.exit(EXIT.INTERRUPTED);
  process.once("SIGINT", force);
  process.once("SIGTERM", force);
  ctx.ui.info(`${signal}: stopping the server (running requests may finish)…`);
  await handle.close();
  process.off("SIGINT", force);
  process.off("SIGTERM", force);
  return EXIT.OK;
}
