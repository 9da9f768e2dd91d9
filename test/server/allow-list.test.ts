/** The model allow-list of the server (server.allowModels / listedModelsOnly, `--allow-model`). */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Command } from "commander";
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { addFlags, flagSettings, serverFlags } from "../../src/cli/options.js";
import { Settings } from "../../src/cli/settings.js";
import { OllmError } from "../../src/errors.js";
import type { Materializer } from "../../src/runtime/materializer.js";
import { copyModel } from "../runtime/helpers.js";
import {
  DEFAULT_MODEL,
  fixture,
  jsonOf,
  postJson,
  removeDir,
  startTestServer,
  type TestServer,
  tempDir,
} from "./helpers.js";

const hi: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Hi" }];

/** A materializer that records what it was asked to download, and downloads nothing. */
function recordingMaterializer(): { materializer: Materializer; asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    materializer: {
      async materialize(model) {
        asked.push(model.reference);
        throw new OllmError("OFFLINE", "test: no network");
      },
    },
  };
}

let dir: string;
/** A complete model outside the models directory (a path a request might name). */
let outside: string;

beforeAll(async () => {
  dir = await tempDir("ollm-allow-");
  outside = await copyModel("tiny-llama", join(dir, "elsewhere"));
});
afterAll(async () => {
  await removeDir(dir);
});

describe("allowModels: only the default model and the listed ones", () => {
  let server: TestServer;
  let ai: OpenAI;
  const downloads = recordingMaterializer();

  beforeAll(async () => {
    server = await startTestServer(
      { allowModels: ["tiny-llama", fixture("tiny-mistral")] },
      { materializer: downloads.materializer },
    );
    ai = server.openai();
  });
  afterAll(async () => {
    await server.close();
  });

  test("/v1/models and /v1/ollm/models list exactly those", async () => {
    const ids = [DEFAULT_MODEL, "tiny-llama", fixture("tiny-mistral")];
    expect((await ai.models.list()).data.map((m) => m.id)).toEqual(ids);
    const native = await jsonOf(await fetch(`${server.url}/v1/ollm/models`));
    expect(native.data.map((m: { id: string }) => m.id)).toEqual(ids);
    expect((await ai.models.retrieve("tiny-llama")).id).toBe("tiny-llama");
  });

  test("listed models are served by their id and by their other names (the path here)", async () => {
    const byId = await ai.chat.completions.create({ model: "tiny-llama", messages: hi });
    expect(byId.model).toBe("tiny-llama");
    const byPath = await ai.chat.completions.create({ model: fixture("tiny-llama"), messages: hi });
    expect(byPath.choices[0].message.content).toBe(byId.choices[0].message.content);
    const byDefault = await ai.chat.completions.create({ messages: hi } as never);
    expect(byDefault.model).toBe(DEFAULT_MODEL);
  });

  test("anything else is 404 model_not_found 'not served here', never resolved nor downloaded", async () => {
    for (const model of [
      "tiny-qwen3", // installed under modelsDir, but not listed
      fixture("tiny-qwen3"),
      outside,
      "/etc",
      "Qwen/Qwen3-0.6B", // a hub id: would be downloaded by an unrestricted server
      "llama3-1B-chat", // a built-in alias
    ]) {
      const refused = { status: 404, code: "model_not_found", param: "model", type: "not_found_error" };
      await expect(ai.chat.completions.create({ model, messages: hi })).rejects.toMatchObject({
        ...refused,
        message: `404 The model \`${model}\` is not served here`,
      });
      await expect(ai.responses.create({ model, input: "Hi" })).rejects.toMatchObject(refused);
      await expect(ai.models.retrieve(model)).rejects.toMatchObject({ status: 404 });
    }
    expect(downloads.asked).toEqual([]);
  });

  test("the native routes refuse them too", async () => {
    for (const [route, body] of [
      ["/v1/prompt", { prompt: "Hi" }],
      ["/v1/prompt/stream", { prompt: "Hi" }],
      ["/v1/sessions", {}],
      ["/v1/plan", {}],
    ] as const) {
      const r = await postJson(`${server.url}${route}`, { model: "tiny-qwen3", ...body });
      expect(r.status, route).toBe(404);
      expect((await jsonOf(r)).error).toMatchObject({ code: "model_not_found", param: "model" });
    }
  });
});

