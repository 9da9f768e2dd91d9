import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Input modalities a model can take. */
export const MODALITIES = ["text", "image", "audio"] as const;
/** An input modality. */
export type Modality = (typeof MODALITIES)[number];

/** One built-in model alias. */
export interface CatalogEntry {
  /** The alias users type (`llama3-8B-chat`). */
  alias: string;
  /** One line for listings. */
  summary: string;
  /** The Hugging Face repository it stands for; null for a model that only ships bundled. */
  repoId: string | null;
  /** Input modalities of the model. */
  modalities: readonly Modality[];
  /** Model family (engine family name) the alias belongs to. */
  family: string;
  /** A directory shipped with the package that holds the model (absolute path); it wins over every other location. */
  bundledPath?: string;
}

/** The built-in aliases and their repositories. */
export const BUILTIN_CATALOG: readonly CatalogEntry[] = [
  {
    alias: "llama3-1B-chat",
    summary: "Llama 3.2 1B Instruct: small chat model",
    repoId: "meta-llama/Llama-3.2-1B-Instruct",
    modalities: ["text"],
    family: "llama",
  },
  {
    alias: "llama3-3B-chat",
    summary: "Llama 3.2 3B Instruct: mid-sized chat model",
    repoId: "meta-llama/Llama-3.2-3B-Instruct",
    modalities: ["text"],
    family: "llama",
  },
  {
    alias: "llama3-8B-chat",
    summary: "Llama 3.1 8B Instruct: the largest built-in Llama chat model",
    repoId: "meta-llama/Llama-3.1-8B-Instruct",
    modalities: ["text"],
    family: "llama",
  },
  {
    alias: "gemma3-12B",
    summary: "Gemma 3 12B instruction-tuned: text and image chat",
    repoId: "google/gemma-3-12b-it",
    modalities: ["text", "image"],
    family: "gemma3",
  },
  {
    alias: "gpt-oss-20B",
    summary: "gpt-oss 20B: mixture-of-experts reasoning model (MXFP4 experts)",
    repoId: "openai/gpt-oss-20b",
    modalities: ["text"],
    family: "gpt-oss",
  },
  {
    alias: "qwen3-next-80B",
    summary: "Qwen3-Next 80B-A3B Instruct: hybrid linear-attention mixture of experts",
    repoId: "Qwen/Qwen3-Next-80B-A3B-Instruct",
    modalities: ["text"],
    family: "qwen3-next",
  },
  {
    alias: "voxtral-small-24B",
    summary: "Voxtral Small 24B: text and audio chat",
    repoId: "mistralai/Voxtral-Small-24B-2507",
    modalities: ["text", "audio"],
    family: "voxtral",
  },
];

/** Where the package keeps bundled models: `<package root>/models/<alias>` (same from src/ and dist/). */
export function bundledModelPath(alias: string): string {
  return fileURLToPath(new URL(`../../models/${alias}`, import.meta.url));
}

/** The bundled demo model's entry (alias `demo`), present once the package ships models/demo. */
export function demoEntry(): CatalogEntry | undefined {
  const path = bundledModelPath("demo");
  if (!existsSync(`${path}/config.json`)) return undefined;
  return {
    alias: "demo",
    summary: "Tiny demo model bundled with the package (runs anywhere, output is not meaningful)",
    repoId: null,
    modalities: ["text"],
    family: "llama",
    bundledPath: path,
  };
}

/** A set of aliases: the built-in one by default, or any list (tests, embedders with their own models). */
export class Catalog {
  readonly #entries: Map<string, CatalogEntry>;

  constructor(entries: readonly CatalogEntry[]) {
    this.#entries = new Map(entries.map((e) => [e.alias, e]));
  }

  /** The built-in aliases, plus the bundled demo model when the package ships one. */
  static builtin(): Catalog {
    const demo = demoEntry();
    return new Catalog(demo ? [...BUILTIN_CATALOG, demo] : BUILTIN_CATALOG);
  }

  /** The entry of an alias, or undefined. */
  find(alias: string): CatalogEntry | undefined {
    return this.#entries.get(alias);
  }

  /** The entry whose repository is `repoId` (case-insensitive, as on the Hub), or undefined. */
  findByRepo(repoId: string): CatalogEntry | undefined {
    const wanted = repoId.toLowerCase();
    for (const entry of this.#entries.values()) if (entry.repoId?.toLowerCase() === wanted) return entry;
    return undefined;
  }

  /** Every entry, sorted by alias. */
  list(): CatalogEntry[] {
    return [...this.#entries.values()].sort((a, b) => a.alias.localeCompare(b.alias));
  }

  /** Every alias, sorted. */
  aliases(): string[] {
    return this.list().map((e) => e.alias);
  }
}
