import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import { ResidentKvStore } from "../../src/engine/kv/kv-store.js";
import { loadModel } from "../../src/engine/model.js";
import type { RawConfig } from "../../src/engine/models/family.js";
import { familyFor } from "../../src/engine/models/registry.js";
import { Sequence } from "../../src/engine/sequence.js";
import { neededTensorNames, ResidentWeightStore, type WeightStore } from "../../src/engine/weight-store.js";
import { Checkpoint } from "../../src/engine/weights/safetensors.js";
import { fixtureDir, readGolden, relativeError } from "./oracle.js";

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function configOf(name: string): RawConfig {
  return JSON.parse(readFileSync(join(fixtureDir(name), "config.json"), "utf8"));
}

/** A copy of a fixture whose config.json is rewritten. */
function withConfig(name: string, edit: (c: RawConfig) => RawConfig): string {
  const dir = mkdtempSync(join(tmpdir(), "ollm-family-"));
  temps.push(dir);
  cpSync(fixtureDir(name), dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), JSON.stringify(edit(configOf(name))));
  return dir;
}

async function promptLogits(dir: string, ids: number[]): Promise<Float32Array> {
  const model = await loadModel(dir, { backend: "cpu" });
  try {
    return await model.logits(ids);
  } finally {
    await model.close();
  }
}

describe("older config.json forms read like the v5 ones", () => {
  const cases: [string, (c: RawConfig) => RawConfig][] = [
    [
      "tiny-gemma3",
      ({ layer_types, rope_parameters, _sliding_window_pattern, ...c }) => ({
        ...c,
        sliding_window_pattern: 3, // layers 0, 1 sliding, layer 2 global
        rope_theta: 1_000_000,
        rope_local_base_freq: 10_000,
        rope_scaling: { rope_type: "linear", factor: 8 },
      }),
    ],
    [
      "tiny-gpt_oss",
      ({ rope_theta, rope_scaling, ...c }) => ({
        ...c,
        rope_parameters: { ...(rope_scaling as object), rope_theta },
      }),
    ],
    [
      "tiny-qwen3_next",
      ({ layer_types, rope_parameters, ...c }) => ({
        ...c,
        full_attention_interval: 4,
        rope_theta: 10_000,
        partial_rotary_factor: 0.25,
      }),
    ],
  ];
  it.each(cases)("%s", async (name, edit) => {
    const { golden, promptLogits: want } = readGolden(name);
    const got = await promptLogits(withConfig(name, edit), golden.prompt_ids);
    expect(relativeError(got, want)).toBeLessThan(1e-4);
    expect(relativeError(got, await promptLogits(fixtureDir(name), golden.prompt_ids))).toBe(0);
  });
});

describe("gemma3 final_logit_softcapping", () => {
  it("caps the logits: cap · tanh(logits / cap)", async () => {
    const { golden, promptLogits: want } = readGolden("tiny-gemma3");
    const dir = withConfig("tiny-gemma3", (c) => ({ ...c, final_logit_softcapping: 2 }));
    const got = await promptLogits(dir, golden.prompt_ids);
    expect(
      relativeError(
        got,
        want.map((v) => 2 * Math.tanh(v / 2)),
      ),
    ).toBeLessThan(1e-4);
  });
});

describe("Gemma3ForConditionalGeneration", () => {
  it("loads only the language model, never the vision tower or projector", async () => {
    const checkpoint = await Checkpoint.open(fixtureDir("tiny-gemma3-mm"));
    try {
      const names = checkpoint.names();
      const lm = familyFor(configOf("tiny-gemma3-mm")).create(configOf("tiny-gemma3-mm"), names);
      const needed = neededTensorNames(names, lm);
      expect(needed.length).toBeGreaterThan(0);
      expect(needed.every((n) => n.startsWith("language_model.model."))).toBe(true);
      expect(needed.length).toBe(names.filter((n) => n.startsWith("language_model.")).length);
    } finally {
      await checkpoint.close();
    }
  });

  it("finds the language model in the layout transformers v5 saves (model.language_model.*)", () => {
    const config = configOf("tiny-gemma3-mm");
    const lm = familyFor(config).create(config, [
      "model.language_model.embed_tokens.weight",
      "model.vision_tower.x",
    ]);
    expect(lm.layerPrefix(0)).toBe("model.language_model.layers.0.");
    expect(lm.globalTensorNames).toContain("model.language_model.embed_tokens.weight");
  });
});

/** A sequence whose weight store records every on-demand fetch as "layer:name:index". */
async function spiedSequence(name: string) {
  const config = configOf(name);
  const checkpoint = await Checkpoint.open(fixtureDir(name));
  const lm = familyFor(config).create(config, checkpoint.names());
  const backend = new CpuBackend();
  const store = await ResidentWeightStore.load(checkpoint, backend, lm);
  const fetched: string[] = [];
  const spy: WeightStore = {
    global: () => store.global(),
    async layer(i) {
      const w = await store.layer(i);
      return {
        get: (n) => w.get(n),
        find: (n) => w.find(n),
        fetch: (n, index) => {
          fetched.push(`${i}:${n}:${index}`);
          return w.fetch(n, index);
        },
      };
    },
    dispose: () => store.dispose(),
  };
  const specs = Array.from({ length: lm.numLayers }, (_, i) => lm.kvSpec(i));
  const seq = new Sequence(backend, lm, spy, new ResidentKvStore(backend, specs));
  return { seq, fetched, lm, close: () => checkpoint.close() };
}

describe("MoE layers fetch and run only the experts the router picked", () => {
  const expertOf = (entry: string) => {
    const [layer, name, index] = entry.split(":");
    const named = /experts\.(\d+)\./.exec(name);
    return `${layer}:${named ? named[1] : index}`;
  };
  it.each([
    ["tiny-gpt_oss", 2],
    ["tiny-gpt_oss-mxfp4", 2],
    ["tiny-qwen3_next", 2],
  ])("%s: one decode token touches top-k = %i experts per layer", async (name, k) => {
    const { golden } = readGolden(name);
    const { seq, fetched, lm, close } = await spiedSequence(name);
    try {
      await seq.forward(golden.prompt_ids, { logits: "last" });
      fetched.length = 0;
      await seq.forward([golden.greedy_ids[0]], { logits: "last" });
      const experts = new Set(fetched.map(expertOf));
      for (let layer = 0; layer < lm.numLayers; layer++)
        expect([...experts].filter((e) => e.startsWith(`${layer}:`)).length).toBe(k);
    } finally {
      await close();
    }
  });
});

describe("qwen3-next carries its conv and recurrent state across prefill chunks", () => {
  it.each([1, 7, 48])("chunks of %i tokens give the logits of one pass", async (chunkTokens) => {
    const { golden, promptLogits: want } = readGolden("tiny-qwen3_next");
    const model = await loadModel(fixtureDir("tiny-qwen3_next"), { backend: "cpu" });
    try {
      const whole = await model.logits(golden.prompt_ids);
      const chunked = await model.logits(golden.prompt_ids, { chunkTokens });
      expect(relativeError(chunked, whole)).toBeLessThan(1e-5);
      expect(relativeError(chunked, want)).toBeLessThan(1e-4);
    } finally {
      await model.close();
    }
  });
});