describe("listedModelsOnly: the default model and the models under modelsDir", () => {
  let server: TestServer;
  let ai: OpenAI;
  const downloads = recordingMaterializer();

  beforeAll(async () => {
    server = await startTestServer({ listedModelsOnly: true }, { materializer: downloads.materializer });
    ai = server.openai();
  });
  afterAll(async () => {
    await server.close();
  });

  test("installed models are listed and served; hub ids and other paths are 404 without a download", async () => {
    const ids = (await ai.models.list()).data.map((m) => m.id);
    expect(ids[0]).toBe(DEFAULT_MODEL);
    expect(ids).toContain("tiny-llama");
    const r = await ai.chat.completions.create({ model: "tiny-llama", messages: hi });
    expect(r.model).toBe("tiny-llama");
    for (const model of ["Qwen/Qwen3-0.6B", outside])
      await expect(ai.chat.completions.create({ model, messages: hi })).rejects.toMatchObject({
        status: 404,
        code: "model_not_found",
      });
    expect(downloads.asked).toEqual([]);
  });
});

describe("unrestricted (the default, unchanged)", () => {
  test("any reference is resolved: a path outside modelsDir is served, a hub id goes to the materializer", async () => {
    const downloads = recordingMaterializer();
    const server = await startTestServer({}, { materializer: downloads.materializer });
    try {
      const ai = server.openai();
      const r = await ai.chat.completions.create({ model: outside, messages: hi });
      expect(r.model).toBe(outside);
      await expect(
        ai.chat.completions.create({ model: "Qwen/Qwen3-0.6B", messages: hi }),
      ).rejects.toMatchObject({ status: 503 });
      expect(downloads.asked).toEqual(["Qwen/Qwen3-0.6B"]);
    } finally {
      await server.close();
    }
  });
});

describe("configuration", () => {
  test("an allowed model that does not resolve fails the start (INVALID_CONFIG naming the field)", async () => {
    await expect(startTestServer({ allowModels: ["tiny-llama", "no-such-model"] })).rejects.toMatchObject({
      code: "INVALID_CONFIG",
      message: expect.stringContaining('server.allowModels: cannot resolve "no-such-model"'),
    });
  });

  test("--allow-model (repeatable) and --listed-models-only; [server] allow_models; OLLM_SERVER__ALLOW_MODELS", async () => {
    const flags = serverFlags();
    const command = addFlags(new Command().exitOverride(), flags);
    command.parse(["--allow-model", "a", "--allow-model", "org/b", "--listed-models-only"], { from: "user" });
    const fromFlags = Settings.load({
      cwd: dir,
      env: {},
      flags: flagSettings(command, flags),
    }).serveSettings();
    expect(fromFlags).toMatchObject({ allowModels: ["a", "org/b"], listedModelsOnly: true });

    const toml = join(dir, "ollm.toml");
    await writeFile(toml, '[server]\nallow_models = ["x", "./y"]\nlisted_models_only = true\n');
    expect(Settings.load({ cwd: dir, env: {} }).serveSettings()).toMatchObject({
      allowModels: ["x", "./y"],
      listedModelsOnly: true,
    });
    const fromEnv = Settings.load({ cwd: dir, env: { OLLM_SERVER__ALLOW_MODELS: "p,q" } }).serveSettings();
    expect(fromEnv.allowModels).toEqual(["p", "q"]);
    // Defaults: unrestricted.
    expect(Settings.load({ cwd: join(dir, "elsewhere"), env: {} }).serveSettings()).toMatchObject({
      allowModels: [],
      listedModelsOnly: false,
    });
  });
});
