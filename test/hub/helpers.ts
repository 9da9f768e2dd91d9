import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixtureFiles, type MockRepoSpec } from "./mock-hub.js";

export const FIXTURES = fileURLToPath(new URL("../fixtures/models/", import.meta.url));

export const GRANTED = "hf_granted_token";
export const NOBODY = "hf_valid_but_no_access";

export const llamaFiles = fixtureFiles(join(FIXTURES, "tiny-llama"));
export const qwen3Files = fixtureFiles(join(FIXTURES, "tiny-qwen3"));
export const gemmaMmFiles = fixtureFiles(join(FIXTURES, "tiny-gemma3-mm"));

/** Files a real repo carries that running does not need. */
export const EXTRAS: Record<string, string | Uint8Array> = {
  "README.md": "# tiny\n",
  ".gitattributes": "*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
  "pytorch_model.bin": new Uint8Array(4096).fill(7),
  "onnx/model.onnx": new Uint8Array(2048).fill(3),
  "original/consolidated.safetensors": new Uint8Array(1024).fill(1),
};

export const LLAMA_NEEDED = [
  "config.json",
  "generation_config.json",
  "model-00001-of-00004.safetensors",
  "model-00002-of-00004.safetensors",
  "model-00003-of-00004.safetensors",
  "model-00004-of-00004.safetensors",
  "model.safetensors.index.json",
  "tokenizer.json",
  "tokenizer_config.json",
];

export function mockRepos(): MockRepoSpec[] {
  const v1Config = JSON.stringify({
    ...JSON.parse(Buffer.from(llamaFiles["config.json"]).toString()),
    _v: 1,
  });
  return [
    {
      id: "tiny/llama",
      files: { ...llamaFiles, ...EXTRAS },
      revisions: { v1: { ...llamaFiles, "config.json": v1Config } },
    },
    { id: "tiny/qwen3", files: { ...qwen3Files, ...EXTRAS } },
    {
      id: "tiny/gemma3-mm",
      files: {
        ...gemmaMmFiles,
        "preprocessor_config.json": '{"image_processor_type":"Gemma3ImageProcessor"}',
        "processor_config.json": '{"processor_class":"Gemma3Processor"}',
        "additional_chat_templates/tool_use.jinja": "{{ messages }}",
      },
    },
    {
      id: "tiny/pickle-only",
      files: {
        "config.json": llamaFiles["config.json"],
        "tokenizer.json": llamaFiles["tokenizer.json"],
        "pytorch_model.bin": new Uint8Array(4096).fill(9),
      },
    },
    { id: "tiny/gated", files: { ...qwen3Files }, gated: true, grantedTokens: [GRANTED] },
    { id: "tiny/private", files: { ...qwen3Files }, private: true, grantedTokens: [GRANTED] },
    { id: "tiny/new-name", files: { ...qwen3Files }, renamedFrom: "tiny/old-name" },
  ];
}

export async function tempDir(prefix = "ollm-hub-"): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}
