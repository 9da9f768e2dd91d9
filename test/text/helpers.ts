import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const FIXTURES = join(import.meta.dirname, "..", "fixtures");
export const TOKENIZER_NAMES = [
  "bytelevel-llama3",
  "bytelevel-chatml",
  "sentencepiece-mistral",
  "sentencepiece-gemma",
] as const;

export function tokenizerDir(name: string): string {
  return join(FIXTURES, "tokenizers", name);
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

/** One encode/decode case of the golden and oracle files (produced by transformers). */
export interface EncodeCase {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decoded: string;
  decoded_skip_special: string;
}

export interface Variant {
  name: string;
  base?: string;
  full?: Record<string, unknown>;
  tokenizer?: Record<string, unknown>;
  addedTokens?: Array<Record<string, unknown> & { content: string }>;
  config?: Record<string, unknown>;
}

export interface VariantSpec {
  texts: string[];
  variants: Variant[];
}

/** Writes a fixture tokenizer with the variant's changes into a temp folder (same rules as oracle/generate.py). */
export function buildVariantDir(variant: Variant): string {
  const out = mkdtempSync(join(tmpdir(), `tok-${variant.name}-`));
  let json: Record<string, unknown>;
  let config: Record<string, unknown> = {};
  if (variant.full) json = structuredClone(variant.full);
  else {
    const base = tokenizerDir(variant.base!);
    json = readJson(join(base, "tokenizer.json"));
    config = readJson(join(base, "tokenizer_config.json"));
    if (existsSync(join(base, "chat_template.jinja"))) {
      copyFileSync(join(base, "chat_template.jinja"), join(out, "chat_template.jinja"));
    }
  }
  Object.assign(json, variant.tokenizer ?? {});
  const added = (json.added_tokens as Array<Record<string, unknown>>).map((t) => ({ ...t }));
  for (const patch of variant.addedTokens ?? []) {
    const existing = added.find((t) => t.content === patch.content);
    if (existing) Object.assign(existing, patch);
    else added.push({ ...patch });
  }
  json.added_tokens = added;
  Object.assign(config, variant.config ?? {});
  writeFileSync(join(out, "tokenizer.json"), JSON.stringify(json));
  writeFileSync(join(out, "tokenizer_config.json"), JSON.stringify(config));
  return out;
}

/** Small deterministic PRNG (mulberry32) so random cases are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const ORACLE_DIR = join(import.meta.dirname, "fixtures");
